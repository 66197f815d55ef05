//! Runs the real `palisadectl check --manifests DIR --probes FILE` on each case, a few
//! cases at a time, and holds every printed verdict against the upstream expectation.
//!
//! A probe passes when palisade's verdict lets the traffic through exactly when
//! upstream expects it to (`audit-deny` lets it through). A case passes when every
//! probe does; a case whose run fails (bad manifests, a crash, unreadable output) has
//! every probe counted as failed, with the reason.

use super::cases::{Case, Expect, Probe};
use super::manifests::{manifest_files, probes_file};
use super::palisadectl;
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Set to keep each case's manifests and probes (their directory is named in the
/// report) instead of removing them.
const KEEP_ENV: &str = "PALISADE_CONFORMANCE_KEEP";

/// Name of the probes file, beside (not inside) the manifests directory.
const PROBES_FILE: &str = "probes.jsonl";

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

/// Writes the case into `dir` (`manifests/` and `probes.jsonl`), runs palisadectl, and
/// returns the probes it got wrong.
fn check(binary: &Path, case: &Case, dir: &Path) -> Result<Vec<ProbeFailure>> {
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests)
        .with_context(|| format!("creating {}", manifests.display()))?;
    for (name, text) in manifest_files(case, &|_| None) {
        let path = manifests.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let probes = dir.join(PROBES_FILE);
    std::fs::write(&probes, probes_file(&case.probes))
        .with_context(|| format!("writing {}", probes.display()))?;
    let answers = palisadectl::check(binary, &manifests, &probes, dir, &case.probes)?;
    Ok(case
        .probes
        .iter()
        .zip(answers)
        .filter(|(probe, answer)| answer.passes != (probe.expect == Expect::Allow))
        .map(|(probe, answer)| ProbeFailure {
            probe: probe.clone(),
            got: answer.verdict,
            decided_by: answer.decided_by,
        })
        .collect())
}
