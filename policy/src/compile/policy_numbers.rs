//! Stable numbers of the namespaced policies (NetworkPolicy, EgressPolicy): each
//! policy's position in its source's index (what selections, and so the memo keys of
//! endpoint tables, name it by) and the [`RuleId`] of each of its rules.
//!
//! A from-scratch compile numbers policies in key order and their rules in catalog
//! order. The incremental compiler keeps the numbers of the policies that stay and
//! gives a policy added a freed (or new) position and freed (or new) rule ids, so
//! that adding or deleting one policy leaves every other policy's numbers, and every
//! memo entry that does not select it, as they were. Evaluation never depends on
//! these numbers: selections list policies in key order, and the first rule of
//! several is found by that order.

use super::rules::{RuleCatalog, RuleId};
use super::tables::RuleInfo;
use crate::model::ObjectRef;
use std::collections::{BTreeMap, BTreeSet};

/// The numbers of one policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NumberedPolicy {
    /// Its position in its source's index.
    pub position: usize,
    /// NetworkPolicy: its ingress rules, then its egress rules. EgressPolicy: its
    /// rules, then its implicit deny.
    pub rules: Vec<RuleId>,
}

/// The numbers of the policies of one source, by key.
#[derive(Clone, Debug, Default)]
pub(crate) struct PolicyNumbers {
    policies: BTreeMap<ObjectRef, NumberedPolicy>,
    free: BTreeSet<usize>,
    /// One past the highest position handed out.
    positions: usize,
}

impl PolicyNumbers {
    /// Numbers `policies` (in key order) from position 0, entering the rules each one
    /// has in `catalog`.
    pub fn in_key_order<'a>(
        policies: impl IntoIterator<Item = (&'a ObjectRef, Vec<RuleInfo>)>,
        catalog: &mut RuleCatalog,
    ) -> Self {
        let policies: BTreeMap<ObjectRef, NumberedPolicy> = policies
            .into_iter()
            .enumerate()
            .map(|(position, (key, rules))| {
                let rules = rules.into_iter().map(|rule| catalog.add(rule)).collect();
                (key.clone(), NumberedPolicy { position, rules })
            })
            .collect();
        Self {
            positions: policies.len(),
            policies,
            free: BTreeSet::new(),
        }
    }

    pub fn get(&self, key: &ObjectRef) -> Option<&NumberedPolicy> {
        self.policies.get(key)
    }

    /// One past the highest position of a policy.
    pub fn positions(&self) -> usize {
        self.positions
    }

    /// Numbers the policy `key` with `rules`: at its position if it has one, else at
    /// a freed or new one. Returns its previous numbers.
    pub fn insert(&mut self, key: ObjectRef, rules: Vec<RuleId>) -> Option<NumberedPolicy> {
        let position = match self.policies.get(&key) {
            Some(old) => old.position,
            None => self.free.pop_first().unwrap_or_else(|| {
                self.positions += 1;
                self.positions - 1
            }),
        };
        self.policies
            .insert(key, NumberedPolicy { position, rules })
    }

    /// Forgets the policy `key`, freeing its position; returns its numbers.
    pub fn remove(&mut self, key: &ObjectRef) -> Option<NumberedPolicy> {
        let removed = self.policies.remove(key)?;
        self.free.insert(removed.position);
        Some(removed)
    }
}

/// Rule ids for rules added after a from-scratch compile: freed ones first, then new
/// ones after every id handed out.
#[derive(Clone, Debug, Default)]
pub(crate) struct RuleIds {
    free: BTreeSet<RuleId>,
    next: u32,
}

impl RuleIds {
    /// Hands out ids after those of `catalog`.
    pub fn after(catalog: &RuleCatalog) -> Self {
        Self {
            free: BTreeSet::new(),
            next: catalog.next_id().index(),
        }
    }

    pub fn allocate(&mut self) -> RuleId {
        self.free.pop_first().unwrap_or_else(|| {
            self.next += 1;
            RuleId::from_index(self.next - 1)
        })
    }

    pub fn free(&mut self, id: RuleId) {
        self.free.insert(id);
    }
}

/// The numbers of every namespaced policy and the rule ids still free.
#[derive(Clone, Debug, Default)]
pub(crate) struct NamespacedNumbers {
    pub network_policies: PolicyNumbers,
    pub egress_policies: PolicyNumbers,
    pub rule_ids: RuleIds,
}
