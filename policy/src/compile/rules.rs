//! The catalog of policy rules that verdicts are traced back to.
//!
//! While compiling, a verdict cites its rule by [`RuleId`], the rule's position in the
//! catalog of every rule of every policy. The catalog is ordered the way
//! [`RuleInfo`] sorts. At the end only the rules some entry cites are published
//! ([`RuleCatalog::publish`]), renumbered without changing their order.

use super::tables::RuleInfo;
use crate::model::{
    ClusterPolicy, ClusterPolicyKind, ClusterRule, Direction, EgressPolicy, Enforcement,
    IMPLICIT_DENY_RULE_NAME, ObjectRef, RuleAction, Tier,
};
use std::collections::{BTreeMap, BTreeSet};

/// Tier of Kubernetes NetworkPolicy rules.
pub(crate) const TIER_NETWORK_POLICY: &str = "networkpolicy";
/// Kind of a Kubernetes NetworkPolicy.
pub(crate) const KIND_NETWORK_POLICY: &str = "NetworkPolicy";
/// The only action a NetworkPolicy rule has.
pub(crate) const ACTION_ALLOW: &str = "Allow";
/// Tier of EgressPolicy rules: between the admin tier and NetworkPolicy.
pub(crate) const TIER_EGRESS: &str = "egress";
/// Kind of a palisade EgressPolicy.
pub(crate) const KIND_EGRESS_POLICY: &str = "EgressPolicy";
/// Action of the implicit deny of an EgressPolicy in Audit mode.
pub(crate) const ACTION_AUDIT_DENY: &str = "AuditDeny";

impl RuleInfo {
    /// Rule `index` of the `direction` list of the NetworkPolicy `policy`.
    pub fn network_policy(policy: &ObjectRef, direction: Direction, index: usize) -> Self {
        Self {
            tier: TIER_NETWORK_POLICY.to_string(),
            kind: KIND_NETWORK_POLICY.to_string(),
            namespace: policy.namespace.clone(),
            name: policy.name.clone(),
            direction,
            rule: u32::try_from(index).unwrap_or(u32::MAX),
            action: ACTION_ALLOW.to_string(),
            rule_name: String::new(),
        }
    }

    /// Rule `index` (`rule`) of the `direction` list of the cluster policy `policy`:
    /// cited with the policy's tier and kind, and no namespace.
    pub fn cluster_policy(
        policy: &ClusterPolicy,
        direction: Direction,
        index: usize,
        rule: &ClusterRule,
    ) -> Self {
        Self {
            tier: policy.tier.as_str().to_string(),
            kind: policy.kind.as_str().to_string(),
            namespace: String::new(),
            name: policy.name.clone(),
            direction,
            rule: u32::try_from(index).unwrap_or(u32::MAX),
            action: rule.action.as_str().to_string(),
            rule_name: rule.name.clone(),
        }
    }

    /// Rule `index` of the `direction` rules of the TrustBoundary `name` (see
    /// [`crate::model::TrustBoundary`] for how its rules are numbered), named
    /// `rule_name`.
    pub fn trust_boundary(
        name: &str,
        direction: Direction,
        index: usize,
        action: RuleAction,
        rule_name: &str,
    ) -> Self {
        Self {
            tier: Tier::Admin.as_str().to_string(),
            kind: ClusterPolicyKind::TrustBoundary.as_str().to_string(),
            namespace: String::new(),
            name: name.to_string(),
            direction,
            rule: u32::try_from(index).unwrap_or(u32::MAX),
            action: action.as_str().to_string(),
            rule_name: rule_name.to_string(),
        }
    }

    /// Rule `index` of the EgressPolicy `policy` (which allows).
    pub fn egress_policy(policy: &EgressPolicy, index: usize) -> Self {
        let rule_name = policy
            .egress
            .get(index)
            .map(|rule| rule.name.clone())
            .unwrap_or_default();
        Self {
            tier: TIER_EGRESS.to_string(),
            kind: KIND_EGRESS_POLICY.to_string(),
            namespace: policy.namespace.clone(),
            name: policy.name.clone(),
            direction: Direction::Egress,
            rule: u32::try_from(index).unwrap_or(u32::MAX),
            action: ACTION_ALLOW.to_string(),
            rule_name,
        }
    }

    /// The implicit deny at the end of the EgressPolicy `policy`'s allowlist: rule index
    /// `egress.len()`, action `Deny` (`AuditDeny` in Audit mode).
    pub fn egress_policy_implicit_deny(policy: &EgressPolicy) -> Self {
        let action = match policy.enforcement {
            Enforcement::Enforce => RuleAction::Deny.as_str(),
            Enforcement::Audit => ACTION_AUDIT_DENY,
        };
        Self {
            action: action.to_string(),
            rule_name: IMPLICIT_DENY_RULE_NAME.to_string(),
            ..Self::egress_policy(policy, policy.egress.len())
        }
    }
}

