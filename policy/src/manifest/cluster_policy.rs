//! The pieces AdminNetworkPolicy and BaselineAdminNetworkPolicy
//! (`policy.networking.k8s.io/v1alpha1`, network-policy-api v0.1.7) share: subject,
//! rules, peers and ports, as wire types, validated as the CRD schema does, and
//! converted to the tier-neutral model ([`ClusterRule`], [`ClusterPeer`],
//! [`ClusterPort`], [`Subject`]). Unknown fields are errors.

use super::cidr::parse_cidr;
use super::error::{FieldPath, Problems};
use super::ports;
use super::selector::{self, LabelSelectorWire};
use crate::model::{
    Cidr, ClusterPeer, ClusterPolicy, ClusterPolicyKind, ClusterPort, ClusterRule, LabelSelector,
    Protocol, RuleAction, Subject,
};
use serde::Deserialize;

/// Most rules a policy may have per direction.
const MAX_RULES: usize = 100;
/// Most peers a rule may have.
const MAX_PEERS: usize = 100;
/// Most ports a rule may have.
const MAX_PORTS: usize = 100;
/// Most CIDRs a `networks` peer may have.
const MAX_NETWORKS: usize = 25;
/// Longest rule name.
const MAX_RULE_NAME: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubjectWire {
    namespaces: Option<LabelSelectorWire>,
    pods: Option<PodsWire>,
}

