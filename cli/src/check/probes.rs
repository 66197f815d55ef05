//! Probes files: one JSON object per line, `{"from": "ns/pod"|"ip:ADDR", "to": ...,
//! "port": N, "protocol": "TCP", "dst_ip"?: ADDR}` (protocol defaults to TCP; other
//! fields are ignored; blank lines are skipped). Every line is read and resolved
//! before anything is printed, so a bad file prints no verdicts, only what is wrong
//! with it, line by line.

use super::endpoint::EndpointArg;
use super::protocol::{IpProtocol, Service};
use super::query::Query;
use super::simulate::{Outcome, Simulator};
use palisade_policy::evaluate::IpFamily;
use serde::Deserialize;
use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// At most this many problems are listed; the rest are counted.
const MAX_LISTED_PROBLEMS: usize = 20;

/// One line of a probes file as written.
#[derive(Debug, Deserialize)]
struct ProbeLine {
    from: String,
    to: String,
    #[serde(default)]
    port: Option<u64>,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    dst_ip: Option<String>,
}

/// A probe and the (1-based) line it is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub line: usize,
    pub query: Query,
}

/// What is wrong with a probes file: every bad line, in order.
#[derive(Debug, thiserror::Error)]
pub struct ProbesError {
    /// The file as the user named it.
    file: String,
    /// (line, problem).
    problems: Vec<(usize, String)>,
}

impl fmt::Display for ProbesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "{count} bad probe{} in {}:",
            if count == 1 { "" } else { "s" },
            self.file
        )?;
        for (line, problem) in self.problems.iter().take(MAX_LISTED_PROBLEMS) {
            write!(f, "\n  line {line} of {}: {problem}", self.file)?;
        }
        if count > MAX_LISTED_PROBLEMS {
            write!(f, "\n  ... and {} more", count - MAX_LISTED_PROBLEMS)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read probes file {}: {source}", path.display())]
pub struct ReadProbesError {
    path: PathBuf,
    source: std::io::Error,
}

/// The text of the probes file at `path` (`-`: standard input).
pub fn read_text(path: &Path) -> Result<String, ReadProbesError> {
    let error = |source| ReadProbesError {
        path: path.to_path_buf(),
        source,
    };
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(error)?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).map_err(error)
    }
}

/// Every probe of `text` (the file `file`), or every problem in it.
pub fn parse(file: &str, text: &str) -> Result<Vec<Probe>, ProbesError> {
    let mut probes = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(query) => probes.push(Probe {
                line: number,
                query,
            }),
            Err(problem) => problems.push((number, problem)),
        }
    }
    if problems.is_empty() {
        Ok(probes)
    } else {
        Err(ProbesError {
            file: file.to_string(),
            problems,
        })
    }
}

fn parse_line(line: &str) -> Result<Query, String> {
    let probe: ProbeLine = serde_json::from_str(line).map_err(|e| format!("bad JSON: {e}"))?;
    let end =
        |field: &str, text: &str| EndpointArg::parse(text).map_err(|e| format!("\"{field}\": {e}"));
    let from = end("from", &probe.from)?;
    let to = end("to", &probe.to)?;
    let protocol = match &probe.protocol {
        Some(text) => text
            .parse::<IpProtocol>()
            .map_err(|e| format!("\"protocol\": {e}"))?,
        None => IpProtocol::TCP,
    };
    let service = Service::new(protocol, probe.port).map_err(|e| format!("\"port\": {e}"))?;
    let dst_ip = probe
        .dst_ip
        .as_deref()
        .map(|text| {
            text.parse::<IpAddr>()
                .map_err(|e| format!("\"dst_ip\": invalid address {text:?}: {e}"))
        })
        .transpose()?;
    Ok(Query {
        from,
        to,
        service,
        dst_ip,
    })
}

/// Decides every probe, in order, or reports every probe that names something the
/// cluster does not have.
pub fn decide_all<'a>(
    file: &str,
    probes: &[Probe],
    simulator: &Simulator<'a>,
    family: Option<IpFamily>,
) -> Result<Vec<Outcome<'a>>, ProbesError> {
    let mut outcomes = Vec::with_capacity(probes.len());
    let mut problems = Vec::new();
    for probe in probes {
        match probe.query.decide(simulator, family) {
            Ok(outcome) => outcomes.push(outcome),
            Err(error) => problems.push((probe.line, error.to_string())),
        }
    }
    if problems.is_empty() {
        Ok(outcomes)
    } else {
        Err(ProbesError {
            file: file.to_string(),
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_skipping_blank_ones_and_ignoring_other_fields() {
        let text = "{\"from\":\"x/a\",\"to\":\"y/b\",\"port\":80,\"protocol\":\"udp\",\"expect\":\"deny\"}\n\
                    \n\
                    {\"from\":\"ip:10.0.0.1\",\"to\":\"x/a\",\"port\":81}\n\
                    {\"from\":\"x/a\",\"to\":\"x/b\",\"protocol\":\"ICMP\",\"dst_ip\":\"10.0.1.2\"}\n";
        let probes = parse("p.jsonl", text).unwrap();
        let lines: Vec<usize> = probes.iter().map(|p| p.line).collect();
        assert_eq!(lines, [1, 3, 4]);
        assert_eq!(probes[0].query.service.protocol, IpProtocol::UDP);
        assert_eq!(probes[0].query.from.text, "x/a");
        assert_eq!(probes[1].query.service.protocol, IpProtocol::TCP);
        assert_eq!(probes[1].query.service.port, 81);
        assert_eq!(probes[2].query.service.port, 0);
        assert_eq!(probes[2].query.dst_ip, Some("10.0.1.2".parse().unwrap()));
    }

    #[test]
    fn every_bad_line_is_named() {
        let text = "{\"from\":\"x/a\",\"to\":\"y/b\",\"port\":80}\n\
                    not json\n\
                    {\"from\":\"x/a\",\"port\":80}\n\
                    {\"from\":\"x\",\"to\":\"y/b\",\"port\":80}\n\
                    {\"from\":\"x/a\",\"to\":\"y/b\"}\n\
                    {\"from\":\"x/a\",\"to\":\"y/b\",\"port\":80,\"protocol\":\"http\"}\n\
                    {\"from\":\"x/a\",\"to\":\"y/b\",\"port\":70000}\n\
                    {\"from\":\"x/a\",\"to\":\"y/b\",\"port\":80,\"dst_ip\":\"nope\"}\n";
        let error = parse("p.jsonl", text).unwrap_err();
        let lines: Vec<usize> = error.problems.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7, 8]);
        let text = error.to_string();
        assert!(text.starts_with("7 bad probes in p.jsonl:\n"), "{text}");
        assert!(text.contains("line 2 of p.jsonl: bad JSON: "), "{text}");
        assert!(
            text.contains("line 3 of p.jsonl: bad JSON: missing field `to`"),
            "{text}"
        );
        assert!(
            text.contains("line 4 of p.jsonl: \"from\": expected NS/POD"),
            "{text}"
        );
        assert!(
            text.contains("line 5 of p.jsonl: \"port\": a port is required for TCP"),
            "{text}"
        );
        assert!(
            text.contains("line 6 of p.jsonl: \"protocol\": unknown protocol"),
            "{text}"
        );
        assert!(
            text.contains("line 7 of p.jsonl: \"port\": port 70000"),
            "{text}"
        );
        assert!(
            text.contains("line 8 of p.jsonl: \"dst_ip\": invalid address"),
            "{text}"
        );
    }
}
