//! Runs the real `palisadectl check --manifests DIR --probes FILE` on each case, a few
//! cases at a time, and holds every printed verdict against the upstream expectation.
//!
//! A probe passes when palisade's verdict lets the traffic through exactly when
//! upstream expects it to (`audit-deny` lets it through). A case passes when every
//! probe does; a case whose run fails (bad manifests, a crash, unreadable output) has
//! every probe counted as failed, with the reason.

use super::cases::{Case, Expect, Probe};
use super::manifests::write_case;
use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Set to keep each case's manifests and probes (their directory is named in the
/// report) instead of removing them.
const KEEP_ENV: &str = "PALISADE_CONFORMANCE_KEEP";

/// A case's run can take no longer than this (it normally takes milliseconds).
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// A probe palisade got wrong.
#[derive(Clone, Debug)]
pub struct ProbeFailure {
    pub probe: Probe,
    /// palisade's verdict (`allow`, `deny`, `audit-deny`).
    pub got: String,
    /// The rules palisade names, one `side: Kind ns/name rule N Action (tier)` each.
    pub decided_by: Vec<String>,
}

/// What became of one case.
#[derive(Clone, Debug)]
pub struct CaseResult {
    pub id: String,
    pub source: String,
    pub group: String,
    pub probes: usize,
    /// Set when the run itself failed; then no probe passed.
    pub error: Option<String>,
    pub failures: Vec<ProbeFailure>,
    /// Where the case's files were kept (with `PALISADE_CONFORMANCE_KEEP`).
    pub kept_in: Option<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.failures.is_empty()
    }

    pub fn probes_passed(&self) -> usize {
        if self.error.is_some() {
            0
        } else {
            self.probes - self.failures.len()
        }
    }
}

/// Runs every case with `palisadectl` at `binary` on `threads` threads; results are
/// in case order.
pub fn run_all(binary: &Path, cases: &[Case], threads: usize) -> Vec<CaseResult> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<CaseResult>>> = Mutex::new(vec![None; cases.len()]);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = cases.get(index) else { break };
                    let result = run_case(binary, case);
                    results.lock().unwrap()[index] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|result| result.expect("every case was run"))
        .collect()
}

fn run_case(binary: &Path, case: &Case) -> CaseResult {
    let mut result = CaseResult {
        id: case.id.clone(),
        source: case.source.clone(),
        group: case.group(),
        probes: case.probes.len(),
        error: None,
        failures: Vec::new(),
        kept_in: None,
    };
    let outcome = tempfile::Builder::new()
        .prefix(&format!("palisade-conformance-{}-", case.id))
        .tempdir()
        .context("creating a temporary directory")
        .and_then(|dir| {
            let outcome = check(binary, case, dir.path());
            if std::env::var_os(KEEP_ENV).is_some() {
                result.kept_in = Some(dir.keep().display().to_string());
            }
            outcome
        });
    match outcome {
        Ok(failures) => result.failures = failures,
        Err(error) => result.error = Some(format!("{error:#}")),
    }
    result
}

/// Writes the case into `dir`, runs palisadectl, and returns the probes it got wrong.
fn check(binary: &Path, case: &Case, dir: &Path) -> Result<Vec<ProbeFailure>> {
    let (manifests, probes) = write_case(case, dir)?;
    let stdout = run_palisadectl(binary, &manifests, &probes, dir)?;
    let lines: Vec<&str> = stdout.lines().collect();
    ensure!(
        lines.len() == case.probes.len(),
        "palisadectl printed {} lines for {} probes",
        lines.len(),
        case.probes.len()
    );
    let mut failures = Vec::new();
    for (index, (probe, line)) in case.probes.iter().zip(lines).enumerate() {
        let answer: Value = serde_json::from_str(line)
            .with_context(|| format!("output line {} is not JSON: {line}", index + 1))?;
        ensure!(
            answer["from"] == probe.from.as_str() && answer["to"] == probe.to.as_str(),
            "output line {} answers another probe ({line}) than {} -> {}",
            index + 1,
            probe.from,
            probe.to
        );
        let got = answer["verdict"]
            .as_str()
            .with_context(|| format!("output line {} has no verdict: {line}", index + 1))?;
        let passes = match got {
            "allow" | "audit-deny" => true,
            "deny" => false,
            other => bail!("output line {} has an unknown verdict {other:?}", index + 1),
        };
        if passes != (probe.expect == Expect::Allow) {
            failures.push(ProbeFailure {
                probe: probe.clone(),
                got: got.to_string(),
                decided_by: describe_decided_by(&answer["decided_by"]),
            });
        }
    }
    Ok(failures)
}

/// Runs `palisadectl check` with its output in files under `dir` (no pipes to drain),
/// within [`CASE_TIMEOUT`]; returns its standard output.
fn run_palisadectl(binary: &Path, manifests: &Path, probes: &Path, dir: &Path) -> Result<String> {
    let stdout_path = dir.join("stdout");
    let stderr_path = dir.join("stderr");
    let mut child = Command::new(binary)
        .arg("check")
        .arg("--manifests")
        .arg(manifests)
        .arg("--probes")
        .arg(probes)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path)?)
        .stderr(File::create(&stderr_path)?)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > CASE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("palisadectl did not finish within {CASE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let stdout = std::fs::read_to_string(&stdout_path)?;
    if !status.success() {
        let stderr = std::fs::read_to_string(&stderr_path)?;
        let stderr = stderr.trim_end();
        let message = stderr
            .strip_prefix("palisadectl: error: ")
            .unwrap_or(stderr);
        bail!("palisadectl failed ({status}): {message}");
    }
    Ok(stdout)
}

/// `egress: NetworkPolicy x/deny-all rule - Deny (networkpolicy)` per entry.
fn describe_decided_by(decided_by: &Value) -> Vec<String> {
    let text = |value: &Value| value.as_str().unwrap_or("?").to_string();
    decided_by
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|entry| {
                    let object = match entry["namespace"].as_str() {
                        Some(namespace) if !namespace.is_empty() => {
                            format!("{namespace}/{}", text(&entry["name"]))
                        }
                        _ => text(&entry["name"]),
                    };
                    let rule = entry["rule"]
                        .as_u64()
                        .map_or_else(|| "-".to_string(), |rule| rule.to_string());
                    format!(
                        "{}: {} {object} rule {rule} {} ({})",
                        text(&entry["side"]),
                        text(&entry["kind"]),
                        text(&entry["action"]),
                        text(&entry["tier"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
