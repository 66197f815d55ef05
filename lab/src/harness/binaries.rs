//! Locates the binaries under test: an environment variable set by `cargo xtask test`,
//! else the workspace's release or debug build. A missing binary is an error that says
//! how to build it; tests never skip.

use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("lab/ is in the workspace")
        .to_path_buf()
}

/// Path of binary `name`, from `env_var` if set.
pub fn locate(name: &str, env_var: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!("{env_var}={} does not exist", p.display());
    }
    for profile in ["release", "debug"] {
        let p = workspace().join("target").join(profile).join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!(
        "{name} not found (set {env_var} or build it with `cargo xtask build`; `cargo xtask test` does both)"
    )
}

pub fn agent() -> Result<PathBuf> {
    locate("palisade-agent", "PALISADE_AGENT_BIN")
}

pub fn palisadectl() -> Result<PathBuf> {
    locate("palisadectl", "PALISADE_CTL_BIN")
}

/// The test needs root (BPF, network namespaces): fail with a clear message otherwise.
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "kernel tests need root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN): run them as root, e.g. via `cargo xtask test`"
        );
    }
    Ok(())
}
