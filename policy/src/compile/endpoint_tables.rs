//! The policy table of one endpoint: which directions are enforced, the rows that
//! decide them, and the DNS name rules of its egress allowlist. A direction is
//! enforced when any tier constrains it: NetworkPolicy isolates the endpoint, a
//! cluster policy selects it as subject with rules for that direction, or (egress)
//! EgressPolicies select it. Tables are computed once per distinct input and shared,
//! so ten thousand replicas cost one computation.

use super::cluster_policy::ClusterPolicies;
use super::cluster_rules::ClusterRuleEvaluator;
use super::egress_policy::{AllowlistEvaluator, EgressPolicies, FqdnRule, SocketControls};
use super::encode::{Row, encode_direction};
use super::identity::NodeIdentity;
use super::network_policy::{NetworkPolicies, RuleEvaluator};
use super::selection::Selection;
use super::tiers::{TierVerdicts, chain};
use crate::model::{Cluster, ContainerPort, Direction, ObjectRef, Pod, Tier};
use palisade_abi::reserved;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeSet;
use std::sync::Arc;

/// An endpoint's rows, per direction; None where the direction is not enforced.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct EndpointTable {
    pub ingress: Option<Arc<[Row]>>,
    pub egress: Option<Arc<[Row]>>,
    /// The DNS name rules of the endpoint's egress allowlist.
    pub fqdn_rules: Vec<FqdnRule>,
}

impl EndpointTable {
    /// Whether neither direction is enforced (and the table has no rows).
    pub fn is_unenforced(&self) -> bool {
        self.ingress.is_none() && self.egress.is_none()
    }

    /// A key equal for two tables of one [`EndpointTables`] iff the tables are equal,
    /// and cheap to hash: rows are interned there (equal rows are one allocation), so
    /// they are keyed by address.
    pub fn sharing_key(&self) -> TableKey {
        let address = |rows: &Arc<[Row]>| rows.as_ptr() as usize;
        TableKey {
            ingress: self.ingress.as_ref().map(address),
            egress: self.egress.as_ref().map(address),
            fqdn_rules: self.fqdn_rules.clone(),
        }
    }

    pub fn rows(&self) -> impl Iterator<Item = &Row> {
        self.ingress
            .iter()
            .chain(&self.egress)
            .flat_map(|rows| rows.iter())
    }
}

/// See [`EndpointTable::sharing_key`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TableKey {
    ingress: Option<usize>,
    egress: Option<usize>,
    fqdn_rules: Vec<FqdnRule>,
}

/// Everything the rows of one direction depend on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct DirectionInput {
    direction: Direction,
    admin: Selection,
    network_policy: Selection,
    baseline: Selection,
    /// The endpoint's effective EgressPolicies, on egress; empty on ingress.
    egress_allowlist: Selection,
    /// The endpoint's container ports on ingress, where named ports resolve on it;
    /// empty on egress, where they resolve on the peer.
    own_ports: Vec<ContainerPort>,
    /// The endpoint's node, when a selected cluster rule can match nodes.
    own_node: Option<NodeIdentity>,
}

impl DirectionInput {
    fn is_unconstrained(&self) -> bool {
        self.admin.is_empty()
            && self.network_policy.is_empty()
            && self.baseline.is_empty()
            && self.egress_allowlist.is_empty()
    }
}

/// The policy sources, indexed, and the evaluators of their rules.
pub(crate) struct PolicySources<'a> {
    pub cluster: &'a Cluster,
    pub cluster_policies: &'a ClusterPolicies<'a>,
    pub cluster_rules: ClusterRuleEvaluator<'a>,
    pub network_policies: &'a NetworkPolicies<'a>,
    pub network_policy_rules: RuleEvaluator<'a>,
    pub egress_policies: &'a EgressPolicies<'a>,
    pub egress_allowlists: AllowlistEvaluator<'a>,
}

/// The memo of [`EndpointTables`], kept between compiles by the incremental compiler:
/// valid as long as the policies and the identities peers resolve to are unchanged.
#[derive(Default)]
pub(crate) struct TableMemo {
    memo: FxHashMap<DirectionInput, Arc<[Row]>>,
    /// Every distinct row list computed, once: different inputs that give the same
    /// rows share one allocation (see [`EndpointTable::sharing_key`]).
    interned: FxHashSet<Arc<[Row]>>,
}

impl TableMemo {
    /// Forgets the rows of every input whose NetworkPolicies include the one at
    /// `position` (its content changed, not its place or its rules' ids).
    pub fn forget_network_policy(&mut self, position: usize) {
        self.memo
            .retain(|input, _| !input.network_policy.positions().contains(&position));
    }

