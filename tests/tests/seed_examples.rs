//! The seed platforms' examples (`examples/<platform>/`): every variant's manifests
//! directory run through the real `palisadectl check --manifests DIR --probes
//! probes.jsonl`, every probe's verdict held against the `expect` its platform's
//! security guide gives it. One test per platform; each prints a table per variant
//! (`--nocapture` shows it when it passes).
//!
//! The probes files also feed the kernel tests, which build each example's pods as
//! emulated pods: so every probe a kernel can run (no `ip:` end, no `"kernel": false`)
//! must aim at a port its destination pod declares (the emulated pod listens there),
//! and the manifests must read exactly as `palisade-agent standalone` reads them.
//!
//! The binary: `$PALISADE_CTL_BIN`, else the workspace's release or debug build
//! (`cargo build --release -p palisadectl`).

#[path = "seed_examples/example.rs"]
mod example;

use anyhow::{Result, bail};
use example::{
    MANIFESTS, NETWORKPOLICY_ONLY, Probe, check_variants, examples_dir, load, pod_ref, probes_file,
    protocol, read_probes, simulate,
};
use palisade_lab::harness::binaries;
use palisade_policy::model::Cluster;
use std::fmt::Write as _;

/// A probe, what it expects and what the simulator said.
struct Checked<'p> {
    probe: &'p Probe,
    verdict: String,
}

impl Checked<'_> {
    fn passed(&self) -> bool {
        self.verdict == self.probe.expect
    }
}

/// What keeps a probe from running on emulated pods, if anything: an end outside the
/// cluster it does not mark `"kernel": false`, or a destination port its pod does not
/// listen on.
fn kernel_problem(cluster: &Cluster, probe: &Probe) -> Option<String> {
    let (from, to) = (pod_ref(&probe.from), pod_ref(&probe.to));
    if !probe.kernel {
        return None;
    }
    let (Some(_), Some(to)) = (from, to) else {
        return Some("an end outside the cluster needs \"kernel\": false".to_string());
    };
    let pod = cluster.pods.get(&to)?;
    if let Some(address) = probe.dst_ip
        && !pod.ips.contains(&address)
    {
        return Some(format!(
            "dst_ip {address} is not an address of {}",
            probe.to
        ));
    }
    let listens = protocol(&probe.protocol).is_some_and(|protocol| {
        pod.ports
            .iter()
            .any(|p| p.port == probe.port && p.protocol == protocol)
    });
    (!listens).then(|| {
        format!(
            "{} declares no container port {}/{}",
            probe.to, probe.protocol, probe.port
        )
    })
}

fn table(platform: &str, variant: &str, checked: &[Checked]) -> String {
    let width = |column: &dyn Fn(&Checked) -> usize, title: &str| {
        checked
            .iter()
            .map(column)
            .chain([title.len()])
            .max()
            .unwrap_or(0)
    };
    let from = width(&|c| c.probe.from.len(), "from");
    let to = width(&|c| c.probe.to.len(), "to");
    let mut text = format!("{platform} ({variant}):\n");
    let _ = writeln!(
        text,
        "  {:from$}  {:to$}  {:>9}  {:8}  simulator",
        "from", "to", "port", "expected"
    );
    for c in checked {
        let port = format!("{}/{}", c.probe.port, c.probe.protocol);
        let mark = if c.passed() { "" } else { "  <- MISMATCH" };
        let _ = writeln!(
            text,
            "  {:from$}  {:to$}  {port:>9}  {:8}  {}{mark}",
            c.probe.from, c.probe.to, c.probe.expect, c.verdict
        );
    }
    let passed = checked.iter().filter(|c| c.passed()).count();
    let _ = writeln!(
        text,
        "  {passed}/{} probes as the guide expects",
        checked.len()
    );
    text
}

/// Checks every variant of `platform` (the names in `variants`) against its probes.
fn check_platform(platform: &str, variants: &[&str]) -> Result<()> {
    let binary = binaries::palisadectl()?;
    let probes = read_probes(platform)?;
    let probes_file = probes_file(platform);
    check_variants(platform, variants)?;
    let mut report = String::new();
    let mut failures = Vec::new();
    for variant in variants {
        let manifests = examples_dir().join(platform).join(variant);
        let cluster = load(&manifests)?;
        if *variant == NETWORKPOLICY_ONLY
            && !(cluster.trust_boundaries.is_empty() && cluster.egress_policies.is_empty())
        {
            bail!("{} uses palisade's kinds", manifests.display());
        }
        for probe in &probes {
            if let Some(problem) = kernel_problem(&cluster, probe) {
                failures.push(format!(
                    "{platform} ({variant}): {} -> {}: {problem}",
                    probe.from, probe.to
                ));
            }
        }
        let verdicts = simulate(&binary, &manifests, &probes_file, probes.len())?;
        let checked: Vec<Checked> = probes
            .iter()
            .zip(verdicts)
            .map(|(probe, verdict)| Checked { probe, verdict })
            .collect();
        failures.extend(checked.iter().filter(|c| !c.passed()).map(|c| {
            format!(
                "{platform} ({variant}): {} -> {} {}/{}: expected {} (\"{}\"), simulator says {}",
                c.probe.from,
                c.probe.to,
                c.probe.port,
                c.probe.protocol,
                c.probe.expect,
                c.probe.why,
                c.verdict
            )
        }));
        report.push_str(&table(platform, variant, &checked));
    }
    println!("palisadectl: {}\n{report}", binary.display());
    if !failures.is_empty() {
        bail!("{report}\n{}", failures.join("\n"));
    }
    Ok(())
}

#[test]
fn armada_agents() -> Result<()> {
    check_platform("armada-agents", &[MANIFESTS, NETWORKPOLICY_ONLY])
}

#[test]
fn armonik() -> Result<()> {
    check_platform("armonik", &[MANIFESTS])
}

#[test]
fn argo_workflows() -> Result<()> {
    check_platform("argo-workflows", &[MANIFESTS])
}

#[test]
fn armada_kv() -> Result<()> {
    check_platform("armada-kv", &[MANIFESTS])
}

#[test]
fn kruntimes() -> Result<()> {
    check_platform("kruntimes", &[MANIFESTS, NETWORKPOLICY_ONLY])
}
