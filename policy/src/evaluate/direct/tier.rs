//! A cluster tier (admin or baseline) read straight from its objects: the policies that
//! apply to the endpoint (AdminNetworkPolicies and the BaselineAdminNetworkPolicy by
//! subject, TrustBoundaries by namespace), in evaluation order (priority, kind, name),
//! and the first rule among them that matches the flow: Allow and Deny decide, Pass
//! ends the tier.

use super::{Decision, FlowAtEnd};
use crate::compile::tables::{RuleInfo, Verdict};
use crate::model::{
    Cluster, ClusterPolicy, ClusterPolicyKind, Direction, Labels, Pod, RuleAction, Tier,
    TrustBoundary, Zone,
};

/// A policy of a cluster tier that applies to the endpoint.
pub(super) enum TierPolicy<'a> {
    /// An AdminNetworkPolicy or the BaselineAdminNetworkPolicy whose subject it is.
    Cluster(&'a ClusterPolicy),
    /// A TrustBoundary whose namespaces include the endpoint's, in the endpoint's zone.
    Boundary(&'a TrustBoundary, Zone),
}

impl TierPolicy<'_> {
    /// Evaluation order: priority, kind, name.
    pub(super) fn order(&self) -> (u32, ClusterPolicyKind, &str) {
        match self {
            TierPolicy::Cluster(policy) => (policy.priority, policy.kind, &policy.name),
            TierPolicy::Boundary(boundary, _) => (
                boundary.priority,
                ClusterPolicyKind::TrustBoundary,
                &boundary.name,
            ),
        }
    }
}

/// What one policy of a cluster tier does with a flow.
pub(super) enum Step {
    /// No rule matches: the next policy of the tier.
    NoMatch,
    /// A Pass rule matches: the rest of the tier is skipped.
    Pass,
    /// An Allow or Deny rule matches.
    Decide(Decision),
}

/// The cluster policies of `tier` whose subject is the pod (in a namespace with
/// `namespace_labels`) and that have rules for `direction`, in evaluation order.
pub(super) fn subject_of<'a>(
    cluster: &'a Cluster,
    tier: Tier,
    namespace_labels: &Labels,
    pod: &Pod,
    direction: Direction,
) -> Vec<TierPolicy<'a>> {
    let mut policies: Vec<TierPolicy> = cluster
        .cluster_policies
        .values()
        .filter(|policy| {
            policy.tier == tier
                && !policy.rules(direction).is_empty()
                && policy.subject.selects(namespace_labels, &pod.labels)
        })
        .map(TierPolicy::Cluster)
        .collect();
    policies.sort_by(|a, b| a.order().cmp(&b.order()));
    policies
}

impl FlowAtEnd<'_> {
    /// What a cluster policy tier made of `policies` (in evaluation order) decides: the
    /// first matching rule's Allow or Deny; None if no rule matches or the first that
    /// does passes.
    pub(super) fn tier(&self, policies: &[TierPolicy]) -> Option<Decision> {
        for policy in policies {
            let step = match policy {
                TierPolicy::Cluster(policy) => self.cluster_policy_step(policy),
                TierPolicy::Boundary(boundary, zone) => self.boundary_step(boundary, zone),
            };
            match step {
                Step::NoMatch => continue,
                Step::Pass => return None,
                Step::Decide(decision) => return Some(decision),
            }
        }
        None
    }

    /// The first rule of `policy` that matches the flow.
    fn cluster_policy_step(&self, policy: &ClusterPolicy) -> Step {
        let rules = policy.rules(self.direction);
        let Some((index, rule)) = rules.iter().enumerate().find(|(_, r)| self.matches(r)) else {
            return Step::NoMatch;
        };
        let info = RuleInfo::cluster_policy(policy, self.direction, index, rule);
        match rule.action {
            RuleAction::Allow => Step::Decide(Decision::by_rule(Verdict::Allow, info)),
            RuleAction::Deny => Step::Decide(Decision::by_rule(Verdict::Deny, info)),
            RuleAction::Pass => Step::Pass,
        }
    }
}
