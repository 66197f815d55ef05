//! The incremental path for a namespaced policy (NetworkPolicy, EgressPolicy) changed
//! in place: same key, same number of rules, so that no policy moves in the indexes
//! and no rule changes its id or its description. Such a policy only decides about
//! pods of its own namespace: the memo entries that include it are forgotten and that
//! namespace's pods get their tables recomputed. A change that alters the ipBlocks or
//! the port names egress rules use (both shape identities), or a policy added or
//! deleted, is a full recompile.

use super::{Compiler, LazyIndexes};
use crate::compile::cidr::IpBlocks;
use crate::compile::tables::RuleInfo;
use crate::model::{EgressPolicy, NetworkPolicy, ObjectRef};
use std::collections::BTreeSet;

impl Compiler {
    /// Applies an upsert of the NetworkPolicy `policy`.
    pub(super) fn network_policy(&mut self, policy: NetworkPolicy) {
        let key = ObjectRef {
            namespace: policy.namespace.clone(),
            name: policy.name.clone(),
        };
        let in_place = match self.cluster.network_policies.get(&key) {
            Some(old) if *old == policy => return,
            Some(old) => {
                old.ingress.len() == policy.ingress.len() && old.egress.len() == policy.egress.len()
            }
            None => false,
        };
        let position = self.cluster.network_policies.range(..&key).count();
        self.cluster.network_policies.insert(key.clone(), policy);
        if !in_place
            || !self.policy_in_place(&key.namespace, |memo| memo.forget_network_policy(position))
        {
            self.recompile();
        }
    }

    /// Applies an upsert of the EgressPolicy `policy`.
    pub(super) fn egress_policy(&mut self, policy: EgressPolicy) {
        let key = ObjectRef {
            namespace: policy.namespace.clone(),
            name: policy.name.clone(),
        };
        let rules = |policy: &EgressPolicy| -> Vec<RuleInfo> {
            (0..policy.egress.len())
                .map(|index| RuleInfo::egress_policy(policy, index))
                .chain([RuleInfo::egress_policy_implicit_deny(policy)])
                .collect()
        };
        let in_place = match self.cluster.egress_policies.get(&key) {
            Some(old) if *old == policy => return,
            Some(old) => rules(old) == rules(&policy),
            None => false,
        };
        let position = self.cluster.egress_policies.range(..&key).count();
        self.cluster.egress_policies.insert(key.clone(), policy);
        if !in_place
            || !self.policy_in_place(&key.namespace, |memo| memo.forget_egress_policy(position))
        {
            self.recompile();
        }
    }

    /// After a policy of `namespace` changed in place (already in the cluster state):
    /// `forget` drops the memo entries that include it, and the namespace's pods get
    /// their tables recomputed. False (nothing changed) when the change needs a full
    /// recompile.
    fn policy_in_place(
        &mut self,
        namespace: &str,
        forget: impl FnOnce(&mut crate::compile::endpoint_tables::TableMemo),
    ) -> bool {
        let cluster = &self.cluster;
        let state = &mut self.state;
        if IpBlocks::collect(cluster) != state.blocks {
            return false;
        }
        let trust_boundaries = std::mem::take(&mut state.trust_boundaries);
        let indexes = LazyIndexes::new(cluster, &trust_boundaries);
        if indexes.get().egress_port_names() != state.egress_port_names {
            drop(indexes);
            state.trust_boundaries = trust_boundaries;
            return false;
        }
        forget(&mut state.memo);
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
        drop(indexes);
        state.trust_boundaries = trust_boundaries;
        for node in nodes {
            self.rebuild_node(&node);
        }
        true
    }
}
