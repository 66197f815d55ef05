//! The NetworkPolicy tier, read straight from the objects: a rule allows a flow when
//! some peer and some port match (an empty list matches everything).
//!
//! Nodes (own or other) match only rules without peers: to NetworkPolicy a node is
//! never a pod nor an ipBlock member (palisade's choice; Kubernetes leaves it open).

use super::FlowAtEnd;
use super::peer::PeerKind;
use crate::model::{Peer, PolicyRule, PortRef, PortSpec};

impl FlowAtEnd<'_> {
    /// Whether `rule` of a policy in `namespace` allows the flow.
    pub(super) fn allowed_by(&self, rule: &PolicyRule, namespace: &str) -> bool {
        let peer_matches =
            rule.peers.is_empty() || rule.peers.iter().any(|p| self.peer_matches(p, namespace));
        let port_matches =
            rule.ports.is_empty() || rule.ports.iter().any(|spec| self.port_matches(spec));
        peer_matches && port_matches
    }

    fn peer_matches(&self, peer: &Peer, namespace: &str) -> bool {
        match (peer, &self.peer) {
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
            (Peer::IpBlock { cidr, except }, PeerKind::Pod(..) | PeerKind::External(_)) => {
                self.peer.in_cidr(*cidr, except)
            }
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
}
