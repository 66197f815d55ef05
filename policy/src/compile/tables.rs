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
    /// Every distinct policy table, once: nodes refer to them by index
    /// ([`NodeTables::policy_tables`]), so ten thousand nodes running the same
    /// workload share one table. In order of first use (by node name, then policy id).
    pub policy_tables: Vec<PolicyTable>,
    /// Rules that entries refer to by index (`rule_ref`), cluster-wide.
    pub rules: Vec<RuleInfo>,
    /// Service address, port and protocol -> backends, cluster-wide: the datapath
    /// translates a connect/sendmsg to a Service address into one of its backends.
    /// Sorted by (address, port, protocol), at most one entry each. Left out of the
    /// serialized form when empty, so tables without Services serialize as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceEntry>,
}

/// One Service address and port (compiled by `compile::services`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// A cluster IP or external IP of the Service, canonical (IPv4-mapped IPv6 as IPv4).
    pub address: std::net::IpAddr,
    pub port: u16,
    /// IANA protocol number.
    pub protocol: u8,
    /// The Service, namespace/name.
    pub service: ObjectRef,
    /// Where a new flow to `address:port` goes instead, of `address`'s family, sorted.
    /// Empty when the Service has none: the datapath refuses the flow.
    pub backends: Vec<ServiceBackend>,
}

/// One backend of a Service address and port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceBackend {
    /// Canonical.
    pub address: std::net::IpAddr,
    /// The Service port's `targetPort`, resolved on the backend pod: the port policy
    /// at both ends of the translated flow sees.
    pub port: u16,
    /// The pod at `address`, when one is known; None for an endpoint outside the pods
    /// palisade knows (an EndpointSlice written by hand, say).
    pub pod: Option<ObjectRef>,
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
    /// The node's policy tables: node-local policy id -> index into
    /// [`CompiledCluster::policy_tables`], sorted by policy id. The node's entries of
    /// `PALISADE_POLICY` are each table's rows keyed by its policy id
    /// ([`CompiledCluster::policy_entries`]).
    pub policy_tables: Vec<TableRef>,
}

/// One policy table of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableRef {
    /// The id the node's endpoints and kernel keys use for the table (from 1).
    pub policy_id: u32,
    /// Index into [`CompiledCluster::policy_tables`].
    pub table: u32,
}

/// One policy table, shared by every endpoint (on any node) whose policy is the same.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PolicyTable {
    /// Rows, sorted; in the kernel each is keyed by the table's node-local policy id.
    /// Shared (serialized as a plain list): the incremental compiler's tables share
    /// their rows with the compiler's own memo of endpoint tables.
    pub rows: std::sync::Arc<[PolicyRow]>,
    /// DNS name rules of the table's EgressPolicies, sorted: what the DNS proxy of the
    /// datapath lets the table's endpoints resolve and reach (see [`FqdnRuleEntry`]).
    /// Empty when no EgressPolicy names a DNS name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fqdn_rules: Vec<TableFqdnRule>,
}

impl CompiledCluster {
    /// The node's entries of `PALISADE_POLICY`, sorted: every row of its tables, keyed
    /// by the table's policy id.
    pub fn policy_entries<'a>(
        &'a self,
        node: &'a NodeTables,
    ) -> impl Iterator<Item = PolicyEntry> + 'a {
        self.node_tables(node).flat_map(|(policy_id, table)| {
            table.rows.iter().map(move |row| row.in_table(policy_id))
        })
    }

    /// The DNS name rules of the node's tables, by policy id.
    pub fn fqdn_rule_entries<'a>(
        &'a self,
        node: &'a NodeTables,
    ) -> impl Iterator<Item = FqdnRuleEntry> + 'a {
        self.node_tables(node).flat_map(|(policy_id, table)| {
            table.fqdn_rules.iter().map(move |rule| FqdnRuleEntry {
                policy_id,
                pattern: rule.pattern.clone(),
                ports: rule.ports.clone(),
                rule_ref: rule.rule_ref,
            })
        })
    }

    /// The node's tables with their policy ids; a reference past the end of
    /// `policy_tables` (a corrupt publication) names no table.
    pub fn node_tables<'a>(
        &'a self,
        node: &'a NodeTables,
    ) -> impl Iterator<Item = (u32, &'a PolicyTable)> + 'a {
        node.policy_tables.iter().filter_map(|table_ref| {
            let table = self.policy_tables.get(table_ref.table as usize)?;
            Some((table_ref.policy_id, table))
        })
    }
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
    /// EgressPolicy socket controls, for the datapath's socket hooks: no raw IP
    /// sockets (`SOCK_RAW`)...
    #[serde(default, skip_serializing_if = "is_false")]
    pub deny_raw_sockets: bool,
    /// ... no packet sockets (`AF_PACKET`, which bypass every cgroup network hook) ...
    #[serde(default, skip_serializing_if = "is_false")]
    pub deny_packet_sockets: bool,
    /// ... and binds only to these local ports (None: any port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_ports: Option<Vec<PortRangeEntry>>,
    /// The socket controls above are reported, not enforced: every EgressPolicy behind
    /// them is in Audit mode.
    #[serde(default, skip_serializing_if = "is_false")]
    pub audit_sockets: bool,
}

