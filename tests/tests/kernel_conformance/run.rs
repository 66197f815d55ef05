//! Runs a group of cases that share pods: one testbed and its agents for all of them;
//! per case, the case's manifests replace the previous ones in the agents' directory,
//! every agent applies them, `palisadectl check` decides the probes from the same
//! directory, and the kernel decides them on the emulated pods.

use super::agents::Agents;
use super::cases::{Case, Expect, Probe};
use super::manifests::{manifest_files, probes_file};
use super::palisadectl::{self, Answer};
use super::probes::{self, Exclusion, KernelResult, Plan};
use super::testbed::Testbed;
use anyhow::{Context, Result};
use palisade_lab::{ProbeOrigin, ProbeSpec};
use std::path::Path;
use std::time::{Duration, Instant};

/// One probe run in the kernel.
pub struct ProbeOutcome {
    pub probe: Probe,
    pub simulator: Answer,
    pub kernel: KernelResult,
}

impl ProbeOutcome {
    /// The kernel, palisadectl and upstream all say the same.
    pub fn agrees(&self) -> bool {
        let expected = self.probe.expect == Expect::Allow;
        self.kernel.allowed() == expected && self.simulator.passes == expected
    }
}

pub struct CaseOutcome {
    pub id: String,
    pub source: String,
    pub group: String,
    pub probes: Vec<ProbeOutcome>,
    pub excluded: Vec<Exclusion>,
    /// The agents' counters and logs for the case, when a probe disagreed.
    pub diagnostics: Option<String>,
}

impl CaseOutcome {
    pub fn agrees(&self) -> bool {
        self.probes.iter().all(ProbeOutcome::agrees)
    }
}

/// What a testbed was and what its cases gave.
pub struct GroupOutcome {
    pub pods: usize,
    pub host_network_pods: usize,
    pub nodes: Vec<String>,
    pub setup: Duration,
    pub cases: Vec<CaseOutcome>,
}

/// Runs `cases` (which share pods) with `palisadectl` at `ctl`.
pub fn run_group(ctl: &Path, cases: &[&Case]) -> Result<GroupOutcome> {
    let started = Instant::now();
    let first = cases.first().context("an empty group of cases")?;
    let testbed = Testbed::build(cases)?;
    let files = |case: &Case| manifest_files(case, &|pod| testbed.cgroup_path(pod));
    let mut agents = Agents::start(&testbed.lab, &testbed.nodes, &files(first))?;
    let work = tempfile::Builder::new()
        .prefix("palisade-kernel-conformance-")
        .tempdir()?;
    let setup = started.elapsed();
    let mut outcomes = Vec::new();
    for case in cases {
        agents
            .apply(&files(case))
            .with_context(|| format!("applying case {}", case.id))?;
        let outcome = run_case(ctl, &testbed, &agents, case, work.path())
            .with_context(|| format!("case {}", case.id))?;
        outcomes.push(outcome);
    }
    Ok(GroupOutcome {
        pods: testbed.pod_count(),
        host_network_pods: testbed.host_network_count(),
        nodes: agents.nodes().into_iter().map(str::to_string).collect(),
        setup,
        cases: outcomes,
    })
}

/// Decides the case's probes with palisadectl and in the kernel (its manifests are
/// applied).
fn run_case(
    ctl: &Path,
    testbed: &Testbed,
    agents: &Agents,
    case: &Case,
    work: &Path,
) -> Result<CaseOutcome> {
    let mut runnable = Vec::new();
    let mut specs = Vec::new();
    let mut excluded = Vec::new();
    for probe in &case.probes {
        match probes::plan(testbed, case, probe)? {
            Plan::Run(spec) => {
                runnable.push(probe.clone());
                specs.push(spec);
            }
            Plan::Excluded(why) => excluded.push(why),
        }
    }
    let mut outcome = CaseOutcome {
        id: case.id.clone(),
        source: case.source.clone(),
        group: case.group(),
        probes: Vec::new(),
        excluded,
        diagnostics: None,
    };
    if runnable.is_empty() {
        return Ok(outcome);
    }
    let probes_path = work.join("probes.jsonl");
    std::fs::write(&probes_path, probes_file(&runnable))?;
    let answers = palisadectl::check(ctl, agents.dir(), &probes_path, work, &runnable)?;
    let allows: Vec<bool> = answers.iter().map(|answer| answer.passes).collect();
    let marks = agents.log_marks();
    let kernel = probes::run(&testbed.lab, &specs, &allows)?;
    outcome.probes = runnable
        .into_iter()
        .zip(answers)
        .zip(kernel)
        .map(|((probe, simulator), kernel)| ProbeOutcome {
            probe,
            simulator,
            kernel,
        })
        .collect();
    if !outcome.agrees() {
        let flows: Vec<(String, String)> = outcome
            .probes
            .iter()
            .zip(&specs)
            .filter(|(probe, _)| !probe.agrees())
            .filter_map(|(_, spec)| flow_ends(spec))
            .collect();
        outcome.diagnostics = Some(agents.diagnostics(&marks, &flows));
    }
    Ok(outcome)
}

/// The source address and the destination `address:port` of a probe, as the agents'
/// flow events print them (`"10.0.1.1:` and `10.0.1.2:80"`).
fn flow_ends(spec: &ProbeSpec) -> Option<(String, String)> {
    let ProbeOrigin::Pod(from) = &spec.origin else {
        return None;
    };
    let from = from.ipv4()?;
    Some((format!("\"{from}:"), format!("{}:{}\"", spec.to, spec.port)))
}
