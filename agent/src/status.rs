//! The agent's observable state, shared by the reconcile loop (writer) and the
//! health server and event reader (readers).

use palisade_policy::compile::tables::{CompiledCluster, RuleInfo};
use palisade_policy::model::{Direction, ObjectRef};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

/// What `/status` returns.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    pub node: String,
    pub abi_version: u32,
    pub pin_path: String,
    pub cgroup_root: String,
    /// Generation of the tables the kernel reads (bumped at every publication).
    pub generation: u32,
    /// Hash of the manifests whose compiled state is in the kernel (`None` before
    /// the first successful apply). See `palisade_manifests::ManifestSet::hash`.
    pub manifest_hash: Option<String>,
    /// Hash of the manifests last read from disk (may differ from `manifest_hash`
    /// while they do not compile: the last good state keeps being enforced).
    pub observed_manifest_hash: Option<String>,
    /// True when the manifests on disk are the ones applied.
    pub ready: bool,
    /// The error that keeps the current manifests from being applied.
    pub last_error: Option<String>,
    /// Enforced pods on this node.
    pub endpoints: usize,
    /// Pods of this node not enforced yet, with the reason (cgroup missing, outside
    /// the protected root).
    pub pending: Vec<PendingPod>,
    /// BPF LSM on this node (socket controls need it); `None` if it could not be
    /// determined.
    pub lsm: Option<crate::lsm::LsmStatus>,
    /// How each EgressPolicy socket control is enforced on this node.
    pub socket_controls: SocketControlsStatus,
    /// Packets decided by the kernel programs since the maps were created, by reason.
    pub packets: BTreeMap<&'static str, u64>,
    /// Flow events: how many were read and streamed, and how many were lost where.
    pub events: EventsStatus,
    /// The conntrack table: size, occupancy, and what happened when it was full.
    pub conntrack: ConntrackStatus,
    /// Kubernetes mode only: what the API gave and what was applied from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesStatus>,
    /// Kubernetes mode only: the node's off switch as the kernel holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<EnforcementStatus>,
}

/// `/status.kubernetes`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct KubernetesStatus {
    /// The NodePolicy's spec.generation and contentHash as last received.
    pub node_policy_generation: Option<i64>,
    pub node_policy_hash: Option<String>,
    /// What is in the kernel (and written to the NodePolicy's status).
    pub applied_generation: Option<i64>,
    pub applied_hash: Option<String>,
    /// Why the received state is not (fully) applied, if it is not.
    pub waiting_for: Option<String>,
    /// False while a watch of the API server fails; the last applied state stays
    /// enforced meanwhile.
    pub api_connected: bool,
    /// The last watch or write error.
    pub api_error: Option<String>,
    /// The kubelet's kubepods cgroup (where the programs are attached) and its driver.
    pub kubepods: Option<String>,
    pub cgroup_driver: Option<String>,
    /// Pods bound to this node, and those with the PolicyProgrammed condition.
    pub pods: usize,
    pub programmed_pods: usize,
    /// Duration of the last kernel publication, in seconds.
    pub last_apply_seconds: Option<f64>,
}

/// `/status.enforcement`: whether the node enforces, and who switched it off.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct EnforcementStatus {
    pub enforcing: bool,
    /// `palisade-agent enforcement off` is in force.
    pub command_off: bool,
    /// The Node's `palisade.dev/enforcement=off` label is in force.
    pub node_label_off: bool,
}

/// `/status.events`. Every event the kernel decided to report is either `received`
/// or counted in `ring_buffer_full`; `rate_limited` events were never reported.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct EventsStatus {
    /// `--events-addr`, where `GET /events` streams them; None when not served.
    pub stream_addr: Option<String>,
    /// Read from the kernel ring buffer (logged, and streamed to subscribers).
    pub received: u64,
    /// Not written because the ring buffer was full (the agent fell behind): the
    /// kernel's `event_dropped` counter.
    pub ring_buffer_full: u64,
    /// Not written because their endpoint used up its event budget
    /// (`--events-per-second`, `--event-burst`): the kernel's `event_rate_limited`.
    pub rate_limited: u64,
    /// Skipped on the stream because a subscriber read too slowly (each such gap is a
    /// `{"type": "lost"}` line on its stream).
    pub stream_lagged: u64,
    /// Clients following `GET /events` now.
    pub subscribers: u64,
    /// Whether allowed new flows are reported too (`--allow-events`).
    pub allow_events: bool,
}

