//! The I/O edge of pod cgroup discovery: checks that the kubelet's cgroups are on
//! cgroup v2, finds its `kubepods` cgroup under `--cgroup-root` (either driver, via
//! `kubelet_cgroups`), scans it into pod UID -> cgroup id, and watches it with inotify
//! so a new pod's cgroup is seen when the kubelet creates it (before its containers
//! start). The driver also rescans periodically: inotify is the fast path, the rescan
//! the safety net.

use crate::cgroupfs;
use crate::kubelet_cgroups::{self, Driver};
use anyhow::{Context, Result, bail};
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// `statfs.f_type` of cgroup v2 and of a cgroup v1 hierarchy.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Refuses a `--cgroup-root` that is not on cgroup v2, naming the reason: a cgroup v1
/// hierarchy (or the tmpfs that holds v1 controller mounts) means the kubelet's pod
/// cgroups are on v1, where the programs cannot attach per pod.
pub fn require_cgroup2(root: &Path) -> Result<()> {
    let c = std::ffi::CString::new(root.as_os_str().as_encoded_bytes())?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid NUL-terminated path and a zeroed out-struct.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("--cgroup-root {}", root.display()));
    }
    match st.f_type as i64 {
        CGROUP2_SUPER_MAGIC => Ok(()),
        CGROUP_SUPER_MAGIC | TMPFS_MAGIC => bail!(
            "--cgroup-root {} is on cgroup v1 (the node's pods' cgroups are on the v1 \
             hierarchy): palisade needs cgroup v2 (unified hierarchy, Kubernetes' default \
             since 1.25; boot with systemd.unified_cgroup_hierarchy=1)",
            root.display()
        ),
        other => bail!(
            "--cgroup-root {} is not a cgroup v2 directory (filesystem type {other:#x})",
            root.display()
        ),
    }
}

/// The kubelet's `kubepods` cgroup under `root` and its driver, if it exists yet.
pub fn locate(root: &Path) -> Option<(PathBuf, Driver)> {
    kubelet_cgroups::kubepods_dir(root)
}

/// Pod UID -> cgroup id of every pod cgroup under `kubepods`. A cgroup removed between
/// the listing and the stat is left out.
pub fn scan(kubepods: &Path, driver: Driver) -> Result<BTreeMap<String, u64>> {
    Ok(kubelet_cgroups::scan(kubepods, driver)?
        .into_values()
        .filter_map(|pod| Some((pod.uid, cgroupfs::cgroup_id(&pod.dir).ok()?)))
        .collect())
}

/// Watches `kubepods` recursively (inotify); every change sends `()` on `tx`. The
/// watcher stops when dropped.
pub fn watch(kubepods: &Path, tx: mpsc::UnboundedSender<()>) -> Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| e.kind.is_create() || e.kind.is_remove()) {
            let _ = tx.send(());
        }
    })
    .context("starting the pod cgroup watcher (inotify)")?;
    watcher
        .watch(kubepods, RecursiveMode::Recursive)
        .with_context(|| format!("watching {}", kubepods.display()))?;
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_directory_is_not_a_cgroup_root() {
        let dir = tempfile::tempdir().unwrap();
        let err = require_cgroup2(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("cgroup v1") || err.contains("not a cgroup v2 directory"),
            "{err}"
        );
    }
}
