//! palisade's EgressPolicy (`palisade.dev/v1alpha1`, namespaced), validated: a
//! per-runtime egress allowlist, plus socket controls for the pods it selects.
//!
//! How it decides, for the pods `pod_selector` selects in its namespace (egress only):
//! - It narrows and never widens: a new connection is allowed only where an
//!   EgressPolicy allows it AND the later tiers (NetworkPolicy, then baseline, then
//!   allowed) allow it. The admin tier (AdminNetworkPolicy, TrustBoundary) decides
//!   before it: its Allow and Deny are final, its Pass reaches the allowlist.
//! - Several EgressPolicies selecting a pod: the union of their allowlists. Audit
//!   policies are dry runs and never widen enforced ones: if any [`Enforcement::Enforce`]
//!   policy selects the pod, the union of the enforcing ones decides and what it does
//!   not allow is denied; otherwise the union of the audit ones decides and what it does
//!   not allow is [`Verdict::AuditDeny`](crate::compile::tables::Verdict) (reported,
//!   not dropped). These are the pod's *effective* EgressPolicies.
//! - A rule allows connections to any of its destinations (`to`) on any of its ports
//!   (none: every protocol and port). Destinations: pods by namespace and pod labels
//!   (as NetworkPolicy peers: no namespace selector means the policy's namespace; never
//!   host-network pods, which are their node), CIDRs with excepts (every address in
//!   them: pods', nodes' (a node is one peer: any of its addresses counts) and outside
//!   addresses), and DNS names ([`FqdnPattern`]). A name allows nothing by address
//!   until the DNS proxy has resolved it (the datapath's job, see `docs/crds.md`); the
//!   compiler lists the name rules per policy table (`NodeTables::fqdn_rules`).
//! - The pod's own node is not narrowed (as for NetworkPolicy, traffic between a pod
//!   and its node is the admin tier's business only).
//! - A flow no effective policy allows cites the implicit deny of the first effective
//!   policy (by name): rule index `egress.len()`, named [`IMPLICIT_DENY_RULE_NAME`].
//!
//! Socket controls (`sockets`) are compiled per endpoint (`EndpointEntry`) for the
//! datapath to enforce; see [`SocketRules`].

use super::{Cidr, FqdnPattern, LabelSelector, ProtocolPorts};

/// Name of the rule a flow that no effective EgressPolicy allows is cited by.
pub const IMPLICIT_DENY_RULE_NAME: &str = "implicit deny";

/// An EgressPolicy, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressPolicy {
    pub namespace: String,
    pub name: String,
    /// The pods (of `namespace`) the allowlist applies to; empty selects all.
    pub pod_selector: LabelSelector,
    pub enforcement: Enforcement,
    /// The allowlist; empty allows nothing.
    pub egress: Vec<EgressRule>,
    /// Socket controls; None: the policy says nothing about sockets.
    pub sockets: Option<SocketRules>,
}

/// What happens to what the allowlist does not allow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Enforcement {
    /// Denied (dropped and reported).
    #[default]
    Enforce,
    /// Audit-denied: reported as denied, and passed.
    Audit,
}

impl Enforcement {
    pub const fn as_str(self) -> &'static str {
        match self {
            Enforcement::Enforce => "Enforce",
            Enforcement::Audit => "Audit",
        }
    }
}

/// One allowlist entry: connections to any of `to` on any of `ports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressRule {
    /// The rule's `name` (may be empty); for humans and rule provenance.
    pub name: String,
    /// Never empty.
    pub to: Vec<EgressPeer>,
    /// Empty: every protocol and port.
    pub ports: Vec<ProtocolPorts>,
}

/// A destination of an egress rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EgressPeer {
    /// `namespaceSelector` and/or `podSelector`, as a NetworkPolicy peer:
    /// `namespace_selector: None` is the policy's namespace, `pod_selector: None` every
    /// pod of the selected namespaces.
    Pods {
        namespace_selector: Option<LabelSelector>,
        pod_selector: Option<LabelSelector>,
    },
    /// `cidr` and `except`: addresses in `cidr` and in none of `except`.
    Cidr { cidr: Cidr, except: Vec<Cidr> },
    /// `fqdn`: the addresses the name resolves to.
    Fqdn(FqdnPattern),
}

/// Socket controls of the pods an EgressPolicy selects, for the datapath (cgroup
/// `sock_create` / `bind` hooks) to enforce.
///
/// Several effective policies: a control is restricted only if at least one of them
/// has `sockets`, and then what any policy with `sockets` allows is allowed (the union,
/// as for the allowlist); policies without `sockets` have no say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SocketRules {
    /// `AF_INET`/`AF_INET6` `SOCK_RAW` sockets (crafted IP packets, ICMP tools).
    pub allow_raw: bool,
    /// `AF_PACKET` sockets: they bypass the IP stack and so every cgroup network hook;
    /// an egress allowlist is only as strong as this restriction.
    pub allow_packet: bool,
    /// The local ports sockets may bind (listen or send from); None: any.
    pub bind_ports: Option<Vec<ProtocolPorts>>,
}
