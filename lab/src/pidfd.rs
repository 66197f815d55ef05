//! Process file descriptors: waiting for, signalling and reaping a child
//! without ever hitting an unrelated process that reused its pid.

use anyhow::{Context, Result, bail};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// A pidfd for one of our child processes.
#[derive(Debug)]
pub(crate) struct Pidfd {
    pid: u32,
    fd: OwnedFd,
}

impl Pidfd {
    /// Opens a pidfd for `pid`, which must be an unreaped child of ours.
    pub(crate) fn open(pid: u32) -> Result<Self> {
        let raw_pid = libc::pid_t::try_from(pid).context("pid out of range")?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error()).with_context(|| format!("pidfd_open({pid})"));
        }
        let fd = RawFd::try_from(fd).context("pidfd_open returned an out-of-range fd")?;
        // SAFETY: the fd was just returned by the kernel and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Pidfd { pid, fd })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends SIGKILL. A process that already exited is not an error.
    pub(crate) fn kill(&self) -> Result<()> {
        // SAFETY: plain syscall on an fd we own; a null siginfo is allowed.
        let status = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if status != 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::ESRCH) {
                return Err(error).with_context(|| format!("killing process {}", self.pid));
            }
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit; returns whether it did.
    pub(crate) fn wait_for_exit(&self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout_ms =
                libc::c_int::try_from(remaining.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
            let mut poll_fd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, count 1.
            let ready = unsafe { libc::poll(&mut poll_fd, 1, timeout_ms) };
            match ready {
                1 => return Ok(true),
                0 if Instant::now() >= deadline => return Ok(false),
                0 => continue,
                _ => {
                    let error = io::Error::last_os_error();
                    if error.kind() != io::ErrorKind::Interrupted {
                        return Err(error)
                            .with_context(|| format!("waiting for process {} to exit", self.pid));
                    }
                }
            }
        }
    }

    /// Reaps the process if it has exited and nobody reaped it yet (a
    /// [`std::process::Child`] owner may have). Fails if it is still running.
    pub(crate) fn reap(&self) -> Result<()> {
        // SAFETY: siginfo_t is plain data; all-zero is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let id = libc::id_t::try_from(self.fd.as_raw_fd()).context("negative pidfd")?;
        // SAFETY: waitid on our pidfd, writing into `info`.
        let status =
            unsafe { libc::waitid(libc::P_PIDFD, id, &mut info, libc::WEXITED | libc::WNOHANG) };
        if status != 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::ECHILD) {
                return Ok(());
            }
            return Err(error).with_context(|| format!("reaping process {}", self.pid));
        }
        // With WNOHANG, a zero si_pid means the process has not exited.
        // SAFETY: waitid filled `info` in.
        if unsafe { info.si_pid() } == 0 {
            bail!("process {} is still running", self.pid);
        }
        Ok(())
    }
}
