//! How a decided flow is printed: one JSON object on one line (the contract scripts
//! and outside harnesses read), or readable text with one paragraph per side.
//!
//! JSON: `{"from", "to", "port", "protocol", "verdict", "ingress", "egress",
//! "decided_by": [{"side", "tier", "kind", "namespace", "name", "rule", "action"}]}`;
//! `from`/`to` echo the input, `port` is 0 for protocols without ports, `namespace` is
//! null for cluster-scoped policies, `rule` is null for the default deny of an isolated
//! pod (then `decided_by` lists every policy that isolates it). Egress entries come
//! first: the source decides before the destination.
//!
//! A flow to a Service address adds `"service": {"name": "ns/name", "backends":
//! [{"address", "port", "pod", "verdict", "ingress", "egress", "decided_by"}]}` (`pod`
//! null for a backend no known pod has); the top-level sides and `decided_by` are
//! those of the strictest backend.

use super::endpoint::{End, PodIndex};
use super::query::Query;
use super::simulate::{Basis, Cause, Outcome, Side};
use palisade_policy::compile::tables::Verdict;
use palisade_policy::model::Direction;
use serde::Serialize;
use std::net::IpAddr;

#[derive(Debug, Serialize)]
pub struct FlowJson<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub port: u16,
    pub protocol: String,
    pub verdict: &'static str,
    pub ingress: &'static str,
    pub egress: &'static str,
    pub decided_by: Vec<DecidedBy<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceJson<'a>>,
}

#[derive(Debug, Serialize)]
pub struct ServiceJson<'a> {
    pub name: String,
    pub backends: Vec<BackendJson<'a>>,
}

#[derive(Debug, Serialize)]
pub struct BackendJson<'a> {
    pub address: IpAddr,
    pub port: u16,
    pub pod: Option<String>,
    pub verdict: &'static str,
    pub ingress: &'static str,
    pub egress: &'static str,
    pub decided_by: Vec<DecidedBy<'a>>,
}

#[derive(Debug, Serialize)]
pub struct DecidedBy<'a> {
    pub side: &'static str,
    pub tier: &'a str,
    pub kind: &'a str,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub rule: Option<u32>,
    pub action: &'a str,
}

impl<'a> FlowJson<'a> {
    pub fn new(query: &'a Query, outcome: &'a Outcome) -> Self {
        let causes = decided_by(outcome);
        let service = outcome.via_service.as_ref().map(|via| ServiceJson {
            name: format!("{}/{}", via.service.namespace, via.service.name),
            backends: via
                .backends
                .iter()
                .map(|backend| BackendJson {
                    address: backend.dst,
                    port: backend.service.port,
                    pod: backend.to.pod().map(|_| backend.to.name()),
                    verdict: backend.verdict.as_str(),
                    ingress: backend.ingress.verdict.as_str(),
                    egress: backend.egress.verdict.as_str(),
                    decided_by: decided_by(backend),
                })
                .collect(),
        });
        Self {
            from: &query.from.text,
            to: &query.to.text,
            port: outcome.service.port,
            protocol: outcome.service.protocol.to_string(),
            verdict: outcome.verdict.as_str(),
            ingress: outcome.ingress.verdict.as_str(),
            egress: outcome.egress.verdict.as_str(),
            decided_by: causes,
            service,
        }
    }
}

/// The causes of both sides, egress first.
fn decided_by<'a>(outcome: &'a Outcome) -> Vec<DecidedBy<'a>> {
    [&outcome.egress, &outcome.ingress]
        .into_iter()
        .flat_map(|side| {
            side.causes.iter().map(|cause| DecidedBy {
                side: side.direction.as_str(),
                tier: &cause.tier,
                kind: &cause.kind,
                namespace: cause.namespace.as_deref(),
                name: &cause.name,
                rule: cause.rule,
                action: &cause.action,
            })
        })
        .collect()
}

/// The flow as one line of JSON (no newline).
pub fn json_line(query: &Query, outcome: &Outcome) -> String {
    serde_json::to_string(&FlowJson::new(query, outcome)).expect("plain data serializes")
}

/// The flow as text: a header line, then a paragraph for the source's egress and one
/// for the destination's ingress (blank lines between; no trailing newline).
pub fn human(outcome: &Outcome, index: &PodIndex) -> String {
    let verdict = match outcome.verdict {
        Verdict::AuditDeny => "audit-deny (passed, and reported as denied)",
        other => other.as_str(),
    };
    let header = format!(
        "{} -> {}, {}: {verdict}",
        describe_end(&outcome.from, outcome.src, index),
        describe_end(&outcome.to, outcome.dst, index),
        outcome.service,
    );
    if let Some(via) = &outcome.via_service {
        let mut text = format!(
            "{header}\n\n{} is Service {}/{}: the datapath sends the flow to one of its {} \
             backend(s), each decided on its own; the strictest decides.",
            outcome.dst,
            via.service.namespace,
            via.service.name,
            via.backends.len()
        );
        if via.backends.is_empty() {
            text.push_str(" It has none, so the connection is refused at the source.");
        }
        for backend in &via.backends {
            text.push_str("\n\n");
            text.push_str(&indented(&human(backend, index)));
        }
        return text;
    }
    let egress = paragraph(outcome, &outcome.egress, index);
    let ingress = paragraph(outcome, &outcome.ingress, index);
    format!("{header}\n\n{egress}\n\n{ingress}")
}

