//! What the controller publishes for a compiled cluster, as content: the shards of the
//! cluster tables and one NodePolicy per node, each with its content hash. Pure.
//!
//! Sharding: an entry's shard is `stable_hash(key) % shards`, the hash being the first
//! eight bytes of sha256 of the entry's key (identity number, prefix, Service address
//! and port), so an entry stays in its shard whatever else changes and one pod change
//! touches one shard. `shards` is a power of two per table, kept from the previous
//! publication and changed only when needed: doubled while a shard would exceed
//! [`SHARD_TARGET`] (512 KiB, well under the API server's 1.5 MiB request limit),
//! halved while every shard of half as many would stay under a quarter of it (so a
//! table hovering at the bound does not flap). Doubling splits every shard `i` into
//! `i` and `i + shards`.

use palisade_crds::publication::{
    IdentityEntry, NodePolicyContent, TABLE_IDENTITIES, TABLE_IPCACHE, TABLE_SERVICES, shard_name,
};
use palisade_policy::compile::tables::{CompiledCluster, NodeTables};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// A shard is split when its entries would exceed this many bytes of JSON.
pub const SHARD_TARGET: usize = 512 * 1024;
/// Every published object must serialize to at most this many bytes; a bigger one is
/// an error, never truncated.
pub const OBJECT_BUDGET: usize = 1024 * 1024;
/// Most shards a table may have.
const MAX_SHARDS: u32 = 1 << 12;

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
/// (absent: 1).
pub fn desired(
    compiled: &CompiledCluster,
    previous_shards: &BTreeMap<&'static str, u32>,
) -> Desired {
    let mut out = Desired::default();
    let identities = compiled.identities.iter().map(|(identity, info)| {
        let entry = IdentityEntry {
            identity: *identity,
            kind: info.kind.clone(),
            labels: info.labels.clone(),
        };
        (identity.to_string(), to_value(&entry))
    });
    let ipcache = compiled
        .ipcache
        .iter()
        .map(|entry| (entry.prefix.to_string(), to_value(entry)));
    let services = compiled.services.iter().map(|entry| {
        let key = format!("{}|{}|{}", entry.address, entry.port, entry.protocol);
        (key, to_value(entry))
    });
    let tables: [(&'static str, Vec<(String, Value)>); 3] = [
        (TABLE_IDENTITIES, identities.collect()),
        (TABLE_IPCACHE, ipcache.collect()),
        (TABLE_SERVICES, services.collect()),
    ];
    for (table, entries) in tables {
        let previous = previous_shards.get(table).copied().unwrap_or(1);
        let shards = shard_count(&entries, previous);
        out.shards.insert(table, shards);
        let mut split: Vec<Vec<Value>> = vec![Vec::new(); shards as usize];
        for (key, value) in entries {
            split[shard_of(&key, shards) as usize].push(value);
        }
        for (shard, entries) in split.into_iter().enumerate() {
            let shard = shard as u32;
            out.tables.insert(
                shard_name(table, shard),
                TableShard {
                    table,
                    shard,
                    shards,
                    content_hash: content_hash(&entries),
                    entries,
                },
            );
        }
    }
    for (node, tables) in &compiled.nodes {
        // Pods that are not scheduled compile under "": no node to publish them to.
        if node.is_empty() {
            continue;
        }
        let content = node_content(compiled, tables);
        out.nodes.insert(
            node.clone(),
            NodeContent {
                content_hash: content_hash(&content),
                content,
            },
        );
    }
    out
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

/// sha256 (hex) of the canonical JSON of `content` (struct fields in declaration
/// order, maps sorted).
pub fn content_hash<T: Serialize + ?Sized>(content: &T) -> String {
    let bytes = serde_json::to_vec(content).expect("publication content serializes");
    hex::encode(Sha256::digest(&bytes))
}

/// The shard of an entry key among `shards` (a power of two).
pub fn shard_of(key: &str, shards: u32) -> u32 {
    let digest = Sha256::digest(key.as_bytes());
    let hash = u64::from_be_bytes(digest[..8].try_into().expect("eight bytes"));
    (hash % u64::from(shards)) as u32
}

fn shard_count(entries: &[(String, Value)], previous: u32) -> u32 {
    let sizes: Vec<(u64, usize)> = entries
        .iter()
        .map(|(key, value)| {
            let digest = Sha256::digest(key.as_bytes());
            let hash = u64::from_be_bytes(digest[..8].try_into().expect("eight bytes"));
            (
                hash,
                serde_json::to_vec(value).map(|v| v.len() + 1).unwrap_or(0),
            )
        })
        .collect();
    let largest = |shards: u32| -> usize {
        let mut totals = vec![0usize; shards as usize];
        for (hash, size) in &sizes {
            totals[(hash % u64::from(shards)) as usize] += size;
        }
        totals.into_iter().max().unwrap_or(0)
    };
    let mut shards = previous.max(1).next_power_of_two().min(MAX_SHARDS);
    while shards < MAX_SHARDS && largest(shards) > SHARD_TARGET {
        shards *= 2;
    }
    while shards > 1 && largest(shards / 2) <= SHARD_TARGET / 4 {
        shards /= 2;
    }
    shards
}

fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("publication entries serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let entries: Vec<(String, Value)> =
            (0..10).map(|i| (i.to_string(), Value::from(i))).collect();
        // Tiny: a previous count of 8 shrinks back to 1.
        assert_eq!(shard_count(&entries, 8), 1);
        assert_eq!(shard_count(&entries, 1), 1);
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
