//! The incremental compiler: owns a cluster state and its compiled form, applies
//! changes one object at a time and reports what each changed, so that a controller
//! publishes only that.
//!
//! What is incremental (`pod_change`): a pod created, deleted, relabelled, moved or
//! given new addresses, and a namespace's labels changed (its pods re-resolved). New
//! identities get the number a from-scratch compile would give them and vanished ones
//! are retired; a peer that appears or disappears gets its rows added to or dropped
//! from exactly the tables whose policies single it out. It re-resolves the pods' ip
//! cache entries, computes their tables (usually a memo hit: ten thousand replicas
//! share one) and rebuilds the nodes they leave and join and the nodes whose tables
//! changed. Service and EndpointSlice changes recompute only the Service table.
//!
//! A NetworkPolicy or EgressPolicy added, changed or deleted (`policy_change`) only
//! decides about pods of its own namespace: their tables are recomputed, the memo
//! entries that selected the policy forgotten, and its rules published under stable
//! ids (`policy_numbers`), unless it changes the ipBlocks or the egress port names
//! (which shape identities).
//!
//! Everything else (a cluster policy or node change, a host-network pod, an identity
//! whose number would collide) is a full recompile from the owned cluster state; the
//! delta is then the difference of the two results.
//!
//! Numbering: the incremental path keeps every published number stable (identities,
//! table indexes, rule indexes; see `publisher`), and the compiler publishes every
//! rule of every policy, not only the cited ones, so its result differs from a
//! from-scratch [`compile`](super::compile) of the same state in numbering only:
//! [`canonical`] forms are equal. After a full recompile the result is exactly that
//! of [`Compiler::new`] on the same state.

mod canonical;
mod ipcache_claims;
mod pod_change;
mod policy_change;
mod publisher;

pub use canonical::{CanonicalCluster, CanonicalNode, CanonicalTable, canonical};

use super::cidr::IpBlocks;
use super::egress_policy::SocketControls;
use super::endpoint_tables::EndpointTable;
use super::endpoint_tables::TableMemo;
use super::identity::{EgressPortNames, Identities, NodeIdentity, PodIdentity};
use super::nodes::PodTables;
use super::policy_numbers::NamespacedNumbers;
use super::tables::{CompiledCluster, IpCacheEntry};
use super::{FullCompile, Indexes, RulePublication, compile_full, services, trust_boundary};
use crate::model::{
    Cluster, ClusterPolicy, ClusterPolicyRef, ContainerPort, EgressPolicy, EndpointSlice, Labels,
    Namespace, NetworkPolicy, Node, ObjectRef, Pod, Service, TrustBoundary,
};
use ipcache_claims::IpCacheClaims;
use ipnet::IpNet;
use publisher::Publisher;
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet};

/// One change of the cluster state. Upserts carry the whole object (its key is in it);
/// deletes its key. Deleting what does not exist is no change.
#[derive(Clone, Debug)]
pub enum Change {
    PodUpsert(Pod),
    PodDelete(ObjectRef),
    NamespaceUpsert(Namespace),
    NamespaceDelete(String),
    NodeUpsert(Node),
    NodeDelete(String),
    NetworkPolicyUpsert(NetworkPolicy),
    NetworkPolicyDelete(ObjectRef),
    /// An AdminNetworkPolicy or BaselineAdminNetworkPolicy (their common model).
    ClusterPolicyUpsert(ClusterPolicy),
    ClusterPolicyDelete(ClusterPolicyRef),
    TrustBoundaryUpsert(TrustBoundary),
    TrustBoundaryDelete(String),
    EgressPolicyUpsert(EgressPolicy),
    EgressPolicyDelete(ObjectRef),
    ServiceUpsert(Service),
    ServiceDelete(ObjectRef),
    EndpointSliceUpsert(EndpointSlice),
    EndpointSliceDelete(ObjectRef),
}

/// What changed in [`Compiler::compiled`] since the delta was last taken. Look the
/// current values up in the compiled cluster; a key listed there but absent now was
/// removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    /// A full recompile happened: numbers (table indexes, rule indexes) may all have
    /// changed; the sets below still say exactly what differs.
    pub full_recompile: bool,
    /// Nodes whose object changed or that refer to a table whose content changed:
    /// their policy entries must be rewritten. Includes removed nodes.
    pub nodes: BTreeSet<String>,
    /// ip cache prefixes added, removed or resolving to another identity.
    pub ipcache: BTreeSet<IpNet>,
    /// Identities added, removed or redefined.
    pub identities: BTreeSet<u32>,
    /// Indexes into `policy_tables` whose content changed (new, emptied, reused).
    pub policy_tables: BTreeSet<u32>,
    /// The rule list was renumbered (only a full recompile does that: the compiler
    /// publishes every rule of every policy).
    pub rules: bool,
    /// Indexes into `rules` published or retired without renumbering (the rules of
    /// a namespaced policy added, deleted or changed). Only tables listed in
    /// `policy_tables` cite them.
    pub rule_refs: BTreeSet<u32>,
    /// The Service table changed.
    pub services: bool,
}

