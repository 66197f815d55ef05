//! Conformance: the upstream network-policy truth tables
//! (`shared/conformance/cases.json`), every case, run through the real `palisadectl`
//! binary: each case becomes a manifests directory and a probes file, `palisadectl
//! check --probes` decides every probe from the compiled tables, and each verdict is
//! held against the upstream expectation.
//!
//! One test per upstream suite; each prints a table of cases and probes passed (run
//! with `--nocapture` to see it when it passes) and fails listing every failing case
//! with its failing probes and the rules palisade says decided them.
//!
//! The binary: `$PALISADE_CTL_BIN`, else the workspace's release or debug build
//! (`cargo xtask build` builds it). `PALISADE_CONFORMANCE_CASES` overrides where the
//! cases are read from; `PALISADE_CONFORMANCE_KEEP=1` keeps each case's files.

#[path = "conformance/cases.rs"]
mod cases;
#[path = "conformance/group_table.rs"]
mod group_table;
#[path = "conformance/manifests.rs"]
mod manifests;
#[path = "conformance/palisadectl.rs"]
mod palisadectl;
#[path = "conformance/report.rs"]
mod report;
#[path = "conformance/runner.rs"]
mod runner;

use anyhow::{Result, ensure};
use cases::Suite;
use palisade_lab::harness::binaries;
use report::Report;

/// Cases run this many at a time at most (each is one short palisadectl process).
const MAX_THREADS: usize = 8;

fn run_suite(suite: Suite) -> Result<()> {
    let binary = binaries::palisadectl()?;
    let cases = cases::load(suite)?;
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, MAX_THREADS);
    let results = runner::run_all(&binary, &cases, threads);
    let report = Report::new(suite, &results);
    let text = report.render();
    println!("palisadectl: {}\n{text}", binary.display());
    ensure!(report.all_passed(), "{suite} conformance failed:\n{text}");
    Ok(())
}

/// Kubernetes NetworkPolicy, as the upstream e2e suite asserts it (TCP, UDP, SCTP).
#[test]
fn k8s_e2e_networkpolicy_cases() -> Result<()> {
    run_suite(Suite::K8sE2e)
}

/// AdminNetworkPolicy and BaselineAdminNetworkPolicy, as the network-policy-api
/// conformance suite asserts them.
#[test]
fn network_policy_api_admin_cases() -> Result<()> {
    run_suite(Suite::NetworkPolicyApi)
}
