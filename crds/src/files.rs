//! The generated files in the chart: what they should hold, writing them, and telling
//! whether the checked-in ones still equal what the types give.

use crate::definitions::definitions;
use crate::publication::publication_definitions;
use crate::render::file_text;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where the CRDs live, relative to the repository root.
pub const CHART_CRDS_DIR: &str = "charts/palisade/crds";

/// Every generated file: its name and its text.
pub fn expected() -> Vec<(&'static str, String)> {
    definitions()
        .into_iter()
        .chain(publication_definitions())
        .map(|definition| (definition.file_name, file_text(&definition.crd)))
        .collect()
}

/// Writes every file into `dir` (created if missing); returns the paths written.
pub fn write(dir: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    expected()
        .into_iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            fs::write(&path, text)?;
            Ok(path)
        })
        .collect()
}

/// `Ok` if every file in `dir` equals what the types give; otherwise a message naming
/// each missing or different file and saying how to regenerate them.
pub fn check(dir: &Path) -> Result<(), String> {
    let stale: Vec<String> = expected()
        .into_iter()
        .filter_map(|(name, text)| {
            let path = dir.join(name);
            match fs::read_to_string(&path) {
                Ok(written) if written == text => None,
                Ok(_) => Some(format!("{} differs from the types", path.display())),
                Err(err) => Some(format!("{} cannot be read: {err}", path.display())),
            }
        })
        .collect();
    if stale.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the CRDs in {} are out of date with the Rust types:\n  {}\nrun `cargo xtask crds` \
             and commit the result",
            dir.display(),
            stale.join("\n  ")
        ))
    }
}