impl Delta {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Delta::default()
    }
}

/// An incrementally maintained compile of one cluster state.
pub struct Compiler {
    cluster: Cluster,
    compiled: CompiledCluster,
    state: State,
    delta: Delta,
}

/// What the incremental path keeps of the last full compile, kept up to date.
#[derive(Default)]
struct State {
    trust_boundaries: Vec<ClusterPolicy>,
    blocks: IpBlocks,
    egress_port_names: EgressPortNames,
    identities: Identities,
    peer_identities: BTreeSet<u32>,
    memo: TableMemo,
    pod_tables: PodTables,
    publisher: Publisher,
    /// The numbers of the namespaced policies and their rules.
    numbers: NamespacedNumbers,
    /// Pod identity -> its number: a pod change only looks identities up.
    pod_identity_numbers: FxHashMap<PodIdentity, u32>,
    /// Number of holders (pod addresses, addressless pods) of each pod identity.
    holders: FxHashMap<u32, u32>,
    claims: IpCacheClaims,
    /// Every pod (host-network ones too) by node name ("" without one).
    node_pods: BTreeMap<String, BTreeSet<ObjectRef>>,
    /// Endpoint tables by everything they depend on: a pod like one that exists (a
    /// replica) gets its table without re-indexing the policies.
    shapes: FxHashMap<TableInput, (EndpointTable, SocketControls)>,
}

/// Everything an endpoint's table and socket controls depend on, given the policies
/// and identities: its namespace, labels and container ports, and its node's identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TableInput {
    namespace: String,
    labels: Labels,
    ports: Vec<ContainerPort>,
    own_node: Option<NodeIdentity>,
}

impl TableInput {
    fn of(pod_ref: &ObjectRef, pod: &Pod, identities: &Identities) -> Self {
        let node = pod.node_name.as_deref().unwrap_or_default();
        Self {
            namespace: pod_ref.namespace.clone(),
            labels: pod.labels.clone(),
            ports: pod.ports.clone(),
            own_node: identities.named_nodes.get(node).cloned(),
        }
    }
}

/// The policy indexes of a cluster state, built on first use (the cluster policies'
/// rules are those of the last full compile; the namespaced policies are numbered by
/// `numbers`).
struct LazyIndexes<'a> {
    cluster: &'a Cluster,
    trust_boundaries: &'a [ClusterPolicy],
    numbers: &'a NamespacedNumbers,
    indexes: std::cell::OnceCell<Indexes<'a>>,
}

impl<'a> LazyIndexes<'a> {
    fn new(
        cluster: &'a Cluster,
        trust_boundaries: &'a [ClusterPolicy],
        numbers: &'a NamespacedNumbers,
    ) -> Self {
        Self {
            cluster,
            trust_boundaries,
            numbers,
            indexes: std::cell::OnceCell::new(),
        }
    }

    fn get(&self) -> &Indexes<'a> {
        self.indexes
            .get_or_init(|| Indexes::numbered(self.cluster, self.trust_boundaries, self.numbers))
    }
}

impl Compiler {
    /// Compiles `cluster` from scratch.
    pub fn new(cluster: Cluster) -> Self {
        let (compiled, state) = State::full(&cluster);
        Self {
            cluster,
            compiled,
            state,
            delta: Delta::default(),
        }
    }

    /// The cluster state compiled.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The compiled form of [`Compiler::cluster`].
    pub fn compiled(&self) -> &CompiledCluster {
        &self.compiled
    }

    /// What changed since the last call (or since [`Compiler::new`]), and starts over.
    pub fn take_delta(&mut self) -> Delta {
        std::mem::take(&mut self.delta)
    }

