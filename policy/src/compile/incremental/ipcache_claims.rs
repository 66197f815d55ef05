//! The ip cache as claims, so that one pod's addresses can be re-resolved without
//! rebuilding it: per prefix, who claims it from each source, resolved by the
//! precedence `ipcache` documents (node addresses, then pods by namespace/name, then
//! ipBlock prefixes). Also counts the entries resolving to each identity: an identity
//! that gains its first or loses its last entry changes the set of peers tables have
//! rows for.

use crate::compile::cidr::host_net;
use crate::compile::identity::Identities;
use crate::compile::tables::IpCacheEntry;
use crate::model::ObjectRef;
use ipnet::IpNet;
use rustc_hash::FxHashMap;
use std::net::IpAddr;

#[derive(Default)]
pub(super) struct IpCacheClaims {
    nodes: FxHashMap<IpNet, u32>,
    /// Per address, the pods claiming it (sorted by pod) with their identity for it.
    pods: FxHashMap<IpNet, Vec<(ObjectRef, u32)>>,
    prefixes: FxHashMap<IpNet, u32>,
    /// Number of ip cache entries resolving to each identity.
    resolved: FxHashMap<u32, u32>,
}

impl IpCacheClaims {
    pub fn build(identities: &Identities, entries: &[IpCacheEntry]) -> Self {
        let mut claims = Self::default();
        for (addr, identity) in &identities.node_addresses {
            claims.nodes.entry(host_net(*addr)).or_insert(*identity);
        }
        for (pod_ref, addresses) in &identities.pod_addresses {
            claims.add_pod(pod_ref, addresses);
        }
        for (prefix, identity) in &identities.prefixes {
            claims.prefixes.entry(*prefix).or_insert(*identity);
        }
        for entry in entries {
            *claims.resolved.entry(entry.identity).or_default() += 1;
        }
        claims
    }

    /// The identity `prefix` resolves to, if any source claims it.
    pub fn resolve(&self, prefix: &IpNet) -> Option<u32> {
        self.nodes
            .get(prefix)
            .copied()
            .or_else(|| {
                self.pods
                    .get(prefix)
                    .and_then(|claims| claims.first())
                    .map(|(_, identity)| *identity)
            })
            .or_else(|| self.prefixes.get(prefix).copied())
    }

    /// The host prefixes of `addresses`, each once, with the identity of its first
    /// occurrence.
    pub fn pod_prefixes(addresses: &[(IpAddr, u32)]) -> Vec<(IpNet, u32)> {
        let mut prefixes: Vec<(IpNet, u32)> = Vec::with_capacity(addresses.len());
        for (addr, identity) in addresses {
            let prefix = host_net(*addr);
            if !prefixes.iter().any(|(p, _)| *p == prefix) {
                prefixes.push((prefix, *identity));
            }
        }
        prefixes
    }

    pub fn add_pod(&mut self, pod_ref: &ObjectRef, addresses: &[(IpAddr, u32)]) {
        for (prefix, identity) in Self::pod_prefixes(addresses) {
            let claims = self.pods.entry(prefix).or_default();
            match claims.binary_search_by(|(claimant, _)| claimant.cmp(pod_ref)) {
                Ok(position) => claims[position].1 = identity,
                Err(position) => claims.insert(position, (pod_ref.clone(), identity)),
            }
        }
    }

    pub fn remove_pod(&mut self, pod_ref: &ObjectRef, addresses: &[(IpAddr, u32)]) {
        for (prefix, _) in Self::pod_prefixes(addresses) {
            if let Some(claims) = self.pods.get_mut(&prefix) {
                claims.retain(|(claimant, _)| claimant != pod_ref);
                if claims.is_empty() {
                    self.pods.remove(&prefix);
                }
            }
        }
    }

    /// Records that `prefix` resolved to `before` and now resolves to `after`.
    pub fn count(&mut self, before: Option<u32>, after: Option<u32>) {
        if before == after {
            return;
        }
        if let Some(identity) = before
            && let Some(count) = self.resolved.get_mut(&identity)
        {
            *count -= 1;
            if *count == 0 {
                self.resolved.remove(&identity);
            }
        }
        if let Some(identity) = after {
            *self.resolved.entry(identity).or_default() += 1;
        }
    }

    /// Whether some entry resolves to `identity`.
    pub fn is_resolved(&self, identity: u32) -> bool {
        self.resolved.contains_key(&identity)
    }
}

/// Sets the entry of `prefix` in the sorted `entries` to `identity` (None: removes it).
pub(super) fn set_entry(entries: &mut Vec<IpCacheEntry>, prefix: IpNet, identity: Option<u32>) {
    let position = entries.binary_search_by(|entry| entry.prefix.cmp(&prefix));
    match (position, identity) {
        (Ok(position), Some(identity)) => entries[position].identity = identity,
        (Ok(position), None) => {
            entries.remove(position);
        }
        (Err(position), Some(identity)) => {
            entries.insert(position, IpCacheEntry { prefix, identity })
        }
        (Err(_), None) => {}
    }
}
