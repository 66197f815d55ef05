//! `networking.k8s.io/v1` NetworkPolicy, validated.

use super::{Cidr, Direction, LabelSelector, Protocol};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkPolicy {
    pub namespace: String,
    pub name: String,
    /// Selects the pods (in `namespace`) the policy applies to; empty selects all.
    pub pod_selector: LabelSelector,
    /// Directions the policy isolates. Defaulted as Kubernetes does when
    /// `policyTypes` is absent: Ingress always, Egress if `egress` is present.
    pub policy_types: Vec<Direction>,
    pub ingress: Vec<PolicyRule>,
    pub egress: Vec<PolicyRule>,
}

impl NetworkPolicy {
    pub fn isolates(&self, direction: Direction) -> bool {
        self.policy_types.contains(&direction)
    }

    pub fn rules(&self, direction: Direction) -> &[PolicyRule] {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// One ingress or egress rule: traffic matching any peer AND any port is allowed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyRule {
    /// `from` / `to`. Empty means every peer (any address).
    pub peers: Vec<Peer>,
    /// Empty means every port of every protocol.
    pub ports: Vec<PortSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// `podSelector` and/or `namespaceSelector`. `namespace_selector: None` means the
    /// policy's own namespace; `pod_selector: None` means every pod of the selected
    /// namespaces.
    Pods {
        namespace_selector: Option<LabelSelector>,
        pod_selector: Option<LabelSelector>,
    },
    /// `ipBlock`: addresses in `cidr` and in none of `except`.
    IpBlock { cidr: Cidr, except: Vec<Cidr> },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortRef {
    Number(u16),
    /// A container port name, resolved on the pod that receives the traffic.
    Name(String),
}

/// One entry of `ports`: protocol (default TCP) and optionally a port or a range.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortSpec {
    pub protocol: Protocol,
    /// None: every port of `protocol`.
    pub port: Option<PortRef>,
    /// Inclusive end of a range starting at a numeric `port`.
    pub end_port: Option<u16>,
}
