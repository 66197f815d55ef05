//! The compiler: cluster model -> identities, ip cache and per-node policy tables.
//!
//! `compile` is pure and deterministic: the same cluster gives byte-identical output.
//! Its stages, one module each:
//! 1. `rules`, `cluster_policy`, `egress_policy` and `network_policy`: index the
//!    policies, number their rules (`policy_numbers` keeps the numbers of namespaced
//!    policies stable for the incremental compiler); `trust_boundary` first expands
//!    each TrustBoundary into admin-tier cluster policies, one per zone.
//! 2. `cidr`: the ipBlocks and `networks`, the prefix set they induce and membership.
//! 3. `identity`: classes of indistinguishable addresses (pods, nodes, CIDRs) and their
//!    stable numbers.
//! 4. `ipcache`: every address to its identity.
//! 5. Per endpoint, direction and peer, a verdict function over (protocol, port)
//!    (`port_map`, `verdict`) per tier: `cluster_rules` for the admin and baseline
//!    tiers, `network_policy` for NetworkPolicy, `egress_policy` for the egress
//!    allowlist that narrows them; `tiers` chains them.
//! 6. `encode`: verdict functions to LPM rows; `endpoint_tables` memoizes them.
//! 7. `nodes`: per node, endpoints and shared policy tables.
//!
//! Beside the stages, `services` (with `service_endpoints`) maps each Service address
//! and port to its backends, for the datapath's socket load balancing.
//!
//! Later policy sources plug in at stage 5: each yields verdict functions, combined
//! pointwise in `tiers` before encoding.
//!
//! `incremental` keeps a compile up to date under single-object changes
//! ([`Compiler`]) and says what each changed ([`Delta`]); `compact` is a lossless,
//! much smaller encoding of a published policy table for shipping it to nodes.

mod abi_encoding;
mod cidr;
mod cluster_policy;
mod cluster_rules;
pub mod compact;
mod egress_policy;
mod encode;
mod endpoint_tables;
mod identity;
mod incremental;
mod ipcache;
mod network_policy;
mod nodes;
mod pod_peers;
mod policy_numbers;
mod port_map;
mod ports;
mod receiver;
mod rules;
mod selection;
mod service_endpoints;
mod services;
pub mod tables;
mod tiers;
mod trust_boundary;
mod verdict;

pub use abi_encoding::abi_address;
pub use incremental::{
    CanonicalCluster, CanonicalNode, CanonicalTable, Change, Compiler, Delta, canonical,
};
pub use nodes::NO_POLICY;

use crate::model::{Cluster, ClusterPolicy};
use cidr::IpBlocks;
use cluster_policy::ClusterPolicies;
use cluster_rules::ClusterRuleEvaluator;
use egress_policy::{AllowlistEvaluator, EgressPolicies};
use endpoint_tables::{EndpointTables, PolicySources, TableKey, TableMemo};
use identity::{EgressPortNames, Identities};
use ipcache::IpCache;
use network_policy::{NetworkPolicies, RuleEvaluator};
use nodes::{NodePlan, PodTables, PublishedTables};
use policy_numbers::{NamespacedNumbers, RuleIds};
use rules::{RuleCatalog, RuleId};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet};
use tables::CompiledCluster;

/// Compiles a cluster state into the tables the kernel programs read.
pub fn compile(cluster: &Cluster) -> CompiledCluster {
    compile_full(cluster, RulePublication::Cited).compiled
}

/// Which rules a compile publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RulePublication {
    /// Only those some table cites ([`compile`]).
    Cited,
    /// Every rule of every policy, so that a table computed later never cites an
    /// unpublished rule (the incremental compiler).
    All,
}

/// The policy indexes of one cluster state, borrowed from it.
pub(crate) struct Indexes<'a> {
    pub cluster_policies: ClusterPolicies<'a>,
    pub egress_policies: EgressPolicies<'a>,
    pub network_policies: NetworkPolicies<'a>,
}

impl<'a> Indexes<'a> {
    /// Indexes the policies of `cluster` (with `trust_boundaries`, its TrustBoundaries
    /// expanded), entering their rules in `catalog` in its order: the cluster tiers
    /// ("admin", "baseline") sort before "egress", which sorts before "networkpolicy".
    /// Also returns the numbers given to the namespaced policies.
    pub fn index(
        cluster: &'a Cluster,
        trust_boundaries: &'a [ClusterPolicy],
        catalog: &mut RuleCatalog,
    ) -> (Self, NamespacedNumbers) {
        let cluster_policies = ClusterPolicies::index(cluster, trust_boundaries, catalog);
        let egress_policies = EgressPolicies::number(cluster, catalog);
        let network_policies = NetworkPolicies::number(cluster, catalog);
        let numbers = NamespacedNumbers {
            network_policies,
            egress_policies,
            rule_ids: RuleIds::after(catalog),
        };
        let indexes = Self {
            cluster_policies,
            egress_policies: EgressPolicies::index(cluster, &numbers.egress_policies),
            network_policies: NetworkPolicies::index(cluster, &numbers.network_policies),
        };
        (indexes, numbers)
    }

