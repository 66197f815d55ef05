//! Per-node tables: the node's own addresses, its endpoints (with their socket
//! controls), and one policy table (rows and DNS name rules) per distinct endpoint
//! table, numbered so that endpoints with identical tables share it.
//!
//! Policy ids count from 1 per node, in the order of the first endpoint (by
//! namespace/name) that uses each table. Endpoints with nothing enforced have policy
//! id 0 and no rows: the kernel never looks their table up. The tables themselves are
//! published once for the whole cluster ([`PublishedTables`]); nodes refer to them.

use super::egress_policy::SocketControls;
use super::endpoint_tables::{EndpointTable, EndpointTables, TableKey};
use super::identity::Identities;
use super::rules::{RuleId, RuleRefs};
use super::tables::{EndpointEntry, NodeTables, PolicyTable, TableFqdnRule, TableRef};
use crate::model::{Cluster, NodePeer, ObjectRef, Pod};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Policy id of endpoints without a table (nothing enforced).
pub const NO_POLICY: u32 = 0;

/// Each endpoint's table and socket controls, as planned: what the incremental
/// compiler rebuilds a node's plan from when one of its pods changes.
pub(crate) type PodTables = FxHashMap<ObjectRef, (EndpointTable, SocketControls)>;

/// A node's tables, with rules still cited by [`RuleId`].
#[derive(Default)]
pub(crate) struct NodePlan {
    host_addresses: Vec<IpAddr>,
    endpoints: Vec<EndpointEntry>,
    /// Each distinct table with its policy id, in id order.
    tables: Vec<(u32, EndpointTable)>,
    policy_ids: FxHashMap<TableKey, u32>,
}

impl NodePlan {
    /// Every node that has pods or a Node object; pods without a node go under "".
    /// A node's own addresses (`nodes`, the cluster's [`Cluster::node_peers`]) are its
    /// Node object's and its host-network pods'.
    pub fn plan_all(
        cluster: &Cluster,
        nodes: &[NodePeer],
        identities: &Identities,
        endpoint_tables: &mut EndpointTables,
        pod_tables: &mut PodTables,
    ) -> BTreeMap<String, NodePlan> {
        let node_names = cluster
            .pods
            .values()
            .map(|pod| pod.node_name.clone().unwrap_or_default())
            .chain(cluster.nodes.keys().cloned());
        let mut plans: BTreeMap<String, NodePlan> =
            node_names.map(|name| (name, NodePlan::default())).collect();
        for node in nodes {
            if let Some(plan) = node.name.as_ref().and_then(|name| plans.get_mut(name)) {
                plan.host_addresses = node.addresses.clone();
            }
        }

        for (pod_ref, pod) in &cluster.pods {
            // Host-network pods have no endpoint identity: they are not endpoints.
            let Some(identity) = identities.endpoints.get(pod_ref) else {
                continue;
            };
            let node = pod.node_name.as_deref().unwrap_or_default();
            if let Some(plan) = plans.get_mut(node) {
                let table = endpoint_tables.table(pod_ref, pod, identities.named_nodes.get(node));
                let sockets = endpoint_tables.socket_controls(pod_ref, pod);
                pod_tables.insert(pod_ref.clone(), (table.clone(), sockets.clone()));
                plan.add_endpoint(pod_ref, pod, *identity, table, sockets);
            }
        }
        plans
    }

    /// Adds an endpoint (in namespace/name order), sharing its table if an earlier
    /// endpoint has the same.
    pub fn add_endpoint(
        &mut self,
        pod_ref: &ObjectRef,
        pod: &Pod,
        identity: u32,
        table: EndpointTable,
        sockets: SocketControls,
    ) {
        let policy_id = if table.is_unenforced() {
            NO_POLICY
        } else {
            let next = u32::try_from(self.tables.len() + 1).unwrap_or(u32::MAX);
            *self
                .policy_ids
                .entry(table.sharing_key())
                .or_insert_with(|| {
                    self.tables.push((next, table.clone()));
                    next
                })
        };
        self.endpoints.push(EndpointEntry {
            pod: pod_ref.clone(),
            cgroup_path: pod.cgroup_path.clone(),
            identity,
            policy_id,
            enforce_ingress: table.ingress.is_some(),
            enforce_egress: table.egress.is_some(),
            deny_raw_sockets: sockets.deny_raw,
            deny_packet_sockets: sockets.deny_packet,
            bind_ports: sockets.bind_ports,
            audit_sockets: sockets.audit,
        });
    }