/// `text` with every non-empty line indented, for a backend under its Service.
fn indented(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.is_empty() {
                String::new()
            } else {
                format!("  {line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `x/a (10.0.1.1)`, `203.0.113.7 (outside the cluster)`, `172.18.0.2 (node n1)`.
fn describe_end(end: &End, address: IpAddr, index: &PodIndex) -> String {
    match end {
        End::Pod { pod, .. } if pod.host_network => {
            format!("{} ({address}, host network)", end.name())
        }
        End::Pod { .. } => format!("{} ({address})", end.name()),
        End::External { .. } => match index.node_of(address) {
            Some(node) => format!("{address} (node {node})"),
            None => format!("{address} (outside the cluster)"),
        },
    }
}

/// What the peer of a side is, for sentences: `10.0.1.1 (pod x/a)`.
fn describe_peer(end: &End, address: IpAddr, index: &PodIndex) -> String {
    match end {
        End::Pod { pod, .. } if pod.host_network => {
            format!("{address} (host-network pod {})", end.name())
        }
        End::Pod { .. } => format!("{address} (pod {})", end.name()),
        End::External { .. } => match index.node_of(address) {
            Some(node) => format!("{address} (node {node})"),
            None => format!("{address} (outside the cluster)"),
        },
    }
}

fn paragraph(outcome: &Outcome, side: &Side, index: &PodIndex) -> String {
    let (end, address, peer, peer_address, toward) = match side.direction {
        Direction::Egress => (&outcome.from, outcome.src, &outcome.to, outcome.dst, "to"),
        Direction::Ingress => (&outcome.to, outcome.dst, &outcome.from, outcome.src, "from"),
    };
    let name = end.name();
    let direction = side.direction.as_str();
    let verdict = side.verdict.as_str();
    let title = match side.direction {
        Direction::Egress => format!("Egress at {name}: {verdict}."),
        Direction::Ingress => format!("Ingress at {name}: {verdict}."),
    };
    let peer = describe_peer(peer, peer_address, index);
    let service = outcome.service;
    let why = match side.basis {
        Basis::External => match index.node_of(address) {
            Some(node) => format!(
                "{address} is an address of node {node}, not a pod: palisade enforces nothing there."
            ),
            None => format!(
                "{address} is outside the cluster (no pod or node has it): palisade enforces nothing there."
            ),
        },
        Basis::HostNetwork => format!(
            "{name} uses its node's network (hostNetwork), so it is not a pod palisade enforces."
        ),
        Basis::NoEndpoint => format!(
            "The compiled tables have no endpoint for {name}, so palisade enforces nothing there."
        ),
        Basis::Loopback => {
            format!("The flow stays inside {name} (loopback), which always passes.")
        }
        Basis::NotIsolated => format!(
            "No policy isolates {name} for {direction}, so all its {direction} traffic passes."
        ),
        Basis::Undecided => format!(
            "No policy rule decides about {service} {toward} {peer}, and no NetworkPolicy \
             isolates {name} for {direction}, so it passes."
        ),
        Basis::OwnNode => format!(
            "{peer} is {name}'s own node: no policy rule decides about it, and traffic \
             between a pod and its own node passes by default."
        ),
        Basis::Rule => match side.causes.first() {
            Some(cause) => format!(
                "Decided by {} rule {}{} of {} (tier {}, action {}).",
                cause.direction.as_str(),
                cause.rule.map_or_else(|| "?".into(), |r| r.to_string()),
                if cause.rule_name.is_empty() {
                    String::new()
                } else {
                    format!(" ({:?})", cause.rule_name)
                },
                policy_name(cause),
                cause.tier,
                cause.action
            ),
            None => "Decided by a rule the compiled tables do not describe.".into(),
        },
        Basis::Isolation if side.causes.is_empty() => format!(
            "{name} is isolated for {direction}, and no rule allows {service} {toward} {peer}."
        ),
        Basis::Isolation => {
            let policies: Vec<String> = side
                .causes
                .iter()
                .map(|cause| format!("{} (tier {})", policy_name(cause), cause.tier))
                .collect();
            format!(
                "{name} is isolated for {direction} by {}, and none of {} {direction} rules \
                 allows {service} {toward} {peer}.",
                join_and(&policies),
                if policies.len() == 1 { "its" } else { "their" },
            )
        }
        Basis::Default => format!(
            "No rule matches {service} {toward} {peer}; {verdict} is the default for {name}'s \
             {direction} traffic."
        ),
        Basis::NoBackends => format!(
            "{peer} is a Service address without backends: the datapath refuses the \
             connection at the source."
        ),
        Basis::NoEntry => format!(
            "The compiled tables hold no entry for {service} {toward} {peer}, so it is \
             denied (fail closed)."
        ),
    };
    format!("{title} {why}")
}

/// `NetworkPolicy ns/name`, or `AdminNetworkPolicy name` for cluster-scoped kinds.
fn policy_name(cause: &Cause) -> String {
    match &cause.namespace {
        Some(namespace) => format!("{} {namespace}/{}", cause.kind, cause.name),
        None => format!("{} {}", cause.kind, cause.name),
    }
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_naturally() {
        let items = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(join_and(&items(&["a"])), "a");
        assert_eq!(join_and(&items(&["a", "b"])), "a and b");
        assert_eq!(join_and(&items(&["a", "b", "c"])), "a, b and c");
    }
}
