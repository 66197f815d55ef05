//! The content hash of a manifest set: changes exactly when a file's relative path or
//! content does.

use crate::ManifestFile;
use sha2::{Digest, Sha256};

/// SHA-256, hex, over every file in order: its relative path and its text, each
/// preceded by its length (u64, big-endian) so that no two different sets hash the same
/// bytes.
pub(crate) fn content_hash(files: &[ManifestFile]) -> String {
    let mut hasher = Sha256::new();
    for file in files {
        for part in [file.path.as_bytes(), file.text.as_bytes()] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> ManifestFile {
        ManifestFile {
            path: path.into(),
            text: text.into(),
        }
    }

    #[test]
    fn path_and_text_boundaries_are_unambiguous() {
        let a = content_hash(&[file("a", "bc")]);
        let b = content_hash(&[file("ab", "c")]);
        let c = content_hash(&[file("a", ""), file("b", "c")]);
        assert_ne!(a, b);
        assert_ne!(b, c);
        assert_ne!(a, c);
    }

    #[test]
    fn is_stable_and_hex() {
        let files = [file("p.yaml", "kind: Pod")];
        assert_eq!(content_hash(&files), content_hash(&files));
        assert_eq!(content_hash(&files).len(), 64);
    }
}
