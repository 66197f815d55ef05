//! Cluster policy tiers (AdminNetworkPolicy, BaselineAdminNetworkPolicy and whatever
//! else maps onto [`ClusterPolicy`]: TrustBoundaries, expanded per zone by
//! `trust_boundary`), indexed for the compiler's questions: which policies of a tier
//! select an endpoint, in what order they are evaluated, and which rule is which.
//!
//! Evaluation order within a tier is ascending priority, then kind (AdminNetworkPolicy
//! before TrustBoundary), then name (upstream leaves equal priorities undefined; see
//! [`ClusterPolicy::priority`]).
//!
//! The per-zone policies of one TrustBoundary have the same rules but for their zone:
//! their rules share one catalog entry each, the boundary's rule.

use super::identity::EgressPortNames;
use super::rules::{RuleCatalog, RuleId};
use super::selection::Selection;
use super::tables::RuleInfo;
use crate::model::{
    Cluster, ClusterPeer, ClusterPolicy, ClusterPort, ClusterRule, Direction, Labels, Pod,
    Protocol, Tier,
};
use std::collections::{BTreeMap, BTreeSet};

/// One rule, with the id verdicts cite it by.
pub(crate) struct IndexedRule<'a> {
    pub id: RuleId,
    pub rule: &'a ClusterRule,
}

struct IndexedPolicy<'a> {
    policy: &'a ClusterPolicy,
    ingress: Vec<IndexedRule<'a>>,
    egress: Vec<IndexedRule<'a>>,
}

impl<'a> IndexedPolicy<'a> {
    fn rules(&self, direction: Direction) -> &[IndexedRule<'a>] {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// Every cluster policy, per tier in evaluation order.
pub(crate) struct ClusterPolicies<'a> {
    tiers: BTreeMap<Tier, Vec<IndexedPolicy<'a>>>,
}

impl<'a> ClusterPolicies<'a> {
    /// Indexes the cluster's policies and `expanded` (the TrustBoundaries' per-zone
    /// policies), and enters their rules in `catalog`, in the catalog's order: by tier,
    /// kind and name, ingress before egress, rules in order; a rule several policies
    /// share (same provenance) once.
    pub fn index(
        cluster: &'a Cluster,
        expanded: &'a [ClusterPolicy],
        catalog: &mut RuleCatalog,
    ) -> Self {
        let all: Vec<&'a ClusterPolicy> =
            cluster.cluster_policies.values().chain(expanded).collect();
        let provenance = |policy: &ClusterPolicy, direction: Direction| -> Vec<RuleInfo> {
            policy
                .rules(direction)
                .iter()
                .enumerate()
                .map(|(index, rule)| RuleInfo::cluster_policy(policy, direction, index, rule))
                .collect()
        };
        let distinct: BTreeSet<RuleInfo> = all
            .iter()
            .flat_map(|p| [Direction::Ingress, Direction::Egress].map(|d| provenance(p, d)))
            .flatten()
            .collect();
        let ids: BTreeMap<RuleInfo, RuleId> = distinct
            .into_iter()
            .map(|info| (info.clone(), catalog.add(info)))
            .collect();
        let mut tiers: BTreeMap<Tier, Vec<IndexedPolicy>> = BTreeMap::new();
        for policy in all {
            let rules = |direction: Direction| -> Vec<IndexedRule<'a>> {
                provenance(policy, direction)
                    .iter()
                    .zip(policy.rules(direction))
                    .filter_map(|(info, rule)| {
                        Some(IndexedRule {
                            id: *ids.get(info)?,
                            rule,
                        })
                    })
                    .collect()
            };
            let ingress = rules(Direction::Ingress);
            let egress = rules(Direction::Egress);
            tiers.entry(policy.tier).or_default().push(IndexedPolicy {
                policy,
                ingress,
                egress,
            });
        }
        for policies in tiers.values_mut() {
            policies.sort_by_key(|p| (p.policy.priority, p.policy.kind, &p.policy.name));
        }
        Self { tiers }
    }

    /// The policies of `tier` that select the pod (in a namespace with
    /// `namespace_labels`) and have rules for `direction`, in evaluation order.
    pub fn selecting(
        &self,
        tier: Tier,
        namespace_labels: &Labels,
        pod: &Pod,
        direction: Direction,
    ) -> Selection {
        Selection::new(
            self.policies(tier)
                .iter()
                .enumerate()
                .filter(|(_, p)| {
                    !p.rules(direction).is_empty()
                        && p.policy.subject.selects(namespace_labels, &pod.labels)
                })
                .map(|(i, _)| i),
        )
    }

    /// The rules of the selected policies of `tier` for `direction`, in evaluation
    /// order.
    pub fn rules(
        &self,
        tier: Tier,
        selection: &Selection,
        direction: Direction,
    ) -> Vec<&IndexedRule<'a>> {
        let policies = self.policies(tier);
        selection
            .positions()
            .iter()
            .filter_map(|i| policies.get(*i))
            .flat_map(|p| p.rules(direction))
            .collect()
    }

    /// Whether a selected rule has a peer that can match a node (`nodes` or
    /// `networks`), so that the endpoint's own node needs a verdict of its own.
    pub fn can_match_nodes(&self, tier: Tier, selection: &Selection, direction: Direction) -> bool {
        self.rules(tier, selection, direction)
            .iter()
            .flat_map(|r| &r.rule.peers)
            .any(|peer| matches!(peer, ClusterPeer::Nodes(_) | ClusterPeer::Networks(_)))
    }

    /// Port names egress rules use, once per protocol (a `namedPort` names no
    /// protocol): pod identities must tell them apart.
    pub fn egress_port_names(&self) -> EgressPortNames {
        self.tiers
            .values()
            .flatten()
            .flat_map(|p| &p.egress)
            .flat_map(|r| &r.rule.ports)
            .filter_map(|port| match port {
                ClusterPort::Named(name) => Some(name),
                _ => None,
            })
            .flat_map(|name| Protocol::ALL.map(|protocol| (name.clone(), protocol)))
            .collect()
    }

    /// Number of policies of `tier`.
    pub fn len(&self, tier: Tier) -> usize {
        self.policies(tier).len()
    }

    /// Every rule, both directions, of the `tier` policy at `position`.
    pub fn policy_rules(
        &self,
        tier: Tier,
        position: usize,
    ) -> impl Iterator<Item = &IndexedRule<'a>> {
        self.policies(tier)
            .get(position)
            .into_iter()
            .flat_map(|p| p.ingress.iter().chain(&p.egress))
    }

    fn policies(&self, tier: Tier) -> &[IndexedPolicy<'a>] {
        self.tiers.get(&tier).map_or(&[], Vec::as_slice)
    }
}
