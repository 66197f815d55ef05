//! Kernel conformance: every TCP and UDP probe of the upstream network-policy truth
//! tables (`shared/conformance/cases.json`) through the real kernel programs, on
//! emulated pods, enforced by `palisade-agent standalone`, and each kernel result held
//! against `palisadectl check`'s verdict for the same probe and against upstream's
//! expectation. Any disagreement fails the test.
//!
//! Cases whose pods agree on everything but labels share one lab: its pods are built
//! and their servers started once, then per case the manifests are replaced in the
//! agents' directory and every agent is waited for until `/status` shows them applied
//! (see `kernel_conformance/run.rs`). Pods on several nodes get one agent per node
//! (`kernel_conformance/agents.rs`); host-network pods are servers in the lab's node
//! namespace at their node's address (`kernel_conformance/testbed.rs`). What does not
//! run in the kernel (SCTP) is counted and named in the report, never skipped
//! silently. Pod-to-itself probes, which upstream does not assert, are not read.
//!
//! One test per upstream suite; each prints its report (run with `--nocapture` to see
//! it when it passes). Needs root; a missing privilege or tool is a failure.
//! Binaries: `$PALISADE_AGENT_BIN`, `$PALISADE_CTL_BIN`, `$PALISADE_NETPROBE` (else
//! the workspace's builds; `cargo xtask build` makes them).

#[path = "kernel_conformance/agents.rs"]
mod agents;
#[path = "conformance/cases.rs"]
mod cases;
#[path = "conformance/group_table.rs"]
mod group_table;
#[path = "conformance/manifests.rs"]
mod manifests;
#[path = "conformance/palisadectl.rs"]
mod palisadectl;
#[path = "kernel_conformance/probes.rs"]
mod probes;
#[path = "kernel_conformance/report.rs"]
mod report;
#[path = "kernel_conformance/run.rs"]
mod run;
#[path = "kernel_conformance/testbed.rs"]
mod testbed;

use anyhow::{Result, ensure};
use cases::Suite;
use palisade_lab::harness::binaries::{self, require_root};
use report::Report;
use std::time::Instant;

fn run_suite(suite: Suite) -> Result<()> {
    require_root()?;
    let ctl = binaries::palisadectl()?;
    // Located up front, so that a missing binary is named before any lab is built.
    binaries::agent()?;
    palisade_lab::netprobe_path()?;
    let cases = cases::load(suite)?;
    let started = Instant::now();
    let mut groups = Vec::new();
    for group in testbed::group_by_pods(&cases) {
        groups.push(run::run_group(&ctl, &group)?);
    }
    let report = Report {
        suite,
        groups: &groups,
        elapsed: started.elapsed(),
        kernel_has_sctp: kernel_has_sctp(),
    };
    println!("{}", report.render());
    ensure!(
        report.all_agree(),
        "{suite}: the kernel, palisadectl check and upstream disagree on {} probe(s); \
         the report above lists them with the agents' logs",
        report.disagreeing_probes()
    );
    Ok(())
}

/// Whether this kernel can open an SCTP socket (for the report's wording only).
fn kernel_has_sctp() -> bool {
    // SAFETY: socket() has no preconditions; a descriptor it returns is closed here.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_SCTP);
        if fd >= 0 {
            libc::close(fd);
        }
        fd >= 0
    }
}

/// Kubernetes NetworkPolicy, as the upstream e2e suite asserts it.
#[test]
fn k8s_e2e_networkpolicy_cases_in_the_kernel() -> Result<()> {
    run_suite(Suite::K8sE2e)
}

/// AdminNetworkPolicy and BaselineAdminNetworkPolicy, as the network-policy-api
/// conformance suite asserts them, with pods on two nodes and host-network pods.
#[test]
fn network_policy_api_admin_cases_in_the_kernel() -> Result<()> {
    run_suite(Suite::NetworkPolicyApi)
}
