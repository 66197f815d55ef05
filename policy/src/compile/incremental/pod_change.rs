//! The incremental path for pods created, deleted or changed (one pod, or every pod of
//! a namespace whose labels changed): everything but a host-network pod. New
//! identities are allocated, vanished ones retired, and the tables that have (or now
//! need) rows for a peer that appeared or disappeared get exactly those rows changed
//! (`EndpointTables::update_peer_rows`). Returns false (the caller then recompiles
//! fully) before touching the compiled cluster when a number would come out different
//! from a from-scratch compile's.

use super::ipcache_claims::{IpCacheClaims, set_entry};
use super::{Compiler, LazyIndexes, State, TableInput};
use crate::compile::endpoint_tables::EndpointTable;
use crate::compile::identity::pod_identities;
use crate::compile::nodes::NodePlan;
use crate::compile::trust_boundary;
use crate::model::{Cluster, ObjectRef, Pod};
use ipnet::IpNet;
use palisade_abi::reserved;
use rustc_hash::FxHashSet;
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
        if host_network || !self.pods_incrementally(&[(pod_ref, old_node)]) {
            self.recompile();
        }
        if !self.cluster.services.is_empty() || !self.compiled.services.is_empty() {
            self.recompile_services();
        }
    }

    /// Re-resolves the pods `pods` (each with the node it was on, if it existed) after
    /// their objects or their namespace changed: their identities (new ones allocated,
    /// vanished ones retired), their ip cache entries, the rows other tables have for
    /// peers that appeared or disappeared, their tables and their nodes. False (the
    /// caller then recompiles fully) when a number would differ from a from-scratch
    /// compile's: an identity's preferred number is taken, or retiring one would
    /// renumber another.
    pub(super) fn pods_incrementally(&mut self, pods: &[(ObjectRef, Option<String>)]) -> bool {
        let state = &mut self.state;
        let cluster = &self.cluster;

        // TrustBoundary zones count the namespaces pods are in: a pod that is the
        // first or last of a namespace without a Namespace object may change them.
        if !cluster.trust_boundaries.is_empty()
            && pods
                .iter()
                .any(|(pod_ref, _)| !cluster.namespaces.contains_key(&pod_ref.namespace))
            && trust_boundary::expand(cluster) != state.trust_boundaries
        {
            return false;
        }

        // Identities: each pod's holdings moved, new identities allocated.
        let mut born: BTreeSet<u32> = BTreeSet::new();
        let mut touched: BTreeSet<u32> = BTreeSet::new();
        // Per pod: its addresses with their identities before and after, and its
        // endpoint identity after.
        type Addresses = Vec<(IpAddr, u32)>;
        let mut addresses: Vec<(Addresses, Addresses, Option<u32>)> =
            Vec::with_capacity(pods.len());
        for (pod_ref, _) in pods {
            let mut new_holders: Vec<(Option<IpAddr>, u32)> = Vec::new();
            if let Some(pod) = cluster.pods.get(pod_ref).filter(|p| !p.host_network) {
                let keys = pod_identities(
                    cluster,
                    pod_ref,
                    pod,
                    &state.blocks,
                    &state.egress_port_names,
                );
                for (address, key) in keys {
                    let number = match state.pod_identity_numbers.get(&key) {
                        Some(number) => *number,
                        None => {
                            let Some(number) = state.identities.add_pod(key.clone(), &state.blocks)
                            else {
                                return false;
                            };
                            state.pod_identity_numbers.insert(key, number);
                            born.insert(number);
                            number
                        }
                    };
                    new_holders.push((address, number));
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
            for number in &old_holders {
                if let Some(count) = state.holders.get_mut(number) {
                    *count = count.saturating_sub(1);
                }
            }
            for (_, number) in &new_holders {
                *state.holders.entry(*number).or_default() += 1;
            }
            touched.extend(old_holders.iter().copied());
            touched.extend(new_holders.iter().map(|(_, number)| *number));
            let new_addresses: Vec<(IpAddr, u32)> = new_holders
                .iter()
                .filter_map(|(address, number)| address.map(|a| (a, *number)))
                .collect();
            let endpoint = new_holders.first().map(|(_, number)| *number);
            addresses.push((old_addresses, new_addresses, endpoint));
        }
        let died: Vec<u32> = touched
            .iter()
            .copied()
            .filter(|number| state.holders.get(number).is_none_or(|count| *count == 0))
            .collect();
        if died
            .iter()
            .any(|number| state.identities.removal_renumbers(*number))
        {
            return false;
        }

        // Their addresses re-resolved; identities that gain their first or lose their
        // last ip cache entry are peers gained or lost.
        let prefixes: BTreeSet<IpNet> = addresses
            .iter()
            .flat_map(|(old, new, _)| {
                IpCacheClaims::pod_prefixes(old)
                    .into_iter()
                    .chain(IpCacheClaims::pod_prefixes(new))
            })
            .map(|(prefix, _)| prefix)
            .collect();
        let before: Vec<(IpNet, Option<u32>)> = prefixes
            .into_iter()
            .map(|prefix| (prefix, state.claims.resolve(&prefix)))
            .collect();
        for ((pod_ref, _), (old, new, _)) in pods.iter().zip(&addresses) {
            state.claims.remove_pod(pod_ref, old);
            state.claims.add_pod(pod_ref, new);
        }
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
        let mut gained = BTreeSet::new();
        let mut lost = BTreeSet::new();
        for (identity, was) in was_resolved {
            let is = state.claims.is_resolved(identity);
            if identity < reserved::FIRST_ALLOCATED || was == is {
                continue;
            }
            if is {
                gained.insert(identity);
            } else {
                lost.insert(identity);
            }
        }
        for (prefix, identity) in changed {
            set_entry(&mut self.compiled.ipcache, prefix, identity);
            self.delta.ipcache.insert(prefix);
        }

        // The identities of the pods.
        for ((pod_ref, _), (_, new, endpoint)) in pods.iter().zip(addresses) {
            if new.is_empty() {
                state.identities.pod_addresses.remove(pod_ref);
            } else {
                state.identities.pod_addresses.insert(pod_ref.clone(), new);
            }
            match endpoint {
                Some(number) => state.identities.endpoints.insert(pod_ref.clone(), number),
                None => state.identities.endpoints.remove(pod_ref),
            };
        }

        // Rows for the peers gained and lost, in every table that has some; retired
        // identities go after, their keys were needed to find those tables.
        // The policies indexed once, when first needed.
        let trust_boundaries = std::mem::take(&mut state.trust_boundaries);
        let numbers = std::mem::take(&mut state.numbers);
        let indexes = LazyIndexes::new(cluster, &trust_boundaries, &numbers);
        let mut nodes: BTreeSet<String> = BTreeSet::new();
        let mut recompute: BTreeSet<ObjectRef> = BTreeSet::new();
        let rows_replaced = !gained.is_empty() || !lost.is_empty();
        if rows_replaced {
            let replaced = state.update_peer_rows(cluster, &indexes, &gained, &lost);
            if !replaced.is_empty() {
                let stale = |table: &EndpointTable| {
                    table
                        .ingress
                        .iter()
                        .chain(&table.egress)
                        .any(|rows| replaced.contains(&(rows.as_ptr() as usize)))
                };
                state.shapes.retain(|_, (table, _)| !stale(table));
                for (pod_ref, (table, _)) in &state.pod_tables {
                    if stale(table) {
                        recompute.insert(pod_ref.clone());
                    }
                }
            }
        }
        for number in &died {
            let number = *number;
            if let Some(key) = state.identities.pods.get(&number) {
                state.pod_identity_numbers.remove(key);
            }
            state.identities.remove_pod(number);
            state.holders.remove(&number);
        }
        state.peer_identities.extend(gained.iter().copied());
        for identity in &lost {
            state.peer_identities.remove(identity);
        }
        for number in born.iter().chain(&died) {
            match state.identities.info.get(number) {
                Some(info) => self.compiled.identities.insert(*number, info.clone()),
                None => self.compiled.identities.remove(number),
            };
            self.delta.identities.insert(*number);
        }

        // Their tables, and the nodes they left and joined.
        for (pod_ref, old_node) in pods {
            if let Some(node) = old_node
                && let Some(on_node) = state.node_pods.get_mut(node)
            {
                on_node.remove(pod_ref);
                if on_node.is_empty() {
                    state.node_pods.remove(node);
                }
                nodes.insert(node.clone());
            }
            match cluster.pods.get(pod_ref) {
                Some(pod) => {
                    let node = pod.node_name.clone().unwrap_or_default();
                    state
                        .node_pods
                        .entry(node.clone())
                        .or_default()
                        .insert(pod_ref.clone());
                    nodes.insert(node);
                    if pod.host_network {
                        state.pod_tables.remove(pod_ref);
                    } else {
                        recompute.insert(pod_ref.clone());
                    }
                }
                None => {
                    state.pod_tables.remove(pod_ref);
                }
            }
        }
        nodes.extend(state.refresh_tables(cluster, &indexes, &recompute));
        if rows_replaced {
            // Before the nodes are rebuilt: the rows replaced go before the tables
            // published from the new ones are made (no row list is allocated until
            // the nodes are rebuilt, so no freed address is reused under a table key).
            state.memo.drop_unused();
        }
        drop(indexes);
        state.trust_boundaries = trust_boundaries;
        state.numbers = numbers;
        for node in nodes {
            self.rebuild_node(&node);
        }
        if rows_replaced {
            // And the rows the replaced published tables held.
            self.state.memo.drop_unused();
        }
        true
    }

    /// Re-plans the node `name` from its pods' tables, publishing new tables and
    /// releasing unused ones; removes it when it has neither pods nor a Node object.
    pub(super) fn rebuild_node(&mut self, name: &str) {
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
    /// Updates the memo for peers `gained` and `lost` (see
    /// `EndpointTables::update_peer_rows`); returns the addresses of the row lists
    /// replaced.
    fn update_peer_rows(
        &mut self,
        cluster: &Cluster,
        indexes: &LazyIndexes,
        gained: &BTreeSet<u32>,
        lost: &BTreeSet<u32>,
    ) -> FxHashSet<usize> {
        let changed: BTreeSet<u32> = gained.union(lost).copied().collect();
        let restricted = self.identities.restricted(&changed);
        let mut tables = indexes.get().endpoint_tables(
            cluster,
            &restricted,
            &self.blocks,
            gained,
            std::mem::take(&mut self.memo),
        );
        let replaced = tables.update_peer_rows(&changed);
        self.memo = tables.into_memo();
        replaced
    }

    /// Recomputes the tables of the pods `pods` (existing, not host-network), through
    /// the shapes and the memo; returns the nodes of those whose table changed.
    pub(super) fn refresh_tables(
        &mut self,
        cluster: &Cluster,
        indexes: &LazyIndexes,
        pods: &BTreeSet<ObjectRef>,
    ) -> BTreeSet<String> {
        let mut nodes = BTreeSet::new();
        if pods.is_empty() {
            return nodes;
        }
        let mut todo: Vec<(&ObjectRef, &Pod, TableInput)> = Vec::new();
        for pod_ref in pods {
            let Some(pod) = cluster.pods.get(pod_ref) else {
                continue;
            };
            let input = TableInput::of(pod_ref, pod, &self.identities);
            match self.shapes.get(&input) {
                Some(tables) => {
                    let tables = tables.clone();
                    if self.pod_tables.get(pod_ref) != Some(&tables) {
                        nodes.insert(pod.node_name.clone().unwrap_or_default());
                        self.pod_tables.insert(pod_ref.clone(), tables);
                    }
                }
                None => todo.push((pod_ref, pod, input)),
            }
        }
        if todo.is_empty() {
            return nodes;
        }
        let mut tables = indexes.get().endpoint_tables(
            cluster,
            &self.identities,
            &self.blocks,
            &self.peer_identities,
            std::mem::take(&mut self.memo),
        );
        for (pod_ref, pod, input) in todo {
            let node = pod.node_name.clone().unwrap_or_default();
            let computed = match self.shapes.get(&input) {
                Some(computed) => computed.clone(),
                None => {
                    let table = tables.table(pod_ref, pod, self.identities.named_nodes.get(&node));
                    let sockets = tables.socket_controls(pod_ref, pod);
                    self.shapes.insert(input, (table.clone(), sockets.clone()));
                    (table, sockets)
                }
            };
            if self.pod_tables.get(pod_ref) != Some(&computed) {
                nodes.insert(node);
                self.pod_tables.insert(pod_ref.clone(), computed);
            }
        }
        self.memo = tables.into_memo();
        nodes
    }
}
