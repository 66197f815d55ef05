//! Runs `palisade-agent standalone` for a test: its own pin path, health port and
//! manifests directory, the lab's cgroup root. On drop the process is killed and
//! `palisade-agent cleanup` removes its pins.

use super::{binaries, http};
use anyhow::{Context, Result, bail};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often [`Agent::wait_for`] checks its condition.
const POLL: Duration = Duration::from_millis(50);
/// How often [`Agent::wait_applied`] reads `/status`.
const FAST_POLL: Duration = Duration::from_millis(5);
/// How much of the agent's log a failed wait shows.
const LOG_LINES_IN_ERRORS: usize = 200;

pub struct Agent {
    child: Option<Child>,
    binary: PathBuf,
    pub pin_path: PathBuf,
    pub health: SocketAddr,
    log: PathBuf,
}

pub struct AgentOptions<'a> {
    pub id: &'a str,
    pub manifests: &'a Path,
    pub cgroup_root: &'a Path,
    pub node_name: &'a str,
    pub extra_args: &'a [&'a str],
}

impl Agent {
    pub fn start(opts: AgentOptions<'_>) -> Result<Self> {
        let binary = binaries::agent()?;
        let pin_path = crate::lab::test_pin_path(opts.id);
        let health = free_port()?;
        let log = std::env::temp_dir().join(format!("palisade-agent-{}.log", opts.id));
        let mut agent = Self {
            child: None,
            binary,
            pin_path,
            health,
            log,
        };
        agent.spawn(&opts)?;
        Ok(agent)
    }

    fn spawn(&mut self, opts: &AgentOptions<'_>) -> Result<()> {
        let log = std::fs::File::create(&self.log)?;
        let mut command = Command::new(&self.binary);
        command
            .arg("standalone")
            .arg("--manifests")
            .arg(opts.manifests)
            .arg("--cgroup-root")
            .arg(opts.cgroup_root)
            .arg("--pin-path")
            .arg(&self.pin_path)
            .arg("--health-addr")
            .arg(self.health.to_string())
            .arg("--node-name")
            .arg(opts.node_name)
            .args(opts.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        // The agent dies with the thread that started it (the test's), so a test
        // process killed outright leaves no agent behind (its lab is swept later).
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Starts the agent again after [`Agent::kill`], same pins and port.
    pub fn restart(&mut self, opts: AgentOptions<'_>) -> Result<()> {
        if self.child.is_some() {
            bail!("agent is still running");
        }
        self.spawn(&opts)
    }

    /// The agent's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the agent's log, after a line saying how many
    /// came before: failure messages stay readable when the agent logs a lot
    /// (flow events).
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        let skipped = all.len().saturating_sub(lines);
        let mut tail = String::new();
        if skipped > 0 {
            tail.push_str(&format!("[... {skipped} earlier log lines]\n"));
        }
        for line in &all[skipped..] {
            tail.push_str(line);
            tail.push('\n');
        }
        tail
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        self.wait_for(timeout, "ready", |a| {
            Ok(http::get(a.health, "/readyz")
                .map(|(c, _)| c == 200)
                .unwrap_or(false))
        })
    }

    /// GET /status as JSON.
    pub fn status(&self) -> Result<serde_json::Value> {
        let (code, body) = http::get(self.health, "/status")?;
        if code != 200 {
            bail!("/status answered {code}: {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    /// Waits until `/status` shows the manifests whose hash is `manifest_hash`
    /// in the kernel (`manifest_hash` equal, `ready` true), polling every few
    /// milliseconds: for harnesses that change the manifests many times. Fails
    /// at once, with the agent's `last_error`, if it refuses those manifests.
    pub fn wait_applied(&mut self, manifest_hash: &str, timeout: Duration) -> Result<()> {
        let what = format!("applying manifests {manifest_hash}");
        self.wait_for_polling(timeout, FAST_POLL, &what, |agent| {
            let status = agent.status()?;
            if status["observed_manifest_hash"] == manifest_hash
                && let Some(error) = status["last_error"].as_str()
            {
                bail!("the agent refused manifests {manifest_hash}: {error}");
            }
            Ok(status["ready"] == true && status["manifest_hash"] == manifest_hash)
        })
    }

    /// Waits until `cond` holds, failing with the agent's log.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        cond: impl FnMut(&Self) -> Result<bool>,
    ) -> Result<()> {
        self.wait_for_polling(timeout, POLL, what, cond)
    }

    /// [`wait_for`](Self::wait_for), checking every `interval`.
    pub fn wait_for_polling(
        &mut self,
        timeout: Duration,
        interval: Duration,
        what: &str,
        mut cond: impl FnMut(&Self) -> Result<bool>,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "agent exited ({status}) before {what}:\n{}",
                    self.log_tail(LOG_LINES_IN_ERRORS)
                );
            }
            if cond(self)? {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "agent not {what} after {timeout:?}:\n{}",
                    self.log_tail(LOG_LINES_IN_ERRORS)
                );
            }
            std::thread::sleep(interval);
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Runs `palisade-agent cleanup` on this agent's pin path.
    pub fn cleanup_pins(&self) -> Result<()> {
        let out = Command::new(&self.binary)
            .args(["cleanup", "--pin-path"])
            .arg(&self.pin_path)
            .output()?;
        if !out.status.success() {
            bail!("cleanup failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.kill();
        if let Err(e) = self.cleanup_pins() {
            eprintln!("palisade test agent: {e:#}");
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}