    /// Applies one change.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::PodUpsert(pod) => self.pod(pod.object_ref(), Some(pod)),
            Change::PodDelete(pod_ref) => self.pod(pod_ref, None),
            Change::ServiceUpsert(service) => {
                let key = ObjectRef {
                    namespace: service.namespace.clone(),
                    name: service.name.clone(),
                };
                self.cluster.services.insert(key, service);
                self.recompile_services();
            }
            Change::ServiceDelete(key) => {
                self.cluster.services.remove(&key);
                self.recompile_services();
            }
            Change::EndpointSliceUpsert(slice) => {
                let key = ObjectRef {
                    namespace: slice.namespace.clone(),
                    name: slice.name.clone(),
                };
                self.cluster.endpoint_slices.insert(key, slice);
                self.recompile_services();
            }
            Change::EndpointSliceDelete(key) => {
                self.cluster.endpoint_slices.remove(&key);
                self.recompile_services();
            }
            Change::NetworkPolicyUpsert(policy) => self.network_policy(policy),
            Change::NetworkPolicyDelete(key) => self.network_policy_delete(key),
            Change::EgressPolicyUpsert(policy) => self.egress_policy(policy),
            Change::EgressPolicyDelete(key) => self.egress_policy_delete(key),
            Change::NamespaceUpsert(namespace) => {
                let name = namespace.name.clone();
                if self.change_cluster(Change::NamespaceUpsert(namespace)) {
                    self.namespace_changed(&name);
                }
            }
            Change::NamespaceDelete(name) => {
                if self.change_cluster(Change::NamespaceDelete(name.clone())) {
                    self.namespace_changed(&name);
                }
            }
            other => {
                if self.change_cluster(other) {
                    self.recompile();
                }
            }
        }
    }

    /// Applies a change the incremental path does not handle to the cluster; whether
    /// anything changed.
    fn change_cluster(&mut self, change: Change) -> bool {
        let cluster = &mut self.cluster;
        fn upsert<K: Ord, V: PartialEq>(map: &mut BTreeMap<K, V>, key: K, value: V) -> bool {
            if map.get(&key) == Some(&value) {
                return false;
            }
            map.insert(key, value);
            true
        }
        match change {
            Change::NamespaceUpsert(namespace) => {
                upsert(&mut cluster.namespaces, namespace.name.clone(), namespace)
            }
            Change::NamespaceDelete(name) => cluster.namespaces.remove(&name).is_some(),
            Change::NodeUpsert(node) => upsert(&mut cluster.nodes, node.name.clone(), node),
            Change::NodeDelete(name) => cluster.nodes.remove(&name).is_some(),
            Change::NetworkPolicyUpsert(policy) => {
                let key = ObjectRef {
                    namespace: policy.namespace.clone(),
                    name: policy.name.clone(),
                };
                upsert(&mut cluster.network_policies, key, policy)
            }
            Change::NetworkPolicyDelete(key) => cluster.network_policies.remove(&key).is_some(),
            Change::ClusterPolicyUpsert(policy) => {
                upsert(&mut cluster.cluster_policies, policy.policy_ref(), policy)
            }
            Change::ClusterPolicyDelete(key) => cluster.cluster_policies.remove(&key).is_some(),
            Change::TrustBoundaryUpsert(boundary) => upsert(
                &mut cluster.trust_boundaries,
                boundary.name.clone(),
                boundary,
            ),
            Change::TrustBoundaryDelete(name) => cluster.trust_boundaries.remove(&name).is_some(),
            Change::EgressPolicyUpsert(policy) => {
                let key = ObjectRef {
                    namespace: policy.namespace.clone(),
                    name: policy.name.clone(),
                };
                upsert(&mut cluster.egress_policies, key, policy)
            }
            Change::EgressPolicyDelete(key) => cluster.egress_policies.remove(&key).is_some(),
            Change::PodUpsert(_)
            | Change::PodDelete(_)
            | Change::ServiceUpsert(_)
            | Change::ServiceDelete(_)
            | Change::EndpointSliceUpsert(_)
            | Change::EndpointSliceDelete(_) => true,
        }
    }

    /// After the labels of the namespace `name` changed: its pods' identities and
    /// tables (cluster policies select subjects by namespace labels) are re-resolved,
    /// unless TrustBoundary zones (which group namespaces by label) changed.
    fn namespace_changed(&mut self, name: &str) {
        if trust_boundary::expand(&self.cluster) != self.state.trust_boundaries {
            self.recompile();
            return;
        }
        self.state.shapes.retain(|input, _| input.namespace != name);
        let first = ObjectRef {
            namespace: name.to_string(),
            name: String::new(),
        };
        let pods: Vec<(ObjectRef, Option<String>)> = self
            .cluster
            .pods
            .range(first..)
            .take_while(|(pod_ref, _)| pod_ref.namespace == name)
            .map(|(pod_ref, pod)| {
                (
                    pod_ref.clone(),
                    Some(pod.node_name.clone().unwrap_or_default()),
                )
            })
            .collect();
        if !self.pods_incrementally(&pods) {
            self.recompile();
        }
    }

    /// Recompiles everything from the cluster state and records the difference.
    fn recompile(&mut self) {
        // The old state goes first: two at once would double the peak memory.
        self.state = State::default();
        let (compiled, state) = State::full(&self.cluster);
        diff(&self.compiled, &compiled, &mut self.delta);
        self.delta.full_recompile = true;
        self.compiled = compiled;
        self.state = state;
    }

    /// Recomputes the Service table (which depends on Services, EndpointSlices and
    /// pods, nothing else).
    fn recompile_services(&mut self) {
        let services = services::compile(&self.cluster);
        if services != self.compiled.services {
            self.compiled.services = services;
            self.delta.services = true;
        }
    }
}

