//! One cluster table (identities, ip cache or Services) split into its shards, kept
//! up to date one entry at a time. Pure.
//!
//! Each entry is held with its key's stable hash and its serialized JSON, so a change
//! re-hashes only the shard holding it (its content hash is computed from the stored
//! bytes, nothing is re-serialized) and a shard-count check needs only the per-shard
//! byte totals. The shard count follows the rule of [`publication`](crate::publication):
//! kept unless a shard would exceed [`SHARD_TARGET`] (then doubled) or every shard of
//! half as many would stay under a quarter of it (then halved); a change of count
//! rebuilds this one table.

use crate::publication::{SHARD_TARGET, TableShard};
use palisade_crds::publication::shard_name;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Most shards a table may have.
const MAX_SHARDS: u32 = 1 << 12;

/// One entry: its key's hash (which picks its shard), its JSON and the value.
#[derive(Clone, Debug)]
struct Entry {
    hash: u64,
    json: Vec<u8>,
    value: Value,
}

/// A table's entries by shard, each shard sorted by the natural key `K`.
#[derive(Clone, Debug)]
pub struct ShardedTable<K: Ord> {
    table: &'static str,
    shards: u32,
    split: Vec<BTreeMap<K, Entry>>,
    /// Per shard: bytes of its entries as a JSON array's elements (each plus one).
    sizes: Vec<usize>,
    /// Per shard: its content hash.
    hashes: Vec<String>,
}

/// An entry to put in a table: its natural key, the key its shard is picked by
/// (identity number, prefix, `address|port|protocol`) and its JSON value.
pub struct NewEntry<K> {
    pub key: K,
    pub shard_key: String,
    pub value: Value,
}

impl<K: Ord + Clone> ShardedTable<K> {
    /// The table of `entries`; `previous` is the shard count it had (absent: 1).
    pub fn build(
        table: &'static str,
        entries: impl IntoIterator<Item = NewEntry<K>>,
        previous: Option<u32>,
    ) -> Self {
        let entries: Vec<(K, Entry)> = entries
            .into_iter()
            .map(|e| (e.key, entry(&e.shard_key, e.value)))
            .collect();
        let shards = shard_count(&entries, previous.unwrap_or(1));
        Self::split(table, entries, shards)
    }

    fn split(table: &'static str, entries: Vec<(K, Entry)>, shards: u32) -> Self {
        let mut split: Vec<BTreeMap<K, Entry>> = (0..shards).map(|_| BTreeMap::new()).collect();
        let mut sizes = vec![0usize; shards as usize];
        for (key, entry) in entries {
            let shard = (entry.hash % u64::from(shards)) as usize;
            sizes[shard] += entry.json.len() + 1;
            split[shard].insert(key, entry);
        }
        let hashes = split.iter().map(shard_hash).collect();
        ShardedTable {
            table,
            shards,
            split,
            sizes,
            hashes,
        }
    }

    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// `identities`, `ipcache` or `services`.
    pub fn name(&self) -> &'static str {
        self.table
    }

    /// The content hashes of `shards`, as of the last settle.
    pub fn clone_hashes(&self, shards: &BTreeSet<u32>) -> Vec<(u32, String)> {
        shards
            .iter()
            .map(|s| (*s, self.hashes[*s as usize].clone()))
            .collect()
    }

    /// Sets the entry of `key` (shard picked by `shard_key`); returns its shard.
    /// Call [`ShardedTable::settle`] after a batch of these.
    pub fn set(&mut self, key: K, shard_key: &str, value: Value) -> u32 {
        let entry = entry(shard_key, value);
        let shard = (entry.hash % u64::from(self.shards)) as usize;
        self.sizes[shard] += entry.json.len() + 1;
        if let Some(old) = self.split[shard].insert(key, entry) {
            self.sizes[shard] -= old.json.len() + 1;
        }
        shard as u32
    }

    /// Removes the entry of `key`, whose shard key is `shard_key`; returns its shard.
    pub fn remove(&mut self, key: &K, shard_key: &str) -> u32 {
        let shard = (stable_hash(shard_key) % u64::from(self.shards)) as usize;
        if let Some(old) = self.split[shard].remove(key) {
            self.sizes[shard] -= old.json.len() + 1;
        }
        shard as u32
    }

    /// After a batch of changes to `touched` shards: re-shards the table if its
    /// count no longer fits (true: every shard changed), else recomputes the content
    /// hashes of the touched shards.
    pub fn settle(&mut self, touched: impl IntoIterator<Item = u32>) -> bool {
        let largest = self.sizes.iter().copied().max().unwrap_or(0);
        let halves = self.shards > 1 && {
            let half = (self.shards / 2) as usize;
            (0..half)
                .map(|i| self.sizes[i] + self.sizes[i + half])
                .max()
                .unwrap_or(0)
                <= SHARD_TARGET / 4
        };
        if largest > SHARD_TARGET || halves {
            let entries: Vec<(K, Entry)> = std::mem::take(&mut self.split)
                .into_iter()
                .flat_map(BTreeMap::into_iter)
                .collect();
            let shards = shard_count(&entries, self.shards);
            *self = Self::split(self.table, entries, shards);
            return true;
        }
        for shard in touched {
            self.hashes[shard as usize] = shard_hash(&self.split[shard as usize]);
        }
        false
    }

    /// The content hash of `shard`, as of the last settle.
    pub fn hash(&self, shard: u32) -> &str {
        &self.hashes[shard as usize]
    }

    /// Object name and content of `shard`.
    pub fn shard(&self, shard: u32) -> (String, TableShard) {
        let entries = self.split[shard as usize]
            .values()
            .map(|e| e.value.clone())
            .collect();
        (
            shard_name(self.table, shard),
            TableShard {
                table: self.table,
                shard,
                shards: self.shards,
                content_hash: self.hashes[shard as usize].clone(),
                entries,
            },
        )
    }

    /// Every shard, by object name.
    pub fn all(&self) -> impl Iterator<Item = (String, TableShard)> + '_ {
        (0..self.shards).map(|shard| self.shard(shard))
    }
}

