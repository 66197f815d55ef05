//! The report of a suite's kernel run: the testbeds, a table of cases and probes where
//! the kernel, `palisadectl check` and upstream agree (the suite, then each upstream
//! test group), what was not run in the kernel and why, and every disagreeing probe
//! with the agents' counters and logs for its case.

use super::cases::Suite;
use super::group_table::{GroupRows, group_rows};
use super::probes::{Exclusion, PROBE_TIMEOUT, RETRY_TIMEOUT};
use super::run::{CaseOutcome, GroupOutcome, ProbeOutcome};
use palisade_lab::{Outcome, ProbeResult};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

#[derive(Default)]
struct Tally {
    cases_run: usize,
    cases_agreeing: usize,
    /// Cases none of whose probes could run in the kernel.
    cases_not_run: usize,
    /// (probes, probes agreeing) per protocol.
    tcp: (usize, usize),
    udp: (usize, usize),
    not_run: usize,
}

impl Tally {
    fn add(&mut self, case: &CaseOutcome) {
        if case.probes.is_empty() {
            self.cases_not_run += 1;
        } else {
            self.cases_run += 1;
            self.cases_agreeing += usize::from(case.agrees());
        }
        for probe in &case.probes {
            // Only TCP and UDP probes run in the kernel.
            let counts = if probe.probe.protocol.eq_ignore_ascii_case("UDP") {
                &mut self.udp
            } else {
                &mut self.tcp
            };
            counts.0 += 1;
            counts.1 += usize::from(probe.agrees());
        }
        self.not_run += case.excluded.len();
    }
}

pub struct Report<'a> {
    pub suite: Suite,
    pub groups: &'a [GroupOutcome],
    pub elapsed: Duration,
    pub kernel_has_sctp: bool,
}

impl Report<'_> {
    fn cases(&self) -> impl Iterator<Item = &CaseOutcome> {
        self.groups.iter().flat_map(|group| &group.cases)
    }

    pub fn all_agree(&self) -> bool {
        self.cases().all(CaseOutcome::agrees)
    }

    pub fn disagreeing_probes(&self) -> usize {
        self.cases()
            .flat_map(|case| &case.probes)
            .filter(|probe| !probe.agrees())
            .count()
    }

    /// The testbeds, the table, the exclusions and retries, then the disagreements.
    pub fn render(&self) -> String {
        let mut text = format!(
            "kernel conformance, {}: {} cases in {:.1} s\n",
            self.suite,
            self.cases().count(),
            self.elapsed.as_secs_f64()
        );
        for (index, group) in self.groups.iter().enumerate() {
            let _ = writeln!(
                text,
                "testbed {}: {} emulated pods, {} host-network pods (servers at node addresses), \
                 agents of node(s) {}; {} cases; set up in {:.1} s",
                index + 1,
                group.pods,
                group.host_network_pods,
                group.nodes.join(", "),
                group.cases.len(),
                group.setup.as_secs_f64()
            );
        }
        text.push('\n');
        text.push_str(&self.table());
        text.push_str(&self.not_run());
        text.push_str(&self.denials());
        text.push_str(&self.retries());
        let disagreeing: Vec<&CaseOutcome> = self.cases().filter(|c| !c.agrees()).collect();
        if !disagreeing.is_empty() {
            let _ = writeln!(
                text,
                "\nDISAGREEMENTS: {} probe(s) in {} case(s) where the kernel, \
                 palisadectl check and upstream do not all agree:",
                self.disagreeing_probes(),
                disagreeing.len()
            );
            for case in disagreeing {
                text.push_str(&disagreement(case));
            }
        }
        text
    }

    fn table(&self) -> String {
        let GroupRows {
            rows,
            name_width: width,
        } = group_rows(
            &self.suite.to_string(),
            "group",
            self.cases(),
            |case: &CaseOutcome| &case.group,
            Tally::add,
        );
        let mut text = format!(
            "{:<width$}  {:>14}  {:>19}  {:>19}  {:>24}\n",
            "group",
            "cases agreeing",
            "TCP probes agreeing",
            "UDP probes agreeing",
            "not run in the kernel"
        );
        for (name, tally) in rows {
            let not_run = if tally.cases_not_run > 0 {
                format!("{} ({} cases)", tally.not_run, tally.cases_not_run)
            } else {
                tally.not_run.to_string()
            };
            let _ = writeln!(
                text,
                "{name:<width$}  {:>14}  {:>19}  {:>19}  {not_run:>24}",
                format!("{}/{}", tally.cases_agreeing, tally.cases_run),
                format!("{}/{}", tally.tcp.1, tally.tcp.0),
                format!("{}/{}", tally.udp.1, tally.udp.0),
            );
        }
        text.push_str(
            "(agreeing: the kernel's result equals palisadectl check's verdict and upstream's \
             expectation; cases: those with a probe run in the kernel)\n",
        );
        text
    }

    /// Every probe class not run in the kernel, with its count and reason.
    fn not_run(&self) -> String {
        let mut counts: BTreeMap<Exclusion, usize> = BTreeMap::new();
        counts.insert(Exclusion::Sctp, 0);
        for case in self.cases() {
            for &why in &case.excluded {
                *counts.entry(why).or_default() += 1;
            }
        }
        let mut text = String::new();
        for (why, count) in counts {
            let _ = writeln!(
                text,
                "not run in the kernel: {count} probe(s), {}",
                why.reason(self.kernel_has_sctp)
            );
        }
        let only: Vec<&str> = self
            .cases()
            .filter(|case| case.probes.is_empty())
            .map(|case| case.id.as_str())
            .collect();
        if !only.is_empty() {
            let _ = writeln!(
                text,
                "{} case(s) have no probe the kernel can run; their manifests were applied \
                 (published and ready) all the same: {}",
                only.len(),
                only.join(", ")
            );
        }
        text
    }

    /// How the probes the kernel denied ended, by kind (an ingress drop times out,
    /// an egress drop fails at once with EPERM; "refused" would mean no server).
    fn denials(&self) -> String {
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for probe in self.cases().flat_map(|case| &case.probes) {
            let kind = match &probe.kernel.result.outcome {
                Outcome::Connected => continue,
                Outcome::TimedOut => "timed out",
                Outcome::PermissionDenied => "EPERM",
                Outcome::Refused => "refused",
                Outcome::Unreachable => "unreachable",
                Outcome::OtherError(_) => "other error",
            };
            *kinds.entry(kind).or_default() += 1;
        }
        let kinds: Vec<String> = kinds
            .iter()
            .map(|(kind, count)| format!("{count} {kind}"))
            .collect();
        format!(
            "probes the kernel denied: {}\n",
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(", ")
            }
        )
    }

    fn retries(&self) -> String {
        let retried: Vec<&ProbeOutcome> = self
            .cases()
            .flat_map(|case| &case.probes)
            .filter(|probe| probe.kernel.first_attempt.is_some())
            .collect();
        let changed = retried
            .iter()
            .filter(|p| {
                p.kernel.first_attempt.as_ref().map(ProbeResult::allowed)
                    != Some(p.kernel.allowed())
            })
            .count();
        format!(
            "probes run again with a {} ms timeout after disagreeing with palisadectl at {} ms: \
             {} ({} of them then agreed)\n",
            RETRY_TIMEOUT.as_millis(),
            PROBE_TIMEOUT.as_millis(),
            retried.len(),
            changed
        )
    }
}