/// `pods` of a subject or peer: both selectors are required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PodsWire {
    namespace_selector: Option<LabelSelectorWire>,
    pod_selector: Option<LabelSelectorWire>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IngressRuleWire {
    name: Option<String>,
    action: Option<String>,
    from: Option<Vec<IngressPeerWire>>,
    ports: Option<Vec<PortWire>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EgressRuleWire {
    name: Option<String>,
    action: Option<String>,
    to: Option<Vec<EgressPeerWire>>,
    ports: Option<Vec<PortWire>>,
}

/// An ingress peer: pods only (v0.1.7 has no `nodes` or `networks` for ingress).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngressPeerWire {
    namespaces: Option<LabelSelectorWire>,
    pods: Option<PodsWire>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EgressPeerWire {
    namespaces: Option<LabelSelectorWire>,
    pods: Option<PodsWire>,
    nodes: Option<LabelSelectorWire>,
    networks: Option<Vec<String>>,
}

impl From<IngressPeerWire> for EgressPeerWire {
    fn from(wire: IngressPeerWire) -> Self {
        Self {
            namespaces: wire.namespaces,
            pods: wire.pods,
            nodes: None,
            networks: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PortWire {
    port_number: Option<PortNumberWire>,
    named_port: Option<String>,
    port_range: Option<PortRangeWire>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PortNumberWire {
    protocol: Option<String>,
    port: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PortRangeWire {
    protocol: Option<String>,
    start: Option<i64>,
    end: Option<i64>,
}

/// `spec.subject`: exactly one of `namespaces` and `pods`.
/// The subject and rules of a cluster-scoped policy's spec, as written: the part of
/// the spec AdminNetworkPolicy and BaselineAdminNetworkPolicy share. Each kind keeps its
/// own `Spec` wire type (their field sets differ, and unknown fields are errors) and
/// moves these fields here.
pub(crate) struct SubjectAndRulesWire {
    pub(crate) subject: Option<SubjectWire>,
    pub(crate) ingress: Vec<IngressRuleWire>,
    pub(crate) egress: Vec<EgressRuleWire>,
}

/// Validates the subject and rules of the spec found at `spec_at` and builds the
/// [`ClusterPolicy`] of `kind` named `name`, at `priority` within its tier. `actions`
/// are the actions the kind allows. Problems go to `problems`; the returned policy is
/// only meaningful if there were none.
pub(crate) fn cluster_policy(
    kind: ClusterPolicyKind,
    name: String,
    priority: u32,
    wire: SubjectAndRulesWire,
    actions: &[RuleAction],
    spec_at: &FieldPath,
    problems: &mut Problems,
) -> ClusterPolicy {
    let subject = subject(wire.subject, &spec_at.field("subject"), problems);
    let ingress = ingress_rules(wire.ingress, actions, &spec_at.field("ingress"), problems);
    let egress = egress_rules(wire.egress, actions, &spec_at.field("egress"), problems);
    ClusterPolicy {
        kind,
        name,
        tier: kind.tier(),
        priority,
        subject,
        ingress,
        egress,
    }
}

fn subject(wire: Option<SubjectWire>, at: &FieldPath, problems: &mut Problems) -> Subject {
    let Some(wire) = wire else {
        problems.add(at, "required field is missing");
        return Subject::Namespaces(Default::default());
    };
    match (wire.namespaces, wire.pods) {
        (Some(namespaces), None) => Subject::Namespaces(selector::convert(
            namespaces,
            &at.field("namespaces"),
            problems,
        )),
        (None, Some(pods)) => {
            let (namespace_selector, pod_selector) =
                pods_selectors(pods, &at.field("pods"), problems);
            Subject::Pods {
                namespace_selector,
                pod_selector,
            }
        }
        _ => {
            problems.add(at, "must specify exactly one of namespaces or pods");
            Subject::Namespaces(Default::default())
        }
    }
}

fn pods_selectors(
    wire: PodsWire,
    at: &FieldPath,
    problems: &mut Problems,
) -> (LabelSelector, LabelSelector) {
    const MISSING: &str = "required field is missing";
    let namespace_selector = selector::required(
        wire.namespace_selector,
        &at.field("namespaceSelector"),
        MISSING,
        problems,
    );
    let pod_selector = selector::required(
        wire.pod_selector,
        &at.field("podSelector"),
        MISSING,
        problems,
    );
    (namespace_selector, pod_selector)
}

/// `spec.ingress`, found at `at`; `actions` are the actions the kind allows.
fn ingress_rules(
    rules: Vec<IngressRuleWire>,
    actions: &[RuleAction],
    at: &FieldPath,
    problems: &mut Problems,
) -> Vec<ClusterRule> {
    check_rule_count(rules.len(), at, problems);
    rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let peers = r
                .from
                .map(|peers| peers.into_iter().map(EgressPeerWire::from).collect());
            let parts = RuleParts {
                name: r.name,
                action: r.action,
                peers_field: "from",
                peer_kinds: "namespaces or pods",
                peers,
                ports: r.ports,
            };
            rule(parts, actions, &at.index(i), problems)
        })
        .collect()
}

/// `spec.egress`, found at `at`; `actions` are the actions the kind allows.
fn egress_rules(
    rules: Vec<EgressRuleWire>,
    actions: &[RuleAction],
    at: &FieldPath,
    problems: &mut Problems,
) -> Vec<ClusterRule> {
    check_rule_count(rules.len(), at, problems);
    rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let parts = RuleParts {
                name: r.name,
                action: r.action,
                peers_field: "to",
                peer_kinds: "namespaces, pods, nodes or networks",
                peers: r.to,
                ports: r.ports,
            };
            rule(parts, actions, &at.index(i), problems)
        })
        .collect()
}

fn check_rule_count(count: usize, at: &FieldPath, problems: &mut Problems) {
    if count > MAX_RULES {
        problems.add(
            at,
            format!("may not have more than {MAX_RULES} rules (has {count})"),
        );
    }
}

/// A rule of either direction; ingress peers are egress peers without `nodes` and
/// `networks`.
struct RuleParts {
    name: Option<String>,
    action: Option<String>,
    peers_field: &'static str,
    /// The peer fields of the direction, for messages.
    peer_kinds: &'static str,
    peers: Option<Vec<EgressPeerWire>>,
    ports: Option<Vec<PortWire>>,
}

fn rule(
    parts: RuleParts,
    actions: &[RuleAction],
    at: &FieldPath,
    problems: &mut Problems,
) -> ClusterRule {
    let name = parts.name.unwrap_or_default();
    if name.chars().count() > MAX_RULE_NAME {
        problems.add(
            &at.field("name"),
            format!("may not be longer than {MAX_RULE_NAME} characters"),
        );
    }
    let action_at = at.field("action");
    let action = match parts.action {
        None => {
            problems.add(&action_at, "required field is missing");
            RuleAction::Deny
        }
        Some(written) => problems
            .check(&action_at, action(&written, actions))
            .unwrap_or(RuleAction::Deny),
    };
    let peers_at = at.field(parts.peers_field);
    let peers = match parts.peers {
        None => {
            problems.add(&peers_at, "required field is missing");
            Vec::new()
        }
        Some(peers) => {
            if peers.is_empty() {
                problems.add(&peers_at, "must list at least one peer");
            } else if peers.len() > MAX_PEERS {
                problems.add(
                    &peers_at,
                    format!(
                        "may not list more than {MAX_PEERS} peers (lists {})",
                        peers.len()
                    ),
                );
            }
            peers
                .into_iter()
                .enumerate()
                .filter_map(|(i, p)| peer(p, parts.peer_kinds, &peers_at.index(i), problems))
                .collect()
        }
    };
    let ports_at = at.field("ports");
    let ports = parts.ports.unwrap_or_default();
    if ports.len() > MAX_PORTS {
        problems.add(
            &ports_at,
            format!(
                "may not list more than {MAX_PORTS} ports (lists {})",
                ports.len()
            ),
        );
    }
    let ports = ports
        .iter()
        .enumerate()
        .filter_map(|(i, p)| port(p, &ports_at.index(i), problems))
        .collect();
    ClusterRule {
        name,
        action,
        peers,
        ports,
    }
}

fn action(written: &str, allowed: &[RuleAction]) -> Result<RuleAction, String> {
    allowed
        .iter()
        .copied()
        .find(|action| action.as_str() == written)
        .ok_or_else(|| {
            let names: Vec<String> = allowed
                .iter()
                .map(|a| format!("{:?}", a.as_str()))
                .collect();
            format!(
                "unsupported action {written:?}: must be {}",
                names.join(" or ")
            )
        })
}

/// One peer: exactly one of its fields (`allowed` names them for the message).
fn peer(
    wire: EgressPeerWire,
    allowed: &str,
    at: &FieldPath,
    problems: &mut Problems,
) -> Option<ClusterPeer> {
    let set = usize::from(wire.namespaces.is_some())
        + usize::from(wire.pods.is_some())
        + usize::from(wire.nodes.is_some())
        + usize::from(wire.networks.is_some());
    if set != 1 {
        problems.add(at, format!("must specify exactly one of {allowed}"));
        return None;
    }
    if let Some(namespaces) = wire.namespaces {
        let selector = selector::convert(namespaces, &at.field("namespaces"), problems);
        return Some(ClusterPeer::Namespaces(selector));
    }
    if let Some(pods) = wire.pods {
        let (namespace_selector, pod_selector) = pods_selectors(pods, &at.field("pods"), problems);
        return Some(ClusterPeer::Pods {
            namespace_selector,
            pod_selector,
        });
    }
    if let Some(nodes) = wire.nodes {
        let selector = selector::convert(nodes, &at.field("nodes"), problems);
        return Some(ClusterPeer::Nodes(selector));
    }
    let networks = wire.networks.unwrap_or_default();
    Some(ClusterPeer::Networks(self::networks(
        &networks,
        &at.field("networks"),
        problems,
    )))
}

/// `networks`: 1 to 25 distinct CIDRs, parsed as written (host bits allowed).
fn networks(written: &[String], at: &FieldPath, problems: &mut Problems) -> Vec<Cidr> {
    if written.is_empty() {
        problems.add(at, "must list at least one CIDR");
    } else if written.len() > MAX_NETWORKS {
        problems.add(
            at,
            format!(
                "may not list more than {MAX_NETWORKS} CIDRs (lists {})",
                written.len()
            ),
        );
    }
    let mut cidrs = Vec::with_capacity(written.len());
    for (i, text) in written.iter().enumerate() {
        let field = at.index(i);
        if written[..i].contains(text) {
            problems.add(&field, format!("duplicate entry {text:?}"));
            continue;
        }
        cidrs.extend(problems.check(&field, parse_cidr(text)));
    }
    cidrs
}

/// One entry of `ports`: exactly one of `portNumber`, `namedPort`, `portRange`.
fn port(wire: &PortWire, at: &FieldPath, problems: &mut Problems) -> Option<ClusterPort> {
    let set = usize::from(wire.port_number.is_some())
        + usize::from(wire.named_port.is_some())
        + usize::from(wire.port_range.is_some());
    if set != 1 {
        problems.add(
            at,
            "must specify exactly one of portNumber, namedPort or portRange",
        );
        return None;
    }
    if let Some(number) = &wire.port_number {
        let at = at.field("portNumber");
        let protocol = protocol(number.protocol.as_deref(), &at, problems);
        let port = required_port(number.port, &at.field("port"), problems);
        return Some(ClusterPort::Number {
            protocol: protocol?,
            port: port?,
        });
    }
    if let Some(range) = &wire.port_range {
        let at = at.field("portRange");
        let protocol = protocol(range.protocol.as_deref(), &at, problems);
        let first = required_port(range.start, &at.field("start"), problems);
        let last = required_port(range.end, &at.field("end"), problems);
        let (first, last) = (first?, last?);
        if first >= last {
            problems.add(
                &at,
                format!("start port {first} must be less than end port {last}"),
            );
            return None;
        }
        return Some(ClusterPort::Range {
            protocol: protocol?,
            first,
            last,
        });
    }
    wire.named_port.clone().map(ClusterPort::Named)
}

/// `protocol` (default TCP) of a port form found at `at`.
fn protocol(written: Option<&str>, at: &FieldPath, problems: &mut Problems) -> Option<Protocol> {
    problems.check(&at.field("protocol"), ports::protocol(written))
}

fn required_port(number: Option<i64>, at: &FieldPath, problems: &mut Problems) -> Option<u16> {
    match number {
        None => {
            problems.add(at, "required field is missing");
            None
        }
        Some(number) => problems.check(at, ports::port_number(number)),
    }
}
