//! The incremental path for a namespaced policy (NetworkPolicy, EgressPolicy) added,
//! changed or deleted. Such a policy only decides about pods of its own namespace:
//! the memo entries that selected it are forgotten and that namespace's pods get their
//! tables recomputed. Its numbers are stable (`policy_numbers`): a policy that stays
//! keeps its position and rule ids (a change that keeps its rules' descriptions keeps
//! its ids too), a policy added takes a freed position and freed or new rule ids, and
//! a policy deleted frees both, so no other policy's numbers, selections or memo
//! entries move. Its rules are published at their ids. A change that alters the
//! ipBlocks or the port names egress rules use (both shape identities) is a full
//! recompile.

use super::{Compiler, LazyIndexes};
use crate::compile::cidr::IpBlocks;
use crate::compile::endpoint_tables::TableMemo;
use crate::compile::policy_numbers::{NamespacedNumbers, PolicyNumbers};
use crate::compile::tables::RuleInfo;
use crate::compile::{egress_policy, network_policy};
use crate::model::{EgressPolicy, NetworkPolicy, ObjectRef};
use std::collections::BTreeSet;

/// The two namespaced policy sources.
#[derive(Clone, Copy)]
enum Source {
    NetworkPolicy,
    EgressPolicy,
}

impl Source {
    fn numbers(self, numbers: &mut NamespacedNumbers) -> &mut PolicyNumbers {
        match self {
            Source::NetworkPolicy => &mut numbers.network_policies,
            Source::EgressPolicy => &mut numbers.egress_policies,
        }
    }

    /// Forgets the memo entries that select the policy at `position`.
    fn forget(self, memo: &mut TableMemo, position: usize) {
        match self {
            Source::NetworkPolicy => memo.forget_network_policy(position),
            Source::EgressPolicy => memo.forget_egress_policy(position),
        }
    }
}

impl Compiler {
    /// Applies an upsert of the NetworkPolicy `policy`.
    pub(super) fn network_policy(&mut self, policy: NetworkPolicy) {
        let key = ObjectRef {
            namespace: policy.namespace.clone(),
            name: policy.name.clone(),
        };
        if self.cluster.network_policies.get(&key) == Some(&policy) {
            return;
        }
        let rules = network_policy::rule_infos(&key, &policy);
        self.cluster.network_policies.insert(key.clone(), policy);
        self.namespaced_policy(Source::NetworkPolicy, key, Some(rules));
    }

    /// Applies a delete of the NetworkPolicy `key`.
    pub(super) fn network_policy_delete(&mut self, key: ObjectRef) {
        if self.cluster.network_policies.remove(&key).is_some() {
            self.namespaced_policy(Source::NetworkPolicy, key, None);
        }
    }

    /// Applies an upsert of the EgressPolicy `policy`.
    pub(super) fn egress_policy(&mut self, policy: EgressPolicy) {
        let key = ObjectRef {
            namespace: policy.namespace.clone(),
            name: policy.name.clone(),
        };
        if self.cluster.egress_policies.get(&key) == Some(&policy) {
            return;
        }
        let rules = egress_policy::rule_infos(&policy);
        self.cluster.egress_policies.insert(key.clone(), policy);
        self.namespaced_policy(Source::EgressPolicy, key, Some(rules));
    }

    /// Applies a delete of the EgressPolicy `key`.
    pub(super) fn egress_policy_delete(&mut self, key: ObjectRef) {
        if self.cluster.egress_policies.remove(&key).is_some() {
            self.namespaced_policy(Source::EgressPolicy, key, None);
        }
    }

    /// After the policy `key` of `source` was set (already in the cluster state; its
    /// rules described by `rules`) or deleted (`rules` None): numbers it, publishes its
    /// rules and recomputes the tables of its namespace's pods, or recompiles fully.
    fn namespaced_policy(&mut self, source: Source, key: ObjectRef, rules: Option<Vec<RuleInfo>>) {
        let cluster = &self.cluster;
        let state = &mut self.state;
        if IpBlocks::collect(cluster) != state.blocks {
            self.recompile();
            return;
        }

        // Its numbers: kept while its rules are described the same, else new ids
        // (allocated before the old ones are freed, so that no id changes meaning
        // within one change).
        let numbers = &mut state.numbers;
        let old = source.numbers(numbers).get(&key).cloned();
        let kept = match (&old, &rules) {
            (Some(old), Some(rules)) => {
                old.rules.len() == rules.len()
                    && old.rules.iter().zip(rules).all(|(id, rule)| {
                        self.compiled.rules.get(id.index() as usize) == Some(rule)
                    })
            }
            _ => false,
        };
        let mut published = Vec::new();
        let position = if kept {
            old.as_ref().map(|old| old.position)
        } else {
            let new = match rules {
                Some(rules) => {
                    let ids: Vec<_> = rules.iter().map(|_| numbers.rule_ids.allocate()).collect();
                    published.extend(ids.iter().copied().zip(rules));
                    source.numbers(numbers).insert(key.clone(), ids);
                    source.numbers(numbers).get(&key).map(|new| new.position)
                }
                None => {
                    source.numbers(numbers).remove(&key);
                    None
                }
            };
            for id in old.iter().flat_map(|old| &old.rules) {
                numbers.rule_ids.free(*id);
            }
            new.or(old.as_ref().map(|old| old.position))
        };

        // Egress port names shape identities: checked on the new indexes.
        let trust_boundaries = std::mem::take(&mut state.trust_boundaries);
        let numbers = std::mem::take(&mut state.numbers);
        let indexes = LazyIndexes::new(cluster, &trust_boundaries, &numbers);
        if indexes.get().egress_port_names() != state.egress_port_names {
            drop(indexes);
            state.trust_boundaries = trust_boundaries;
            state.numbers = numbers;
            self.recompile();
            return;
        }

        for (id, rule) in published {
            state
                .publisher
                .publish_rule(id, rule, &mut self.compiled, &mut self.delta);
        }
        for id in old.iter().flat_map(|old| &old.rules).filter(|_| !kept) {
            self.delta.rule_refs.insert(id.index());
        }
        if let Some(position) = position {
            source.forget(&mut state.memo, position);
        }
        let namespace = key.namespace.as_str();
        state.shapes.retain(|input, _| input.namespace != namespace);
        let first = ObjectRef {
            namespace: namespace.to_string(),
            name: String::new(),
        };
        let pods: BTreeSet<ObjectRef> = cluster
            .pods
            .range(first..)
            .take_while(|(pod_ref, _)| pod_ref.namespace == namespace)
            .filter(|(_, pod)| !pod.host_network)
            .map(|(pod_ref, _)| pod_ref.clone())
            .collect();
        let nodes = state.refresh_tables(cluster, &indexes, &pods);
        // See `pods_incrementally`: the rows nothing holds go before nodes are rebuilt.
        state.memo.drop_unused();
        drop(indexes);
        state.trust_boundaries = trust_boundaries;
        state.numbers = numbers;
        for node in nodes {
            self.rebuild_node(&node);
        }
        // And the rows the replaced published tables held.
        self.state.memo.drop_unused();
    }
}
