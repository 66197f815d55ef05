//! One pass of standalone mode: read the manifests directory, compile it when it
//! changed, resolve this node's pods to cgroups, and publish the result if it differs
//! from what the kernel holds. Any error leaves the last published state in force.

use crate::cgroupfs;
use crate::datapath::tables::{ApplyStats, TableWriter};
use crate::desired::{self, DesiredState};
use crate::status::PendingPod;
use anyhow::{Context, Result};
use palisade_abi::{EndpointInfo, NodeConfig};
use palisade_policy::compile::{self, tables::CompiledCluster};
use palisade_policy::model::{Cluster, Direction, EgressPolicy, Enforcement, ObjectRef};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub struct Reconciler {
    pub manifests: PathBuf,
    pub node: String,
    pub cgroup_mount: PathBuf,
    pub cgroup_root: PathBuf,
    pub config: NodeConfig,
    /// Last manifests that compiled, with their hash.
    compiled: Option<(String, Arc<CompiledCluster>)>,
    /// Addresses of the pods of those manifests.
    pod_ips: BTreeMap<ObjectRef, Vec<IpAddr>>,
    /// The same, by address (for naming the peers of flow events).
    pods_by_ip: Arc<BTreeMap<IpAddr, ObjectRef>>,
    /// NetworkPolicies isolating this node's pods (for naming isolation defaults).
    isolating: Arc<Isolating>,
    /// EgressPolicies behind this node's pods' socket controls (for naming refusals).
    socket_policies: Arc<SocketPolicies>,
    /// The inputs of the state last published (manifest hash, cgroup ids): the desired
    /// state is a function of them, so an unchanged pair needs no rebuild.
    published_inputs: Option<(String, BTreeMap<ObjectRef, u64>)>,
    /// The agent's own cgroup id, when it lies below the protected root.
    own_cgroup: Option<u64>,
}

/// What a pass saw and did.
pub struct PassReport {
    pub observed_hash: String,
    pub applied_hash: String,
    pub compiled: Arc<CompiledCluster>,
    pub cgroup_ids: BTreeMap<ObjectRef, u64>,
    pub pending: Vec<PendingPod>,
    /// Set when the kernel tables were rewritten.
    pub published: Option<ApplyStats>,
    pub pods_by_ip: Arc<BTreeMap<IpAddr, ObjectRef>>,
    pub isolating: Arc<Isolating>,
    pub socket_policies: Arc<SocketPolicies>,
}

/// pod -> the EgressPolicies whose `sockets` stanza restricts its sockets.
pub type SocketPolicies = BTreeMap<ObjectRef, Vec<ObjectRef>>;

/// (pod, direction) -> the NetworkPolicies that isolate the pod in that direction.
pub type Isolating = BTreeMap<(ObjectRef, Direction), Vec<ObjectRef>>;

/// A pass that could not apply the manifests on disk.
pub struct PassError {
    pub observed_hash: Option<String>,
    pub error: anyhow::Error,
}

impl Reconciler {
    pub fn new(
        manifests: PathBuf,
        node: String,
        cgroup_mount: PathBuf,
        cgroup_root: PathBuf,
        config: NodeConfig,
    ) -> Self {
        let own_cgroup = cgroupfs::own_cgroup(&cgroup_mount)
            .ok()
            .filter(|dir| dir.starts_with(&cgroup_root))
            .and_then(|dir| cgroupfs::cgroup_id(&dir).ok());
        Self {
            manifests,
            node,
            cgroup_mount,
            cgroup_root,
            config,
            compiled: None,
            pod_ips: BTreeMap::new(),
            pods_by_ip: Arc::default(),
            isolating: Arc::default(),
            socket_policies: Arc::default(),
            published_inputs: None,
            own_cgroup,
        }
    }

    pub fn pass(&mut self, tables: &mut TableWriter) -> Result<PassReport, PassError> {
        let set = palisade_manifests::read_dir(&self.manifests).map_err(|e| PassError {
            observed_hash: None,
            error: anyhow::Error::new(e),
        })?;
        let observed_hash = set.hash.clone();
        let fail = |error: anyhow::Error| PassError {
            observed_hash: Some(observed_hash.clone()),
            error,
        };
        if self.compiled.as_ref().map(|(h, _)| h) != Some(&set.hash) {
            let mut cluster = set.parse().map_err(|e| fail(anyhow::anyhow!("{e}")))?;
            // Standalone mode: a pod that names no node runs on this one.
            for pod in cluster.pods.values_mut() {
                if pod.node_name.is_none() {
                    pod.node_name = Some(self.node.clone());
                }
            }
            let compiled = compile::compile(&cluster);
            self.pod_ips = cluster
                .pods
                .iter()
                .map(|(pod, p)| (pod.clone(), p.ips.clone()))
                .collect();
            self.pods_by_ip = Arc::new(
                cluster
                    .pods
                    .iter()
                    .filter(|(_, p)| !p.host_network)
                    .flat_map(|(pod, p)| p.ips.iter().map(move |ip| (*ip, pod.clone())))
                    .collect(),
            );
            self.isolating = Arc::new(isolating(&cluster, &self.node));
            self.socket_policies = Arc::new(socket_policies(&cluster, &self.node));
            self.compiled = Some((set.hash.clone(), Arc::new(compiled)));
        }
        let (applied_hash, compiled) = self.compiled.clone().expect("set above");
        let (cgroup_ids, pending) = self.resolve_cgroups(&compiled);
        let inputs = (applied_hash.clone(), cgroup_ids.clone());
        let mut published = None;
        if self.published_inputs.as_ref() != Some(&inputs) {
            let desired = self.desired_state(&compiled, &cgroup_ids);
            let stats = tables
                .apply(&desired)
                .context("publishing tables to the kernel")
                .map_err(fail)?;
            self.published_inputs = Some(inputs);
            published = Some(stats);
        }
        Ok(PassReport {
            observed_hash,
            applied_hash,
            compiled,
            cgroup_ids,
            pending,
            published,
            pods_by_ip: self.pods_by_ip.clone(),
            isolating: self.isolating.clone(),
            socket_policies: self.socket_policies.clone(),
        })
    }