    /// Forgets the rows of every input whose egress allowlist includes the
    /// EgressPolicy at `position` (see [`TableMemo::forget_network_policy`]).
    pub fn forget_egress_policy(&mut self, position: usize) {
        self.memo
            .retain(|input, _| !input.egress_allowlist.positions().contains(&position));
    }

    /// Drops the row lists that only the interning set still holds. Published tables
    /// hold the rows they share (see `nodes::publish_table`); the addresses of the
    /// others may still key published tables (see [`EndpointTable::sharing_key`])
    /// until the nodes using them are rebuilt, so no row list may be allocated between
    /// this and those rebuilds; after them, every published table's rows are held by
    /// the endpoint tables it was made from.
    pub fn drop_unused(&mut self) {
        self.interned.retain(|rows| Arc::strong_count(rows) > 1);
    }

    /// The one allocation of `rows`.
    fn intern(&mut self, rows: Vec<Row>) -> Arc<[Row]> {
        let rows: Arc<[Row]> = rows.into();
        match self.interned.get(&rows) {
            Some(interned) => interned.clone(),
            None => {
                self.interned.insert(rows.clone());
                rows
            }
        }
    }
}

/// Whether `peer` is in the peer set the sources compute rows for.
fn sources_peer(sources: &PolicySources, peer: u32) -> bool {
    sources.network_policy_rules.is_peer(peer)
}

/// Computes endpoint tables, memoized by [`DirectionInput`].
pub(crate) struct EndpointTables<'a> {
    sources: PolicySources<'a>,
    memo: TableMemo,
}

impl<'a> EndpointTables<'a> {
    /// Starts from `memo`, which must come from the same policies and peers.
    pub fn with_memo(sources: PolicySources<'a>, memo: TableMemo) -> Self {
        Self { sources, memo }
    }

    /// The memo, for a later compile of the same policies and peers.
    pub fn into_memo(self) -> TableMemo {
        self.memo
    }

    /// For a change of the set of peers (identities some address resolves to): in
    /// every memo entry whose policies may single out one of the `changed` peers, drops
    /// the rows of `changed` peers and adds those the entry gives the peers these
    /// tables' peer set holds (the gained ones). These tables must be built over
    /// identities restricted to the changed peers (`Identities::restricted`): the
    /// rows of one peer depend on nothing but the peer and the entry, so computing
    /// them against the changed peers alone is exact. Returns the addresses of the
    /// row lists replaced (see [`EndpointTable::sharing_key`]).
    pub fn update_peer_rows(&mut self, changed: &BTreeSet<u32>) -> FxHashSet<usize> {
        let sources = &self.sources;
        let admin = sources.cluster_rules.touched_policies(Tier::Admin);
        let baseline = sources.cluster_rules.touched_policies(Tier::Baseline);
        let network_policy = sources.network_policy_rules.touched_policies();
        let egress = sources.egress_allowlists.touched_policies();
        if [&admin, &baseline, &network_policy, &egress]
            .iter()
            .all(|touched| touched.is_empty())
        {
            return FxHashSet::default();
        }
        let touches = |selection: &Selection, touched: &FxHashSet<usize>| {
            !touched.is_empty() && selection.positions().iter().any(|p| touched.contains(p))
        };
        let stale: Vec<DirectionInput> = self
            .memo
            .memo
            .keys()
            .filter(|input| {
                touches(&input.admin, &admin)
                    || touches(&input.baseline, &baseline)
                    || touches(&input.network_policy, &network_policy)
                    || touches(&input.egress_allowlist, &egress)
            })
            .cloned()
            .collect();
        let mut replaced = FxHashSet::default();
        for input in stale {
            let local = Pod {
                namespace: String::new(),
                name: String::new(),
                uid: None,
                labels: Default::default(),
                ips: Vec::new(),
                node_name: None,
                host_network: false,
                ports: input.own_ports.clone(),
                cgroup_path: None,
            };
            let gained = self.compute(&input, &local);
            let Some(old) = self.memo.memo.get(&input).cloned() else {
                continue;
            };
            let mut rows: Vec<Row> = old
                .iter()
                .filter(|row| !changed.contains(&row.peer_identity))
                .cloned()
                .chain(gained.into_iter().filter(|row| {
                    changed.contains(&row.peer_identity)
                        && sources_peer(&self.sources, row.peer_identity)
                }))
                .collect();
            rows.sort_unstable();
            if *rows == *old {
                continue;
            }
            let rows = self.memo.intern(rows);
            replaced.insert(old.as_ptr() as usize);
            self.memo.memo.insert(input, rows);
        }
        replaced
    }

