//! The cgroup v2 filesystem: where it is mounted, and cgroup paths <-> ids.
//!
//! A cgroup's id (what `bpf_skb_cgroup_id` and friends return) is the inode number of
//! its directory on the cgroup2 mount.

use anyhow::{Context, Result, bail};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Mount point of the cgroup2 filesystem, from `/proc/self/mountinfo`.
pub fn cgroup2_mount() -> Result<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .context("reading /proc/self/mountinfo to find the cgroup2 mount")?;
    mount_of_type(&text, "cgroup2").ok_or_else(|| {
        anyhow::anyhow!(
            "no cgroup2 filesystem is mounted (checked /proc/self/mountinfo): palisade needs \
             cgroup v2; pods on cgroup v1 cannot be enforced"
        )
    })
}

/// First mount point of a filesystem type in mountinfo text.
pub fn mount_of_type(mountinfo: &str, fstype: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // `id parent major:minor root mountpoint options [optional...] - fstype source opts`
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != fstype {
            return None;
        }
        left.split_whitespace()
            .nth(4)
            .map(|p| PathBuf::from(unescape(p)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Directory of this process's cgroup v2 (the `0::` line of `/proc/self/cgroup`).
pub fn own_cgroup(mount: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .context("no cgroup v2 line in /proc/self/cgroup")?;
    resolve_cgroup_path(mount, path)
}

/// The cgroup id of a cgroup directory.
pub fn cgroup_id(dir: &Path) -> Result<u64> {
    Ok(std::fs::metadata(dir)
        .with_context(|| format!("reading cgroup {}", dir.display()))?
        .ino())
}

/// Checks that `root` is a directory of the cgroup2 mount `mount` and returns it
/// canonicalized.
pub fn protected_root(mount: &Path, root: &Path) -> Result<PathBuf> {
    if !root.is_absolute() {
        bail!("--cgroup-root {} must be an absolute path", root.display());
    }
    let canonical = root
        .canonicalize()
        .with_context(|| format!("--cgroup-root {} does not exist", root.display()))?;
    if !canonical.starts_with(mount) {
        bail!(
            "--cgroup-root {} is not inside the cgroup2 mount {}",
            root.display(),
            mount.display()
        );
    }
    if !canonical.join("cgroup.procs").exists() {
        bail!("--cgroup-root {} is not a cgroup directory", root.display());
    }
    Ok(canonical)
}

/// Absolute directory of a cgroup given as `/proc/<pid>/cgroup` shows it (relative to
/// the mount, leading `/`). Refuses paths that escape the mount.
pub fn resolve_cgroup_path(mount: &Path, path: &str) -> Result<PathBuf> {
    let relative = path.strip_prefix('/').unwrap_or(path);
    if Path::new(relative)
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        bail!("cgroup path {path:?} must be a plain path below the cgroup2 mount");
    }
    Ok(mount.join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /sys/fs/bpf rw,relatime - bpf bpf rw
";

    #[test]
    fn finds_mounts_by_type() {
        assert_eq!(
            mount_of_type(MOUNTINFO, "cgroup2"),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            mount_of_type(MOUNTINFO, "bpf"),
            Some(PathBuf::from("/sys/fs/bpf"))
        );
        assert_eq!(mount_of_type(MOUNTINFO, "nfs"), None);
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
    }

    #[test]
    fn cgroup_paths_cannot_escape_the_mount() {
        let m = Path::new("/sys/fs/cgroup/unified");
        assert_eq!(
            resolve_cgroup_path(m, "/kubepods/pod1").unwrap(),
            m.join("kubepods/pod1")
        );
        assert!(resolve_cgroup_path(m, "/../etc").is_err());
    }
}