    /// What this node's maps must hold for these compiled tables and cgroups.
    fn desired_state(
        &self,
        compiled: &CompiledCluster,
        cgroup_ids: &BTreeMap<ObjectRef, u64>,
    ) -> DesiredState {
        let mut desired =
            desired::build(compiled, &self.node, cgroup_ids, &self.pod_ips, self.config);
        if let Some(own) = self.own_cgroup {
            // The agent's own cgroup is never enforced, whatever the unknown-endpoint
            // default: an entry with no enforcement flags.
            desired.endpoints.entry(own).or_insert(EndpointInfo {
                identity: palisade_abi::reserved::HOST,
                policy_id: 0,
                flags: 0,
                _pad: 0,
            });
        }
        desired
    }

    /// Maps this node's endpoints to cgroup ids; the rest are pending, with why.
    fn resolve_cgroups(
        &self,
        compiled: &CompiledCluster,
    ) -> (BTreeMap<ObjectRef, u64>, Vec<PendingPod>) {
        let mut ids = BTreeMap::new();
        let mut pending = Vec::new();
        let Some(tables) = compiled.nodes.get(&self.node) else {
            return (ids, pending);
        };
        for ep in &tables.endpoints {
            let pend = |reason: String| PendingPod {
                pod: ep.pod.to_string(),
                reason,
            };
            let Some(path) = &ep.cgroup_path else {
                // Without the annotation the agent cannot find the pod: it is a peer only.
                continue;
            };
            let dir = match cgroupfs::resolve_cgroup_path(&self.cgroup_mount, path) {
                Ok(dir) => dir,
                Err(e) => {
                    pending.push(pend(e.to_string()));
                    continue;
                }
            };
            if !dir.starts_with(&self.cgroup_root) {
                pending.push(pend(format!(
                    "cgroup {path} is outside --cgroup-root {}",
                    self.cgroup_root.display()
                )));
                continue;
            }
            match cgroupfs::cgroup_id(&dir) {
                Ok(id) => {
                    ids.insert(ep.pod.clone(), id);
                }
                Err(_) => pending.push(pend(format!("cgroup {path} does not exist yet"))),
            }
        }
        (ids, pending)
    }
}

/// For each pod of `node` and direction, the NetworkPolicies of its namespace that
/// select it and list the direction in `policyTypes` (as `palisadectl check` names
/// an isolation default).
fn isolating(cluster: &Cluster, node: &str) -> Isolating {
    let mut out = Isolating::new();
    for (pod_ref, pod) in &cluster.pods {
        if pod.node_name.as_deref() != Some(node) {
            continue;
        }
        for direction in [Direction::Ingress, Direction::Egress] {
            let policies: Vec<ObjectRef> = cluster
                .network_policies
                .iter()
                .filter(|(policy_ref, policy)| {
                    policy_ref.namespace == pod.namespace
                        && policy.isolates(direction)
                        && policy.pod_selector.matches(&pod.labels)
                })
                .map(|(policy_ref, _)| policy_ref.clone())
                .collect();
            if !policies.is_empty() {
                out.insert((pod_ref.clone(), direction), policies);
            }
        }
    }
    out
}

/// For each pod of `node`, its effective EgressPolicies (the enforcing ones of its
/// namespace that select it, else the audit ones, as the compiler picks them) that
/// have a `sockets` stanza: the policies a socket refusal names.
fn socket_policies(cluster: &Cluster, node: &str) -> SocketPolicies {
    let mut out = SocketPolicies::new();
    for (pod_ref, pod) in &cluster.pods {
        if pod.node_name.as_deref() != Some(node) {
            continue;
        }
        let selecting = |enforcement: Enforcement| -> Vec<(&ObjectRef, &EgressPolicy)> {
            cluster
                .egress_policies
                .iter()
                .filter(|(_, p)| {
                    p.namespace == pod.namespace
                        && p.enforcement == enforcement
                        && p.pod_selector.matches(&pod.labels)
                })
                .collect()
        };
        let mut effective = selecting(Enforcement::Enforce);
        if effective.is_empty() {
            effective = selecting(Enforcement::Audit);
        }
        let named: Vec<ObjectRef> = effective
            .into_iter()
            .filter(|(_, p)| p.sockets.is_some())
            .map(|(r, _)| r.clone())
            .collect();
        if !named.is_empty() {
            out.insert(pod_ref.clone(), named);
        }
    }
    out
}
