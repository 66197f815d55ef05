//! What the kernel must hold on this node, from what the API and the cgroup tree say:
//! the node's NodePolicy, the assembled cluster tables, the pods bound to the node and
//! the pod cgroups found. Pure: the driver gathers the inputs and writes the result.
//!
//! The NodePolicy names endpoints by namespace/name; the pods watch gives each one's
//! UID and addresses, and the UID finds its cgroup. An endpoint whose pod or cgroup is
//! not known yet is pending (the node's unknown-endpoint default covers its cgroup
//! meanwhile). Host-network pods are host traffic: their cgroup gets an entry that
//! enforces nothing, as the agent's own cgroup does, so the unknown-endpoint default
//! never applies to them.

use super::cluster_tables::ClusterTables;
use super::local_pods::LocalPod;
use crate::desired::{self, DesiredState};
use crate::status::PendingPod;
use palisade_abi::{EndpointInfo, NodeConfig};
use palisade_crds::publication::{NodePolicyContent, NodePolicySpec};
use palisade_policy::compile::tables::{CompiledCluster, NodeTables, TableRef};
use palisade_policy::model::ObjectRef;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// The node's NodePolicy, as the agent reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodePolicyInput {
    pub generation: i64,
    pub content_hash: String,
    pub content: NodePolicyContent,
}

/// Reads a NodePolicy's `spec`.
pub fn parse_node_policy(spec: &serde_json::Value) -> Result<NodePolicyInput, String> {
    let spec = NodePolicySpec::deserialize(spec).map_err(|e| e.to_string())?;
    Ok(NodePolicyInput {
        generation: spec.generation,
        content_hash: spec.content_hash,
        content: spec.content,
    })
}

pub struct PlanInputs<'a> {
    pub node: &'a str,
    pub node_policy: &'a NodePolicyInput,
    pub tables: &'a ClusterTables,
    /// The pods bound to this node, by UID.
    pub pods: &'a BTreeMap<String, LocalPod>,
    /// Pod UID -> cgroup id, for the pod cgroups found under kubepods.
    pub cgroups: &'a BTreeMap<String, u64>,
    pub config: NodeConfig,
    /// The agent's own cgroup id, when it lies below the protected root.
    pub own_cgroup: Option<u64>,
    /// The node's ip cache, made from `tables` and the NodePolicy's host addresses
    /// ([`desired::ipcache_table`]; the driver keeps it while neither changes).
    pub ipcache: std::sync::Arc<desired::IpCacheTable>,
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub desired: DesiredState,
    /// The compiled form of the inputs (for naming pods and rules in flow events).
    pub compiled: CompiledCluster,
    /// UIDs of the pods whose entry the desired state holds: endpoints, and
    /// host-network pods (host traffic).
    pub covered: BTreeSet<String>,
    /// Endpoints of the NodePolicy not enforced yet, with why.
    pub pending: Vec<PendingPod>,
    /// Endpoints with a cgroup entry.
    pub endpoints: usize,
    /// cgroup id -> pod, for flow events.
    pub pods_by_cgroup: BTreeMap<u64, ObjectRef>,
}

/// The entry of a cgroup that enforces nothing (host traffic).
const HOST_ENTRY: EndpointInfo = EndpointInfo::HOST_TRAFFIC;

