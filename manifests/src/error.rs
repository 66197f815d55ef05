//! Why a manifests directory could not be read. Every error names the path at fault.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read manifests directory {}: {source}", path.display())]
    Dir { path: PathBuf, source: io::Error },

    #[error("cannot read manifest file {}: {source}", path.display())]
    File { path: PathBuf, source: io::Error },

    #[error(
        "manifest file {} is larger than {}, the limit for one file",
        path.display(),
        size_text(*limit)
    )]
    FileTooLarge { path: PathBuf, limit: u64 },

    #[error(
        "manifest file {} takes the manifests over {}, the limit for all files together",
        path.display(),
        size_text(*limit)
    )]
    TotalTooLarge { path: PathBuf, limit: u64 },

    #[error("manifest file {} is not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf },

    #[error("{}: name is not UTF-8", path.display())]
    NameNotUtf8 { path: PathBuf },
}

/// `4 MiB` for whole mebibytes, else bytes.
fn size_text(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(size_text(4 * 1024 * 1024), "4 MiB");
        assert_eq!(size_text(100), "100 bytes");
    }
}
