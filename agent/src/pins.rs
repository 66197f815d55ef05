//! The agent's objects in bpffs: one owner (the agent given this `--pin-path`), one
//! versioned directory per ABI, bpfman style:
//!
//! ```text
//! <pin-path>/v<ABI>/maps/<MAP_NAME>          every map (aya pins them by name)
//! <pin-path>/v<ABI>/links/cg<ID>-<hook>       the cgroup links (egress, ingress, connect4/6,
//!                                           sendmsg4/6, recvmsg4/6, getpeername4/6), per
//!                                           protected root
//! ```
//!
//! A pinned link keeps its program attached after the agent exits (also after
//! SIGKILL); pinned maps keep the tables the program reads. `cleanup` removes the
//! whole `<pin-path>` tree, which detaches everything.

use anyhow::{Context, Result, bail};
use palisade_abi::ABI_VERSION;
use std::path::{Path, PathBuf};

/// The directory of a version's pinned links.
const LINKS_DIR: &str = "links";

/// bpffs magic number (`statfs.f_type`).
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

#[derive(Clone, Debug)]
pub struct PinLayout {
    root: PathBuf,
}

impl PinLayout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Directory of this ABI version.
    pub fn versioned(&self) -> PathBuf {
        self.root.join(format!("v{ABI_VERSION}"))
    }

    pub fn maps_dir(&self) -> PathBuf {
        self.versioned().join("maps")
    }

    pub fn links_dir(&self) -> PathBuf {
        self.versioned().join(LINKS_DIR)
    }

    /// Pin of the link of `hook` (`egress`, `ingress`, `connect4`, ...) at cgroup
    /// `cgroup_id`.
    pub fn link(&self, cgroup_id: u64, hook: &str) -> PathBuf {
        self.links_dir().join(format!("cg{cgroup_id}-{hook}"))
    }

    /// The directories of other ABI versions (`v<N>`, N not this agent's), lowest
    /// first: pins a previous agent of another version left (an upgrade, or a
    /// downgrade).
    pub fn other_versions(&self) -> Result<Vec<(u32, PathBuf)>> {
        if !self.root.is_dir() {
            return Ok(Vec::new());
        }
        let mut other = Vec::new();
        for entry in std::fs::read_dir(&self.root)
            .with_context(|| format!("listing {}", self.root.display()))?
        {
            let path = entry?.path();
            let version = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix('v'))
                .and_then(|n| n.parse::<u32>().ok());
            if let Some(version) = version
                && version != ABI_VERSION
                && path.is_dir()
            {
                other.push((version, path));
            }
        }
        other.sort();
        Ok(other)
    }

    /// Creates the directories (inside an existing bpffs).
    pub fn create_dirs(&self) -> Result<()> {
        for dir in [self.maps_dir(), self.links_dir()] {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating pin directory {}", dir.display()))?;
        }
        Ok(())
    }

    /// Removes every pinned object under `--pin-path` (all ABI versions), which
    /// detaches the programs and frees the maps. Returns how many pins were removed.
    pub fn remove_all(&self) -> Result<usize> {
        if !self.root.exists() {
            return Ok(0);
        }
        if !is_bpffs(&self.root)? {
            bail!(
                "{} is not on a bpf filesystem; refusing to delete it",
                self.root.display()
            );
        }
        remove_tree(&self.root)
    }
}

/// Removes the pin directory `dir` and everything below it (links detached first);
/// returns how many pins were removed.
pub fn remove_dir(dir: &Path) -> Result<usize> {
    remove_tree(dir)
}

fn remove_tree(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    let links = dir.file_name().is_some_and(|name| name == LINKS_DIR);
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            removed += remove_tree(&path)?;
        } else {
            if links {
                // Detached now, not when the kernel gets round to freeing the link:
                // when cleanup returns, no palisade program runs any more. A link
                // already defunct (its cgroup gone) is unpinned all the same.
                if let Err(e) = crate::datapath::detach_pinned(&path) {
                    tracing::debug!(error = %format!("{e:#}"), "link not detached before unpinning");
                }
            }
            std::fs::remove_file(&path)
                .with_context(|| format!("removing pin {}", path.display()))?;
            removed += 1;
        }
    }
    std::fs::remove_dir(dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(removed)
}

/// Whether `path` (or its nearest existing ancestor) is on a bpf filesystem.
pub fn is_bpffs(path: &Path) -> Result<bool> {
    let mut probe = path;
    while !probe.exists() {
        probe = match probe.parent() {
            Some(p) => p,
            None => return Ok(false),
        };
    }
    let c = std::ffi::CString::new(probe.as_os_str().as_encoded_bytes())?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid NUL-terminated path and a zeroed out-struct.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("statfs {}", probe.display()));
    }
    Ok(st.f_type as i64 == BPF_FS_MAGIC)
}

/// Makes sure `pin_path` lies on a bpffs; if nothing is mounted at `/sys/fs/bpf` and
/// `mount_if_absent`, mounts one there (standalone mode).
pub fn ensure_bpffs(pin_path: &Path, mount_if_absent: bool) -> Result<()> {
    if is_bpffs(pin_path)? {
        return Ok(());
    }
    let default = Path::new("/sys/fs/bpf");
    if mount_if_absent && pin_path.starts_with(default) && !is_bpffs(default)? {
        std::fs::create_dir_all(default).context("creating /sys/fs/bpf")?;
        let src = c"bpf";
        let target = c"/sys/fs/bpf";
        // SAFETY: constant NUL-terminated strings.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                src.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("mounting bpffs at /sys/fs/bpf");
        }
        tracing::info!("mounted bpffs at /sys/fs/bpf");
        if is_bpffs(pin_path)? {
            return Ok(());
        }
    }
    bail!(
        "--pin-path {} is not on a bpf filesystem (mount one with `mount -t bpf bpf /sys/fs/bpf`)",
        pin_path.display()
    )
}