pub fn plan(inputs: &PlanInputs) -> Plan {
    let compiled = compiled_cluster(inputs.node, inputs.node_policy, inputs.tables);
    let live = || inputs.pods.values().filter(|p| !p.finished);
    let by_ref: BTreeMap<&ObjectRef, Vec<&LocalPod>> =
        live().fold(BTreeMap::new(), |mut map, pod| {
            map.entry(&pod.pod).or_default().push(pod);
            map
        });
    let mut cgroup_ids: BTreeMap<ObjectRef, u64> = BTreeMap::new();
    let mut pod_ips: BTreeMap<ObjectRef, Vec<IpAddr>> = BTreeMap::new();
    let mut covered = BTreeSet::new();
    let mut pending = Vec::new();
    for ep in &inputs.node_policy.content.endpoints {
        let pend = |reason: &str| PendingPod {
            pod: ep.pod.to_string(),
            reason: reason.to_string(),
        };
        let Some(candidates) = by_ref.get(&ep.pod) else {
            pending.push(pend("not among this node's pods (yet)"));
            continue;
        };
        // A pod recreated under the same name: the one whose cgroup exists.
        let found = candidates
            .iter()
            .find_map(|p| inputs.cgroups.get(&p.uid).map(|id| (*p, *id)));
        let Some((pod, cgroup_id)) = found else {
            pending.push(pend("pod cgroup not found under kubepods (yet)"));
            continue;
        };
        cgroup_ids.insert(ep.pod.clone(), cgroup_id);
        pod_ips.insert(ep.pod.clone(), pod.ips.clone());
        covered.insert(pod.uid.clone());
    }
    let mut desired = desired::build_with_ipcache(
        &compiled,
        inputs.ipcache.clone(),
        inputs.node,
        &cgroup_ids,
        &pod_ips,
        inputs.config,
    );
    let endpoints = desired.endpoints.len();
    for pod in live().filter(|p| p.host_network) {
        if let Some(id) = inputs.cgroups.get(&pod.uid) {
            desired.endpoints.entry(*id).or_insert(HOST_ENTRY);
            covered.insert(pod.uid.clone());
        }
    }
    if let Some(own) = inputs.own_cgroup {
        desired.endpoints.entry(own).or_insert(HOST_ENTRY);
    }
    Plan {
        desired,
        compiled,
        covered,
        pending,
        endpoints,
        pods_by_cgroup: cgroup_ids.into_iter().map(|(pod, id)| (id, pod)).collect(),
    }
}

