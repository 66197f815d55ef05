//! The seed platforms end to end in the kernel: each example of `examples/<platform>/`
//! (each variant directory: `manifests`, `networkpolicy-only`) applied by the real
//! `palisade-agent standalone` to emulated pods, and every probe of its
//! `probes.jsonl` that has both ends in the cluster made as a real connection.
//!
//! Per variant: the manifests are parsed with the policy crate; every pod-network Pod
//! becomes an emulated pod (network namespace + cgroup) with the manifest's
//! addresses, dual-stack where it has both families, serving every TCP and UDP
//! container port it declares; a Pod whose cgroup is a child of another's (a
//! kruntimes Run) becomes that child cgroup of its Runtime Pod's emulated pod
//! (`kernel_seed_examples/testbed.rs`). The manifests are written to the agent's
//! directory with each Pod's `palisade.dev/cgroup-path` set to its emulated cgroup
//! (`kernel_seed_examples/cgroup_annotations.rs`), one agent per node is started
//! (`kernel_conformance/agents.rs`; the examples name no node, so one agent whose
//! node holds every pod) and waited for until it has them in the kernel. Then
//! `palisadectl check --probes` runs on the same directory, and each probe runs from
//! its source pod's container cgroup, or a Run's own cgroup, to `dst_ip` or the
//! destination pod's first address. A probe agrees when palisadectl's verdict is its
//! `expect` and the connection goes through exactly when that verdict lets traffic
//! through (`audit-deny` does; a connection refused or unreachable is a fault of the
//! lab, never a denial); probes with an end outside the cluster
//! (`"kernel": false`) are decided by palisadectl only and named so in the table.
//!
//! One test per platform and variant; each prints its table (run with `--nocapture`
//! to see it when it passes). Needs root; a missing privilege, tool or binary is a
//! failure. Binaries: `$PALISADE_AGENT_BIN`, `$PALISADE_CTL_BIN`, `$PALISADE_NETPROBE`
//! (else the workspace's builds; `cargo xtask build` makes them).

#[path = "kernel_conformance/agents.rs"]
mod agents;
#[path = "kernel_seed_examples/cgroup_annotations.rs"]
mod cgroup_annotations;
#[path = "seed_examples/example.rs"]
mod example;
#[path = "kernel_seed_examples/report.rs"]
mod report;
#[path = "kernel_seed_examples/run.rs"]
mod run;
#[path = "kernel_seed_examples/testbed.rs"]
mod testbed;

use anyhow::{Result, ensure};
use example::{MANIFESTS, NETWORKPOLICY_ONLY, check_variants};
use palisade_lab::harness::binaries::{self, require_root};

/// Runs `variant` of `platform`, whose variants are `variants`.
fn run_example(platform: &str, variant: &str, variants: &[&str]) -> Result<()> {
    require_root()?;
    let ctl = binaries::palisadectl()?;
    // Located up front, so that a missing binary is named before any lab is built.
    binaries::agent()?;
    palisade_lab::netprobe_path()?;
    check_variants(platform, variants)?;
    let outcome = run::run_variant(&ctl, platform, variant)?;
    println!("{}", report::render(&outcome));
    ensure!(
        outcome.all_agree(),
        "{platform} ({variant}): the kernel, palisadectl check and the guide disagree on {} \
         probe(s); the table above lists them with the agent's log",
        outcome.probes.iter().filter(|o| !o.agrees()).count()
    );
    Ok(())
}

/// Armada agents: the tenants' agents reach the platform only through its front door,
/// never each other across tenants.
#[test]
fn armada_agents_in_the_kernel() -> Result<()> {
    run_example("armada-agents", MANIFESTS, &[MANIFESTS, NETWORKPOLICY_ONLY])
}

#[test]
fn armada_agents_networkpolicy_only_in_the_kernel() -> Result<()> {
    run_example(
        "armada-agents",
        NETWORKPOLICY_ONLY,
        &[MANIFESTS, NETWORKPOLICY_ONLY],
    )
}

/// ArmoniK: the control plane, compute plane and their stores, each reached only by
/// the components the guide names.
#[test]
fn armonik_in_the_kernel() -> Result<()> {
    run_example("armonik", MANIFESTS, &[MANIFESTS])
}

/// Argo Workflows: controller metrics 9090 only from the monitoring namespace.
#[test]
fn argo_workflows_in_the_kernel() -> Result<()> {
    run_example("argo-workflows", MANIFESTS, &[MANIFESTS])
}

/// Armada KV: replication 8444 only from followers, maintenance 8445 only from
/// operators, REST 8080 only from Prometheus and the load balancer (IPv4 and IPv6).
#[test]
fn armada_kv_in_the_kernel() -> Result<()> {
    run_example("armada-kv", MANIFESTS, &[MANIFESTS])
}

/// kruntimes: no path across namespace trust boundaries, and per-Run egress from each
/// Run's own cgroup in its Runtime Pod.
#[test]
fn kruntimes_in_the_kernel() -> Result<()> {
    run_example("kruntimes", MANIFESTS, &[MANIFESTS, NETWORKPOLICY_ONLY])
}

#[test]
fn kruntimes_networkpolicy_only_in_the_kernel() -> Result<()> {
    run_example(
        "kruntimes",
        NETWORKPOLICY_ONLY,
        &[MANIFESTS, NETWORKPOLICY_ONLY],
    )
}
