//! The compiler: cluster model -> identities, ip cache and per-node policy tables.
//!
//! `compile` is pure and deterministic: the same cluster gives byte-identical output.
//! Its stages, one module each:
//! 1. `rules` and `network_policy`: index the policies, number their rules.
//! 2. `cidr`: the ipBlocks, the prefix set they induce and membership.
//! 3. `identity`: classes of indistinguishable addresses and their stable numbers.
//! 4. `ipcache`: every address to its identity.
//! 5. `network_policy` again: per endpoint, direction and peer, a verdict function
//!    over (protocol, port) (`port_map`, `verdict`).
//! 6. `encode`: verdict functions to LPM rows; `endpoint_tables` memoizes them.
//! 7. `nodes`: per node, endpoints and shared policy tables.
//!
//! Later policy sources (admin tiers, egress allowlists, audit mode) are meant to plug
//! in at stage 5: each yields verdict functions, combined pointwise before encoding.

mod abi_encoding;
mod cidr;
mod encode;
mod endpoint_tables;
mod identity;
mod ipcache;
mod network_policy;
mod nodes;
mod port_map;
mod ports;
mod rules;
pub mod tables;
mod verdict;

pub use abi_encoding::abi_address;
pub use nodes::NO_POLICY;

use crate::model::Cluster;
use cidr::IpBlocks;
use endpoint_tables::EndpointTables;
use identity::Identities;
use ipcache::IpCache;
use network_policy::{NetworkPolicies, RuleEvaluator};
use nodes::NodePlan;
use rules::RuleCatalog;
use tables::CompiledCluster;

/// Compiles a cluster state into the tables the kernel programs read.
pub fn compile(cluster: &Cluster) -> CompiledCluster {
    let mut catalog = RuleCatalog::default();
    let policies = NetworkPolicies::index(cluster, &mut catalog);
    let blocks = IpBlocks::collect(cluster.network_policies.values());
    let identities = Identities::assign(cluster, &blocks, policies.egress_port_names());
    let ipcache = IpCache::build(cluster, &identities);

    let plans = {
        let rule_evaluator =
            RuleEvaluator::new(&policies, &identities, &blocks, &ipcache.peer_identities);
        let mut endpoint_tables = EndpointTables::new(&policies, rule_evaluator);
        NodePlan::plan_all(cluster, &identities, &mut endpoint_tables)
    };

    let (rules, rule_refs) = catalog.publish(&nodes::cited_rules(&plans));
    let nodes = plans
        .into_iter()
        .map(|(name, plan)| (name, plan.finish(&rule_refs)))
        .collect();
    CompiledCluster {
        identities: identities.info,
        ipcache: ipcache.entries,
        nodes,
        rules,
    }
}