fn disagreement(case: &CaseOutcome) -> String {
    let mut text = format!("\ncase {} (upstream: {})\n", case.id, case.source);
    for outcome in case.probes.iter().filter(|p| !p.agrees()) {
        let probe = &outcome.probe;
        let to = probe.destination();
        let expected = probe.expect.as_str();
        let simulator = &outcome.simulator.verdict;
        let mut tags = Vec::new();
        if outcome.kernel.allowed() != outcome.simulator.passes {
            tags.push("kernel != palisadectl");
        }
        if outcome.simulator.passes != (expected == "allow") {
            tags.push("palisadectl != upstream");
        }
        let _ = writeln!(
            text,
            "  {} -> {to} {}/{}: expected {expected}, palisadectl {simulator}, kernel {} [{}]",
            probe.from,
            probe.protocol,
            probe.port,
            describe(&outcome.kernel.result),
            tags.join(", ")
        );
        if let Some(first) = &outcome.kernel.first_attempt {
            let _ = writeln!(text, "      first attempt: {}", describe(first));
        }
        for entry in &outcome.simulator.decided_by {
            let _ = writeln!(text, "      decided_by {entry}");
        }
    }
    if let Some(diagnostics) = &case.diagnostics {
        text.push_str("  agents after the case:\n");
        text.push_str(diagnostics);
    }
    text
}

/// `allowed (0.4 ms)`, `denied: timed out (300.2 ms)`, ...
fn describe(result: &ProbeResult) -> String {
    let ms = result.elapsed.as_secs_f64() * 1000.0;
    match &result.outcome {
        Outcome::Connected => format!("allowed ({ms:.1} ms)"),
        Outcome::Refused => format!("denied: refused ({ms:.1} ms)"),
        Outcome::TimedOut => format!("denied: timed out ({ms:.1} ms)"),
        Outcome::PermissionDenied => format!("denied: EPERM at send ({ms:.1} ms)"),
        Outcome::Unreachable => format!("denied: unreachable ({ms:.1} ms)"),
        Outcome::OtherError(detail) => format!("denied: error {detail} ({ms:.1} ms)"),
    }
}
