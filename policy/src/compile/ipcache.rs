//! The cluster-wide ip cache: the identity every address resolves to, by longest
//! prefix match.
//!
//! Entries come from three sources; when two claim the same prefix, the first source
//! wins:
//! 1. Node addresses (of Node objects and of host-network pods): REMOTE_NODE. Each agent
//!    overlays its own node's addresses as HOST. ipBlocks that cover a node address do
//!    not change its identity: to policies a node is a node, never a CIDR peer. This is
//!    a deliberate simplification; Kubernetes leaves node traffic implementation-defined.
//! 2. Pod addresses (`/32`, `/128`): the pod identity of that address. If two pods claim
//!    one address, the first by namespace/name wins.
//! 3. ipBlock prefixes: their CIDR identity, or WORLD for prefixes in no block (the
//!    holes that excepts punch).

use super::cidr::host_net;
use super::identity::Identities;
use super::tables::IpCacheEntry;
use crate::model::Cluster;
use ipnet::IpNet;
use palisade_abi::reserved;
use std::collections::{BTreeMap, BTreeSet};

/// The ip cache and the identities it can resolve peers to.
#[derive(Clone, Debug, Default)]
pub(crate) struct IpCache {
    /// Sorted by prefix, one entry per prefix.
    pub entries: Vec<IpCacheEntry>,
    /// Allocated identities some address resolves to: the only ones a policy table
    /// ever needs rows for.
    pub peer_identities: BTreeSet<u32>,
}

impl IpCache {
    pub fn build(cluster: &Cluster, identities: &Identities) -> Self {
        let mut by_prefix: BTreeMap<IpNet, u32> = BTreeMap::new();
        let node_addresses = cluster
            .nodes
            .values()
            .flat_map(|node| &node.addresses)
            .chain(
                cluster
                    .pods
                    .values()
                    .filter(|pod| pod.host_network)
                    .flat_map(|pod| &pod.ips),
            );
        for addr in node_addresses {
            by_prefix
                .entry(host_net(*addr))
                .or_insert(reserved::REMOTE_NODE);
        }
        for addresses in identities.pod_addresses.values() {
            for (addr, identity) in addresses {
                by_prefix.entry(host_net(*addr)).or_insert(*identity);
            }
        }
        for (prefix, identity) in &identities.prefixes {
            by_prefix.entry(*prefix).or_insert(*identity);
        }

        let peer_identities = by_prefix
            .values()
            .copied()
            .filter(|identity| *identity >= reserved::FIRST_ALLOCATED)
            .collect();
        let entries = by_prefix
            .into_iter()
            .map(|(prefix, identity)| IpCacheEntry { prefix, identity })
            .collect();
        Self {
            entries,
            peer_identities,
        }
    }
}