    /// The table of the pod `pod_ref` on a node whose identity, if it has addresses,
    /// is `own_node`.
    pub fn table(
        &mut self,
        pod_ref: &ObjectRef,
        pod: &Pod,
        own_node: Option<&NodeIdentity>,
    ) -> EndpointTable {
        let allowlist = self
            .sources
            .egress_policies
            .effective(&pod_ref.namespace, pod);
        EndpointTable {
            ingress: self.direction(pod_ref, pod, own_node, Direction::Ingress),
            egress: self.direction(pod_ref, pod, own_node, Direction::Egress),
            fqdn_rules: self.sources.egress_policies.fqdn_rules(&allowlist),
        }
    }

    /// The socket controls of the pod `pod_ref`'s effective EgressPolicies.
    pub fn socket_controls(&self, pod_ref: &ObjectRef, pod: &Pod) -> SocketControls {
        let policies = &self.sources.egress_policies;
        policies.socket_controls(&policies.effective(&pod_ref.namespace, pod))
    }

    fn direction(
        &mut self,
        pod_ref: &ObjectRef,
        pod: &Pod,
        own_node: Option<&NodeIdentity>,
        direction: Direction,
    ) -> Option<Arc<[Row]>> {
        let input = self.input(pod_ref, pod, own_node, direction);
        if input.is_unconstrained() {
            return None;
        }
        if let Some(rows) = self.memo.memo.get(&input) {
            return Some(rows.clone());
        }
        // Sorted by key once here, so that each node's table, these rows in policy id
        // order, is already sorted when published.
        let mut rows = self.compute(&input, pod);
        rows.sort_unstable();
        let rows = self.memo.intern(rows);
        self.memo.memo.insert(input, rows.clone());
        Some(rows)
    }

    fn input(
        &self,
        pod_ref: &ObjectRef,
        pod: &Pod,
        own_node: Option<&NodeIdentity>,
        direction: Direction,
    ) -> DirectionInput {
        let sources = &self.sources;
        let namespace_labels = sources.cluster.namespace_labels(&pod_ref.namespace);
        let cluster_tier = |tier| {
            sources
                .cluster_policies
                .selecting(tier, &namespace_labels, pod, direction)
        };
        let admin = cluster_tier(Tier::Admin);
        let baseline = cluster_tier(Tier::Baseline);
        let network_policy = sources
            .network_policies
            .isolating(&pod_ref.namespace, pod, direction);
        let can_match_nodes = [(Tier::Admin, &admin), (Tier::Baseline, &baseline)]
            .into_iter()
            .any(|(tier, selection)| {
                sources
                    .cluster_policies
                    .can_match_nodes(tier, selection, direction)
            });
        let own_ports = match direction {
            Direction::Ingress => pod.ports.clone(),
            Direction::Egress => Vec::new(),
        };
        let egress_allowlist = match direction {
            Direction::Ingress => Selection::default(),
            Direction::Egress => sources.egress_policies.effective(&pod_ref.namespace, pod),
        };
        DirectionInput {
            direction,
            admin,
            network_policy,
            baseline,
            egress_allowlist,
            own_ports,
            own_node: own_node.filter(|_| can_match_nodes).cloned(),
        }
    }

    /// The rows of one direction: the tiers and the egress allowlist chained, then
    /// encoded, the own node's (peer HOST) only where a tier decides about it.
    fn compute(&self, input: &DirectionInput, pod: &Pod) -> Vec<Row> {
        let sources = &self.sources;
        let direction = input.direction;
        let cluster_tier = |tier, selection: &Selection| {
            if selection.is_empty() {
                return TierVerdicts::silent();
            }
            let matches = sources.cluster_rules.first_matches(
                tier,
                selection,
                direction,
                pod,
                input.own_node.as_ref(),
            );
            TierVerdicts::of_first_matches(&matches)
        };
        let network_policy = if input.network_policy.is_empty() {
            TierVerdicts::silent()
        } else {
            let allowing =
                sources
                    .network_policy_rules
                    .allowing_rules(&input.network_policy, direction, pod);
            TierVerdicts::of_isolating_network_policies(&allowing)
        };
        let allowlist = (!input.egress_allowlist.is_empty())
            .then(|| sources.egress_allowlists.allowlist(&input.egress_allowlist));
        let mut decided = chain(
            &cluster_tier(Tier::Admin, &input.admin),
            allowlist.as_ref(),
            &[
                network_policy,
                cluster_tier(Tier::Baseline, &input.baseline),
            ],
        );
        if let Some(own_node) = decided.own_node {
            decided.peers.insert(reserved::HOST, own_node);
        }
        encode_direction(direction, &decided.peers)
    }
}
