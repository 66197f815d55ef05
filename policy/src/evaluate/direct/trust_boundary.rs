//! TrustBoundaries, read straight from the objects (not from their per-zone admin
//! policies): for an endpoint in a zone, a pod of the same zone passes, a pod of a
//! shared service that crosses in this direction passes on the service's ports, any
//! other pod is denied; nodes and outside addresses are left to the next policies.
//! Rules are cited by their index in that list (`crate::model::TrustBoundary`).

use super::peer::PeerKind;
use super::tier::{Step, TierPolicy};
use super::{Decision, FlowAtEnd};
use crate::compile::tables::{RuleInfo, Verdict};
use crate::model::{
    Cluster, ISOLATION_RULE_NAME, Labels, RuleAction, SharedService, TrustBoundary, Zone,
};

/// The TrustBoundaries whose namespaces include `namespace` (with `labels`), each with
/// the namespace's zone.
pub(super) fn containing<'a>(
    cluster: &'a Cluster,
    namespace: &str,
    labels: &Labels,
) -> Vec<TierPolicy<'a>> {
    cluster
        .trust_boundaries
        .values()
        .filter_map(|boundary| {
            let zone = boundary.zone_of(namespace, labels)?;
            Some(TierPolicy::Boundary(boundary, zone))
        })
        .collect()
}

impl FlowAtEnd<'_> {
    /// What `boundary` does with the flow of an endpoint in `zone`.
    pub(super) fn boundary_step(&self, boundary: &TrustBoundary, zone: &Zone) -> Step {
        let PeerKind::Pod(peer_ref, peer, _) = &self.peer else {
            return Step::NoMatch;
        };
        let peer_labels = self.cluster.namespace_labels(&peer_ref.namespace);
        if boundary.zone_of(&peer_ref.namespace, &peer_labels).as_ref() == Some(zone) {
            return Step::Pass;
        }
        let crossing: Vec<&SharedService> = boundary
            .shared_services
            .iter()
            .filter(|s| s.direction.applies_to(self.direction))
            .collect();
        for service in &crossing {
            let is_service = service.namespace_selector.matches(&peer_labels)
                && service.pod_selector.matches(&peer.labels);
            let on_its_ports = service.ports.is_empty()
                || service
                    .ports
                    .iter()
                    .any(|ports| ports.contains(self.protocol, self.dport));
            if is_service && on_its_ports {
                return Step::Pass;
            }
        }
        let isolation = 1 + crossing.len();
        Step::Decide(Decision::by_rule(
            Verdict::Deny,
            RuleInfo::trust_boundary(
                &boundary.name,
                self.direction,
                isolation,
                RuleAction::Deny,
                ISOLATION_RULE_NAME,
            ),
        ))
    }
}
