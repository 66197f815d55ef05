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
                plan.add_endpoint(pod_ref, pod, *identity, table, sockets);
            }
        }
        plans
    }

    /// Adds an endpoint (in namespace/name order), sharing its table if an earlier
    /// endpoint has the same.
    fn add_endpoint(
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

    /// The published node, its tables entered in `published`.
    pub fn finish(self, published: &mut PublishedTables) -> NodeTables {
        let policy_tables = self
            .tables
            .iter()
            .map(|(policy_id, table)| TableRef {
                policy_id: *policy_id,
                table: published.index_of(table),
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
    fn index_of(&mut self, table: &EndpointTable) -> u32 {
        let next = u32::try_from(self.tables.len()).unwrap_or(u32::MAX);
        match self.indexes.entry(table.sharing_key()) {
            std::collections::hash_map::Entry::Occupied(entry) => *entry.get(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let rule_refs = self.rule_refs;
                let mut rows: Vec<_> = table.rows().map(|row| row.publish(rule_refs)).collect();
                rows.sort_unstable();
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
                self.tables.push(PolicyTable { rows, fqdn_rules });
                *entry.insert(next)
            }
        }
    }
}

/// Every rule some node cites. Nodes share their tables' rows (see
/// [`EndpointTable::sharing_key`]), so each distinct row list is read once.
pub(crate) fn cited_rules(plans: &BTreeMap<String, NodePlan>) -> BTreeSet<RuleId> {
    let mut seen = FxHashSet::default();
    let mut cited = BTreeSet::new();
    for plan in plans.values() {
        for (_, table) in &plan.tables {
            if seen.insert(table.sharing_key()) {
                cited.extend(table.rows().filter_map(|row| row.outcome.rule));
                cited.extend(table.fqdn_rules.iter().map(|rule| rule.rule));
            }
        }
    }
    cited
}