/// A rule's number: in a from-scratch compile its position in the [`RuleCatalog`]
/// (so lower sorts first); the incremental compiler gives the rules of a policy added
/// later freed or new numbers (`policy_numbers`). Which rule of several comes first is
/// therefore never decided by comparing ids, but by the order of the policies that
/// were selected and of their rules.
///
/// Stored as the number plus one, so that an `Option<RuleId>` takes four bytes: every
/// row of every table carries one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct RuleId(std::num::NonZeroU32);

impl RuleId {
    /// The id numbered `index`.
    pub fn from_index(index: u32) -> RuleId {
        RuleId(std::num::NonZeroU32::MIN.saturating_add(index))
    }

    /// The id's number (in the incremental compiler, also its published index).
    pub fn index(self) -> u32 {
        self.0.get() - 1
    }
}

/// The published index (`rule_ref`) of each cited rule, dense by [`RuleId`]: looked
/// up once per published row, so it must be cheap.
#[derive(Default)]
pub(crate) struct RuleRefs {
    refs: Vec<Option<u32>>,
    /// Every id below the highest is published, under its own number (so a row of an
    /// endpoint table is its published row).
    identity: bool,
}

impl RuleRefs {
    pub fn new(refs: &BTreeMap<RuleId, u32>) -> Self {
        let len = refs
            .keys()
            .next_back()
            .map_or(0, |last| last.index() as usize + 1);
        let mut dense = vec![None; len];
        for (id, index) in refs {
            dense[id.index() as usize] = Some(*index);
        }
        let identity = refs.len() == len && refs.iter().all(|(id, index)| id.index() == *index);
        Self {
            refs: dense,
            identity,
        }
    }

    /// The published index of `rule`, None if it is not cited.
    pub fn get(&self, rule: RuleId) -> Option<u32> {
        self.refs.get(rule.index() as usize).copied().flatten()
    }

    /// Whether every rule is published under its own number.
    pub fn is_identity(&self) -> bool {
        self.identity
    }

    /// Publishes `rule` at `index`.
    pub fn set(&mut self, rule: RuleId, index: u32) {
        let at = rule.index() as usize;
        if self.refs.len() < at {
            self.identity = false;
        }
        if self.refs.len() <= at {
            self.refs.resize(at + 1, None);
        }
        self.refs[at] = Some(index);
        self.identity &= index == rule.index();
    }
}

/// Every rule of every policy, in [`RuleInfo`] order.
#[derive(Clone, Debug, Default)]
pub(crate) struct RuleCatalog {
    rules: Vec<RuleInfo>,
    /// Rules added; only counted, not kept, in a [`RuleCatalog::counting`] catalog.
    len: u32,
    counting: bool,
}

impl RuleCatalog {
    /// A catalog that hands out the same ids as a full one but keeps no rules: for
    /// re-indexing policies whose rules an earlier catalog already holds.
    pub fn counting() -> Self {
        Self {
            counting: true,
            ..Self::default()
        }
    }

    /// Adds a rule and returns its id. Rules must be added in [`RuleInfo`] order.
    pub fn add(&mut self, rule: RuleInfo) -> RuleId {
        let id = RuleId::from_index(self.len);
        self.len = self.len.saturating_add(1);
        if !self.counting {
            debug_assert!(self.rules.last().is_none_or(|last| *last < rule));
            self.rules.push(rule);
        }
        id
    }

    /// The id the next rule added gets.
    pub fn next_id(&self) -> RuleId {
        RuleId::from_index(self.len)
    }

    /// The id of every rule added.
    pub fn ids(&self) -> impl Iterator<Item = RuleId> + '_ {
        (0..self.len).map(RuleId::from_index)
    }

    /// The rules `cited` names, in catalog order, and each one's index in that list
    /// (the published `rule_ref`).
    pub fn publish(&self, cited: &BTreeSet<RuleId>) -> (Vec<RuleInfo>, BTreeMap<RuleId, u32>) {
        let mut published = Vec::with_capacity(cited.len());
        let mut refs = BTreeMap::new();
        for id in cited {
            if let Some(rule) = self.rules.get(id.index() as usize) {
                refs.insert(*id, u32::try_from(published.len()).unwrap_or(u32::MAX));
                published.push(rule.clone());
            }
        }
        (published, refs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishing_keeps_order_and_renumbers() {
        let policy = |name: &str| ObjectRef {
            namespace: "ns".into(),
            name: name.into(),
        };
        let mut catalog = RuleCatalog::default();
        let a0 = catalog.add(RuleInfo::network_policy(
            &policy("a"),
            Direction::Ingress,
            0,
        ));
        let a1 = catalog.add(RuleInfo::network_policy(
            &policy("a"),
            Direction::Ingress,
            1,
        ));
        let b0 = catalog.add(RuleInfo::network_policy(&policy("b"), Direction::Egress, 0));
        assert!(a0 < a1 && a1 < b0);
        let (rules, refs) = catalog.publish(&[a0, b0].into_iter().collect());
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].name, "b");
        assert_eq!(rules[1].direction, Direction::Egress);
        assert_eq!(refs[&a0], 0);
        assert_eq!(refs[&b0], 1);
        assert!(!refs.contains_key(&a1));
    }
}
