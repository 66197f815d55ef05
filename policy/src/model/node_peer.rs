//! Nodes as peers: which addresses are a node's, and the labels policies select it by.
//!
//! A node's addresses are those of its Node object and those of the host-network pods
//! that run on it (a host-network pod uses its node's network namespace, so its
//! traffic is the node's). A host-network pod may name a node that has no Node object:
//! that node has no labels. Host-network pods without a node form one anonymous node.

use super::{Cluster, Labels};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// A node as policies see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePeer {
    /// None for the anonymous node of host-network pods without `spec.nodeName`.
    pub name: Option<String>,
    /// The Node object's labels; empty without one.
    pub labels: Labels,
    /// Canonical (IPv4-mapped IPv6 written as IPv4), without duplicates: the Node
    /// object's addresses, then those of its host-network pods by namespace/name.
    pub addresses: Vec<IpAddr>,
}

impl NodePeer {
    pub fn has_address(&self, addr: IpAddr) -> bool {
        self.addresses.contains(&addr.to_canonical())
    }
}

impl Cluster {
    /// Every node: named ones by name, then the anonymous one if it has addresses.
    /// When two nodes claim one address, the first in this order owns it.
    pub fn node_peers(&self) -> Vec<NodePeer> {
        let mut named: BTreeMap<&str, NodePeer> = BTreeMap::new();
        let mut anonymous = NodePeer {
            name: None,
            labels: Labels::default(),
            addresses: Vec::new(),
        };
        for node in self.nodes.values() {
            let peer = named.entry(&node.name).or_insert_with(|| NodePeer {
                name: Some(node.name.clone()),
                labels: node.labels.clone(),
                addresses: Vec::new(),
            });
            add_addresses(peer, &node.addresses);
        }
        for pod in self.pods.values().filter(|pod| pod.host_network) {
            let peer = match pod.node_name.as_deref() {
                None => &mut anonymous,
                Some(name) => named.entry(name).or_insert_with(|| NodePeer {
                    name: Some(name.to_string()),
                    labels: Labels::default(),
                    addresses: Vec::new(),
                }),
            };
            add_addresses(peer, &pod.ips);
        }
        let mut peers: Vec<NodePeer> = named.into_values().collect();
        if !anonymous.addresses.is_empty() {
            peers.push(anonymous);
        }
        peers
    }

    /// The node named `name`, if it has a Node object or host-network pods.
    pub fn node_peer(&self, name: &str) -> Option<NodePeer> {
        self.node_peers()
            .into_iter()
            .find(|peer| peer.name.as_deref() == Some(name))
    }
}

fn add_addresses(peer: &mut NodePeer, addresses: &[IpAddr]) {
    for addr in addresses.iter().map(IpAddr::to_canonical) {
        if !peer.addresses.contains(&addr) {
            peer.addresses.push(addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Node, Pod};

    fn host_pod(name: &str, node: Option<&str>, ip: &str) -> Pod {
        Pod {
            namespace: "kube-system".into(),
            name: name.into(),
            uid: None,
            labels: Labels::default(),
            ips: vec![ip.parse().unwrap()],
            node_name: node.map(str::to_string),
            host_network: true,
            ports: Vec::new(),
            cgroup_path: None,
        }
    }

    #[test]
    fn nodes_own_their_objects_and_host_network_pods_addresses() {
        let mut cluster = Cluster::default();
        cluster.nodes.insert(
            "n1".into(),
            Node {
                name: "n1".into(),
                labels: [("zone", "a")].into_iter().collect(),
                addresses: vec!["192.168.0.1".parse().unwrap()],
            },
        );
        for pod in [
            host_pod("a", Some("n1"), "::ffff:192.168.0.1"),
            host_pod("b", Some("n2"), "192.168.0.2"),
            host_pod("c", None, "192.168.0.3"),
        ] {
            cluster.pods.insert(pod.object_ref(), pod);
        }
        let peers = cluster.node_peers();
        let names: Vec<Option<&str>> = peers.iter().map(|p| p.name.as_deref()).collect();
        assert_eq!(names, [Some("n1"), Some("n2"), None]);
        assert_eq!(
            peers[0].addresses,
            ["192.168.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(peers[0].labels.get("zone"), Some("a"));
        assert!(peers[1].labels.0.is_empty());
        assert!(peers[2].has_address("::ffff:192.168.0.3".parse().unwrap()));
        assert_eq!(cluster.node_peer("n2"), Some(peers[1].clone()));
        assert_eq!(cluster.node_peer("n3"), None);
    }
}
