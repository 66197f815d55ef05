//! Finding the `palisade-netprobe` binary that labs run inside pods.

use anyhow::{Context, Result, bail};
use std::env;
use std::path::{Path, PathBuf};

/// Environment variable naming the netprobe binary explicitly.
pub const NETPROBE_ENV: &str = "PALISADE_NETPROBE";

const NETPROBE_NAME: &str = "palisade-netprobe";

/// The netprobe binary: `$PALISADE_NETPROBE` if set, else `palisade-netprobe`
/// next to the current executable or in its parent directory (integration
/// test binaries live in `target/<profile>/deps/`, binaries in
/// `target/<profile>/`).
pub fn netprobe_path() -> Result<PathBuf> {
    if let Some(path) = env::var_os(NETPROBE_ENV) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "${NETPROBE_ENV} is set to {}, which is not a file",
                path.display()
            );
        }
        return Ok(path);
    }
    let exe = env::current_exe().context("finding the current executable")?;
    let file_name = format!("{NETPROBE_NAME}{}", env::consts::EXE_SUFFIX);
    exe.parent()
        .into_iter()
        .flat_map(|dir| [Some(dir), dir.parent()])
        .flatten()
        .map(|dir| dir.join(&file_name))
        .find(|candidate| candidate.is_file())
        .with_context(|| not_found_message(&exe))
}

fn not_found_message(exe: &Path) -> String {
    format!(
        "{NETPROBE_NAME} not found: build it with `cargo build -p palisade-lab` (cargo xtask test \
         does), or set ${NETPROBE_ENV}; looked next to {} and in its parent directory",
        exe.display()
    )
}
