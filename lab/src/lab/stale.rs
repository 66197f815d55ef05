//! Claims and the sweep of stale labs. A lab normally removes everything it created
//! when it is dropped; a test process killed outright (SIGKILL, a CI timeout) cannot.
//! So every lab records a claim, `/run/palisade-lab/<id>`: the creating process's pid
//! and start time (so a reused pid is not mistaken for it) and its cgroup root. The
//! first lab a process creates sweeps the claims whose creator is gone: it kills the
//! processes left in that lab's cgroups, deletes its network namespaces (`pl<id>…`,
//! every name the lab derives from its id), removes its cgroups and the test agent's
//! pins (`/sys/fs/bpf/palisade-test-<id>`), then the claim. Only what a claim names
//! is touched, by id; labs of live processes are never touched.

use crate::{cgroup2, topology};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Once;

const CLAIMS_DIR: &str = "/run/palisade-lab";
/// Where the test harness pins its agents' objects (see `harness::agent`).
pub(crate) fn test_pin_path(id: &str) -> PathBuf {
    PathBuf::from(format!("/sys/fs/bpf/palisade-test-{id}"))
}

/// The creator of a claim: pid and start time (field 22 of `/proc/<pid>/stat`).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; it ends at the last ')'.
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(19)?.parse().ok()
}

/// Records that this process created lab `id` with its cgroup root at `cgroup_root`.
pub(super) fn write_claim(id: &str, cgroup_root: &Path) -> Result<()> {
    std::fs::create_dir_all(CLAIMS_DIR).with_context(|| format!("creating {CLAIMS_DIR}"))?;
    let pid = std::process::id();
    let started = start_time(pid).context("reading this process's start time")?;
    let path = Path::new(CLAIMS_DIR).join(id);
    std::fs::write(
        &path,
        format!("{pid} {started} {}\n", cgroup_root.display()),
    )
    .with_context(|| format!("writing {}", path.display()))
}

/// Drops the claim of lab `id` (its teardown is done).
pub(super) fn remove_claim(id: &str) {
    let _ = std::fs::remove_file(Path::new(CLAIMS_DIR).join(id));
}

/// Sweeps stale labs once per process.
pub(super) fn sweep_once() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        for problem in sweep() {
            eprintln!("palisade-lab: sweeping stale labs: {problem:#}");
        }
    });
}

fn sweep() -> Vec<anyhow::Error> {
    let Ok(entries) = std::fs::read_dir(CLAIMS_DIR) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for entry in entries.flatten() {
        let id = entry.file_name().to_string_lossy().into_owned();
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let mut fields = text.trim().splitn(3, ' ');
        let (Some(pid), Some(started), Some(cgroup_root)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (Ok(pid), Ok(started)) = (pid.parse::<u32>(), started.parse::<u64>()) else {
            continue;
        };
        if start_time(pid) == Some(started) {
            continue; // its creator is alive: not ours to touch
        }
        eprintln!("palisade-lab: removing lab {id}, left behind by process {pid}");
        problems.extend(remove_lab(&id, Path::new(cgroup_root)));
        remove_claim(&id);
    }
    problems
}

/// Removes everything lab `id` may have left: processes in its cgroups, its network
/// namespaces, its cgroups and its test agent's pins.
fn remove_lab(id: &str, cgroup_root: &Path) -> Vec<anyhow::Error> {
    let mut problems = Vec::new();
    if cgroup_root.exists()
        && let Err(e) = cgroup2::kill_all_processes(cgroup_root)
    {
        problems.push(e);
    }
    let prefix = format!("pl{id}");
    if let Ok(entries) = std::fs::read_dir(topology::NETNS_DIR) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix)
                && let Err(e) = topology::delete_netns(&name)
            {
                problems.push(e);
            }
        }
    }
    if cgroup_root.exists() {
        problems.extend(cgroup2::remove_tree(cgroup_root));
    }
    let pins = test_pin_path(id);
    if pins.exists()
        && let Err(e) = std::fs::remove_dir_all(&pins)
    {
        problems.push(anyhow::Error::new(e).context(format!("removing {}", pins.display())));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_start_time_and_a_dead_pid_has_none() {
        assert!(start_time(std::process::id()).is_some());
        // Above the kernel's pid_max (at most 2^22): never a live process.
        assert_eq!(start_time(4_194_305), None);
    }
}