/// `/status.conntrack`. Entries are created by the kernel for each admitted new flow
/// and leave the table in one of two ways: removed because policy no longer allows
/// the flow, or evicted by the LRU when the table is full. Evicted flows are decided
/// by policy again on their next packet (never passed blindly).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ConntrackStatus {
    /// Size of the table in the kernel.
    pub max_entries: u32,
    /// `--conntrack-max`; differs from `max_entries` when a pinned table of another
    /// size was adopted (it is kept so that established flows survive a restart).
    pub requested_max_entries: u32,
    /// Live entries when last counted.
    pub entries: u64,
    /// Entries ever created (kernel counter `conntrack_created`).
    pub created: u64,
    /// Entries removed because policy now denies their flow (`conntrack_removed`).
    pub removed: u64,
    /// Entries the LRU evicted to make room: `created - removed - entries`, counted
    /// together (exact when the table is quiet, otherwise a close estimate).
    pub evicted: u64,
    /// Inserts the kernel refused (`conntrack_insert_failed`): the flow's packet
    /// passed, its replies were decided by policy.
    pub insert_failed: u64,
    /// TCP packets of an established flow that found no entry
    /// (`conntrack_miss_established`): decided by policy as new flows.
    pub miss_established: u64,
}

/// `/status.socket_controls`: `enforced (<hook>)` or `unavailable: <reason>` per
/// control. Raw sockets and bind ports need only cgroup hooks; AF_PACKET sockets need
/// BPF LSM (`lsm_cgroup/socket_post_create`), which a node may not have.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct SocketControlsStatus {
    pub raw_sockets: String,
    pub packet_sockets: String,
    pub bind_ports: String,
}

impl SocketControlsStatus {
    /// The status with the AF_PACKET control as the datapath found it.
    pub fn new(packet_sockets: &str) -> Self {
        Self {
            raw_sockets: "enforced (cgroup/sock_create)".into(),
            packet_sockets: packet_sockets.into(),
            bind_ports: "enforced (cgroup/bind4, cgroup/bind6)".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct PendingPod {
    pub pod: String,
    pub reason: String,
}

/// Names for the numbers in flow events: which pod a cgroup or an address is, which
/// rule a `rule_ref` is (per generation, since rule indexes change between them).
#[derive(Clone, Debug, Default)]
pub struct EventNames {
    pub pods_by_cgroup: BTreeMap<u64, ObjectRef>,
    /// Every pod address of the cluster (peers included).
    pub pods_by_ip: BTreeMap<IpAddr, ObjectRef>,
    /// What the last two generations were compiled from.
    pub generations: BTreeMap<u32, Arc<GenerationNames>>,
}

/// The names one published generation gives to rule numbers.
#[derive(Clone, Debug, Default)]
pub struct GenerationNames {
    /// Its rule table (`rule_ref` indexes `compiled.rules`).
    pub compiled: Arc<CompiledCluster>,
    /// The rules by `rule_ref`, where only the cited ones are known (Kubernetes mode:
    /// the NodePolicy's `rules`); consulted before `compiled.rules`.
    pub rules: BTreeMap<u32, RuleInfo>,
    /// For an isolation default (no rule): the NetworkPolicies isolating each local
    /// pod in each direction.
    pub isolating: BTreeMap<(ObjectRef, Direction), Vec<ObjectRef>>,
    /// For a socket control's refusal: the EgressPolicies behind each local pod's
    /// socket controls.
    pub socket_policies: BTreeMap<ObjectRef, Vec<ObjectRef>>,
}

impl GenerationNames {
    /// The rule a flow event's `rule_ref` names.
    pub fn rule(&self, rule_ref: u32) -> Option<&RuleInfo> {
        self.rules
            .get(&rule_ref)
            .or_else(|| self.compiled.rules.get(rule_ref as usize))
    }
}

#[derive(Clone, Default)]
pub struct Shared {
    pub status: Arc<RwLock<Status>>,
    pub names: Arc<RwLock<EventNames>>,
}
