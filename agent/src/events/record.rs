//! What one flow event says, with every number the kernel reports given its name:
//! the local pod (from its cgroup), the peer pod (from its address), the rule that
//! decided (from the compiled rule table of the event's generation, as
//! `palisadectl check` names it in `decided_by`). Pure: [`FlowRecord::resolve`] turns
//! a kernel [`FlowEvent`] and the agent's [`EventNames`] into the record that is
//! logged and streamed.
//!
//! JSON shape (one object per line on the `/events` stream, the contract
//! `palisadectl observe` reads; see docs/observe.md):
//!
//! ```json
//! {"type": "flow", "time": "2025-01-01T12:00:00.000000001Z", "verdict": "deny",
//!  "direction": "egress", "protocol": "UDP", "port": 53,
//!  "local": {"namespace": "tenant", "pod": "client", "identity": 300,
//!            "cgroup_id": 81234, "address": "10.90.0.10", "port": 40000},
//!  "peer": {"namespace": "tenant", "pod": "denied", "identity": 301,
//!           "address": "10.90.0.30", "port": 53},
//!  "decided_by": [{"side": "egress", "tier": "networkpolicy", "kind": "NetworkPolicy",
//!                  "namespace": "tenant", "name": "client-egress-allowlist",
//!                  "rule": null, "action": "Deny"}],
//!  "generation": 4}
//! ```
//!
//! A socket call refused by an EgressPolicy socket control (or, in audit mode, one it
//! would refuse) is a line of `"type": "socket"` with the same fields and one more,
//! `"socket"`: `raw` (`socket(AF_INET/AF_INET6, SOCK_RAW, protocol)`; `protocol` is
//! the socket's), `packet` (`socket(AF_PACKET, ...)`; `port` is the ethertype asked
//! for) or `bind` (`local.address`/`local.port` is what was asked for). `decided_by`
//! names the EgressPolicies with a `sockets` stanza behind the pod's controls
//! (`rule: null`); the peer is the unspecified address.

use crate::status::EventNames;
use palisade_abi::{
    FlowEvent, RULE_REF_DEFAULT, direction, event_kind, is_v4_mapped, reserved, verdict,
};
use palisade_policy::model::{Direction, ObjectRef};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One flow event, resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// `flow`, or `socket` for a socket control's refusal (other line types of the
    /// stream: `lost`).
    #[serde(rename = "type")]
    pub kind: String,
    /// When the kernel decided, RFC 3339 UTC with nanoseconds.
    pub time: String,
    /// `deny`, `audit-deny` (passed, would have been denied) or `allow`.
    pub verdict: String,
    /// Of the flow, from the local pod's side: `egress` (it opened the flow) or
    /// `ingress`.
    pub direction: String,
    /// `TCP`, `UDP`, `SCTP`, `ICMP`, `ICMPv6` or the IP protocol number.
    pub protocol: String,
    /// The flow's destination port, the one policy decides on (the peer's port on
    /// egress, the local port on ingress); 0 for portless protocols.
    pub port: u16,
    pub local: LocalEnd,
    pub peer: PeerEnd,
    /// The rule that decided, or for a pod's isolation default every NetworkPolicy
    /// isolating it (`rule: null`); empty when nothing is known (no rule and no
    /// isolating NetworkPolicy, e.g. the unknown-endpoint default).
    pub decided_by: Vec<DecidedBy>,
    /// Policy generation the decision was made in.
    pub generation: u32,
    /// For `"type": "socket"`: `raw`, `packet` or `bind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
}

/// The pod on this node the event is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalEnd {
    /// None when the cgroup is not a known pod's.
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub identity: u32,
    pub cgroup_id: u64,
    /// None for a connection refused at the socket (no packet, no local address yet).
    pub address: Option<IpAddr>,
    pub port: u16,
}

/// The other side of the flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEnd {
    /// The pod that has this address, when one is known.
    pub namespace: Option<String>,
    pub pod: Option<String>,
    /// Its identity as the kernel resolved it (`1` the node itself, `2` outside the
    /// cluster; `0` when no lookup was needed: the direction is not isolated).
    pub identity: u32,
    pub address: IpAddr,
    pub port: u16,
}

