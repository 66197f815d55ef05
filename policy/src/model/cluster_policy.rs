//! Cluster-scoped, tiered policy: the tier-neutral form that sig-network's
//! AdminNetworkPolicy and BaselineAdminNetworkPolicy (`policy.networking.k8s.io`
//! v1alpha1) are converted into, and that other cluster-wide sources (palisade's
//! TrustBoundary, upstream's later ClusterNetworkPolicy) map onto.
//!
//! How a new flow is decided at one end, tier by tier (the first tier that decides
//! wins):
//! 1. [`Tier::Admin`]: the policies whose subject selects the endpoint, by ascending
//!    [`ClusterPolicy::priority`], then by kind (AdminNetworkPolicy before
//!    TrustBoundary), then by name; within a policy, rules in order. The
//!    first rule whose peers and ports match decides: `Allow` and `Deny` end the
//!    evaluation, `Pass` skips the rest of the tier.
//! 2. Kubernetes NetworkPolicy: if policies isolate the endpoint for the direction,
//!    they decide (allowed iff some rule allows); otherwise the next tier decides.
//! 3. [`Tier::Baseline`]: like the admin tier.
//! 4. Nothing decided: allowed.
//!
//! Egress rules are evaluated at the source (the subject sends), ingress rules at the
//! destination; a flow passes iff both ends allow it.

use super::{Cidr, Direction, LabelSelector, Labels, Protocol};
use std::fmt;

/// Where a cluster policy sits relative to namespaced NetworkPolicy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Before NetworkPolicy: its Allow and Deny override it, Pass defers to it.
    Admin,
    /// After NetworkPolicy: consulted only where no NetworkPolicy isolates the
    /// endpoint for the direction.
    Baseline,
}

impl Tier {
    /// The tier as rule provenance names it (`RuleInfo::tier`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Tier::Admin => "admin",
            Tier::Baseline => "baseline",
        }
    }
}

