//! Reads a manifests directory and compiles it, exactly as `palisade-agent standalone`
//! does; errors are the libraries' own, which name the file, object and field.

use palisade_manifests::ReadError;
use palisade_policy::compile::{compile, tables::CompiledCluster};
use palisade_policy::manifest::ManifestErrors;
use palisade_policy::model::Cluster;
use std::path::{Path, PathBuf};

/// A cluster and what it compiles to.
pub struct Loaded {
    pub cluster: Cluster,
    pub compiled: CompiledCluster,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("the manifests in {} are not valid:\n{errors}", dir.display())]
    Invalid {
        dir: PathBuf,
        errors: ManifestErrors,
    },
}

pub fn load(dir: &Path) -> Result<Loaded, LoadError> {
    let set = palisade_manifests::read_dir(dir)?;
    let cluster = set.parse().map_err(|errors| LoadError::Invalid {
        dir: dir.to_path_buf(),
        errors,
    })?;
    let compiled = compile(&cluster);
    Ok(Loaded { cluster, compiled })
}
