//! Per-node tables: the node's own addresses, its endpoints, and one policy table per
//! distinct endpoint table, numbered so that endpoints with identical tables share it.
//!
//! Policy ids count from 1 per node, in the order of the first endpoint (by
//! namespace/name) that uses each table. Endpoints with nothing enforced have policy
//! id 0 and no rows: the kernel never looks their table up.

use super::endpoint_tables::{EndpointTable, EndpointTables};
use super::identity::Identities;
use super::rules::RuleId;
use super::tables::{EndpointEntry, NodeTables, PolicyEntry};
use crate::model::Cluster;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Policy id of endpoints without a table (nothing enforced).
pub const NO_POLICY: u32 = 0;

/// A node's tables, with rules still cited by [`RuleId`].
pub(crate) struct NodePlan {
    host_addresses: Vec<std::net::IpAddr>,
    endpoints: Vec<EndpointEntry>,
    /// By policy id.
    tables: Vec<(u32, EndpointTable)>,
}

impl NodePlan {
    /// Every node that has pods or a Node object; pods without a node go under "".
    pub fn plan_all(
        cluster: &Cluster,
        identities: &Identities,
        endpoint_tables: &mut EndpointTables,
    ) -> BTreeMap<String, NodePlan> {
        let mut plans: BTreeMap<String, NodePlan> = cluster
            .pods
            .values()
            .map(|pod| pod.node_name.clone().unwrap_or_default())
            .chain(cluster.nodes.keys().cloned())
            .map(|name| {
                let host_addresses = cluster
                    .nodes
                    .get(&name)
                    .map(|node| node.addresses.clone())
                    .unwrap_or_default();
                let plan = NodePlan {
                    host_addresses,
                    endpoints: Vec::new(),
                    tables: Vec::new(),
                };
                (name, plan)
            })
            .collect();

        let mut policy_ids: BTreeMap<String, HashMap<EndpointTable, u32>> = BTreeMap::new();
        for (pod_ref, pod) in &cluster.pods {
            // Host-network pods have no endpoint identity: they are not endpoints.
            let Some(identity) = identities.endpoints.get(pod_ref) else {
                continue;
            };
            let node = pod.node_name.clone().unwrap_or_default();
            let Some(plan) = plans.get_mut(&node) else {
                continue;
            };
            let table = endpoint_tables.table(pod_ref, pod);
            let policy_id = if table.is_unenforced() {
                NO_POLICY
            } else {
                let ids = policy_ids.entry(node).or_default();
                let next = u32::try_from(ids.len() + 1).unwrap_or(u32::MAX);
                *ids.entry(table.clone()).or_insert_with(|| {
                    plan.tables.push((next, table.clone()));
                    next
                })
            };
            plan.endpoints.push(EndpointEntry {
                pod: pod_ref.clone(),
                cgroup_path: pod.cgroup_path.clone(),
                identity: *identity,
                policy_id,
                enforce_ingress: table.ingress.is_some(),
                enforce_egress: table.egress.is_some(),
            });
        }
        plans
    }

    pub fn cited_rules(&self) -> impl Iterator<Item = RuleId> + '_ {
        self.tables
            .iter()
            .flat_map(|(_, table)| table.rows())
            .filter_map(|row| row.outcome.rule)
    }

    /// The published tables, with rules cited by their index in `rule_refs`.
    pub fn finish(self, rule_refs: &BTreeMap<RuleId, u32>) -> NodeTables {
        let mut policy: Vec<PolicyEntry> = self
            .tables
            .iter()
            .flat_map(|(policy_id, table)| {
                table.rows().map(move |row| PolicyEntry {
                    policy_id: *policy_id,
                    peer_identity: row.peer_identity,
                    direction: row.direction,
                    protocol: row.protocol,
                    port: row.port,
                    port_prefix_len: row.port_prefix_len,
                    verdict: row.outcome.verdict,
                    rule_ref: row
                        .outcome
                        .rule
                        .and_then(|rule| rule_refs.get(&rule).copied()),
                })
            })
            .collect();
        policy.sort_unstable();
        NodeTables {
            host_addresses: self.host_addresses,
            endpoints: self.endpoints,
            policy,
        }
    }
}

/// Every rule some node cites.
pub(crate) fn cited_rules(plans: &BTreeMap<String, NodePlan>) -> BTreeSet<RuleId> {
    plans.values().flat_map(NodePlan::cited_rules).collect()
}
