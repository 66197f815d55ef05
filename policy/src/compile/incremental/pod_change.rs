//! The incremental path for one pod created, deleted or changed: everything but a
//! host-network pod, as long as the set of identities stays the same. Returns false
//! (the caller then recompiles fully) before touching any node when it cannot do it.

use super::ipcache_claims::{IpCacheClaims, set_entry};
use super::{Compiler, State, TableInput};
use crate::compile::Indexes;
use crate::compile::egress_policy::SocketControls;
use crate::compile::endpoint_tables::EndpointTable;
use crate::compile::identity::pod_identities;
use crate::compile::nodes::NodePlan;
use crate::compile::rules::RuleCatalog;
use crate::model::{Cluster, ObjectRef, Pod};
use ipnet::IpNet;
use palisade_abi::reserved;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

impl Compiler {
    /// Sets the pod `pod_ref` to `new` (None: deletes it).
    pub(super) fn pod(&mut self, pod_ref: ObjectRef, new: Option<Pod>) {
        let old = self.cluster.pods.get(&pod_ref);
        if old == new.as_ref() {
            return;
        }
        let host_network =
            old.is_some_and(|p| p.host_network) || new.as_ref().is_some_and(|p| p.host_network);
        let old_node = old.map(|p| p.node_name.clone().unwrap_or_default());
        match new {
            Some(pod) => self.cluster.pods.insert(pod_ref.clone(), pod),
            None => self.cluster.pods.remove(&pod_ref),
        };
        if host_network || !self.pod_incrementally(&pod_ref, old_node) {
            self.recompile();
        }
        if !self.cluster.services.is_empty() || !self.compiled.services.is_empty() {
            self.recompile_services();
        }
    }

    /// See the module documentation; `old_node` is where the pod was, if it existed.
    fn pod_incrementally(&mut self, pod_ref: &ObjectRef, old_node: Option<String>) -> bool {
        let state = &mut self.state;
        let pod = self.cluster.pods.get(pod_ref);

        // The pod's identities must all exist already.
        let mut new_holders: Vec<(Option<IpAddr>, u32)> = Vec::new();
        if let Some(pod) = pod {
            let keys = pod_identities(
                &self.cluster,
                pod_ref,
                pod,
                &state.blocks,
                &state.egress_port_names,
            );
            for (address, key) in keys {
                match state.pod_identity_numbers.get(&key) {
                    Some(number) => new_holders.push((address, *number)),
                    None => return false,
                }
            }
        }
        let old_addresses = state
            .identities
            .pod_addresses
            .get(pod_ref)
            .cloned()
            .unwrap_or_default();
        let old_holders: Vec<u32> = if old_addresses.is_empty() {
            state
                .identities
                .endpoints
                .get(pod_ref)
                .copied()
                .into_iter()
                .collect()
        } else {
            old_addresses.iter().map(|(_, number)| *number).collect()
        };
        if !state.move_holders(&old_holders, &new_holders) {
            return false;
        }

        // Its addresses re-resolved; no identity may gain its first or lose its last
        // ip cache entry.
        let new_addresses: Vec<(IpAddr, u32)> = new_holders
            .iter()
            .filter_map(|(address, number)| address.map(|a| (a, *number)))
            .collect();
        let prefixes: BTreeSet<IpNet> = IpCacheClaims::pod_prefixes(&old_addresses)
            .into_iter()
            .chain(IpCacheClaims::pod_prefixes(&new_addresses))
            .map(|(prefix, _)| prefix)
            .collect();
        let before: Vec<(IpNet, Option<u32>)> = prefixes
            .into_iter()
            .map(|prefix| (prefix, state.claims.resolve(&prefix)))
            .collect();
        state.claims.remove_pod(pod_ref, &old_addresses);
        state.claims.add_pod(pod_ref, &new_addresses);
        let mut was_resolved: BTreeMap<u32, bool> = BTreeMap::new();
        let mut changed = Vec::new();
        for (prefix, before) in before {
            let after = state.claims.resolve(&prefix);
            if after == before {
                continue;
            }
            for identity in before.into_iter().chain(after) {
                was_resolved
                    .entry(identity)
                    .or_insert_with(|| state.claims.is_resolved(identity));
            }
            state.claims.count(before, after);
            changed.push((prefix, after));
        }
        let peers_changed = was_resolved.iter().any(|(identity, was)| {
            *identity >= reserved::FIRST_ALLOCATED && *was != state.claims.is_resolved(*identity)
        });
        if peers_changed {
            return false;
        }
        for (prefix, identity) in changed {
            set_entry(&mut self.compiled.ipcache, prefix, identity);
            self.delta.ipcache.insert(prefix);
        }

        // The identities of the pod.
        if new_addresses.is_empty() {
            state.identities.pod_addresses.remove(pod_ref);
        } else {
            state
                .identities
                .pod_addresses
                .insert(pod_ref.clone(), new_addresses);
        }
        match new_holders.first() {
            Some((_, number)) => state.identities.endpoints.insert(pod_ref.clone(), *number),
            None => state.identities.endpoints.remove(pod_ref),
        };

        // Its table, and the nodes it left and joined.
        if let Some(node) = &old_node
            && let Some(pods) = state.node_pods.get_mut(node)
        {
            pods.remove(pod_ref);
            if pods.is_empty() {
                state.node_pods.remove(node);
            }
        }
        let mut nodes: BTreeSet<String> = old_node.into_iter().collect();
        match pod {
            Some(pod) => {
                let node = pod.node_name.clone().unwrap_or_default();
                let input = TableInput::of(pod_ref, pod, &state.identities);
                let tables = match state.shapes.get(&input) {
                    Some(tables) => tables.clone(),
                    None => {
                        let tables = state.endpoint_table(&self.cluster, pod_ref, pod, &node);
                        state.shapes.insert(input, tables.clone());
                        tables
                    }
                };
                state.pod_tables.insert(pod_ref.clone(), tables);
                state
                    .node_pods
                    .entry(node.clone())
                    .or_default()
                    .insert(pod_ref.clone());
                nodes.insert(node);
            }
            None => {
                state.pod_tables.remove(pod_ref);
            }
        }
        for node in nodes {
            self.rebuild_node(&node);
        }
        true
    }