/// One entry of `decided_by`, as in `palisadectl check`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecidedBy {
    pub side: String,
    pub tier: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// Index in the object's `ingress`/`egress` list; null for an isolation default.
    pub rule: Option<u32>,
    pub action: String,
}

impl FlowRecord {
    /// Names the numbers of `event`; `time` is its wall-clock time, already formatted.
    pub fn resolve(event: &FlowEvent, names: &EventNames, time: String) -> Self {
        let dir = if event.direction == direction::EGRESS {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        let local_pod = names.pods_by_cgroup.get(&event.cgroup_id);
        let peer_address = address(&event.remote_addr);
        let peer_pod = names.pods_by_ip.get(&peer_address);
        let socket = socket_name(event.kind);
        let port = if event.kind == event_kind::BIND {
            event.local_port
        } else if dir == Direction::Egress {
            event.remote_port
        } else {
            event.local_port
        };
        let decided_by = if socket.is_some() {
            socket_decided_by(event, names, local_pod)
        } else {
            decided_by(event, names, local_pod, dir)
        };
        Self {
            kind: if socket.is_some() { "socket" } else { "flow" }.into(),
            time,
            verdict: verdict_name(event.verdict).into(),
            direction: dir.as_str().into(),
            protocol: protocol_name(event.protocol),
            port,
            local: LocalEnd {
                namespace: local_pod.map(|p| p.namespace.clone()),
                pod: local_pod.map(|p| p.name.clone()),
                identity: event.identity,
                cgroup_id: event.cgroup_id,
                address: (event.local_addr != [0; 16]).then(|| address(&event.local_addr)),
                port: event.local_port,
            },
            peer: PeerEnd {
                namespace: peer_pod.map(|p| p.namespace.clone()),
                pod: peer_pod.map(|p| p.name.clone()),
                identity: event.peer_identity,
                address: peer_address,
                port: event.remote_port,
            },
            decided_by,
            generation: event.generation,
            socket: socket.map(str::to_string),
        }
    }

    /// `ns/name` of the local pod, or `cgroup:ID`.
    pub fn local_name(&self) -> String {
        match (&self.local.namespace, &self.local.pod) {
            (Some(ns), Some(pod)) => format!("{ns}/{pod}"),
            _ => format!("cgroup:{}", self.local.cgroup_id),
        }
    }

    /// `ns/name` of the peer pod, or its address.
    pub fn peer_name(&self) -> String {
        match (&self.peer.namespace, &self.peer.pod) {
            (Some(ns), Some(pod)) => format!("{ns}/{pod}"),
            _ => match self.peer.identity {
                reserved::HOST => format!("{} (node)", self.peer.address),
                reserved::WORLD => format!("{} (world)", self.peer.address),
                _ => self.peer.address.to_string(),
            },
        }
    }
}

/// The name of a socket event's [`event_kind`]; None for a flow.
fn socket_name(kind: u32) -> Option<&'static str> {
    match kind {
        event_kind::RAW_SOCKET => Some("raw"),
        event_kind::PACKET_SOCKET => Some("packet"),
        event_kind::BIND => Some("bind"),
        _ => None,
    }
}

/// The EgressPolicies behind the local pod's socket controls, in the event's
/// generation.
fn socket_decided_by(
    event: &FlowEvent,
    names: &EventNames,
    local_pod: Option<&ObjectRef>,
) -> Vec<DecidedBy> {
    let (Some(generation), Some(pod)) = (names.generations.get(&event.generation), local_pod)
    else {
        return Vec::new();
    };
    let action = if event.verdict == verdict::AUDIT_DENY {
        "AuditDeny"
    } else {
        "Deny"
    };
    generation
        .socket_policies
        .get(pod)
        .into_iter()
        .flatten()
        .map(|policy| DecidedBy {
            side: "egress".into(),
            tier: "egress".into(),
            kind: "EgressPolicy".into(),
            namespace: Some(policy.namespace.clone()),
            name: policy.name.clone(),
            rule: None,
            action: action.into(),
        })
        .collect()
}

