//! `cargo xtask crds`: writes the CustomResourceDefinitions of palisade's own kinds,
//! built from the Rust types (`palisade-crds`), into `charts/palisade/crds/`;
//! `--check` only compares, and fails if the checked-in files differ.

use crate::paths;
use anyhow::{Result, bail};
use palisade_crds::files::{CHART_CRDS_DIR, check, write};

pub fn run(check_only: bool) -> Result<()> {
    let dir = paths::workspace().join(CHART_CRDS_DIR);
    if check_only {
        if let Err(message) = check(&dir) {
            bail!(message);
        }
        println!("CRDs in {} are up to date", dir.display());
        return Ok(());
    }
    for path in write(&dir)? {
        println!("wrote {}", path.display());
    }
    Ok(())
}
