//! The oracle: decides flows straight from the model's NetworkPolicy objects with
//! Kubernetes semantics, without identities, ip cache or tables. Deliberately naive
//! (linear scans, no indexes) so that it is easy to check against the upstream
//! documentation; tests hold the compiled tables to it.
//!
//! Where Kubernetes leaves behaviour to the implementation, this follows palisade:
//! - Traffic with the endpoint's own node (its Node object's addresses and the
//!   addresses of host-network pods on it) is always allowed.
//! - Other nodes' addresses (Node objects, host-network pods) are nodes, never pods
//!   or ipBlock members: only rules without peers allow them.
//! - IPv4-mapped IPv6 addresses and prefixes are IPv4 (the kernel cannot tell them
//!   apart).
//! - An address two pods claim belongs to the first by namespace/name.
//!
//! Objects are identified by their keys in [`Cluster`]; a policy applies in the
//! namespace of its key.

use super::flow::{Endpoint, FlowAddresses, FlowDecision, FlowError, IpFamily};
use super::outcome::Reason;
use crate::compile::tables::{RuleInfo, Verdict};
use crate::model::{
    Cidr, Cluster, Direction, NetworkPolicy, ObjectRef, Peer, Pod, PolicyRule, PortRef, PortSpec,
};
use ipnet::{IpNet, Ipv4Net};
use std::net::IpAddr;

/// What Kubernetes semantics decide for one new flow at one end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The first rule (policies by namespace/name, rules in order) that allows the
    /// flow; None when no rule decided.
    pub rule: Option<RuleInfo>,
    pub reason: Reason,
}

/// Decides a flow: egress at the source if it is an endpoint, ingress at the
/// destination if it is one. Same addressing as [`super::ClusterEvaluator::flow`].
pub fn flow(
    cluster: &Cluster,
    from: Endpoint,
    to: Endpoint,
    protocol: u8,
    port: u16,
    family: Option<IpFamily>,
) -> Result<FlowDecision<Decision>, FlowError> {
    let addresses = FlowAddresses::resolve(from, to, family)?;
    let end = |end: Endpoint, direction, peer| match end {
        Endpoint::Pod(pod) => decide(cluster, &pod.object_ref(), direction, peer, protocol, port),
        Endpoint::External(_) => None,
    };
    let egress = end(from, Direction::Egress, addresses.dst);
    let ingress = end(to, Direction::Ingress, addresses.src);
    Ok(FlowDecision::new(addresses, egress, ingress, |d| d.verdict))
}

/// Decides a new flow of the pod `endpoint` in `direction` with the address `peer`;
/// None if the pod is not an endpoint (unknown or host-network).
pub fn decide(
    cluster: &Cluster,
    endpoint: &ObjectRef,
    direction: Direction,
    peer: IpAddr,
    protocol: u8,
    dport: u16,
) -> Option<Decision> {
    let local = cluster.pods.get(endpoint).filter(|pod| !pod.host_network)?;
    let isolating: Vec<(&ObjectRef, &NetworkPolicy)> = cluster
        .network_policies
        .iter()
        .filter(|(policy_ref, policy)| {
            policy_ref.namespace == endpoint.namespace
                && policy.isolates(direction)
                && policy.pod_selector.matches(&local.labels)
        })
        .collect();
    let decision = |verdict, rule, reason| {
        Some(Decision {
            verdict,
            rule,
            reason,
        })
    };
    if isolating.is_empty() {
        return decision(Verdict::Allow, None, Reason::AllowedNotIsolated);
    }
    let node = local.node_name.as_deref().unwrap_or("");
    let peer = classify(cluster, node, peer);
    if let PeerKind::OwnNode = peer {
        return decision(Verdict::Allow, None, Reason::AllowedHost);
    }
    let flow = FlowAtEnd {
        cluster,
        direction,
        local,
        peer,
        protocol,
        dport,
    };
    let allowing = isolating.iter().find_map(|(policy_ref, policy)| {
        let index = policy
            .rules(direction)
            .iter()
            .position(|rule| flow.allowed_by(rule, &policy_ref.namespace))?;
        Some(RuleInfo::network_policy(policy_ref, direction, index))
    });
    match allowing {
        Some(rule) => decision(Verdict::Allow, Some(rule), Reason::AllowedPolicy),
        None => decision(Verdict::Deny, None, Reason::DeniedPolicy),
    }
}

