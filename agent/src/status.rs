//! The agent's observable state, shared by the reconcile loop (writer) and the
//! health server and event reader (readers).

use palisade_policy::compile::tables::RuleInfo;
use palisade_policy::model::ObjectRef;
use serde::Serialize;
use std::collections::BTreeMap;
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
    /// Packets decided by the kernel programs since the maps were created, by reason.
    pub packets: BTreeMap<&'static str, u64>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct PendingPod {
    pub pod: String,
    pub reason: String,
}

/// Names for the numbers in flow events: which pod a cgroup is, which rule a
/// `rule_ref` is (per generation, since rule indexes change between them).
#[derive(Clone, Debug, Default)]
pub struct EventNames {
    pub pods_by_cgroup: BTreeMap<u64, ObjectRef>,
    /// Rules of the last two generations.
    pub rules: BTreeMap<u32, Arc<Vec<RuleInfo>>>,
}

#[derive(Clone, Default)]
pub struct Shared {
    pub status: Arc<RwLock<Status>>,
    pub names: Arc<RwLock<EventNames>>,
}
