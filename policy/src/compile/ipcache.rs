//! The cluster-wide ip cache: the identity every address resolves to, by longest
//! prefix match.
//!
//! Entries come from three sources; when two claim the same prefix, the first source
//! wins:
//! 1. Node addresses (of Node objects and of host-network pods): the node's identity
//!    (its labels and the blocks any of its addresses is in). Each agent overlays its own
//!    node's addresses as HOST. If two nodes claim an address, the first by name wins.
//! 2. Pod addresses (`/32`, `/128`): the pod identity of that address. If two pods claim
//!    one address, the first by namespace/name wins.
//! 3. ipBlock prefixes: their CIDR identity, or WORLD for prefixes in no block (the
//!    holes that excepts punch).

use super::cidr::host_net;
use super::identity::Identities;
use super::tables::IpCacheEntry;
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
    pub fn build(identities: &Identities) -> Self {
        let mut by_prefix: BTreeMap<IpNet, u32> = BTreeMap::new();
        for (addr, identity) in &identities.node_addresses {
            by_prefix.entry(host_net(*addr)).or_insert(*identity);
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