    /// Re-plans the node `name` from its pods' tables, publishing new tables and
    /// releasing unused ones; removes it when it has neither pods nor a Node object.
    fn rebuild_node(&mut self, name: &str) {
        let state = &mut self.state;
        let old = self.compiled.nodes.remove(name);
        let pods = state.node_pods.get(name);
        if pods.is_none() && !self.cluster.nodes.contains_key(name) {
            if let Some(old) = old {
                state
                    .publisher
                    .release(&old, &mut self.compiled, &mut self.delta);
                self.delta.nodes.insert(name.to_string());
            }
            return;
        }
        let host_addresses = old
            .as_ref()
            .map(|node| node.host_addresses.clone())
            .unwrap_or_default();
        let mut plan = NodePlan::with_host_addresses(host_addresses);
        for pod_ref in pods.into_iter().flatten() {
            let (Some((table, sockets)), Some(pod), Some(identity)) = (
                state.pod_tables.get(pod_ref),
                self.cluster.pods.get(pod_ref),
                state.identities.endpoints.get(pod_ref),
            ) else {
                continue;
            };
            plan.add_endpoint(pod_ref, pod, *identity, table.clone(), sockets.clone());
        }
        let publisher = &mut state.publisher;
        let (compiled, delta) = (&mut self.compiled, &mut self.delta);
        let node = plan.finish(|table| publisher.acquire(table, compiled, delta));
        if let Some(old) = &old {
            publisher.release(old, compiled, delta);
        }
        if old.as_ref() != Some(&node) {
            delta.nodes.insert(name.to_string());
        }
        compiled.nodes.insert(name.to_string(), node);
    }
}

impl State {
    /// The table and socket controls of the pod `pod_ref` on the node `node`, computed
    /// (policies re-indexed, memo reused).
    fn endpoint_table(
        &mut self,
        cluster: &Cluster,
        pod_ref: &ObjectRef,
        pod: &Pod,
        node: &str,
    ) -> (EndpointTable, SocketControls) {
        let indexes = Indexes::index(
            cluster,
            &self.trust_boundaries,
            &mut RuleCatalog::counting(),
        );
        let mut tables = indexes.endpoint_tables(
            cluster,
            &self.identities,
            &self.blocks,
            &self.peer_identities,
            std::mem::take(&mut self.memo),
        );
        let table = tables.table(pod_ref, pod, self.identities.named_nodes.get(node));
        let sockets = tables.socket_controls(pod_ref, pod);
        self.memo = tables.into_memo();
        (table, sockets)
    }

    /// Moves a pod's holdings from `old` to `new`; false if an identity gains its first
    /// or loses its last holder (the identity set changes).
    fn move_holders(&mut self, old: &[u32], new: &[(Option<IpAddr>, u32)]) -> bool {
        let touched: BTreeSet<u32> = old
            .iter()
            .copied()
            .chain(new.iter().map(|(_, n)| *n))
            .collect();
        let before: Vec<(u32, bool)> = touched
            .iter()
            .map(|n| (*n, self.holders.get(n).is_some_and(|c| *c > 0)))
            .collect();
        for number in old {
            if let Some(count) = self.holders.get_mut(number) {
                *count = count.saturating_sub(1);
            }
        }
        for (_, number) in new {
            *self.holders.entry(*number).or_default() += 1;
        }
        before
            .into_iter()
            .all(|(n, held)| held == self.holders.get(&n).is_some_and(|c| *c > 0))
    }
}
