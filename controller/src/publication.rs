//! What the controller publishes for a compiled cluster, as content: the shards of the
//! cluster tables and one NodePolicy per node, each with its content hash. Pure.
//!
//! Sharding: an entry's shard is `stable_hash(key) % shards`, the hash being the first
//! eight bytes of sha256 of the entry's key (identity number, prefix, Service address
//! and port), so an entry stays in its shard whatever else changes and one pod change
//! touches one shard. `shards` is a power of two per table, kept from the previous
//! publication and changed only when needed: doubled while a shard would exceed
//! [`SHARD_TARGET`] (64 KiB: one pod change rewrites one shard, so a shard's size is
//! what every pod change costs to write and to send to every agent; far under the API
//! server's 1.5 MiB request limit),
//! halved while every shard of half as many would stay under a quarter of it (so a
//! table hovering at the bound does not flap). Doubling splits every shard `i` into
//! `i` and `i + shards`.

use crate::publication_state::PublicationState;
use crate::sharded_table::stable_hash;
use palisade_crds::publication::NodePolicyContent;
use palisade_policy::compile::tables::{CompiledCluster, NodeTables, PolicyRow};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// A shard is split when its entries would exceed this many bytes of JSON.
pub const SHARD_TARGET: usize = 64 * 1024;
/// Every published object must serialize to at most this many bytes; a bigger one is
/// an error, never truncated.
pub const OBJECT_BUDGET: usize = 1024 * 1024;
/// One shard of a cluster table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableShard {
    pub table: &'static str,
    pub shard: u32,
    pub shards: u32,
    pub content_hash: String,
    pub entries: Vec<Value>,
}

/// One node's NodePolicy content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeContent {
    pub content_hash: String,
    pub content: NodePolicyContent,
}

/// Everything the controller should publish, by object name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub tables: BTreeMap<String, TableShard>,
    pub nodes: BTreeMap<String, NodeContent>,
    /// Shard count per table.
    pub shards: BTreeMap<&'static str, u32>,
}

/// The publication of `compiled`. `previous_shards` is the shard count each table had
/// (absent: 1). The controller keeps it up to date incrementally
/// ([`PublicationState`](crate::publication_state::PublicationState)); this is the
/// same computed from scratch.
pub fn desired(
    compiled: &CompiledCluster,
    previous_shards: &BTreeMap<&'static str, u32>,
) -> Desired {
    PublicationState::build(compiled, previous_shards).1
}

/// The node's part of the compiled cluster: its tables and the rules they cite.
pub fn node_content(compiled: &CompiledCluster, node: &NodeTables) -> NodePolicyContent {
    let mut policy_tables = BTreeMap::new();
    let mut rules = BTreeMap::new();
    for (policy_id, table) in compiled.node_tables(node) {
        let cited = table
            .rows
            .iter()
            .filter_map(|row| row.rule_ref)
            .chain(table.fqdn_rules.iter().filter_map(|rule| rule.rule_ref));
        for rule in cited {
            if let Some(info) = compiled.rules.get(rule as usize) {
                rules.insert(rule, info.clone());
            }
        }
        policy_tables.insert(policy_id, table.clone());
    }
    NodePolicyContent {
        host_addresses: node.host_addresses.clone(),
        endpoints: node.endpoints.clone(),
        policy_tables,
        rules,
    }
}

/// The content hash of `content` with every rule reference replaced by the rule it
/// cites (rows and DNS rules sorted after that): equal for two publications of one
/// cluster state that differ only in how rules are numbered, as an incremental
/// compile and a from-scratch one do.
pub fn canonical_content_hash(content: &NodePolicyContent) -> String {
    let rule = |rule_ref: Option<u32>| rule_ref.and_then(|r| content.rules.get(&r));
    let tables: BTreeMap<u32, _> = content
        .policy_tables
        .iter()
        .map(|(policy_id, table)| {
            let mut rows: Vec<_> = table
                .rows
                .iter()
                .map(|row| {
                    let unnumbered = PolicyRow {
                        rule_ref: None,
                        ..*row
                    };
                    (unnumbered, rule(row.rule_ref))
                })
                .collect();
            rows.sort();
            let mut fqdn: Vec<_> = table
                .fqdn_rules
                .iter()
                .map(|r| (&r.pattern, &r.ports, rule(r.rule_ref)))
                .collect();
            fqdn.sort();
            (*policy_id, (rows, fqdn))
        })
        .collect();
    content_hash(&(&content.host_addresses, &content.endpoints, tables))
}

