//! The policy model: the validated, Kubernetes-independent form of everything the
//! compiler reads. Manifest parsing (`crate::manifest`) produces it; the compiler
//! (`crate::compile`) consumes it. Nothing here does I/O.
//!
//! Policy comes in tiers: cluster-scoped admin policies ([`ClusterPolicy`] of
//! [`Tier::Admin`]), then namespaced Kubernetes [`NetworkPolicy`], then the cluster's
//! baseline ([`Tier::Baseline`]); `cluster_policy` describes how they compose.
//! palisade's own kinds join that chain: a [`TrustBoundary`] maps onto the admin tier,
//! an [`EgressPolicy`] narrows egress between the admin tier and NetworkPolicy.
//!
//! [`Service`]s and [`EndpointSlice`]s say which backends a Service address leads to;
//! policy applies to the backends, never to the Service address itself.

mod cluster_policy;
mod egress_policy;
mod endpoint_slice;
mod fqdn;
mod labels;
mod network_policy;
mod node_peer;
mod protocol_ports;
mod service;
mod trust_boundary;

pub use cluster_policy::{
    ClusterPeer, ClusterPolicy, ClusterPolicyKind, ClusterPolicyRef, ClusterPort, ClusterRule,
    RuleAction, Subject, Tier,
};
pub use egress_policy::{
    EgressPeer, EgressPolicy, EgressRule, Enforcement, IMPLICIT_DENY_RULE_NAME, SocketRules,
};
pub use endpoint_slice::{
    AddressType, EndpointConditions, EndpointSlice, SERVICE_NAME_LABEL, SliceEndpoint, SlicePort,
    TargetRef,
};
pub use fqdn::FqdnPattern;
pub use labels::{LabelSelector, Labels, SelectorOperator, SelectorRequirement};
pub use network_policy::{NetworkPolicy, Peer, PolicyRule, PortRef, PortSpec};
pub use node_peer::NodePeer;
pub use protocol_ports::ProtocolPorts;
pub use service::{Service, ServicePort, ServiceType, VirtualIpSource};
pub use trust_boundary::{
    DEFAULT_TRUST_BOUNDARY_PRIORITY, ISOLATION_RULE_NAME, SharedService, SharedServiceDirection,
    TrustBoundary, ZONE_RULE_NAME, Zone,
};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// Label every namespace carries automatically (Kubernetes >= 1.21 sets it on every
/// namespace), so `namespaceSelector` can select a namespace by name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Annotation on a Pod giving its cgroup, as the `0::` line of `/proc/<pid>/cgroup`
/// shows it (relative to the cgroup2 mount, leading `/`). Standalone mode only.
pub const CGROUP_PATH_ANNOTATION: &str = "palisade.dev/cgroup-path";

/// IP protocols a policy port can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Every protocol a policy port can name.
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    /// The protocol with this IANA number, if policies can name it.
    pub fn from_number(number: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.number() == number)
    }

    /// IANA protocol number, as in the IP header.
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Direction of traffic from the point of view of the selected pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    /// The ABI encoding (`palisade_abi::direction`).
    pub const fn abi(self) -> u8 {
        match self {
            Direction::Ingress => palisade_abi::direction::INGRESS,
            Direction::Egress => palisade_abi::direction::EGRESS,
        }
    }
}

/// `namespace/name` of a namespaced object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    /// Includes [`NAMESPACE_NAME_LABEL`].
    pub labels: Labels,
}

/// A container port a pod declares; `name` makes it usable as a named port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    /// `metadata.uid` if given.
    pub uid: Option<String>,
    pub labels: Labels,
    /// `status.podIPs` (or `status.podIP`), at most one per family in practice.
    pub ips: Vec<IpAddr>,
    /// `spec.nodeName`.
    pub node_name: Option<String>,
    /// `spec.hostNetwork`: the pod uses its node's addresses and is host traffic.
    pub host_network: bool,
    /// Container ports of all containers, in declaration order.
    pub ports: Vec<ContainerPort>,
    /// [`CGROUP_PATH_ANNOTATION`], if present.
    pub cgroup_path: Option<String>,
}

impl Pod {
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// Resolves a named port to its number, as Kubernetes does for policy ports: the
    /// first container port with that name and protocol.
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.protocol == protocol && p.name.as_deref() == Some(name))
            .map(|p| p.port)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub labels: Labels,
    /// `status.addresses` of type InternalIP / ExternalIP that parse as IPs.
    pub addresses: Vec<IpAddr>,
}

/// Everything the compiler reads, keyed for deterministic iteration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cluster {
    pub namespaces: BTreeMap<String, Namespace>,
    pub pods: BTreeMap<ObjectRef, Pod>,
    pub nodes: BTreeMap<String, Node>,
    pub network_policies: BTreeMap<ObjectRef, NetworkPolicy>,
    /// AdminNetworkPolicies, BaselineAdminNetworkPolicies and other cluster-scoped
    /// policy, in tier-neutral form.
    pub cluster_policies: BTreeMap<ClusterPolicyRef, ClusterPolicy>,
    /// palisade TrustBoundaries, by name: admin-tier zone isolation (`trust_boundary`).
    pub trust_boundaries: BTreeMap<String, TrustBoundary>,
    /// palisade EgressPolicies: per-pod egress allowlists (`egress_policy`).
    pub egress_policies: BTreeMap<ObjectRef, EgressPolicy>,
    /// Services: their addresses are translated to backends (`crate::compile`).
    pub services: BTreeMap<ObjectRef, Service>,
    /// EndpointSlices, keyed by their own namespace/name.
    pub endpoint_slices: BTreeMap<ObjectRef, EndpointSlice>,
}

impl Cluster {
    /// Labels of a namespace; a namespace that is not declared has only its name label.
    pub fn namespace_labels(&self, namespace: &str) -> Labels {
        self.namespaces
            .get(namespace)
            .map(|n| n.labels.clone())
            .unwrap_or_else(|| Labels::for_namespace_name(namespace))
    }
}

/// A CIDR as written in a policy. Host bits may be set (`10.0.1.1/4`), as the
/// Kubernetes API accepts; [`Cidr::network`] is what gets matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr(pub IpNet);

impl Cidr {
    /// The prefix with host bits cleared.
    pub fn network(self) -> IpNet {
        self.0.trunc()
    }

    pub fn contains(self, addr: IpAddr) -> bool {
        self.network().contains(&addr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
