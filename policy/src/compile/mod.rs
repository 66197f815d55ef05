//! The compiler: cluster model -> identities, ip cache and per-node policy tables.
//!
//! `compile` is pure and deterministic: the same cluster gives byte-identical output.
//! Its stages, one module each:
//! 1. `rules`, `cluster_policy`, `egress_policy` and `network_policy`: index the
//!    policies, number their rules; `trust_boundary` first expands each TrustBoundary
//!    into admin-tier cluster policies, one per zone.
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

mod abi_encoding;
mod cidr;
mod cluster_policy;
mod cluster_rules;
mod egress_policy;
mod encode;
mod endpoint_tables;
mod identity;
mod ipcache;
mod network_policy;
mod nodes;
mod pod_peers;
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
pub use nodes::NO_POLICY;

use crate::model::Cluster;
use cidr::IpBlocks;
use cluster_policy::ClusterPolicies;
use cluster_rules::ClusterRuleEvaluator;
use egress_policy::{AllowlistEvaluator, EgressPolicies};
use endpoint_tables::{EndpointTables, PolicySources};
use identity::Identities;
use ipcache::IpCache;
use network_policy::{NetworkPolicies, RuleEvaluator};
use nodes::{NodePlan, PublishedTables};
use rules::RuleCatalog;
use tables::CompiledCluster;

/// Compiles a cluster state into the tables the kernel programs read.
pub fn compile(cluster: &Cluster) -> CompiledCluster {
    // Rules enter the catalog in its order: the cluster tiers ("admin", "baseline")
    // sort before "egress", which sorts before "networkpolicy".
    let mut catalog = RuleCatalog::default();
    let trust_boundaries = trust_boundary::expand(cluster);
    let cluster_policies = ClusterPolicies::index(cluster, &trust_boundaries, &mut catalog);
    let egress_policies = EgressPolicies::index(cluster, &mut catalog);
    let network_policies = NetworkPolicies::index(cluster, &mut catalog);
    let blocks = IpBlocks::collect(cluster);
    let nodes = cluster.node_peers();
    let mut egress_port_names = network_policies.egress_port_names().clone();
    egress_port_names.extend(cluster_policies.egress_port_names());
    let identities = Identities::assign(cluster, &nodes, &blocks, &egress_port_names);
    let ipcache = IpCache::build(&identities);

    let plans = {
        let peers = &ipcache.peer_identities;
        let sources = PolicySources {
            cluster,
            cluster_policies: &cluster_policies,
            cluster_rules: ClusterRuleEvaluator::new(
                &cluster_policies,
                &identities,
                &blocks,
                peers,
            ),
            network_policies: &network_policies,
            network_policy_rules: RuleEvaluator::new(
                &network_policies,
                &identities,
                &blocks,
                peers,
            ),
            egress_policies: &egress_policies,
            egress_allowlists: AllowlistEvaluator::new(
                &egress_policies,
                &identities,
                &blocks,
                peers,
            ),
        };
        let mut endpoint_tables = EndpointTables::new(sources);
        NodePlan::plan_all(cluster, &nodes, &identities, &mut endpoint_tables)
    };

    let (rules, rule_refs) = catalog.publish(&nodes::cited_rules(&plans));
    let rule_refs = rules::RuleRefs::new(&rule_refs);
    let mut published = PublishedTables::new(&rule_refs);
    let nodes = plans
        .into_iter()
        .map(|(name, plan)| (name, plan.finish(&mut published)))
        .collect();
    CompiledCluster {
        identities: identities.info,
        ipcache: ipcache.entries,
        nodes,
        policy_tables: published.tables,
        rules,
        services: services::compile(cluster),
    }
}