fn entry(shard_key: &str, value: Value) -> Entry {
    Entry {
        hash: stable_hash(shard_key),
        json: serde_json::to_vec(&value).expect("publication entries serialize"),
        value,
    }
}

/// The first eight bytes of sha256 of `key`, big-endian.
pub fn stable_hash(key: &str) -> u64 {
    let digest = Sha256::digest(key.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("eight bytes"))
}

/// sha256 (hex) of the shard's entries as a JSON array: the same bytes
/// `serde_json::to_vec(&entries)` gives, from the stored ones.
fn shard_hash<K>(entries: &BTreeMap<K, Entry>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"[");
    for (i, entry) in entries.values().enumerate() {
        if i > 0 {
            hasher.update(b",");
        }
        hasher.update(&entry.json);
    }
    hasher.update(b"]");
    hex::encode(hasher.finalize())
}

fn shard_count<K>(entries: &[(K, Entry)], previous: u32) -> u32 {
    let largest = |shards: u32| -> usize {
        let mut totals = vec![0usize; shards as usize];
        for (_, entry) in entries {
            totals[(entry.hash % u64::from(shards)) as usize] += entry.json.len() + 1;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publication::content_hash;

    fn numbers(n: u32) -> impl Iterator<Item = NewEntry<u32>> {
        (0..n).map(|i| NewEntry {
            key: i,
            shard_key: i.to_string(),
            value: serde_json::json!({"identity": i, "labels": ["a=b"]}),
        })
    }

    #[test]
    fn shard_hashes_are_those_of_the_entries_serialized() {
        let table = ShardedTable::build("identities", numbers(100), None);
        let (_, shard) = table.shard(0);
        assert_eq!(shard.content_hash, content_hash(&shard.entries));
    }

    #[test]
    fn set_and_remove_keep_what_a_build_gives() {
        let mut table = ShardedTable::build("identities", numbers(30_000), None);
        assert!(table.shards() > 1);
        let mut touched = vec![table.set(5, "5", serde_json::json!({"identity": 5, "labels": []}))];
        touched.push(table.remove(&7, "7"));
        touched.push(table.remove(&8, "8"));
        assert!(!table.settle(touched));
        let rebuilt = ShardedTable::build(
            "identities",
            numbers(30_000)
                .filter(|e| e.key != 7 && e.key != 8)
                .map(|mut e| {
                    if e.key == 5 {
                        e.value = serde_json::json!({"identity": 5, "labels": []});
                    }
                    e
                }),
            Some(table.shards()),
        );
        assert_eq!(table.hashes, rebuilt.hashes);
    }

    #[test]
    fn shrinking_below_the_bound_halves() {
        let mut table = ShardedTable::build("identities", numbers(30_000), None);
        let before = table.shards();
        let touched: Vec<u32> = (100..30_000)
            .map(|i| table.remove(&i, &i.to_string()))
            .collect();
        assert!(table.settle(touched));
        assert!(table.shards() < before);
        let rebuilt = ShardedTable::build("identities", numbers(100), Some(before));
        assert_eq!(table.hashes, rebuilt.hashes);
        assert_eq!(table.shards(), rebuilt.shards());
    }
}