/// sha256 (hex) of the canonical JSON of `content` (struct fields in declaration
/// order, maps sorted).
pub fn content_hash<T: Serialize + ?Sized>(content: &T) -> String {
    let bytes = serde_json::to_vec(content).expect("publication content serializes");
    hex::encode(Sha256::digest(&bytes))
}

/// The shard of an entry key among `shards` (a power of two).
pub fn shard_of(key: &str, shards: u32) -> u32 {
    (stable_hash(key) % u64::from(shards)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_crds::publication::TABLE_IPCACHE;
    use palisade_policy::compile::tables::{IdentityInfo, IpCacheEntry};

    fn cluster_with_ipcache(n: u32) -> CompiledCluster {
        let mut compiled = CompiledCluster::default();
        for i in 0..n {
            let prefix = format!("10.{}.{}.{}/32", i >> 16, (i >> 8) & 255, i & 255);
            compiled.ipcache.push(IpCacheEntry {
                prefix: prefix.parse().unwrap(),
                identity: 1000 + i,
            });
        }
        compiled.identities.insert(
            1000,
            IdentityInfo {
                kind: "pod".into(),
                labels: vec!["app=web".into()],
            },
        );
        compiled
    }

    #[test]
    fn small_tables_are_one_shard_each() {
        let desired = desired(&cluster_with_ipcache(10), &BTreeMap::new());
        assert_eq!(
            desired.tables.keys().collect::<Vec<_>>(),
            ["identities-000", "ipcache-000", "services-000"]
        );
        assert_eq!(desired.tables["ipcache-000"].entries.len(), 10);
        assert!(desired.tables["services-000"].entries.is_empty());
    }

    #[test]
    fn big_tables_split_into_power_of_two_shards_under_the_target() {
        let desired = desired(&cluster_with_ipcache(40_000), &BTreeMap::new());
        let shards = desired.shards[TABLE_IPCACHE];
        assert!(shards > 1 && shards.is_power_of_two(), "{shards}");
        for shard in desired.tables.values().filter(|s| s.table == TABLE_IPCACHE) {
            let size = serde_json::to_vec(&shard.entries).unwrap().len();
            assert!(size <= SHARD_TARGET, "{size}");
            assert_eq!(shard.shards, shards);
        }
        let total: usize = desired
            .tables
            .values()
            .filter(|s| s.table == TABLE_IPCACHE)
            .map(|s| s.entries.len())
            .sum();
        assert_eq!(total, 40_000);
    }

    #[test]
    fn one_entry_changes_one_shard() {
        let before = cluster_with_ipcache(40_000);
        let mut after = before.clone();
        after.ipcache[123].identity = 7;
        let a = desired(&before, &BTreeMap::new());
        let b = desired(&after, &a.shards);
        let changed: Vec<_> = a
            .tables
            .iter()
            .filter(|(name, shard)| b.tables[*name].content_hash != shard.content_hash)
            .map(|(name, _)| name.clone())
            .collect();
        assert_eq!(changed.len(), 1, "{changed:?}");
    }

    #[test]
    fn shard_counts_are_kept_unless_needed() {
        // Tiny: a previous count of 8 shrinks back to 1.
        let tiny = cluster_with_ipcache(10);
        let previous = BTreeMap::from([(TABLE_IPCACHE, 8)]);
        assert_eq!(desired(&tiny, &previous).shards[TABLE_IPCACHE], 1);
        // Big: a count that fits is kept even where fewer would do.
        let big = cluster_with_ipcache(40_000);
        let fitting = desired(&big, &BTreeMap::new()).shards[TABLE_IPCACHE];
        let previous = BTreeMap::from([(TABLE_IPCACHE, fitting * 2)]);
        assert_eq!(desired(&big, &previous).shards[TABLE_IPCACHE], fitting * 2);
        assert_eq!(shard_of("x", 1), 0);
        assert!(shard_of("x", 8) < 8);
    }

    #[test]
    fn content_hash_is_stable() {
        let a = desired(&cluster_with_ipcache(100), &BTreeMap::new());
        let b = desired(&cluster_with_ipcache(100), &BTreeMap::new());
        assert_eq!(a, b);
        assert_eq!(a.tables["ipcache-000"].content_hash.len(), 64);
    }
}