/// The object a cluster policy was converted from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClusterPolicyKind {
    /// `policy.networking.k8s.io/v1alpha1` AdminNetworkPolicy: [`Tier::Admin`].
    AdminNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha1` BaselineAdminNetworkPolicy, the singleton
    /// named `default`: [`Tier::Baseline`].
    BaselineAdminNetworkPolicy,
    /// `palisade.dev/v1alpha1` TrustBoundary, one policy per zone (see
    /// [`TrustBoundary`](super::TrustBoundary)): [`Tier::Admin`].
    TrustBoundary,
}

impl ClusterPolicyKind {
    /// The Kubernetes kind.
    pub const fn as_str(self) -> &'static str {
        match self {
            ClusterPolicyKind::AdminNetworkPolicy => "AdminNetworkPolicy",
            ClusterPolicyKind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
            ClusterPolicyKind::TrustBoundary => "TrustBoundary",
        }
    }

    /// The tier objects of this kind belong to.
    pub const fn tier(self) -> Tier {
        match self {
            ClusterPolicyKind::AdminNetworkPolicy | ClusterPolicyKind::TrustBoundary => Tier::Admin,
            ClusterPolicyKind::BaselineAdminNetworkPolicy => Tier::Baseline,
        }
    }
}

impl fmt::Display for ClusterPolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Key of a cluster policy in [`Cluster::cluster_policies`](super::Cluster): objects
/// are cluster-scoped, so kind and name identify one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterPolicyRef {
    pub kind: ClusterPolicyKind,
    pub name: String,
}

impl fmt::Display for ClusterPolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// A cluster-scoped policy of one tier, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterPolicy {
    /// The object it was converted from (rule provenance names it).
    pub kind: ClusterPolicyKind,
    pub name: String,
    /// Set by the conversion: [`ClusterPolicyKind::tier`] for the upstream kinds.
    pub tier: Tier,
    /// Order within the tier: lower numbers are evaluated first (AdminNetworkPolicy
    /// and TrustBoundary `spec.priority`, 0..=1000; 0 for the baseline singleton).
    ///
    /// Upstream leaves the order of two policies with the same priority undefined;
    /// palisade evaluates them by kind (AdminNetworkPolicy first), then by name, so the
    /// outcome is deterministic, but it is a palisade choice that another
    /// implementation may not share: give policies that can match the same traffic
    /// distinct priorities.
    pub priority: u32,
    pub subject: Subject,
    pub ingress: Vec<ClusterRule>,
    pub egress: Vec<ClusterRule>,
}

impl ClusterPolicy {
    pub fn policy_ref(&self) -> ClusterPolicyRef {
        ClusterPolicyRef {
            kind: self.kind,
            name: self.name.clone(),
        }
    }

    pub fn rules(&self, direction: Direction) -> &[ClusterRule] {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// The pods a cluster policy applies to. Host-network pods are never subjects.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// Every pod of the namespaces the selector matches.
    Namespaces(LabelSelector),
    /// The pods `pod_selector` matches in the namespaces `namespace_selector` matches.
    Pods {
        namespace_selector: LabelSelector,
        pod_selector: LabelSelector,
    },
}

impl Subject {
    /// Whether a pod with `pod_labels` in a namespace with `namespace_labels` is a
    /// subject.
    pub fn selects(&self, namespace_labels: &Labels, pod_labels: &Labels) -> bool {
        match self {
            Subject::Namespaces(namespaces) => namespaces.matches(namespace_labels),
            Subject::Pods {
                namespace_selector,
                pod_selector,
            } => namespace_selector.matches(namespace_labels) && pod_selector.matches(pod_labels),
        }
    }
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleAction {
    /// Allowed; later rules and tiers are not consulted.
    Allow,
    /// Denied; later rules and tiers are not consulted.
    Deny,
    /// The rest of this tier is skipped; the next tier decides.
    Pass,
}

impl RuleAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            RuleAction::Allow => "Allow",
            RuleAction::Deny => "Deny",
            RuleAction::Pass => "Pass",
        }
    }
}

/// One ingress or egress rule: it matches traffic with any of its peers on any of its
/// ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterRule {
    /// The rule's `name` (may be empty); for humans only.
    pub name: String,
    pub action: RuleAction,
    /// `from` / `to`. Unlike NetworkPolicy, an empty list matches no peer (upstream
    /// requires at least one).
    pub peers: Vec<ClusterPeer>,
    /// Empty: every protocol and port.
    pub ports: Vec<ClusterPort>,
}

/// A peer of a cluster rule. Pod peers never match host-network pods, whose
/// addresses are their node's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterPeer {
    /// Every pod of the namespaces the selector matches.
    Namespaces(LabelSelector),
    /// The pods `pod_selector` matches in the namespaces `namespace_selector` matches.
    Pods {
        namespace_selector: LabelSelector,
        pod_selector: LabelSelector,
    },
    /// The nodes whose labels the selector matches: every address of such a node (see
    /// [`Cluster::node_peers`](super::Cluster::node_peers)).
    Nodes(LabelSelector),
    /// Addresses in any of these CIDRs, pods' and nodes' included (a node matches when
    /// any of its addresses does: to policies a node is one peer).
    Networks(Vec<Cidr>),
}

/// One entry of a cluster rule's `ports`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClusterPort {
    /// `portNumber`.
    Number { protocol: Protocol, port: u16 },
    /// `portRange`, both ends included.
    Range {
        protocol: Protocol,
        first: u16,
        last: u16,
    },
    /// `namedPort`: the container port of that name on the pod that receives the
    /// traffic (ingress: the subject; egress: the destination pod; never a node or an
    /// external address), whatever its protocol. Kubernetes keeps container port names
    /// unique in a pod; should a pod repeat one, each protocol's first port of that
    /// name counts, as for NetworkPolicy.
    Named(String),
}
