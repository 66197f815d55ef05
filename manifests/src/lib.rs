//! Reads a manifests directory: the I/O edge in front of `palisade_policy::manifest`,
//! for the standalone agent and `palisadectl`.
//!
//! [`read_dir`] finds every `.yaml`/`.yml`/`.json` file under a directory (recursively,
//! skipping hidden entries, within size limits) and reads it into a [`ManifestSet`];
//! [`ManifestSet::parse`] turns the set into the policy model.

mod error;
mod hash;
mod read;

pub use error::ReadError;
pub use read::{MAX_FILE_BYTES, MAX_TOTAL_BYTES};

use palisade_policy::manifest::{ManifestErrors, build_cluster, parse_documents};
use palisade_policy::model::Cluster;
use std::path::Path;

/// One manifest file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestFile {
    /// Relative to the directory read, `/`-separated; errors name the file by it.
    pub path: String,
    pub text: String,
}

/// The manifest files of a directory, in order of relative path, with a hash of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestSet {
    pub files: Vec<ManifestFile>,
    /// SHA-256 (hex) over every file's relative path and text: it changes exactly when
    /// the set does.
    pub hash: String,
}

/// Reads every manifest file under `dir`. Files are regular files (or symlinks to them)
/// named `*.yaml`, `*.yml` or `*.json`, found recursively; entries whose name starts
/// with `.` are skipped. A file over [`MAX_FILE_BYTES`], a set over
/// [`MAX_TOTAL_BYTES`], a file that is not UTF-8 and a missing or unreadable directory
/// are errors naming the path.
pub fn read_dir(dir: &Path) -> Result<ManifestSet, ReadError> {
    read::read_files(dir, read::Limits::default()).map(ManifestSet::new)
}

impl ManifestSet {
    /// A set of these files, put in order of path, with their hash.
    pub fn new(mut files: Vec<ManifestFile>) -> Self {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let hash = hash::content_hash(&files);
        ManifestSet { files, hash }
    }

    /// Parses every file and assembles the cluster. Reports every problem of every file
    /// (each naming its file), or, if all files parse, every duplicate object.
    pub fn parse(&self) -> Result<Cluster, ManifestErrors> {
        let mut objects = Vec::new();
        let mut errors = Vec::new();
        for file in &self.files {
            match parse_documents(&file.path, &file.text) {
                Ok(parsed) => objects.extend(parsed.into_iter().map(|o| (file.path.clone(), o))),
                Err(file_errors) => errors.extend(file_errors),
            }
        }
        if !errors.is_empty() {
            return Err(ManifestErrors(errors));
        }
        build_cluster(objects)
    }
}

#[cfg(test)]
mod tests;
