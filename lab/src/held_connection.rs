//! A long-lived TCP connection made by `palisade-netprobe hold`, whose
//! periodic round trips are reported as they happen, so tests can check that
//! an established connection survives (or not) a policy change.

use crate::pidfd::Pidfd;
use crate::probe::ProbeResult;
use crate::process::kill_wait_reap;
use crate::report::ProbeReport;
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

/// A connection held open from a pod; see [`Lab::hold`](crate::Lab::hold).
/// Dropping it closes the connection (kills the holding process).
#[derive(Debug)]
pub struct HeldConnection {
    description: String,
    process: Arc<Pidfd>,
    results: Receiver<Result<ProbeResult, String>>,
    stderr: Arc<Mutex<String>>,
}

impl HeldConnection {
    pub(crate) fn new(mut child: Child, process: Arc<Pidfd>, description: String) -> Result<Self> {
        let stdout = child.stdout.take().context("hold stdout was not piped")?;
        let mut stderr_pipe = child.stderr.take().context("hold stderr was not piped")?;
        let (sender, results) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let parsed = serde_json::from_str::<ProbeReport>(&line)
                    .map(ProbeResult::from)
                    .map_err(|_| line);
                if sender.send(parsed).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text);
            *stderr_sink.lock().unwrap_or_else(PoisonError::into_inner) = text;
        });
        Ok(HeldConnection {
            description,
            process,
            results,
            stderr,
        })
    }

    /// The next round trip's result (the first is the connection attempt's
    /// own if it failed), waiting up to `timeout` for it.
    pub fn next_result(&self, timeout: Duration) -> Result<ProbeResult> {
        match self.results.recv_timeout(timeout) {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(line)) => bail!("{}: unexpected output {line:?}", self.description),
            Err(RecvTimeoutError::Timeout) => {
                bail!(
                    "{}: no round trip reported within {timeout:?}",
                    self.description
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                // Give the stderr reader a moment to collect the last words.
                thread::sleep(Duration::from_millis(50));
                let stderr = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
                bail!(
                    "{}: the holding process ended; stderr: {}",
                    self.description,
                    stderr.trim()
                )
            }
        }
    }

    /// Throws away results already reported, so that the next
    /// [`next_result`](Self::next_result) is about a round trip from now on.
    pub fn discard_reported(&self) {
        while self.results.try_recv().is_ok() {}
    }
}

impl Drop for HeldConnection {
    fn drop(&mut self) {
        if let Err(error) = kill_wait_reap(&self.process) {
            eprintln!("palisade-lab: closing {}: {error:#}", self.description);
        }
    }
}
