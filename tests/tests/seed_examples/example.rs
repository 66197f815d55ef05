//! A seed platform's example as the tests read it (`examples/<platform>/`): its
//! variants (directories of manifests), its probes (`probes.jsonl`), the manifests
//! parsed as the agent reads them, and `palisadectl check`'s verdict per probe. Shared
//! by the simulator test (`seed_examples.rs`) and the kernel test
//! (`kernel_seed_examples.rs`).

use anyhow::{Context, Result, ensure};
use palisade_lab::harness::binaries;
use palisade_policy::model::{Cluster, ObjectRef, Protocol};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every example's manifests, with palisade's kinds (TrustBoundary, EgressPolicy) where
/// they help.
pub const MANIFESTS: &str = "manifests";
/// The same posture in plain NetworkPolicy, where palisade's kinds make it shorter or
/// stronger.
pub const NETWORKPOLICY_ONLY: &str = "networkpolicy-only";

/// One probe of a platform's `probes.jsonl`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    pub from: String,
    pub to: String,
    pub port: u16,
    pub protocol: String,
    /// `allow` or `deny` (or `audit-deny`: reported, let through).
    pub expect: String,
    pub why: String,
    /// The destination address to use: one of the destination pod's.
    #[serde(default)]
    pub dst_ip: Option<std::net::IpAddr>,
    /// False: the kernel tests cannot run it (an end outside the cluster).
    #[serde(default = "runs_in_kernel")]
    pub kernel: bool,
}

fn runs_in_kernel() -> bool {
    true
}

pub fn examples_dir() -> PathBuf {
    binaries::workspace().join("examples")
}

/// The probes file of `platform`.
pub fn probes_file(platform: &str) -> PathBuf {
    examples_dir().join(platform).join("probes.jsonl")
}

pub fn read_probes(platform: &str) -> Result<Vec<Probe>> {
    let path = probes_file(platform);
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
            ["allow", "deny", "audit-deny"].contains(&probe.expect.as_str())
                && !probe.why.trim().is_empty(),
            "{} line {}: expect must be allow, deny or audit-deny, and why must quote the guide",
            path.display(),
            index + 1
        );
        probes.push(probe);
    }
    ensure!(!probes.is_empty(), "{} has no probes", path.display());
    Ok(probes)
}

/// Checks that the directories of `platform` that hold manifests (its variants) are
/// exactly `variants`, so that a new variant is not left untested.
pub fn check_variants(platform: &str, variants: &[&str]) -> Result<()> {
    let mut on_disk = BTreeSet::new();
    for entry in std::fs::read_dir(examples_dir().join(platform))? {
        let entry = entry?;
        if entry.path().is_dir() {
            on_disk.insert(entry.file_name().to_string_lossy().into_owned());
        }
    }
    let declared: BTreeSet<String> = variants.iter().map(|v| v.to_string()).collect();
    ensure!(
        on_disk == declared,
        "examples/{platform} has variants {on_disk:?}; the tests check {declared:?}"
    );
    Ok(())
}

/// Runs `palisadectl check --probes` on a manifests directory: one verdict per probe
/// of `probes_file` (which holds `count`), in order.
pub fn simulate(
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
pub fn load(manifests: &Path) -> Result<Cluster> {
    let set = palisade_manifests::read_dir(manifests)
        .with_context(|| format!("reading {}", manifests.display()))?;
    set.parse()
        .map_err(|errors| anyhow::anyhow!("{}:\n{errors}", manifests.display()))
}

pub fn protocol(name: &str) -> Option<Protocol> {
    Protocol::ALL.into_iter().find(|p| p.as_str() == name)
}

/// The pod a probe's end names (`namespace/name`); none for an `ip:` end.
pub fn pod_ref(end: &str) -> Option<ObjectRef> {
    let (namespace, name) = end.split_once('/')?;
    (!end.starts_with("ip:")).then(|| ObjectRef {
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}
