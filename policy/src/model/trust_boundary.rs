//! palisade's TrustBoundary (`palisade.dev/v1alpha1`, cluster-scoped), validated: an
//! administrator's guarantee that in-cluster traffic does not cross between zones of
//! namespaces, except to and from the shared services it names.
//!
//! A TrustBoundary selects namespaces by label and puts each in a [`Zone`]: with a
//! `zone_label`, namespaces with the same value of that label form one zone (a selected
//! namespace without the label is a zone of its own); without one, every namespace is
//! its own zone. It belongs to the admin tier: at compile time each zone becomes one
//! admin-tier [`ClusterPolicy`](super::ClusterPolicy) of kind
//! [`ClusterPolicyKind::TrustBoundary`](super::ClusterPolicyKind) (`compile`), so
//! TrustBoundaries and AdminNetworkPolicies are one evaluation model, ordered by
//! priority.
//!
//! For a pod in a zone, in each direction, the boundary's rules are, in order (the
//! rule index of rule provenance counts in this list):
//! 1. [`ZONE_RULE_NAME`] (Pass): peers that are pods of the same zone;
//! 2. one Pass rule per shared service that applies to the direction (ingress:
//!    `FromService`/`Both`; egress: `ToService`/`Both`), in the order written, named
//!    after the service: its pods, on its ports;
//! 3. [`ISOLATION_RULE_NAME`] (Deny): every other pod of the cluster.
//!
//! Pass hands the flow to the next tiers (EgressPolicy, NetworkPolicy, baseline), so
//! namespaced policy still decides inside a zone; Deny is final, so no namespaced
//! policy can open a path across the boundary. Nodes and addresses outside the
//! cluster are not pods: the boundary leaves them alone (egress to outside the cluster
//! is EgressPolicy's business).

use super::{Direction, LabelSelector, Labels, ProtocolPorts};

/// Priority of a TrustBoundary that does not set one: the lowest precedence of the
/// AdminNetworkPolicy range (0..=1000). At equal priority AdminNetworkPolicies are
/// evaluated first, so by default every AdminNetworkPolicy comes before the boundary.
pub const DEFAULT_TRUST_BOUNDARY_PRIORITY: u32 = 1000;

/// Name of the rule that passes traffic between pods of one zone.
pub const ZONE_RULE_NAME: &str = "zone";

/// Name of the rule that denies every other pod.
pub const ISOLATION_RULE_NAME: &str = "zone isolation";

/// A TrustBoundary, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustBoundary {
    pub name: String,
    /// Order in the admin tier, as AdminNetworkPolicy `priority` (lower first; at equal
    /// priority AdminNetworkPolicies, then TrustBoundaries, each by name).
    pub priority: u32,
    /// The namespaces inside the boundary.
    pub namespace_selector: LabelSelector,
    /// The namespace label whose value names a namespace's zone; None: every namespace
    /// is its own zone.
    pub zone_label: Option<String>,
    pub shared_services: Vec<SharedService>,
}

/// A service outside the zones that traffic may cross the boundary to or from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedService {
    /// Names the service's Pass rules.
    pub name: String,
    /// The namespaces of the service's pods.
    pub namespace_selector: LabelSelector,
    /// The service's pods in those namespaces (empty: all of them).
    pub pod_selector: LabelSelector,
    /// Destination ports of the connections that may cross (on the service for
    /// `ToService`, on zone pods for `FromService`); empty: every port.
    pub ports: Vec<ProtocolPorts>,
    pub direction: SharedServiceDirection,
}

/// Which connections with a shared service may cross the boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SharedServiceDirection {
    /// Zone pods may connect to the service (DNS, an API): zone egress.
    ToService,
    /// The service may connect into zones (a metrics scraper, an ingress controller):
    /// zone ingress.
    FromService,
    /// Both.
    Both,
}

impl SharedServiceDirection {
    /// Whether connections in this direction of the service cross the boundary at a
    /// zone pod's `direction` (egress: the zone pod connects; ingress: it accepts).
    pub fn applies_to(self, direction: Direction) -> bool {
        matches!(
            (self, direction),
            (Self::Both, _)
                | (Self::ToService, Direction::Egress)
                | (Self::FromService, Direction::Ingress)
        )
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ToService => "ToService",
            Self::FromService => "FromService",
            Self::Both => "Both",
        }
    }
}

/// A zone of a boundary: the namespaces whose zone label has one value, or one
/// namespace (no zone label, or a namespace without it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Zone {
    /// Namespaces whose zone label has this value.
    Labelled(String),
    /// This namespace alone.
    Namespace(String),
}

impl TrustBoundary {
    /// The zone of the namespace `namespace` with labels `labels`; None if the
    /// boundary does not select it.
    pub fn zone_of(&self, namespace: &str, labels: &Labels) -> Option<Zone> {
        if !self.namespace_selector.matches(labels) {
            return None;
        }
        let value = self.zone_label.as_deref().and_then(|key| labels.get(key));
        Some(match value {
            Some(value) => Zone::Labelled(value.to_string()),
            None => Zone::Namespace(namespace.to_string()),
        })
    }

    /// The shared services that cross the boundary at a zone pod's `direction`, in the
    /// order written.
    pub fn services(&self, direction: Direction) -> impl Iterator<Item = &SharedService> {
        self.shared_services
            .iter()
            .filter(move |service| service.direction.applies_to(direction))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NAMESPACE_NAME_LABEL;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (*k, *v)).collect()
    }

    fn boundary(zone_label: Option<&str>) -> TrustBoundary {
        TrustBoundary {
            name: "tenants".into(),
            priority: DEFAULT_TRUST_BOUNDARY_PRIORITY,
            namespace_selector: LabelSelector {
                match_labels: [("kind".to_string(), "tenant".to_string())].into(),
                match_expressions: Vec::new(),
            },
            zone_label: zone_label.map(str::to_string),
            shared_services: Vec::new(),
        }
    }

    #[test]
    fn zones_come_from_the_zone_label_or_the_namespace() {
        let a1 = labels(&[
            (NAMESPACE_NAME_LABEL, "a1"),
            ("kind", "tenant"),
            ("tenant", "a"),
        ]);
        let bare = labels(&[(NAMESPACE_NAME_LABEL, "bare"), ("kind", "tenant")]);
        let other = labels(&[(NAMESPACE_NAME_LABEL, "other")]);
        let by_tenant = boundary(Some("tenant"));
        assert_eq!(
            by_tenant.zone_of("a1", &a1),
            Some(Zone::Labelled("a".into()))
        );
        assert_eq!(
            by_tenant.zone_of("bare", &bare),
            Some(Zone::Namespace("bare".into()))
        );
        assert_eq!(by_tenant.zone_of("other", &other), None);
        let per_namespace = boundary(None);
        assert_eq!(
            per_namespace.zone_of("a1", &a1),
            Some(Zone::Namespace("a1".into()))
        );
    }

    #[test]
    fn service_directions_name_the_zone_side() {
        use SharedServiceDirection::*;
        assert!(
            ToService.applies_to(Direction::Egress) && !ToService.applies_to(Direction::Ingress)
        );
        assert!(
            FromService.applies_to(Direction::Ingress)
                && !FromService.applies_to(Direction::Egress)
        );
        assert!(Both.applies_to(Direction::Ingress) && Both.applies_to(Direction::Egress));
    }
}
