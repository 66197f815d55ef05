//! The compiler's output: what the kernel maps must hold, in a typed, serializable
//! form. The agent turns these rows into `palisade-abi` keys and values one to one;
//! the reference evaluator (`crate::evaluate`) reads them the way the kernel does.

use crate::model::{Direction, ObjectRef};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything compiled from one cluster state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompiledCluster {
    /// Identity number -> what it stands for. Cluster-wide.
    pub identities: BTreeMap<u32, IdentityInfo>,
    /// IP prefix -> identity, cluster-wide; looked up longest-prefix-first. Addresses no
    /// prefix covers are `palisade_abi::reserved::WORLD`. Sorted by prefix.
    pub ipcache: Vec<IpCacheEntry>,
    /// Per-node tables, by node name. Pods with no node are compiled under "".
    pub nodes: BTreeMap<String, NodeTables>,
    /// Rules that entries refer to by index (`rule_ref`), cluster-wide.
    pub rules: Vec<RuleInfo>,
}

/// What an identity stands for, for humans and for `palisadectl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityInfo {
    /// `pod`, `cidr`, `node`, `reserved`.
    pub kind: String,
    /// The security-relevant labels that define it, `key=value`, sorted; for CIDR
    /// identities the `cidr:` labels of the policy blocks the addresses fall in.
    pub labels: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IpCacheEntry {
    /// Host bits clear.
    pub prefix: IpNet,
    pub identity: u32,
}

/// Everything one node's kernel maps hold apart from the cluster-wide ip cache.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTables {
    /// Addresses of this node: they resolve to `palisade_abi::reserved::HOST` on this
    /// node. Traffic with them is allowed unless `policy` has rows for peer HOST
    /// (cluster policies that decide about the own node); those rows are complete and
    /// have no ANY fallback.
    pub host_addresses: Vec<std::net::IpAddr>,
    /// Pods on this node that palisade enforces, sorted by pod.
    pub endpoints: Vec<EndpointEntry>,
    /// Entries of `PALISADE_POLICY`, sorted.
    pub policy: Vec<PolicyEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EndpointEntry {
    pub pod: ObjectRef,
    /// `palisade.dev/cgroup-path` (standalone mode); the agent resolves it to a cgroup id.
    pub cgroup_path: Option<String>,
    pub identity: u32,
    /// Key of this endpoint's table in `policy`; shared by endpoints whose compiled
    /// tables are identical.
    pub policy_id: u32,
    pub enforce_ingress: bool,
    pub enforce_egress: bool,
}

/// One LPM entry of the policy table. Matching follows `palisade_abi::PolicyKey`:
/// `protocol: None` matches every protocol and port; `port_prefix_len` is the number
/// of leading bits of `port` that must match (0 = every port of `protocol`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PolicyEntry {
    pub policy_id: u32,
    /// Peer identity, or `palisade_abi::reserved::ANY`.
    pub peer_identity: u32,
    pub direction: Direction,
    pub protocol: Option<u8>,
    pub port: u16,
    /// 0..=16; must be 0 when `protocol` is None.
    pub port_prefix_len: u8,
    pub verdict: Verdict,
    /// Index into `CompiledCluster::rules`, or None for a default: the deny of an
    /// endpoint NetworkPolicy isolates, or the allow where no tier decides.
    pub rule_ref: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Allow,
    Deny,
    AuditDeny,
}

impl Verdict {
    /// `palisade_abi::verdict` encoding.
    pub const fn abi(self) -> u8 {
        match self {
            Verdict::Allow => palisade_abi::verdict::ALLOW,
            Verdict::Deny => palisade_abi::verdict::DENY,
            Verdict::AuditDeny => palisade_abi::verdict::AUDIT_DENY,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::AuditDeny => "audit-deny",
        }
    }
}

/// A rule a verdict can be traced back to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RuleInfo {
    /// `admin`, `networkpolicy`, `baseline`, ... (tier of the deciding source).
    pub tier: String,
    /// Kubernetes kind of the source object, e.g. `NetworkPolicy`.
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
    pub direction: Direction,
    /// Index of the rule in the object's `ingress`/`egress` list.
    pub rule: u32,
    /// `Allow`, `Deny`, `Pass`, ...
    pub action: String,
}
