//! What a peer address is, seen from an endpoint: its own node, another node, a pod,
//! or something else. Node addresses win over pod addresses; an address two pods claim
//! belongs to the first by namespace/name, one two nodes claim to the first node of
//! [`Cluster::node_peers`].

use crate::model::{Cidr, Cluster, NodePeer, ObjectRef, Pod};
use ipnet::{IpNet, Ipv4Net};
use std::net::IpAddr;

/// A peer address, classified.
#[derive(Clone, Debug)]
pub(super) enum PeerKind<'a> {
    /// An address of the endpoint's own node.
    OwnNode(NodePeer),
    /// An address of another node.
    Node(NodePeer),
    /// A pod's address (never a host-network pod's: those are node addresses).
    Pod(&'a ObjectRef, &'a Pod, IpAddr),
    /// Anything else.
    External(IpAddr),
}

impl PeerKind<'_> {
    /// Whether some of the peer's addresses are in `cidr` (a node is one peer: any of
    /// its addresses counts).
    pub fn in_cidr(&self, cidr: Cidr, except: &[Cidr]) -> bool {
        match self {
            PeerKind::OwnNode(node) | PeerKind::Node(node) => node
                .addresses
                .iter()
                .any(|addr| in_block(cidr, except, *addr)),
            PeerKind::Pod(_, _, addr) | PeerKind::External(addr) => in_block(cidr, except, *addr),
        }
    }
}

/// Classifies `peer` as seen by an endpoint on the node `local_node` ("" for a pod
/// without one).
pub(super) fn classify<'a>(cluster: &'a Cluster, local_node: &str, peer: IpAddr) -> PeerKind<'a> {
    let peer = peer.to_canonical();
    let nodes = cluster.node_peers();
    if let Some(own) = nodes
        .iter()
        .find(|node| node.name.as_deref() == Some(local_node) && node.has_address(peer))
    {
        return PeerKind::OwnNode(own.clone());
    }
    if let Some(node) = nodes.into_iter().find(|node| node.has_address(peer)) {
        return PeerKind::Node(node);
    }
    let is_peer = |ips: &[IpAddr]| ips.iter().any(|ip| ip.to_canonical() == peer);
    match cluster
        .pods
        .iter()
        .find(|(_, pod)| !pod.host_network && is_peer(&pod.ips))
    {
        Some((pod_ref, pod)) => PeerKind::Pod(pod_ref, pod, peer),
        None => PeerKind::External(peer),
    }
}

/// Whether `addr` (canonical) is in `cidr` and in none of `except`.
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