    /// Indexes the policies of `cluster` again, after a compile that indexed the same
    /// cluster policies (their rule ids are counted the same way again) and with the
    /// namespaced policies numbered by `numbers`.
    pub fn numbered(
        cluster: &'a Cluster,
        trust_boundaries: &'a [ClusterPolicy],
        numbers: &NamespacedNumbers,
    ) -> Self {
        Self {
            cluster_policies: ClusterPolicies::index(
                cluster,
                trust_boundaries,
                &mut RuleCatalog::counting(),
            ),
            egress_policies: EgressPolicies::index(cluster, &numbers.egress_policies),
            network_policies: NetworkPolicies::index(cluster, &numbers.network_policies),
        }
    }

    /// Port names egress rules use, which pod identities must tell apart.
    pub fn egress_port_names(&self) -> EgressPortNames {
        let mut names = self.network_policies.egress_port_names().clone();
        names.extend(self.cluster_policies.egress_port_names());
        names
    }

    /// The endpoint table computer over these indexes, starting from `memo`.
    pub fn endpoint_tables<'b>(
        &'b self,
        cluster: &'b Cluster,
        identities: &'b Identities,
        blocks: &'b IpBlocks,
        peers: &'b BTreeSet<u32>,
        memo: TableMemo,
    ) -> EndpointTables<'b> {
        let sources = PolicySources {
            cluster,
            cluster_policies: &self.cluster_policies,
            cluster_rules: ClusterRuleEvaluator::new(
                &self.cluster_policies,
                identities,
                blocks,
                peers,
            ),
            network_policies: &self.network_policies,
            network_policy_rules: RuleEvaluator::new(
                &self.network_policies,
                identities,
                blocks,
                peers,
            ),
            egress_policies: &self.egress_policies,
            egress_allowlists: AllowlistEvaluator::new(
                &self.egress_policies,
                identities,
                blocks,
                peers,
            ),
        };
        EndpointTables::with_memo(sources, memo)
    }
}

/// A from-scratch compile and the intermediate state an incremental compiler keeps.
pub(crate) struct FullCompile {
    pub compiled: CompiledCluster,
    pub trust_boundaries: Vec<ClusterPolicy>,
    pub blocks: IpBlocks,
    pub egress_port_names: EgressPortNames,
    pub identities: Identities,
    pub peer_identities: BTreeSet<u32>,
    pub memo: TableMemo,
    pub pod_tables: PodTables,
    /// Published table index of each table, by sharing key.
    pub published: FxHashMap<TableKey, u32>,
    pub rule_refs: BTreeMap<RuleId, u32>,
    pub numbers: NamespacedNumbers,
}

pub(crate) fn compile_full(cluster: &Cluster, publication: RulePublication) -> FullCompile {
    let mut catalog = RuleCatalog::default();
    let trust_boundaries = trust_boundary::expand(cluster);
    let blocks = IpBlocks::collect(cluster);
    let nodes = cluster.node_peers();
    let (indexes, numbers) = Indexes::index(cluster, &trust_boundaries, &mut catalog);
    let egress_port_names = indexes.egress_port_names();
    let identities = Identities::assign(cluster, &nodes, &blocks, &egress_port_names);
    let IpCache {
        entries: ipcache,
        peer_identities,
    } = IpCache::build(&identities);

    let mut pod_tables = PodTables::default();
    let (plans, memo) = {
        let mut endpoint_tables = indexes.endpoint_tables(
            cluster,
            &identities,
            &blocks,
            &peer_identities,
            TableMemo::default(),
        );
        let plans = NodePlan::plan_all(
            cluster,
            &nodes,
            &identities,
            &mut endpoint_tables,
            &mut pod_tables,
        );
        (plans, endpoint_tables.into_memo())
    };
    drop(indexes);

    let published_rules = match publication {
        RulePublication::Cited => nodes::cited_rules(&plans),
        RulePublication::All => catalog.ids().collect(),
    };
    let (rules, rule_refs) = catalog.publish(&published_rules);
    let dense_refs = rules::RuleRefs::new(&rule_refs);
    let mut published = PublishedTables::new(&dense_refs);
    let nodes = plans
        .into_iter()
        .map(|(name, plan)| (name, plan.finish(|table| published.index_of(table))))
        .collect();
    let (policy_tables, published) = published.into_parts();
    FullCompile {
        compiled: CompiledCluster {
            identities: identities.info.clone(),
            ipcache,
            nodes,
            policy_tables,
            rules,
            services: services::compile(cluster),
        },
        trust_boundaries,
        blocks,
        egress_port_names,
        identities,
        peer_identities,
        memo,
        pod_tables,
        published,
        rule_refs,
        numbers,
    }
}