fn decided_by(
    event: &FlowEvent,
    names: &EventNames,
    local_pod: Option<&ObjectRef>,
    dir: Direction,
) -> Vec<DecidedBy> {
    let Some(generation) = names.generations.get(&event.generation) else {
        return Vec::new();
    };
    if event.rule_ref != RULE_REF_DEFAULT {
        return generation
            .rule(event.rule_ref)
            .map(|r| DecidedBy {
                side: r.direction.as_str().into(),
                tier: r.tier.clone(),
                kind: r.kind.clone(),
                namespace: (!r.namespace.is_empty()).then(|| r.namespace.clone()),
                name: r.name.clone(),
                rule: Some(r.rule),
                action: r.action.clone(),
            })
            .into_iter()
            .collect();
    }
    if event.verdict == verdict::ALLOW {
        return Vec::new();
    }
    let Some(pod) = local_pod else {
        return Vec::new();
    };
    generation
        .isolating
        .get(&(pod.clone(), dir))
        .into_iter()
        .flatten()
        .map(|policy| DecidedBy {
            side: dir.as_str().into(),
            tier: "networkpolicy".into(),
            kind: "NetworkPolicy".into(),
            namespace: Some(policy.namespace.clone()),
            name: policy.name.clone(),
            rule: None,
            action: "Deny".into(),
        })
        .collect()
}

pub fn verdict_name(v: u8) -> &'static str {
    match v {
        verdict::AUDIT_DENY => "audit-deny",
        verdict::ALLOW => "allow",
        _ => "deny",
    }
}

pub fn protocol_name(protocol: u8) -> String {
    match protocol {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        132 => "SCTP".into(),
        other => other.to_string(),
    }
}

