//! Runs the real `palisadectl check --manifests DIR --probes FILE` and reads its
//! verdicts, one per probe, checked to answer the probes asked in their order.

use super::cases::Probe;
use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A run can take no longer than this (it normally takes milliseconds).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// palisadectl's answer for one probe.
#[derive(Clone, Debug)]
pub struct Answer {
    /// `allow`, `deny` or `audit-deny`.
    pub verdict: String,
    /// Whether the verdict lets the traffic through (`audit-deny` does).
    pub passes: bool,
    /// The rules palisadectl names, one `side: Kind ns/name rule N Action (tier)` each.
    pub decided_by: Vec<String>,
}

/// Runs `palisadectl check` at `binary` on the manifests directory and the probes
/// file (which holds `probes`, in order), with its output in files under `work_dir`,
/// and returns one answer per probe.
pub fn check(
    binary: &Path,
    manifests: &Path,
    probes_file: &Path,
    work_dir: &Path,
    probes: &[Probe],
) -> Result<Vec<Answer>> {
    let stdout = run(binary, manifests, probes_file, work_dir)?;
    let lines: Vec<&str> = stdout.lines().collect();
    ensure!(
        lines.len() == probes.len(),
        "palisadectl printed {} lines for {} probes",
        lines.len(),
        probes.len()
    );
    probes
        .iter()
        .zip(lines)
        .enumerate()
        .map(|(index, (probe, line))| answer(index + 1, probe, line))
        .collect()
}

/// Reads output line `number`, which must answer `probe`.
fn answer(number: usize, probe: &Probe, line: &str) -> Result<Answer> {
    let answer: Value = serde_json::from_str(line)
        .with_context(|| format!("output line {number} is not JSON: {line}"))?;
    ensure!(
        answer["from"] == probe.from.as_str() && answer["to"] == probe.to.as_str(),
        "output line {number} answers another probe ({line}) than {} -> {}",
        probe.from,
        probe.to
    );
    let verdict = answer["verdict"]
        .as_str()
        .with_context(|| format!("output line {number} has no verdict: {line}"))?;
    let passes = match verdict {
        "allow" | "audit-deny" => true,
        "deny" => false,
        other => bail!("output line {number} has an unknown verdict {other:?}"),
    };
    Ok(Answer {
        verdict: verdict.to_string(),
        passes,
        decided_by: describe_decided_by(&answer["decided_by"]),
    })
}

/// Runs palisadectl with its output in files under `work_dir` (no pipes to drain),
/// within [`RUN_TIMEOUT`]; returns its standard output.
fn run(binary: &Path, manifests: &Path, probes_file: &Path, work_dir: &Path) -> Result<String> {
    let stdout_path = work_dir.join("stdout");
    let stderr_path = work_dir.join("stderr");
    let mut child = Command::new(binary)
        .arg("check")
        .arg("--manifests")
        .arg(manifests)
        .arg("--probes")
        .arg(probes_file)
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
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("palisadectl did not finish within {RUN_TIMEOUT:?}");
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