/// What a peer address is, seen from an endpoint.
#[derive(Clone, Copy, Debug)]
enum PeerKind<'a> {
    /// An address of the endpoint's own node.
    OwnNode,
    /// An address of another node (or of a host-network pod).
    Node,
    /// A pod's address.
    Pod(&'a ObjectRef, &'a Pod, IpAddr),
    /// Anything else.
    External(IpAddr),
}

fn classify<'a>(cluster: &'a Cluster, local_node: &str, peer: IpAddr) -> PeerKind<'a> {
    let peer = peer.to_canonical();
    let is_peer = |ips: &[IpAddr]| ips.iter().any(|ip| ip.to_canonical() == peer);
    let own_host_network_pod = cluster.pods.values().any(|pod| {
        pod.host_network && pod.node_name.as_deref() == Some(local_node) && is_peer(&pod.ips)
    });
    if own_host_network_pod
        || cluster
            .nodes
            .get(local_node)
            .is_some_and(|node| is_peer(&node.addresses))
    {
        return PeerKind::OwnNode;
    }
    let node_address = cluster.nodes.values().any(|node| is_peer(&node.addresses))
        || cluster
            .pods
            .values()
            .any(|pod| pod.host_network && is_peer(&pod.ips));
    if node_address {
        return PeerKind::Node;
    }
    match cluster
        .pods
        .iter()
        .find(|(_, pod)| !pod.host_network && is_peer(&pod.ips))
    {
        Some((pod_ref, pod)) => PeerKind::Pod(pod_ref, pod, peer),
        None => PeerKind::External(peer),
    }
}

/// A new flow at one end, to be matched against rules.
struct FlowAtEnd<'a> {
    cluster: &'a Cluster,
    direction: Direction,
    local: &'a Pod,
    peer: PeerKind<'a>,
    protocol: u8,
    dport: u16,
}

impl FlowAtEnd<'_> {
    /// Whether `rule` of a policy in `namespace` allows the flow: some peer and some
    /// port match (an empty list matches everything).
    fn allowed_by(&self, rule: &PolicyRule, namespace: &str) -> bool {
        let peer_matches =
            rule.peers.is_empty() || rule.peers.iter().any(|p| self.peer_matches(p, namespace));
        let port_matches =
            rule.ports.is_empty() || rule.ports.iter().any(|spec| self.port_matches(spec));
        peer_matches && port_matches
    }

    fn peer_matches(&self, peer: &Peer, namespace: &str) -> bool {
        match (peer, self.peer) {
            (
                Peer::Pods {
                    namespace_selector,
                    pod_selector,
                },
                PeerKind::Pod(pod_ref, pod, _),
            ) => {
                let namespace_matches = match namespace_selector {
                    None => pod_ref.namespace == namespace,
                    Some(selector) => {
                        selector.matches(&self.cluster.namespace_labels(&pod_ref.namespace))
                    }
                };
                namespace_matches
                    && pod_selector
                        .as_ref()
                        .is_none_or(|selector| selector.matches(&pod.labels))
            }
            (
                Peer::IpBlock { cidr, except },
                PeerKind::Pod(_, _, addr) | PeerKind::External(addr),
            ) => in_block(*cidr, except, addr),
            _ => false,
        }
    }

    fn port_matches(&self, spec: &PortSpec) -> bool {
        if spec.protocol.number() != self.protocol {
            return false;
        }
        match &spec.port {
            None => true,
            Some(PortRef::Number(port)) => match spec.end_port {
                Some(end) => (*port..=end).contains(&self.dport),
                None => *port == self.dport,
            },
            // `end_port` does not apply to names (the API rejects it).
            Some(PortRef::Name(name)) => {
                self.receiver()
                    .and_then(|pod| pod.named_port(name, spec.protocol))
                    == Some(self.dport)
            }
        }
    }

    /// The pod that receives the flow, where named ports resolve.
    fn receiver(&self) -> Option<&Pod> {
        match (self.direction, self.peer) {
            (Direction::Ingress, _) => Some(self.local),
            (Direction::Egress, PeerKind::Pod(_, pod, _)) => Some(pod),
            (Direction::Egress, _) => None,
        }
    }
}

fn in_block(cidr: Cidr, except: &[Cidr], addr: IpAddr) -> bool {
    let contains = |net: &Cidr| canonical(net.network()).contains(&addr);
    contains(&cidr) && !except.iter().any(contains)
}

/// An IPv6 prefix inside `::ffff:0:0/96` as the IPv4 prefix it is to the kernel.
fn canonical(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        _ => net,
    }
}
