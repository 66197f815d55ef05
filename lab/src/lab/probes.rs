//! Connection probes: running `palisade-netprobe connect` from a pod, a
//! cgroup of a pod, or the node, one at a time or in parallel batches.

use super::Lab;
use crate::pod::PodHandle;
use crate::probe::{ProbeOrigin, ProbeResult, ProbeSpec, Proto, RecheckedProbe};
use crate::process::{Placement, kill_wait_reap};
use crate::report::ProbeReport;
use anyhow::{Context, Result, bail, ensure};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::Duration;

/// How many probes of a batch run at once.
const BATCH_PARALLELISM: usize = 8;

/// How long a probe process may run beyond its own timeout before it is
/// considered stuck (process start-up, a slow machine).
const PROBE_GRACE: Duration = Duration::from_secs(5);

impl Lab {
    /// Probes `to:port` from the pod's container cgroup: for TCP, connects,
    /// sends a payload and expects it echoed back; for UDP, sends a datagram
    /// and expects it echoed back. The whole attempt is bounded by `timeout`.
    pub fn probe(
        &self,
        from: &PodHandle,
        to: IpAddr,
        proto: Proto,
        port: u16,
        timeout: Duration,
    ) -> Result<ProbeResult> {
        self.run_probe(&ProbeSpec::new(from, to, proto, port).with_timeout(timeout))
    }

    /// Like [`probe`](Self::probe), from `cgroup` instead of the container
    /// cgroup, still in the pod's network namespace.
    pub fn probe_from_cgroup(
        &self,
        from: &PodHandle,
        cgroup: &Path,
        to: IpAddr,
        proto: Proto,
        port: u16,
        timeout: Duration,
    ) -> Result<ProbeResult> {
        let origin = ProbeOrigin::PodCgroup(from.clone(), cgroup.to_path_buf());
        let spec = ProbeSpec::new(from, to, proto, port)
            .from_origin(origin)
            .with_timeout(timeout);
        self.run_probe(&spec)
    }

    /// Like [`probe`](Self::probe), from the node network namespace (in the
    /// caller's cgroup). Needs node addresses to reach pods of other subnets.
    pub fn probe_from_node(
        &self,
        to: IpAddr,
        proto: Proto,
        port: u16,
        timeout: Duration,
    ) -> Result<ProbeResult> {
        let spec = ProbeSpec {
            origin: ProbeOrigin::Node,
            to,
            proto,
            port,
            timeout,
        };
        self.run_probe(&spec)
    }

    /// Runs all probes, at most 8 at a time, and returns their results in
    /// the order of `specs`. Fails if any probe could not be run (a probe that
    /// ran and was refused is a result, not a failure).
    pub fn probe_all(&self, specs: &[ProbeSpec]) -> Result<Vec<ProbeResult>> {
        self.probe_all_with(specs, BATCH_PARALLELISM)
    }

    /// [`probe_all`](Self::probe_all), at most `parallelism` (at least 1) at
    /// a time: large batches of probes that mostly time out go faster with
    /// more.
    pub fn probe_all_with(
        &self,
        specs: &[ProbeSpec],
        parallelism: usize,
    ) -> Result<Vec<ProbeResult>> {
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<ProbeResult>>>> =
            Mutex::new(specs.iter().map(|_| None).collect());
        thread::scope(|scope| {
            for _ in 0..parallelism.clamp(1, specs.len().max(1)) {
                scope.spawn(|| {
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(spec) = specs.get(index) else { break };
                        let result = self.run_probe(spec);
                        results.lock().unwrap_or_else(PoisonError::into_inner)[index] =
                            Some(result);
                    }
                });
            }
        });
        results
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .into_iter()
            .zip(specs)
            .map(|(result, spec)| {
                result
                    .with_context(|| format!("probe {spec} was never run"))
                    .and_then(|result| result)
            })
            .collect()
    }

    /// Runs every probe (at most `parallelism` at a time), then once more with
    /// `retry_timeout` each whose result differs from `expected_allowed` (one entry per
    /// probe), so that a slow moment of the machine is not taken for a denial. Results
    /// in the order of `specs`.
    pub fn probe_all_rechecking(
        &self,
        specs: &[ProbeSpec],
        expected_allowed: &[bool],
        parallelism: usize,
        retry_timeout: Duration,
    ) -> Result<Vec<RecheckedProbe>> {
        ensure!(
            specs.len() == expected_allowed.len(),
            "{} probes but {} expectations",
            specs.len(),
            expected_allowed.len()
        );
        let first = self.probe_all_with(specs, parallelism)?;
        let again: Vec<usize> = (0..specs.len())
            .filter(|&i| first[i].allowed() != expected_allowed[i])
            .collect();
        let retry_specs: Vec<ProbeSpec> = again
            .iter()
            .map(|&i| specs[i].clone().with_timeout(retry_timeout))
            .collect();
        let retried = self.probe_all_with(&retry_specs, parallelism)?;
        let mut results: Vec<RecheckedProbe> = first
            .into_iter()
            .map(|result| RecheckedProbe {
                result,
                first_attempt: None,
            })
            .collect();
        for (index, result) in again.into_iter().zip(retried) {
            let first = std::mem::replace(&mut results[index].result, result);
            results[index].first_attempt = Some(first);
        }
        Ok(results)
    }

    /// Runs one probe process and reads its report.
    pub(super) fn run_probe(&self, spec: &ProbeSpec) -> Result<ProbeResult> {
        self.run_probe_process(spec)
            .with_context(|| format!("probing {spec}"))
    }

    fn run_probe_process(&self, spec: &ProbeSpec) -> Result<ProbeResult> {
        let container;
        let placement = match &spec.origin {
            ProbeOrigin::Pod(pod) => {
                container = pod.container_cgroup_dir();
                Placement {
                    netns: &pod.netns,
                    cgroup: Some(&container),
                }
            }
            ProbeOrigin::PodCgroup(pod, cgroup) => Placement {
                netns: &pod.netns,
                cgroup: Some(cgroup),
            },
            ProbeOrigin::Node => Placement {
                netns: &self.node_netns,
                cgroup: None,
            },
        };
        let (addr, port) = (spec.to.to_string(), spec.port.to_string());
        let timeout_ms = spec.timeout.as_millis().max(1).to_string();
        let args = [
            "connect",
            "--proto",
            spec.proto.as_str(),
            "--addr",
            &addr,
            "--port",
            &port,
            "--timeout-ms",
            &timeout_ms,
        ];
        let (child, pidfd) = self.start(&self.netprobe, &args, placement)?;
        let exited = pidfd.wait_for_exit(spec.timeout + PROBE_GRACE);
        if !matches!(exited, Ok(true)) {
            let disposal = kill_wait_reap(&pidfd);
            self.processes.forget(&pidfd);
            disposal?;
            exited?;
            bail!(
                "netprobe did not finish within {:?}",
                spec.timeout + PROBE_GRACE
            );
        }
        let output = child
            .wait_with_output()
            .context("collecting netprobe's output");
        self.processes.forget(&pidfd);
        let output = output?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!("netprobe {}: {}", output.status, stderr.trim());
        }
        let line = stdout
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("");
        let report: ProbeReport = serde_json::from_str(line).with_context(|| {
            format!(
                "netprobe printed {:?}, not a result line; stderr: {}",
                stdout,
                stderr.trim()
            )
        })?;
        Ok(report.into())
    }
}
