//! How `palisadectl observe` prints a line of the agent's event stream: the JSON line
//! unchanged (`--output json`), or one readable line per flow, in the spirit of
//! `hubble observe`:
//!
//! ```text
//! 2025-01-01T12:00:00.000000001Z DENY       tenant/client (10.90.0.10:40000) -> tenant/db (10.90.0.30:5432) TCP egress: NetworkPolicy tenant/fence isolates egress
//! ```
//!
//! The source is the end that opened the flow (the local pod on egress, the peer on
//! ingress). Only the fields printed are read; others are ignored, so the agent may
//! add fields.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Line {
    #[serde(rename = "type")]
    pub kind: String,
    /// `lost` lines: events the stream skipped.
    #[serde(default)]
    pub events: u64,
    #[serde(flatten)]
    pub flow: Option<Flow>,
}

#[derive(Debug, Deserialize)]
pub struct Flow {
    pub time: String,
    pub verdict: String,
    pub direction: String,
    pub protocol: String,
    pub port: u16,
    pub local: End,
    pub peer: End,
    #[serde(default)]
    pub decided_by: Vec<DecidedBy>,
    /// `socket` lines: `raw`, `packet` or `bind`.
    #[serde(default)]
    pub socket: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct End {
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub address: Option<String>,
    pub port: u16,
    #[serde(default)]
    pub cgroup_id: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct DecidedBy {
    pub side: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub rule: Option<u32>,
    pub action: String,
}

/// The readable form of one stream line; `Err` with the reason if it is not one the
/// agent sends.
pub fn human(json: &str) -> Result<String, String> {
    let line: Line = serde_json::from_str(json).map_err(|e| e.to_string())?;
    match (line.kind.as_str(), line.flow) {
        ("lost", _) => Ok(format!(
            "!! {} event(s) lost: this client read too slowly",
            line.events
        )),
        ("flow", Some(flow)) => Ok(flow_line(&flow)),
        ("socket", Some(flow)) => Ok(socket_line(&flow)),
        (kind, _) => Err(format!("unknown line type {kind:?}")),
    }
}

fn flow_line(f: &Flow) -> String {
    let local = end(&f.local);
    let peer = end(&f.peer);
    let (src, dst) = if f.direction == "ingress" {
        (peer, local)
    } else {
        (local, peer)
    };
    let protocol = if f.port == 0 {
        f.protocol.clone()
    } else {
        format!("{}/{}", f.protocol, f.port)
    };
    format!(
        "{} {:<10} {src} -> {dst} {protocol} {}: {}",
        f.time,
        f.verdict.to_uppercase(),
        f.direction,
        reasons(f)
    )
}

/// A refused (or audited) socket call: `raw` and `packet` sockets, `bind` to a port.
fn socket_line(f: &Flow) -> String {
    let what = match f.socket.as_deref() {
        Some("bind") => format!("bind {} {}", f.protocol, end(&f.local)),
        Some("packet") => format!("{} socket(AF_PACKET)", local_pod(&f.local)),
        Some(kind) => format!("{} socket({kind}, {})", local_pod(&f.local), f.protocol),
        None => format!("{} socket", local_pod(&f.local)),
    };
    format!(
        "{} {:<10} {what}: {}",
        f.time,
        f.verdict.to_uppercase(),
        reasons(f)
    )
}

/// `ns/pod`, or `cgroup:ID` where the cgroup is no known pod's.
fn local_pod(e: &End) -> String {
    match (&e.namespace, &e.pod) {
        (Some(ns), Some(pod)) => format!("{ns}/{pod}"),
        _ => e
            .cgroup_id
            .map_or_else(|| "?".into(), |id| format!("cgroup:{id}")),
    }
}

/// `ns/pod (addr:port)`, `addr:port`, or `cgroup:ID` for a socket refused before it
/// had an address.
fn end(e: &End) -> String {
    let address = e.address.as_ref().map(|a| {
        if a.contains(':') {
            format!("[{a}]:{}", e.port)
        } else {
            format!("{a}:{}", e.port)
        }
    });
    match (&e.namespace, &e.pod, address) {
        (Some(ns), Some(pod), Some(a)) => format!("{ns}/{pod} ({a})"),
        (Some(ns), Some(pod), None) => format!("{ns}/{pod}"),
        (_, _, Some(a)) => a,
        _ => match e.cgroup_id {
            Some(id) => format!("cgroup:{id}"),
            None => "?".into(),
        },
    }
}

fn reasons(f: &Flow) -> String {
    if f.decided_by.is_empty() {
        return match f.verdict.as_str() {
            "allow" => "allowed".into(),
            _ => "default deny (no rule allows it)".into(),
        };
    }
    f.decided_by
        .iter()
        .map(|d| {
            let name = match &d.namespace {
                Some(ns) => format!("{ns}/{}", d.name),
                None => d.name.clone(),
            };
            match d.rule {
                Some(rule) => format!("{} {name} {}[{rule}] {}", d.kind, d.side, d.action),
                None => format!("{} {name} isolates {}", d.kind, d.side),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DENY: &str = r#"{"type":"flow","time":"2025-01-01T12:00:00Z","verdict":"audit-deny","direction":"egress","protocol":"TCP","port":443,"local":{"namespace":"tenant","pod":"agent","identity":300,"cgroup_id":5,"address":"10.0.0.2","port":40000},"peer":{"namespace":null,"pod":null,"identity":2,"address":"203.0.113.7","port":443},"decided_by":[{"side":"egress","tier":"egress","kind":"EgressPolicy","namespace":"tenant","name":"agents","rule":0,"action":"Deny"}],"generation":3}"#;

    #[test]
    fn a_flow_reads_source_to_destination_with_its_rule() {
        assert_eq!(
            human(DENY).unwrap(),
            "2025-01-01T12:00:00Z AUDIT-DENY tenant/agent (10.0.0.2:40000) -> 203.0.113.7:443 \
             TCP/443 egress: EgressPolicy tenant/agents egress[0] Deny"
        );
    }

    #[test]
    fn ingress_flows_start_at_the_peer_and_isolation_is_named() {
        let line = DENY
            .replace("\"egress\",\"protocol\"", "\"ingress\",\"protocol\"")
            .replace("\"rule\":0", "\"rule\":null")
            .replace("\"address\":\"203.0.113.7\"", "\"address\":\"fd00::7\"");
        let text = human(&line).unwrap();
        assert!(
            text.contains("[fd00::7]:443 -> tenant/agent (10.0.0.2:40000)"),
            "{text}"
        );
        assert!(
            text.ends_with("EgressPolicy tenant/agents isolates egress"),
            "{text}"
        );
    }

    #[test]
    fn lost_lines_and_garbage() {
        assert_eq!(
            human(r#"{"type":"lost","events":3}"#).unwrap(),
            "!! 3 event(s) lost: this client read too slowly"
        );
        assert!(human("not json").is_err());
        assert!(human(r#"{"type":"other"}"#).is_err());
        let socket = DENY
            .replace(r#""type":"flow""#, r#""type":"socket","socket":"raw""#)
            .replace(r#""verdict":"audit-deny""#, r#""verdict":"deny""#);
        let line = human(&socket).unwrap();
        assert!(line.contains("DENY"), "{line}");
        assert!(line.contains("tenant/agent socket(raw, TCP)"), "{line}");
        assert!(line.contains("EgressPolicy tenant/agents"), "{line}");
    }
}