/// The address a 16-byte ABI address stands for (IPv4-mapped ones as IPv4).
pub fn address(a: &[u8; 16]) -> IpAddr {
    if is_v4_mapped(a) {
        IpAddr::V4(Ipv4Addr::new(a[12], a[13], a[14], a[15]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::GenerationNames;
    use palisade_abi::v4_mapped;
    use palisade_policy::compile::tables::{CompiledCluster, RuleInfo};
    use std::sync::Arc;

    fn pod(ns: &str, name: &str) -> ObjectRef {
        ObjectRef {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    fn names() -> EventNames {
        let compiled = CompiledCluster {
            rules: vec![RuleInfo {
                tier: "egress".into(),
                kind: "EgressPolicy".into(),
                namespace: "tenant".into(),
                name: "audit-me".into(),
                direction: Direction::Egress,
                rule: 0,
                action: "Deny".into(),
                rule_name: "implicit deny".into(),
            }],
            ..Default::default()
        };
        let mut names = EventNames::default();
        names.pods_by_cgroup.insert(7, pod("tenant", "client"));
        names
            .pods_by_ip
            .insert("10.0.0.3".parse().unwrap(), pod("tenant", "server"));
        names.generations.insert(
            4,
            Arc::new(GenerationNames {
                compiled: Arc::new(compiled),
                isolating: [(
                    (pod("tenant", "client"), Direction::Ingress),
                    vec![pod("tenant", "default-deny")],
                )]
                .into_iter()
                .collect(),
                socket_policies: [(pod("tenant", "client"), vec![pod("tenant", "locked")])]
                    .into_iter()
                    .collect(),
                rules: std::collections::BTreeMap::new(),
            }),
        );
        names
    }

    #[test]
    fn a_rule_known_only_by_its_reference_is_named() {
        // Kubernetes mode: the NodePolicy carries only the rules its tables cite, by
        // their cluster-wide reference.
        let mut names = names();
        let mut generation = (*names.generations[&4]).clone();
        generation.compiled = Arc::new(CompiledCluster::default());
        let mut rule = names.generations[&4].compiled.rules[0].clone();
        rule.name = "from-the-node-policy".into();
        generation.rules.insert(9_000, rule);
        names.generations.insert(4, Arc::new(generation));
        let r = FlowRecord::resolve(
            &FlowEvent {
                rule_ref: 9_000,
                ..event()
            },
            &names,
            "t".into(),
        );
        assert_eq!(r.decided_by.len(), 1);
        assert_eq!(r.decided_by[0].name, "from-the-node-policy");
        let unknown = FlowRecord::resolve(
            &FlowEvent {
                rule_ref: 9_001,
                ..event()
            },
            &names,
            "t".into(),
        );
        assert!(unknown.decided_by.is_empty());
    }

    #[test]
    fn a_socket_refusal_names_the_egress_policy() {
        let e = FlowEvent {
            kind: event_kind::BIND,
            verdict: verdict::DENY,
            local_port: 9000,
            protocol: 6,
            rule_ref: RULE_REF_DEFAULT,
            ..event()
        };
        let r = FlowRecord::resolve(&e, &names(), "t".into());
        assert_eq!(r.kind, "socket");
        assert_eq!(r.socket.as_deref(), Some("bind"));
        assert_eq!(r.port, 9000);
        assert_eq!(r.decided_by.len(), 1);
        assert_eq!(r.decided_by[0].kind, "EgressPolicy");
        assert_eq!(r.decided_by[0].name, "locked");
        assert_eq!(r.decided_by[0].action, "Deny");
    }

    fn event() -> FlowEvent {
        FlowEvent {
            timestamp_ns: 1,
            cgroup_id: 7,
            local_addr: v4_mapped([10, 0, 0, 2]),
            remote_addr: v4_mapped([10, 0, 0, 3]),
            local_port: 40000,
            remote_port: 53,
            protocol: 17,
            direction: direction::EGRESS,
            verdict: verdict::AUDIT_DENY,
            ip_version: 4,
            identity: 300,
            peer_identity: 301,
            policy_id: 1,
            rule_ref: 0,
            generation: 4,
            kind: 0,
        }
    }

    #[test]
    fn a_rule_and_both_pods_are_named() {
        let r = FlowRecord::resolve(&event(), &names(), "t".into());
        assert_eq!(r.verdict, "audit-deny");
        assert_eq!(r.direction, "egress");
        assert_eq!(r.protocol, "UDP");
        assert_eq!(r.port, 53);
        assert_eq!(r.local_name(), "tenant/client");
        assert_eq!(r.peer_name(), "tenant/server");
        assert_eq!(r.local.address, Some("10.0.0.2".parse().unwrap()));
        assert_eq!(r.decided_by.len(), 1);
        assert_eq!(r.decided_by[0].name, "audit-me");
        assert_eq!(r.decided_by[0].rule, Some(0));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["type"], "flow");
        assert_eq!(json["decided_by"][0]["namespace"], "tenant");
    }

    #[test]
    fn an_isolation_default_names_the_isolating_policies() {
        let e = FlowEvent {
            direction: direction::INGRESS,
            verdict: verdict::DENY,
            rule_ref: RULE_REF_DEFAULT,
            ..event()
        };
        let r = FlowRecord::resolve(&e, &names(), "t".into());
        assert_eq!(r.port, 40000, "ingress: the local port is the flow's");
        assert_eq!(r.decided_by.len(), 1);
        assert_eq!(r.decided_by[0].name, "default-deny");
        assert_eq!(r.decided_by[0].rule, None);
        assert_eq!(r.decided_by[0].side, "ingress");
    }

    #[test]
    fn unknown_numbers_stay_numbers() {
        let e = FlowEvent {
            cgroup_id: 99,
            local_addr: [0; 16],
            remote_addr: v4_mapped([192, 0, 2, 1]),
            peer_identity: reserved::WORLD,
            generation: 9,
            protocol: 47,
            ..event()
        };
        let r = FlowRecord::resolve(&e, &names(), "t".into());
        assert_eq!(r.local_name(), "cgroup:99");
        assert_eq!(r.peer_name(), "192.0.2.1 (world)");
        assert_eq!(r.local.address, None);
        assert_eq!(r.protocol, "47");
        assert!(r.decided_by.is_empty());
    }
}
