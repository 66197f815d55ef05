//! The report of a suite's run: a table of cases and probes passed (the suite, then
//! each upstream test group), and every failing case with its failing probes.

use super::cases::Suite;
use super::group_table::{GroupRows, group_rows};
use super::runner::CaseResult;
use std::fmt::Write as _;

/// At most this many lines of a failed run's error are shown per case.
const MAX_ERROR_LINES: usize = 4;

#[derive(Default)]
struct Tally {
    cases: usize,
    cases_passed: usize,
    probes: usize,
    probes_passed: usize,
}

impl Tally {
    fn add(&mut self, result: &CaseResult) {
        self.cases += 1;
        self.cases_passed += usize::from(result.passed());
        self.probes += result.probes;
        self.probes_passed += result.probes_passed();
    }
}

pub struct Report<'a> {
    suite: Suite,
    results: &'a [CaseResult],
}

impl<'a> Report<'a> {
    pub fn new(suite: Suite, results: &'a [CaseResult]) -> Self {
        Self { suite, results }
    }

    pub fn all_passed(&self) -> bool {
        self.results.iter().all(CaseResult::passed)
    }

    /// The table, then the failures (if any).
    pub fn render(&self) -> String {
        let mut text = self.table();
        let failing: Vec<&CaseResult> = self.results.iter().filter(|r| !r.passed()).collect();
        if !failing.is_empty() {
            let _ = writeln!(text, "\n{} failing case(s):", failing.len());
            for result in failing {
                text.push_str(&failure(result));
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
            "suite",
            self.results,
            |result: &CaseResult| &result.group,
            Tally::add,
        );
        let mut text = format!(
            "{:<width$}  {:>13}  {:>15}\n",
            "suite", "cases passed", "probes passed"
        );
        for (name, tally) in rows {
            let _ = writeln!(
                text,
                "{name:<width$}  {:>13}  {:>15}",
                format!("{}/{}", tally.cases_passed, tally.cases),
                format!("{}/{}", tally.probes_passed, tally.probes),
            );
        }
        text
    }
}

fn failure(result: &CaseResult) -> String {
    let mut text = format!(
        "\n{} ({}/{} probes passed)\n  upstream: {}\n",
        result.id,
        result.probes_passed(),
        result.probes,
        result.source
    );
    if let Some(dir) = &result.kept_in {
        let _ = writeln!(text, "  files: {dir}");
    }
    if let Some(error) = &result.error {
        let lines: Vec<&str> = error.lines().collect();
        for line in lines.iter().take(MAX_ERROR_LINES) {
            let _ = writeln!(text, "  error: {line}");
        }
        if lines.len() > MAX_ERROR_LINES {
            let _ = writeln!(
                text,
                "  error: ... ({} more lines)",
                lines.len() - MAX_ERROR_LINES
            );
        }
    }
    for failed in &result.failures {
        let probe = &failed.probe;
        let to = probe.destination();
        let _ = writeln!(
            text,
            "  {} -> {to} {}/{}: expected {}, got {}",
            probe.from,
            probe.protocol,
            probe.port,
            probe.expect.as_str(),
            failed.got
        );
        if failed.decided_by.is_empty() {
            let _ = writeln!(text, "      decided_by: (none)");
        }
        for entry in &failed.decided_by {
            let _ = writeln!(text, "      decided_by {entry}");
        }
    }
    text
}