    /// A node without endpoints yet, whose own addresses are `host_addresses`.
    pub fn with_host_addresses(host_addresses: Vec<IpAddr>) -> Self {
        Self {
            host_addresses,
            ..Self::default()
        }
    }

    /// The published node, each table referred to by the index `publish` gives it.
    pub fn finish(self, mut publish: impl FnMut(&EndpointTable) -> u32) -> NodeTables {
        let policy_tables = self
            .tables
            .iter()
            .map(|(policy_id, table)| TableRef {
                policy_id: *policy_id,
                table: publish(table),
            })
            .collect();
        let mut host_addresses = self.host_addresses;
        host_addresses.sort_unstable();
        host_addresses.dedup();
        NodeTables {
            host_addresses,
            endpoints: self.endpoints,
            policy_tables,
        }
    }
}

/// The cluster's distinct policy tables, each published once, in order of first use.
pub(crate) struct PublishedTables<'r> {
    rule_refs: &'r RuleRefs,
    indexes: FxHashMap<TableKey, u32>,
    pub tables: Vec<PolicyTable>,
}

impl<'r> PublishedTables<'r> {
    pub fn new(rule_refs: &'r RuleRefs) -> Self {
        Self {
            rule_refs,
            indexes: FxHashMap::default(),
            tables: Vec::new(),
        }
    }

    /// The index of `table`'s published form, publishing it on first use, with rules
    /// cited by their index in `rule_refs`.
    pub fn index_of(&mut self, table: &EndpointTable) -> u32 {
        let next = u32::try_from(self.tables.len()).unwrap_or(u32::MAX);
        match self.indexes.entry(table.sharing_key()) {
            std::collections::hash_map::Entry::Occupied(entry) => *entry.get(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                self.tables.push(publish_table(table, self.rule_refs));
                *entry.insert(next)
            }
        }
    }

    /// The published tables, and each one's index by sharing key.
    pub fn into_parts(self) -> (Vec<PolicyTable>, FxHashMap<TableKey, u32>) {
        (self.tables, self.indexes)
    }
}

/// The published form of `table`, rules cited by their index in `rule_refs`.
pub(crate) fn publish_table(table: &EndpointTable, rule_refs: &RuleRefs) -> PolicyTable {
    let rows = match (&table.ingress, &table.egress) {
        // One direction, every rule published under its number (the incremental
        // compiler): the endpoint table's rows are the published rows, shared.
        (Some(rows), None) | (None, Some(rows)) if rule_refs.is_identity() => rows.clone(),
        _ => {
            let mut rows: Vec<_> = table.rows().map(|row| row.publish(rule_refs)).collect();
            rows.sort_unstable();
            rows.into()
        }
    };
    let mut fqdn_rules: Vec<TableFqdnRule> = table
        .fqdn_rules
        .iter()
        .map(|rule| TableFqdnRule {
            pattern: rule.pattern.clone(),
            ports: rule.ports.clone(),
            rule_ref: rule_refs.get(rule.rule),
        })
        .collect();
    fqdn_rules.sort_unstable();
    PolicyTable { rows, fqdn_rules }
}

/// Every rule some node cites. Nodes share their tables' rows (see
/// [`EndpointTable::sharing_key`]), so each distinct row list is read once.
pub(crate) fn cited_rules(plans: &BTreeMap<String, NodePlan>) -> BTreeSet<RuleId> {
    let mut seen = FxHashSet::default();
    let mut cited = BTreeSet::new();
    for plan in plans.values() {
        for (_, table) in &plan.tables {
            if seen.insert(table.sharing_key()) {
                cited.extend(table.rows().filter_map(|row| row.rule()));
                cited.extend(table.fqdn_rules.iter().map(|rule| rule.rule));
            }
        }
    }
    cited
}
