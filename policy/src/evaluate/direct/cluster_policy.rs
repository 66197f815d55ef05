//! The admin and baseline tiers, read straight from the cluster policy objects: a rule
//! matches a flow when some peer and some port match; an empty `ports` matches every
//! port, an empty peer list nothing.

use super::FlowAtEnd;
use super::peer::PeerKind;
use crate::model::{ClusterPeer, ClusterPort, ClusterRule, Protocol};

impl FlowAtEnd<'_> {
    /// Whether `rule` matches the flow.
    pub(super) fn matches(&self, rule: &ClusterRule) -> bool {
        let port_matches = rule.ports.is_empty()
            || rule
                .ports
                .iter()
                .any(|port| self.cluster_port_matches(port));
        port_matches
            && rule
                .peers
                .iter()
                .any(|peer| self.cluster_peer_matches(peer))
    }

    fn cluster_peer_matches(&self, peer: &ClusterPeer) -> bool {
        match (peer, &self.peer) {
            (ClusterPeer::Namespaces(namespaces), PeerKind::Pod(pod_ref, _, _)) => {
                namespaces.matches(&self.cluster.namespace_labels(&pod_ref.namespace))
            }
            (
                ClusterPeer::Pods {
                    namespace_selector,
                    pod_selector,
                },
                PeerKind::Pod(pod_ref, pod, _),
            ) => {
                namespace_selector.matches(&self.cluster.namespace_labels(&pod_ref.namespace))
                    && pod_selector.matches(&pod.labels)
            }
            (ClusterPeer::Nodes(nodes), PeerKind::OwnNode(node) | PeerKind::Node(node)) => {
                nodes.matches(&node.labels)
            }
            (ClusterPeer::Networks(cidrs), _) => {
                cidrs.iter().any(|cidr| self.peer.in_cidr(*cidr, &[]))
            }
            _ => false,
        }
    }

    fn cluster_port_matches(&self, port: &ClusterPort) -> bool {
        let Some(protocol) = Protocol::from_number(self.protocol) else {
            return false;
        };
        match port {
            ClusterPort::Number {
                protocol: expected,
                port,
            } => *expected == protocol && *port == self.dport,
            ClusterPort::Range {
                protocol: expected,
                first,
                last,
            } => *expected == protocol && (*first..=*last).contains(&self.dport),
            ClusterPort::Named(name) => {
                self.receiver()
                    .and_then(|pod| pod.named_port(name, protocol))
                    == Some(self.dport)
            }
        }
    }
}
