//! Starting processes inside a pod (moved into a cgroup first, then into a
//! network namespace, both before exec) and keeping track of every process
//! started so they can all be killed and reaped.

use crate::pidfd::Pidfd;
use crate::topology::netns_path;
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long a killed process may take to exit before cleanup gives up on it.
const EXIT_PATIENCE: Duration = Duration::from_secs(5);

/// Where a process runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placement<'a> {
    /// Named network namespace to join.
    pub netns: &'a str,
    /// Cgroup to join; `None` keeps the caller's.
    pub cgroup: Option<&'a Path>,
}

impl Placement<'_> {
    fn describe(&self) -> String {
        match self.cgroup {
            Some(cgroup) => format!("netns {}, cgroup {}", self.netns, cgroup.display()),
            None => format!("netns {}", self.netns),
        }
    }
}

/// Starts `program args...` at `placement` with stdin from /dev/null and
/// stdout and stderr piped.
///
/// The child writes `0` to the cgroup's `cgroup.procs` (moving itself), then
/// `setns()`s into the network namespace, then execs. Both files are opened
/// here, before the fork, so the child only makes two system calls.
pub(crate) fn spawn_placed(
    program: &Path,
    args: &[&str],
    placement: Placement<'_>,
) -> Result<Child> {
    let netns_path = netns_path(placement.netns);
    let netns = File::open(&netns_path)
        .with_context(|| format!("opening network namespace {}", netns_path.display()))?;
    let cgroup_procs = placement
        .cgroup
        .map(|cgroup| {
            let procs = cgroup.join("cgroup.procs");
            OpenOptions::new()
                .write(true)
                .open(&procs)
                .with_context(|| format!("opening {}", procs.display()))
        })
        .transpose()?;

    let netns_fd = netns.as_raw_fd();
    let cgroup_procs_fd = cgroup_procs.as_ref().map(AsRawFd::as_raw_fd);
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs between fork and exec and only makes the
    // async-signal-safe write() and setns() system calls on fds that stay open
    // in the parent (`netns`, `cgroup_procs`) until spawn() returns.
    unsafe {
        command.pre_exec(move || {
            if let Some(fd) = cgroup_procs_fd
                && libc::write(fd, b"0".as_ptr().cast(), 1) != 1
            {
                return Err(io::Error::last_os_error());
            }
            if libc::setns(netns_fd, libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().with_context(|| {
        format!(
            "starting `{} {}` in {} (joining the cgroup, then the netns, before exec)",
            program.display(),
            args.join(" "),
            placement.describe()
        )
    });
    drop(cgroup_procs);
    drop(netns);
    child
}

/// Every process a lab started and has not seen exit yet.
#[derive(Debug, Default)]
pub(crate) struct ProcessTracker {
    live: Mutex<Vec<Arc<Pidfd>>>,
}

impl ProcessTracker {
    /// Starts tracking `child`. If that fails the child is killed and reaped
    /// before the error is returned, so no untracked process is left behind.
    pub(crate) fn track(&self, child: &mut Child) -> Result<Arc<Pidfd>> {
        match Pidfd::open(child.id()) {
            Ok(pidfd) => {
                let pidfd = Arc::new(pidfd);
                self.lock().push(Arc::clone(&pidfd));
                Ok(pidfd)
            }
            Err(error) => {
                // The child is unreaped, so its pid is still ours to signal.
                let _ = child.kill();
                let _ = child.wait();
                Err(error.context("tracking a started process"))
            }
        }
    }

    /// Stops tracking a process that has been reaped.
    pub(crate) fn forget(&self, pidfd: &Arc<Pidfd>) {
        self.lock().retain(|tracked| !Arc::ptr_eq(tracked, pidfd));
    }

    /// Kills every tracked process, waits for each to exit and reaps it.
    /// Returns one error per process that could not be disposed of.
    pub(crate) fn kill_and_reap_all(&self) -> Vec<anyhow::Error> {
        let processes = std::mem::take(&mut *self.lock());
        let mut errors = Vec::new();
        for process in &processes {
            if let Err(error) = process.kill() {
                errors.push(error);
            }
        }
        for process in &processes {
            if let Err(error) = kill_wait_reap(process) {
                errors.push(error);
            }
        }
        errors
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Pidfd>>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Kills a process, waits for it to exit and reaps it.
pub(crate) fn kill_wait_reap(process: &Pidfd) -> Result<()> {
    process.kill()?;
    if !process.wait_for_exit(EXIT_PATIENCE)? {
        anyhow::bail!(
            "process {} did not exit within {EXIT_PATIENCE:?} of SIGKILL",
            process.pid()
        );
    }
    process.reap()
}