impl State {
    fn full(cluster: &Cluster) -> (CompiledCluster, State) {
        let FullCompile {
            compiled,
            trust_boundaries,
            blocks,
            egress_port_names,
            identities,
            peer_identities,
            memo,
            pod_tables,
            published,
            rule_refs,
            numbers,
        } = compile_full(cluster, RulePublication::All);
        let publisher = Publisher::new(&compiled, published, &rule_refs);
        let pod_identity_numbers = identities
            .pods
            .iter()
            .map(|(number, identity)| (identity.clone(), *number))
            .collect();
        let mut holders: FxHashMap<u32, u32> = FxHashMap::default();
        for (pod_ref, identity) in &identities.endpoints {
            match identities.pod_addresses.get(pod_ref) {
                Some(addresses) => {
                    for (_, number) in addresses {
                        *holders.entry(*number).or_default() += 1;
                    }
                }
                None => *holders.entry(*identity).or_default() += 1,
            }
        }
        let claims = IpCacheClaims::build(&identities, &compiled.ipcache);
        let mut node_pods: BTreeMap<String, BTreeSet<ObjectRef>> = BTreeMap::new();
        for (pod_ref, pod) in &cluster.pods {
            node_pods
                .entry(pod.node_name.clone().unwrap_or_default())
                .or_default()
                .insert(pod_ref.clone());
        }
        let mut shapes = FxHashMap::default();
        for (pod_ref, tables) in &pod_tables {
            if let Some(pod) = cluster.pods.get(pod_ref) {
                shapes
                    .entry(TableInput::of(pod_ref, pod, &identities))
                    .or_insert_with(|| tables.clone());
            }
        }
        let state = State {
            shapes,
            trust_boundaries,
            blocks,
            egress_port_names,
            identities,
            peer_identities,
            memo,
            pod_tables,
            publisher,
            numbers,
            pod_identity_numbers,
            holders,
            claims,
            node_pods,
        };
        (compiled, state)
    }
}

/// Records in `delta` what differs from `old` to `new`.
fn diff(old: &CompiledCluster, new: &CompiledCluster, delta: &mut Delta) {
    for id in old.identities.keys().chain(new.identities.keys()) {
        if old.identities.get(id) != new.identities.get(id) {
            delta.identities.insert(*id);
        }
    }
    let as_map = |entries: &[IpCacheEntry]| -> BTreeMap<IpNet, u32> {
        entries.iter().map(|e| (e.prefix, e.identity)).collect()
    };
    let (old_cache, new_cache) = (as_map(&old.ipcache), as_map(&new.ipcache));
    for prefix in old_cache.keys().chain(new_cache.keys()) {
        if old_cache.get(prefix) != new_cache.get(prefix) {
            delta.ipcache.insert(*prefix);
        }
    }
    // A table whose rows are the same but cite a renumbered rule changed too.
    let rule_count = old.rules.len().max(new.rules.len());
    let changed_rules: BTreeSet<u32> = (0..rule_count)
        .filter(|i| old.rules.get(*i) != new.rules.get(*i))
        .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
        .collect();
    if !changed_rules.is_empty() {
        delta.rules = true;
    }
    let cites_changed_rule = |table: &super::tables::PolicyTable| {
        !changed_rules.is_empty()
            && table
                .rows
                .iter()
                .filter_map(|row| row.rule_ref)
                .chain(table.fqdn_rules.iter().filter_map(|rule| rule.rule_ref))
                .any(|rule| changed_rules.contains(&rule))
    };
    let tables = old.policy_tables.len().max(new.policy_tables.len());
    let mut changed_tables = BTreeSet::new();
    for index in 0..tables {
        let (before, after) = (old.policy_tables.get(index), new.policy_tables.get(index));
        if before != after || after.is_some_and(cites_changed_rule) {
            changed_tables.insert(u32::try_from(index).unwrap_or(u32::MAX));
        }
    }
    for name in old.nodes.keys().chain(new.nodes.keys()) {
        let changed = match (old.nodes.get(name), new.nodes.get(name)) {
            (Some(a), Some(b)) => {
                a != b
                    || b.policy_tables
                        .iter()
                        .any(|r| changed_tables.contains(&r.table))
            }
            _ => true,
        };
        if changed {
            delta.nodes.insert(name.clone());
        }
    }
    delta.policy_tables.extend(changed_tables);
    if old.services != new.services {
        delta.services = true;
    }
}
