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

use anyhow::{Context, Result, bail, ensure};
use palisade_lab::harness::binaries;
use palisade_policy::model::{Cluster, ObjectRef, Protocol};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every example's manifests, with palisade's kinds (TrustBoundary, EgressPolicy) where
/// they help.
const MANIFESTS: &str = "manifests";
/// The same posture in plain NetworkPolicy, where palisade's kinds make it shorter or
/// stronger.
const NETWORKPOLICY_ONLY: &str = "networkpolicy-only";

/// One probe of a platform's `probes.jsonl`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Probe {
    from: String,
    to: String,
    port: u16,
    protocol: String,
    expect: String,
    why: String,
    /// The destination address to use: one of the destination pod's.
    #[serde(default)]
    dst_ip: Option<std::net::IpAddr>,
    /// False: the kernel tests cannot run it (an end outside the cluster).
    #[serde(default = "runs_in_kernel")]
    kernel: bool,
}

fn runs_in_kernel() -> bool {
    true
}

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

fn examples_dir() -> PathBuf {
    binaries::workspace().join("examples")
}

fn read_probes(platform: &str) -> Result<Vec<Probe>> {
    let path = examples_dir().join(platform).join("probes.jsonl");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut probes = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let probe: Probe = serde_json::from_str(line)
            .with_context(|| format!("{}: line {}", path.display(), index + 1))?;
        ensure!(
            ["allow", "deny"].contains(&probe.expect.as_str()) && !probe.why.trim().is_empty(),
            "{} line {}: expect must be allow or deny, and why must quote the guide",
            path.display(),
            index + 1
        );
        probes.push(probe);
    }
    ensure!(!probes.is_empty(), "{} has no probes", path.display());
    Ok(probes)
}

/// The directories of `platform` that hold manifests (its variants), by name.
fn variants_on_disk(platform: &str) -> Result<BTreeSet<String>> {
    let mut variants = BTreeSet::new();
    for entry in std::fs::read_dir(examples_dir().join(platform))? {
        let entry = entry?;
        if entry.path().is_dir() {
            variants.insert(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(variants)
}

/// Runs `palisadectl check --probes` on one variant: one verdict per probe, in order.
fn simulate(
    binary: &Path,
    manifests: &Path,
    probes_file: &Path,
    count: usize,
) -> Result<Vec<String>> {
    let output = Command::new(binary)
        .arg("check")
        .arg("--manifests")
        .arg(manifests)
        .arg("--probes")
        .arg(probes_file)
        .args(["--output", "json"])
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    ensure!(
        output.status.success(),
        "palisadectl check failed on {} ({}):\n{}",
        manifests.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).context("palisadectl printed non-UTF-8")?;
    let verdicts: Vec<String> = stdout
        .lines()
        .map(|line| {
            let answer: Value = serde_json::from_str(line)
                .with_context(|| format!("palisadectl printed a line that is not JSON: {line}"))?;
            answer["verdict"]
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("no verdict in {line}"))
        })
        .collect::<Result<_>>()?;
    ensure!(
        verdicts.len() == count,
        "palisadectl answered {} of {count} probes",
        verdicts.len()
    );
    Ok(verdicts)
}

/// The manifests as the agent reads them.
fn load(manifests: &Path) -> Result<Cluster> {
    let set = palisade_manifests::read_dir(manifests)
        .with_context(|| format!("reading {}", manifests.display()))?;
    set.parse()
        .map_err(|errors| anyhow::anyhow!("{}:\n{errors}", manifests.display()))
}

fn protocol(name: &str) -> Option<Protocol> {
    Protocol::ALL.into_iter().find(|p| p.as_str() == name)
}

fn pod_ref(end: &str) -> Option<ObjectRef> {
    let (namespace, name) = end.split_once('/')?;
    (!end.starts_with("ip:")).then(|| ObjectRef {
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
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
    let probes_file = examples_dir().join(platform).join("probes.jsonl");
    let declared: BTreeSet<String> = variants.iter().map(|v| v.to_string()).collect();
    ensure!(
        variants_on_disk(platform)? == declared,
        "examples/{platform} has variants {:?}; this test checks {declared:?}",
        variants_on_disk(platform)?
    );
    let mut report = String::new();
    let mut failures = Vec::new();
    for variant in variants {
        let manifests = examples_dir().join(platform).join(variant);
        let cluster = load(&manifests)?;
        if *variant == NETWORKPOLICY_ONLY {
            ensure!(
                cluster.trust_boundaries.is_empty() && cluster.egress_policies.is_empty(),
                "{} uses palisade's kinds",
                manifests.display()
            );
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
