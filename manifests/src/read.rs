//! Finding and reading the manifest files of a directory, within size limits.
//!
//! Hidden entries (name starting with `.`) are skipped: a Kubernetes ConfigMap volume
//! holds each file twice, once in a `..2024_...` directory (reached again through the
//! `..data` symlink) and once as a top-level symlink into `..data`; reading only the
//! top-level names reads each file once. Symlinks are otherwise followed, except a
//! symlink back to a directory being read (a loop).

use crate::{ManifestFile, ReadError};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Extensions of manifest files (compared ignoring ASCII case).
const MANIFEST_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// The most one file may hold: 4 MiB.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// The most all files together may hold: 64 MiB.
pub const MAX_TOTAL_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub file_bytes: u64,
    pub total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            file_bytes: MAX_FILE_BYTES,
            total_bytes: MAX_TOTAL_BYTES,
        }
    }
}

/// A manifest file found under the root: its path relative to the root (`/`-separated)
/// and where to read it.
struct Found {
    relative: String,
    path: PathBuf,
}

/// Every manifest file under `dir`, read, in order of relative path.
pub(crate) fn read_files(dir: &Path, limits: Limits) -> Result<Vec<ManifestFile>, ReadError> {
    let mut found = Vec::new();
    find(dir, "", &mut found, &mut Vec::new())?;
    found.sort_by(|a, b| a.relative.cmp(&b.relative));

    let mut total = 0u64;
    let mut files = Vec::with_capacity(found.len());
    for Found { relative, path } in found {
        let bytes = read_limited(&path, limits.file_bytes)?;
        total += bytes.len() as u64;
        if total > limits.total_bytes {
            return Err(ReadError::TotalTooLarge {
                path,
                limit: limits.total_bytes,
            });
        }
        let text = String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8 { path })?;
        files.push(ManifestFile {
            path: relative,
            text,
        });
    }
    Ok(files)
}

/// Adds the manifest files under `dir` (whose path relative to the root is `prefix`)
/// to `found`, visiting entries in name order. `ancestors` holds the canonical paths of
/// the directories being read: a symlink back to one of them is a loop and is skipped.
fn find(
    dir: &Path,
    prefix: &str,
    found: &mut Vec<Found>,
    ancestors: &mut Vec<PathBuf>,
) -> Result<(), ReadError> {
    let dir_error = |source| ReadError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    let canonical = fs::canonicalize(dir).map_err(dir_error)?;
    if ancestors.contains(&canonical) {
        return Ok(());
    }
    let mut entries = fs::read_dir(dir)
        .map_err(dir_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(dir_error)?;
    entries.sort_by_key(|entry| entry.file_name());

    ancestors.push(canonical);
    for entry in entries {
        let name = entry.file_name();
        if name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        // Follows symlinks. A dangling symlink is read (and reported) only if its name
        // says it is a manifest.
        let metadata = match fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(_) if !is_manifest_name(&name) => continue,
            Err(source) => return Err(ReadError::File { path, source }),
        };
        let wanted = metadata.is_dir() || (metadata.is_file() && is_manifest_name(&name));
        if !wanted {
            continue;
        }
        let Some(name) = name.to_str() else {
            return Err(ReadError::NameNotUtf8 { path });
        };
        let relative = format!("{prefix}{name}");
        if metadata.is_dir() {
            find(&path, &format!("{relative}/"), found, ancestors)?;
        } else {
            found.push(Found { relative, path });
        }
    }
    ancestors.pop();
    Ok(())
}

fn is_manifest_name(name: &OsStr) -> bool {
    Path::new(name)
        .extension()
        .and_then(OsStr::to_str)
        .is_some_and(|ext| {
            MANIFEST_EXTENSIONS
                .iter()
                .any(|known| ext.eq_ignore_ascii_case(known))
        })
}

/// The bytes of the file at `path`, refusing more than `limit` of them (checked before
/// reading and while reading, in case the file grows).
fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let file_error = |source| ReadError::File {
        path: path.to_path_buf(),
        source,
    };
    let too_large = || ReadError::FileTooLarge {
        path: path.to_path_buf(),
        limit,
    };
    let file = File::open(path).map_err(file_error)?;
    let size = file.metadata().map_err(file_error)?.len();
    if size > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(file_error)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn manifest_names() {
        for name in ["a.yaml", "a.yml", "a.json", "A.YAML", "x.y.Yml"] {
            assert!(is_manifest_name(&OsString::from(name)), "{name}");
        }
        for name in ["a.txt", "yaml", "a.yaml.bak", "a.", ".yaml"] {
            assert!(!is_manifest_name(&OsString::from(name)), "{name}");
        }
    }
}