/// One row of a [`PolicyTable`]: a [`PolicyEntry`] without its policy id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PolicyRow {
    /// Peer identity, or `palisade_abi::reserved::ANY`.
    pub peer_identity: u32,
    pub direction: Direction,
    pub protocol: Option<u8>,
    pub port: u16,
    /// 0..=16; must be 0 when `protocol` is None.
    pub port_prefix_len: u8,
    pub verdict: Verdict,
    /// See [`PolicyEntry::rule_ref`].
    pub rule_ref: Option<u32>,
}

/// Two words per row, every field in them: the compiler hashes row lists whole (to
/// share equal ones), millions of rows per compile.
impl std::hash::Hash for PolicyRow {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(
            (u64::from(self.peer_identity) << 32)
                | (u64::from(self.port) << 16)
                | (u64::from(self.port_prefix_len) << 8)
                | self.direction as u64,
        );
        state.write_u64(
            (self.protocol.map_or(0, |p| u64::from(p) + 1) << 40)
                | ((self.verdict as u64) << 36)
                | self.rule_ref.map_or(0, |r| u64::from(r) + 1),
        );
    }
}

impl PolicyRow {
    /// The kernel entry of this row in the table `policy_id`.
    pub fn in_table(&self, policy_id: u32) -> PolicyEntry {
        PolicyEntry {
            policy_id,
            peer_identity: self.peer_identity,
            direction: self.direction,
            protocol: self.protocol,
            port: self.port,
            port_prefix_len: self.port_prefix_len,
            verdict: self.verdict,
            rule_ref: self.rule_ref,
        }
    }
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
    /// The rule's name where the source names rules: an AdminNetworkPolicy or
    /// EgressPolicy rule's `name`, a TrustBoundary's shared service, `zone` or
    /// `zone isolation`, an EgressPolicy's `implicit deny`. Empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rule_name: String,
}

/// A DNS name an EgressPolicy allows, for the endpoints of one policy table.
///
/// How the datapath uses it (DNS enforcement is a later stage): a DNS proxy answers the
/// endpoints' queries; for a name that matches `pattern` it resolves the name, gives
/// each answer address an FQDN identity in the ip cache (for the record's TTL), and
/// policy rows for (`policy_id`, that identity, egress, `ports`) allow; the admin tier
/// and the NetworkPolicy and baseline tiers apply to those addresses as to any other.
/// Names no rule matches resolve to nothing the allowlist allows.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FqdnRuleEntry {
    pub policy_id: u32,
    /// Lowercase: `api.github.com`, or `*.pypi.org` (every name below `pypi.org`).
    pub pattern: String,
    /// Empty: every protocol and port.
    pub ports: Vec<PortRangeEntry>,
    /// Index into `CompiledCluster::rules` of the EgressPolicy rule.
    pub rule_ref: Option<u32>,
}

/// A DNS name rule of a [`PolicyTable`]: a [`FqdnRuleEntry`] without its policy id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableFqdnRule {
    pub pattern: String,
    pub ports: Vec<PortRangeEntry>,
    pub rule_ref: Option<u32>,
}

/// An IP protocol (number) and an inclusive range of its ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortRangeEntry {
    pub protocol: u8,
    pub first: u16,
    pub last: u16,
}

fn is_false(value: &bool) -> bool {
    !*value
}