/// The inputs in the compiler's own form: the cluster tables plus this node's part,
/// its policy tables numbered by their node-local ids.
fn compiled_cluster(
    node: &str,
    policy: &NodePolicyInput,
    tables: &ClusterTables,
) -> CompiledCluster {
    let content = &policy.content;
    let policy_tables = content.policy_tables.values().cloned().collect();
    let table_refs = content
        .policy_tables
        .keys()
        .enumerate()
        .map(|(index, policy_id)| TableRef {
            policy_id: *policy_id,
            table: index as u32,
        })
        .collect();
    CompiledCluster {
        identities: tables.identities.clone(),
        // The ip cache reaches the desired state as `PlanInputs::ipcache`; flow events
        // name peers by identity.
        ipcache: Vec::new(),
        services: tables.services.clone(),
        policy_tables,
        rules: Vec::new(),
        nodes: BTreeMap::from([(
            node.to_string(),
            NodeTables {
                host_addresses: content.host_addresses.clone(),
                endpoints: content.endpoints.clone(),
                policy_tables: table_refs,
            },
        )]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_abi::endpoint_flags;
    use palisade_policy::compile::tables::{EndpointEntry, PolicyTable};

    fn pod(name: &str, uid: &str, ip: &str, host_network: bool) -> (String, LocalPod) {
        (
            uid.to_string(),
            LocalPod {
                uid: uid.into(),
                pod: ObjectRef {
                    namespace: "x".into(),
                    name: name.into(),
                },
                host_network,
                ips: vec![ip.parse().unwrap()],
                condition: None,
                finished: false,
            },
        )
    }

    fn endpoint(name: &str, policy_id: u32) -> EndpointEntry {
        EndpointEntry {
            pod: ObjectRef {
                namespace: "x".into(),
                name: name.into(),
            },
            cgroup_path: None,
            identity: 300,
            policy_id,
            enforce_ingress: policy_id != 0,
            enforce_egress: false,
            deny_raw_sockets: false,
            deny_packet_sockets: false,
            bind_ports: None,
            audit_sockets: false,
        }
    }

    fn node_policy() -> NodePolicyInput {
        let mut content = NodePolicyContent {
            host_addresses: vec!["192.168.0.1".parse().unwrap()],
            endpoints: vec![endpoint("db", 7), endpoint("web", 0), endpoint("later", 7)],
            ..Default::default()
        };
        content.policy_tables.insert(7, PolicyTable::default());
        NodePolicyInput {
            generation: 3,
            content_hash: "h".into(),
            content,
        }
    }

    fn ipcache(
        tables: &ClusterTables,
        policy: &NodePolicyInput,
    ) -> std::sync::Arc<desired::IpCacheTable> {
        std::sync::Arc::new(desired::ipcache_table(
            &tables.ipcache,
            &policy.content.host_addresses,
        ))
    }

    #[test]
    fn endpoints_with_a_pod_and_a_cgroup_are_covered_the_rest_pending() {
        let policy = node_policy();
        let tables = ClusterTables::default();
        let pods = BTreeMap::from([
            pod("db", "u-db", "10.0.0.1", false),
            pod("web", "u-web", "10.0.0.2", false),
            pod("agent", "u-agent", "192.168.0.1", true),
        ]);
        let cgroups = BTreeMap::from([
            ("u-db".to_string(), 11),
            ("u-web".to_string(), 12),
            ("u-agent".to_string(), 13),
        ]);
        let plan = plan(&PlanInputs {
            node: "n1",
            node_policy: &policy,
            tables: &tables,
            pods: &pods,
            cgroups: &cgroups,
            config: NodeConfig::default(),
            own_cgroup: Some(14),
            ipcache: ipcache(&tables, &policy),
        });
        assert_eq!(plan.endpoints, 2);
        assert_eq!(
            plan.covered,
            BTreeSet::from(["u-db".into(), "u-web".into(), "u-agent".into()])
        );
        assert_eq!(plan.pending.len(), 1);
        assert_eq!(plan.pending[0].pod, "x/later");
        let db = plan.desired.endpoints[&11];
        assert_eq!(db.policy_id, 7);
        assert_eq!(db.flags, endpoint_flags::ENFORCE_INGRESS);
        assert_eq!(plan.desired.endpoints[&12].flags, 0);
        // Host traffic: the host-network pod and the agent itself enforce nothing.
        assert_eq!(plan.desired.endpoints[&13], HOST_ENTRY);
        assert_eq!(plan.desired.endpoints[&14], HOST_ENTRY);
        // The node's own address is HOST.
        assert_eq!(plan.desired.ipcache.len(), 1);
        assert_eq!(plan.desired.local_addrs.len(), 2);
        assert_eq!(plan.pods_by_cgroup[&11].name, "db");
    }

    #[test]
    fn a_pod_without_a_cgroup_or_a_finished_pod_is_pending() {
        let policy = node_policy();
        let tables = ClusterTables::default();
        let mut pods = BTreeMap::from([
            pod("db", "u-db", "10.0.0.1", false),
            pod("web", "u-web", "10.0.0.2", false),
        ]);
        pods.get_mut("u-web").unwrap().finished = true;
        let cgroups = BTreeMap::from([("u-web".to_string(), 12)]);
        let plan = plan(&PlanInputs {
            node: "n1",
            node_policy: &policy,
            tables: &tables,
            pods: &pods,
            cgroups: &cgroups,
            config: NodeConfig::default(),
            own_cgroup: None,
            ipcache: ipcache(&tables, &policy),
        });
        assert!(plan.desired.endpoints.is_empty());
        assert!(plan.covered.is_empty());
        let reasons: Vec<&str> = plan.pending.iter().map(|p| p.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "pod cgroup not found under kubepods (yet)",
                "not among this node's pods (yet)",
                "not among this node's pods (yet)"
            ]
        );
    }

    #[test]
    fn a_published_node_policy_reads_back() {
        let policy = node_policy();
        let spec = palisade_crds::publication::NodePolicySpec {
            generation: policy.generation,
            content_hash: policy.content_hash.clone(),
            content: policy.content.clone(),
        };
        let value = serde_json::to_value(&spec).unwrap();
        assert_eq!(parse_node_policy(&value).unwrap(), policy);
        let err = parse_node_policy(&serde_json::json!({"contentHash": "h"})).unwrap_err();
        assert!(err.contains("generation"), "{err}");
    }

    #[test]
    fn a_recreated_pod_uses_the_instance_whose_cgroup_exists() {
        let policy = node_policy();
        let tables = ClusterTables::default();
        let pods = BTreeMap::from([
            pod("db", "u-old", "10.0.0.1", false),
            pod("db", "u-new", "10.0.0.9", false),
        ]);
        let cgroups = BTreeMap::from([("u-new".to_string(), 21)]);
        let plan = plan(&PlanInputs {
            node: "n1",
            node_policy: &policy,
            tables: &tables,
            pods: &pods,
            cgroups: &cgroups,
            config: NodeConfig::default(),
            own_cgroup: None,
            ipcache: ipcache(&tables, &policy),
        });
        assert_eq!(plan.covered, BTreeSet::from(["u-new".to_string()]));
        assert!(plan.desired.endpoints.contains_key(&21));
    }
}
