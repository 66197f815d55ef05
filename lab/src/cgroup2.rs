//! The cgroup v2 hierarchy: finding where it is mounted, creating and removing
//! the lab's cgroups, and naming them the way the kernel does.

use anyhow::{Context, Result, bail};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// How long removing a cgroup may keep failing with `EBUSY` while the
/// processes just killed in it finish exiting.
const RMDIR_PATIENCE: Duration = Duration::from_secs(3);

/// The cgroup2 filesystem mount of this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroup2Mount {
    mount_point: PathBuf,
    /// The cgroup the mount shows at its mount point, as a path from the
    /// hierarchy root (`/` unless a cgroup namespace or bind mount is in play).
    root: PathBuf,
}

impl Cgroup2Mount {
    /// Finds the first mount of type `cgroup2` in `/proc/self/mountinfo`.
    pub fn find() -> Result<Self> {
        let mountinfo =
            fs::read_to_string(MOUNTINFO).with_context(|| format!("reading {MOUNTINFO}"))?;
        Self::parse(&mountinfo).with_context(|| {
            format!("no cgroup2 filesystem is mounted (no mount of type `cgroup2` in {MOUNTINFO})")
        })
    }

    /// Picks the first `cgroup2` mount out of mountinfo text.
    fn parse(mountinfo: &str) -> Option<Self> {
        mountinfo.lines().find_map(|line| {
            // "<id> <parent> <maj:min> <root> <mount point> <options> [optional...] - <fstype> <source> <super options>"
            let (mount_fields, fs_fields) = line.split_once(" - ")?;
            if fs_fields.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            let mut fields = mount_fields.split_whitespace().skip(3);
            let root = unescape_mountinfo(fields.next()?);
            let mount_point = unescape_mountinfo(fields.next()?);
            Some(Self {
                mount_point: PathBuf::from(mount_point),
                root: PathBuf::from(root),
            })
        })
    }

    /// Where the cgroup2 filesystem is mounted, e.g. `/sys/fs/cgroup`.
    pub fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// The path of the cgroup at `dir` exactly as the `0::` line of
    /// `/proc/<pid>/cgroup` shows it for a process in that cgroup: rooted at
    /// the hierarchy root, with a leading `/`.
    pub fn cgroup_path(&self, dir: &Path) -> Result<String> {
        let relative = dir.strip_prefix(&self.mount_point).with_context(|| {
            format!(
                "{} is not inside the cgroup2 mount {}",
                dir.display(),
                self.mount_point.display()
            )
        })?;
        if relative
            .components()
            .any(|component| !matches!(component, Component::Normal(_)))
        {
            bail!("cgroup directory {} is not a plain path", dir.display());
        }
        let path = Path::new("/").join(&self.root).join(relative);
        path.to_str()
            .map(str::to_owned)
            .with_context(|| format!("cgroup path {} is not UTF-8", path.display()))
    }
}

/// Decodes the octal escapes (`\040` for a space, ...) mountinfo uses in paths.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes.get(index + 1..index + 4).filter(|digits| {
            bytes[index] == b'\\' && digits.iter().all(|digit| (b'0'..=b'7').contains(digit))
        });
        match octal {
            Some(digits) => {
                let value = digits
                    .iter()
                    .fold(0u32, |value, digit| value * 8 + u32::from(digit - b'0'));
                decoded.push(u8::try_from(value).unwrap_or(b'?'));
                index += 4;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The id of the cgroup at `dir`: the inode number of its directory, which is
/// what `bpf_skb_cgroup_id()` and friends return.
pub fn cgroup_id(dir: &Path) -> Result<u64> {
    let metadata =
        fs::metadata(dir).with_context(|| format!("reading cgroup directory {}", dir.display()))?;
    Ok(metadata.ino())
}

/// Checks that `name` can be used as a cgroup directory name as is: 1 to 64
/// ASCII letters, digits, `-`, `_` or `.`, not starting with `.` or `cgroup.`
/// (the kernel's interface files).
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 64 {
        bail!("{name:?} must be 1 to 64 characters long");
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        bail!("{name:?} contains {bad:?}; use ASCII letters, digits, '-', '_' or '.'");
    }
    if name.starts_with('.') || name.starts_with("cgroup.") {
        bail!("{name:?} must not start with '.' or 'cgroup.'");
    }
    Ok(())
}

/// Creates the cgroup at `dir`; its parent must exist and `dir` must not.
pub(crate) fn create(dir: &Path) -> Result<()> {
    fs::create_dir(dir).with_context(|| format!("creating cgroup {}", dir.display()))
}

/// Kills every process in the cgroup at `dir` and in its descendants, via
/// `cgroup.kill`.
pub(crate) fn kill_all_processes(dir: &Path) -> Result<()> {
    let kill_file = dir.join("cgroup.kill");
    fs::write(&kill_file, "1").with_context(|| format!("writing 1 to {}", kill_file.display()))
}

/// Removes the cgroup at `dir` and every cgroup below it, deepest first.
/// Returns one error per cgroup that could not be removed.
pub(crate) fn remove_tree(dir: &Path) -> Vec<anyhow::Error> {
    let mut errors = Vec::new();
    let mut cgroups = Vec::new();
    collect_depth_first(dir, &mut cgroups, &mut errors);
    for cgroup in cgroups {
        if let Err(error) = remove_one(&cgroup) {
            errors.push(error);
        }
    }
    errors
}

/// Lists `dir` and the cgroups below it, each after all of its descendants.
fn collect_depth_first(dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<anyhow::Error>) {
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                match entry {
                    Ok(entry) if entry.file_type().is_ok_and(|kind| kind.is_dir()) => {
                        collect_depth_first(&entry.path(), out, errors);
                    }
                    Ok(_) => {}
                    Err(error) => errors.push(
                        anyhow::Error::new(error)
                            .context(format!("listing cgroup {}", dir.display())),
                    ),
                }
            }
        }
        Err(error) if error.kind() == ErrorKind::NotFound => return,
        Err(error) => errors
            .push(anyhow::Error::new(error).context(format!("listing cgroup {}", dir.display()))),
    }
    out.push(dir.to_path_buf());
}

