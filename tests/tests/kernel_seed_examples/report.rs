//! The report of one example variant's kernel run: what was emulated, a table of every
//! probe (from, to, port, expected, kernel, simulator), counts, and every disagreeing
//! probe with the agents' counters and log lines about it.

use super::run::{RETRY_TIMEOUT, VariantOutcome};
use palisade_lab::{Outcome, ProbeResult, RecheckedProbe};
use std::fmt::Write as _;

/// How a probe's destination is shown: the pod, and the address where the probe
/// names one.
fn destination(outcome: &super::run::ProbeOutcome) -> String {
    match outcome.probe.dst_ip {
        Some(address) => format!("{} [{address}]", outcome.probe.to),
        None => outcome.probe.to.clone(),
    }
}

/// `allow`, or `deny` with how the connection failed.
fn attempt(result: &ProbeResult) -> String {
    let how = match &result.outcome {
        Outcome::Connected => return "allow".to_string(),
        Outcome::Refused => "refused",
        Outcome::TimedOut => "timeout",
        Outcome::PermissionDenied => "eperm",
        Outcome::Unreachable => "unreachable",
        Outcome::OtherError(detail) => detail,
    };
    format!("deny ({how})")
}

fn kernel_column(kernel: Option<&RecheckedProbe>) -> String {
    match kernel {
        None => "- (outside)".to_string(),
        Some(kernel) => match &kernel.first_attempt {
            Some(first) => format!("{} (first: {})", attempt(&kernel.result), attempt(first)),
            None => attempt(&kernel.result),
        },
    }
}

pub fn render(outcome: &VariantOutcome) -> String {
    let mut text = format!(
        "kernel seed example {} ({}): {} emulated pods, {} Runs as child cgroups, agent \
         node(s) {}; setup {:.1} s, probes {:.1} s\n",
        outcome.platform,
        outcome.variant,
        outcome.pods,
        outcome.runs,
        outcome.nodes.join(", "),
        outcome.setup.as_secs_f64(),
        outcome.probing.as_secs_f64()
    );
    let rows: Vec<[String; 5]> = outcome
        .probes
        .iter()
        .map(|o| {
            [
                o.probe.from.clone(),
                destination(o),
                format!("{}/{}", o.probe.port, o.probe.protocol),
                o.probe.expect.clone(),
                kernel_column(o.kernel.as_ref()),
            ]
        })
        .collect();
    let titles = ["from", "to", "port", "expected", "kernel"];
    let widths: Vec<usize> = (0..titles.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].len())
                .chain([titles[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 5], last: &str| {
        let mut line = String::from(" ");
        for (cell, width) in cells.iter().zip(&widths) {
            let _ = write!(line, " {cell:width$} ");
        }
        format!("{line} {last}")
    };
    let _ = writeln!(text, "{}", line(titles, "simulator"));
    for (row, o) in rows.iter().zip(&outcome.probes) {
        let cells = [&row[0], &row[1], &row[2], &row[3], &row[4]].map(String::as_str);
        let mark = if o.agrees() { "" } else { "  <- DISAGREES" };
        let _ = writeln!(text, "{}", line(cells, &format!("{}{mark}", o.simulator)));
    }
    let run: Vec<_> = outcome
        .probes
        .iter()
        .filter(|o| o.kernel.is_some())
        .collect();
    let outside = outcome.probes.len() - run.len();
    let _ = writeln!(
        text,
        "  {} probes as real connections, {} agree (kernel == palisadectl == expected); \
         {outside} with an end outside the cluster (\"kernel\": false), decided by \
         palisadectl only, {} as expected",
        run.len(),
        run.iter().filter(|o| o.agrees()).count(),
        outcome
            .probes
            .iter()
            .filter(|o| o.kernel.is_none() && o.agrees())
            .count()
    );
    let retried = run
        .iter()
        .filter(|o| o.kernel.as_ref().is_some_and(|k| k.first_attempt.is_some()))
        .count();
    if retried > 0 {
        let _ = writeln!(
            text,
            "  {retried} probe(s) disagreed with palisadectl at first and ran again with a \
             {RETRY_TIMEOUT:?} timeout (the kernel column shows both attempts)"
        );
    }
    let disagreeing: Vec<_> = outcome.probes.iter().filter(|o| !o.agrees()).collect();
    if !disagreeing.is_empty() {
        let _ = writeln!(text, "  disagreements:");
        for o in disagreeing {
            let _ = writeln!(
                text,
                "    {} -> {} {}/{}: expected {} (\"{}\"), kernel {}, palisadectl {}",
                o.probe.from,
                destination(o),
                o.probe.port,
                o.probe.protocol,
                o.probe.expect,
                o.probe.why,
                kernel_column(o.kernel.as_ref()),
                o.simulator
            );
        }
    }
    if let Some(diagnostics) = &outcome.diagnostics {
        let _ = write!(
            text,
            "  the agents since the manifests were applied:\n{diagnostics}"
        );
    }
    text
}
