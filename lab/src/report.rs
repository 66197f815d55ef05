//! The JSON line `palisade-netprobe` prints for each connection attempt or
//! round trip, shared by the tool (which writes it) and the lab (which reads
//! it).

use serde::{Deserialize, Serialize};

/// One result line, e.g.
/// `{"outcome":"refused","detail":"Connection refused (os error 111)","elapsed_us":412}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// What happened.
    pub outcome: ReportOutcome,
    /// Human-readable detail: the error message, or what was echoed.
    pub detail: String,
    /// Time from the start of the attempt to its outcome, in microseconds.
    pub elapsed_us: u64,
    /// Who answered, for `connect --identify` attempts that got an answer; absent
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<AnswerReport>,
}

/// Who answered an identifying probe (`connect --identify` to `serve --name`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerReport {
    /// The server's `--name`.
    pub server: String,
    /// The probe's address and port as the server saw them (`ip:port`, `[ip]:port`).
    pub seen_as: String,
    /// The answering address as the probe's socket reports it: `getpeername()` of a
    /// connected socket, the source `recvfrom()` gives on an unconnected UDP socket.
    pub peer: String,
}

/// The outcome names on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportOutcome {
    /// The peer answered and echoed the payload back unchanged.
    Connected,
    /// `ECONNREFUSED`: a TCP reset, or an ICMP port unreachable for UDP.
    Refused,
    /// No answer in time (`ETIMEDOUT`, or a read that timed out).
    Timeout,
    /// `EPERM`/`EACCES`: typically a BPF program dropped an egress packet.
    Eperm,
    /// `ENETUNREACH`/`EHOSTUNREACH`.
    Unreachable,
    /// Anything else; `detail` says what.
    Error,
}

impl ProbeReport {
    /// The report as one line of JSON, without the newline.
    pub fn to_json_line(&self) -> String {
        // Serializing this plain struct cannot fail; fall back to a hand-built
        // line rather than panic if it ever did.
        serde_json::to_string(self).unwrap_or_else(|error| {
            format!(
                r#"{{"outcome":"error","detail":"cannot serialize report: {}","elapsed_us":0}}"#,
                error.to_string().replace(['"', '\\'], "'")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_matches_the_documented_one() {
        let report = ProbeReport {
            outcome: ReportOutcome::Eperm,
            detail: "Operation not permitted".into(),
            elapsed_us: 42,
            answer: None,
        };
        let line = report.to_json_line();
        assert_eq!(
            line,
            r#"{"outcome":"eperm","detail":"Operation not permitted","elapsed_us":42}"#
        );
        assert_eq!(
            serde_json::from_str::<ProbeReport>(&line).expect("parse"),
            report
        );
    }

    #[test]
    fn answers_round_trip() {
        let report = ProbeReport {
            outcome: ReportOutcome::Connected,
            detail: "echoed 3 bytes".into(),
            elapsed_us: 7,
            answer: Some(AnswerReport {
                server: "web-1".into(),
                seen_as: "10.90.0.10:40000".into(),
                peer: "10.96.0.10:80".into(),
            }),
        };
        let line = report.to_json_line();
        assert!(line.contains(r#""answer":{"server":"web-1""#), "{line}");
        assert_eq!(
            serde_json::from_str::<ProbeReport>(&line).expect("parse"),
            report
        );
    }
}