/// Removes one empty cgroup, retrying briefly while it is still busy with
/// exiting processes. A cgroup that is already gone counts as removed.
fn remove_one(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + RMDIR_PATIENCE;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(()),
            Err(error)
                if error.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
            {
                thread::sleep(Duration::from_millis(20));
            }
            Err(error) => {
                let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                let procs = procs.split_whitespace().collect::<Vec<_>>().join(" ");
                return Err(anyhow::Error::new(error).context(format!(
                    "removing cgroup {} (processes still in it: [{procs}])",
                    dir.display()
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 1 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
41 30 0:38 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw
42 30 0:39 / /sys/fs/cgroup/cpu rw,relatime shared:11 - cgroup cgroup rw,cpu
";

    #[test]
    fn finds_the_cgroup2_mount_among_v1_mounts() {
        let mount = Cgroup2Mount::parse(HYBRID).expect("cgroup2 mount");
        assert_eq!(mount.mount_point(), Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(mount.root, PathBuf::from("/"));
    }

    #[test]
    fn no_cgroup2_mount_is_none() {
        let v1_only = "42 30 0:39 / /sys/fs/cgroup/cpu rw shared:11 - cgroup cgroup rw,cpu\n";
        assert_eq!(Cgroup2Mount::parse(v1_only), None);
    }

    #[test]
    fn decodes_escaped_mount_points() {
        let line = "41 30 0:38 /a\\040b /mnt/my\\040cgroups rw - cgroup2 none rw\n";
        let mount = Cgroup2Mount::parse(line).expect("cgroup2 mount");
        assert_eq!(mount.mount_point(), Path::new("/mnt/my cgroups"));
        assert_eq!(mount.root, PathBuf::from("/a b"));
    }

    #[test]
    fn cgroup_path_is_rooted_at_the_hierarchy_root() {
        let mount = Cgroup2Mount::parse(HYBRID).expect("cgroup2 mount");
        let dir = Path::new("/sys/fs/cgroup/unified/lab-1/pod");
        assert_eq!(mount.cgroup_path(dir).expect("path"), "/lab-1/pod");
        assert_eq!(
            mount
                .cgroup_path(Path::new("/sys/fs/cgroup/unified"))
                .expect("path"),
            "/"
        );
    }

    #[test]
    fn cgroup_path_includes_the_mount_root() {
        let line = "41 30 0:38 /outer /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let mount = Cgroup2Mount::parse(line).expect("cgroup2 mount");
        let dir = Path::new("/sys/fs/cgroup/lab-1/pod");
        assert_eq!(mount.cgroup_path(dir).expect("path"), "/outer/lab-1/pod");
    }

    #[test]
    fn cgroup_names_are_plain_directory_names() {
        for good in ["web-7d9f.abc_1", "ctr", "a"] {
            assert!(check_name(good).is_ok(), "{good:?} was rejected");
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "cgroup.procs", "a b", "ü"] {
            assert!(check_name(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(check_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn cgroup_path_outside_the_mount_is_an_error() {
        let mount = Cgroup2Mount::parse(HYBRID).expect("cgroup2 mount");
        assert!(mount.cgroup_path(Path::new("/tmp/pod")).is_err());
    }
}
