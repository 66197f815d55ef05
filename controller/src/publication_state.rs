//! The publication of a compiled cluster, kept up to date from the incremental
//! compiler's deltas: a change touches only the table shards holding the identities,
//! prefixes or Services it names and the NodePolicies of the nodes it names, and the
//! answer ([`PublicationUpdate`]) carries only the objects whose content hash changed.
//! A delta after a full recompile, or one that changed the rule list, recomputes
//! everything and is diffed by content hash. Pure.

use crate::publication::{Desired, NodeContent, TableShard, content_hash, node_content};
use crate::sharded_table::{NewEntry, ShardedTable};
use ipnet::IpNet;
use palisade_crds::publication::{
    IdentityEntry, TABLE_IDENTITIES, TABLE_IPCACHE, TABLE_SERVICES, shard_name,
};
use palisade_policy::compile::Delta;
use palisade_policy::compile::tables::{CompiledCluster, IdentityInfo, IpCacheEntry, ServiceEntry};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// A Service table entry's key: address, port, protocol (the table's sort order).
type ServiceKey = (IpAddr, u16, u8);

/// The objects whose content changed, by name: `Some` to publish, `None` to delete.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublicationUpdate {
    pub tables: BTreeMap<String, Option<TableShard>>,
    pub nodes: BTreeMap<String, Option<NodeContent>>,
    /// Shard count per table after the update.
    pub shards: BTreeMap<&'static str, u32>,
}

impl PublicationUpdate {
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.nodes.is_empty()
    }
}

impl Desired {
    /// Brings this publication up to date with `update`.
    pub fn apply(&mut self, update: PublicationUpdate) {
        for (name, shard) in update.tables {
            match shard {
                Some(shard) => self.tables.insert(name, shard),
                None => self.tables.remove(&name),
            };
        }
        for (name, node) in update.nodes {
            match node {
                Some(node) => self.nodes.insert(name, node),
                None => self.nodes.remove(&name),
            };
        }
        self.shards = update.shards;
    }
}

/// What is published for the compiled cluster: the tables' shards and each node's
/// content hash.
#[derive(Clone, Debug)]
pub struct PublicationState {
    identities: ShardedTable<u32>,
    ipcache: ShardedTable<IpNet>,
    services: ShardedTable<ServiceKey>,
    nodes: BTreeMap<String, String>,
}

impl PublicationState {
    /// The publication of `compiled`; `previous_shards` is the shard count each table
    /// had (absent: 1).
    pub fn build(
        compiled: &CompiledCluster,
        previous_shards: &BTreeMap<&'static str, u32>,
    ) -> (Self, Desired) {
        let previous = |table| previous_shards.get(table).copied();
        let identities = ShardedTable::build(
            TABLE_IDENTITIES,
            compiled
                .identities
                .iter()
                .map(|(id, info)| identity_entry(*id, info)),
            previous(TABLE_IDENTITIES),
        );
        let ipcache = ShardedTable::build(
            TABLE_IPCACHE,
            compiled.ipcache.iter().map(ipcache_entry),
            previous(TABLE_IPCACHE),
        );
        let services = services_table(compiled, previous(TABLE_SERVICES));
        let mut desired = Desired::default();
        desired.tables.extend(identities.all());
        desired.tables.extend(ipcache.all());
        desired.tables.extend(services.all());
        for (node, tables) in &compiled.nodes {
            // Pods that are not scheduled compile under "": no node to publish them to.
            if node.is_empty() {
                continue;
            }
            let content = node_content(compiled, tables);
            desired.nodes.insert(
                node.clone(),
                NodeContent {
                    content_hash: content_hash(&content),
                    content,
                },
            );
        }
        let state = PublicationState {
            identities,
            ipcache,
            services,
            nodes: desired
                .nodes
                .iter()
                .map(|(name, node)| (name.clone(), node.content_hash.clone()))
                .collect(),
        };
        desired.shards = state.shard_counts();
        (state, desired)
    }

    /// Shard count per table.
    pub fn shard_counts(&self) -> BTreeMap<&'static str, u32> {
        BTreeMap::from([
            (TABLE_IDENTITIES, self.identities.shards()),
            (TABLE_IPCACHE, self.ipcache.shards()),
            (TABLE_SERVICES, self.services.shards()),
        ])
    }

    /// Brings the publication up to date with `compiled`, of which `delta` says what
    /// changed since the last call; returns the objects whose content changed.
    pub fn update(&mut self, compiled: &CompiledCluster, delta: &Delta) -> PublicationUpdate {
        if delta.full_recompile || delta.rules {
            return self.rebuild(compiled);
        }
        let mut update = PublicationUpdate::default();
        let mut touched = BTreeSet::new();
        for id in &delta.identities {
            touched.insert(match compiled.identities.get(id) {
                Some(info) => {
                    let e = identity_entry(*id, info);
                    self.identities.set(e.key, &e.shard_key, e.value)
                }
                None => self.identities.remove(id, &id.to_string()),
            });
        }
        settle(&mut self.identities, touched, &mut update);
        let mut touched = BTreeSet::new();
        for prefix in &delta.ipcache {
            let found = compiled
                .ipcache
                .binary_search_by(|e| e.prefix.cmp(prefix))
                .ok()
                .map(|i| &compiled.ipcache[i]);
            touched.insert(match found {
                Some(entry) => {
                    let e = ipcache_entry(entry);
                    self.ipcache.set(e.key, &e.shard_key, e.value)
                }
                None => self.ipcache.remove(prefix, &prefix.to_string()),
            });
        }
        settle(&mut self.ipcache, touched, &mut update);
        if delta.services {
            let services = services_table(compiled, Some(self.services.shards()));
            changed_shards(&self.services, &services, &mut update);
            self.services = services;
        }
        for name in &delta.nodes {
            self.node(compiled, name, &mut update);
        }
        update.shards = self.shard_counts();
        update
    }

    /// Recomputes everything; the update holds what differs by content hash.
    fn rebuild(&mut self, compiled: &CompiledCluster) -> PublicationUpdate {
        let (state, desired) = Self::build(compiled, &self.shard_counts());
        let mut update = PublicationUpdate::default();
        changed_shards(&self.identities, &state.identities, &mut update);
        changed_shards(&self.ipcache, &state.ipcache, &mut update);
        changed_shards(&self.services, &state.services, &mut update);
        for name in self.nodes.keys() {
            if !state.nodes.contains_key(name) {
                update.nodes.insert(name.clone(), None);
            }
        }
        for (name, node) in desired.nodes {
            if self.nodes.get(&name) != Some(&node.content_hash) {
                update.nodes.insert(name, Some(node));
            }
        }
        *self = state;
        update.shards = self.shard_counts();
        update
    }

    /// Recomputes node `name`'s content.
    fn node(&mut self, compiled: &CompiledCluster, name: &str, update: &mut PublicationUpdate) {
        let tables = compiled.nodes.get(name).filter(|_| !name.is_empty());
        match tables {
            Some(tables) => {
                let content = node_content(compiled, tables);
                let content_hash = content_hash(&content);
                if self.nodes.get(name) != Some(&content_hash) {
                    self.nodes.insert(name.to_string(), content_hash.clone());
                    update.nodes.insert(
                        name.to_string(),
                        Some(NodeContent {
                            content_hash,
                            content,
                        }),
                    );
                }
            }
            None => {
                if self.nodes.remove(name).is_some() {
                    update.nodes.insert(name.to_string(), None);
                }
            }
        }
    }
}

/// Settles `table` after changes to the `touched` shards and records the shards
/// whose content changed (every shard, and the deletion of those past the new count,
/// when the count changed).
fn settle<K: Ord + Clone>(
    table: &mut ShardedTable<K>,
    touched: BTreeSet<u32>,
    update: &mut PublicationUpdate,
) {
    if touched.is_empty() {
        return;
    }
    let before = table.clone_hashes(&touched);
    let old_count = table.shards();
    if table.settle(touched.iter().copied()) {
        update.tables.extend(table.all().map(|(n, s)| (n, Some(s))));
        for shard in table.shards()..old_count {
            update.tables.insert(shard_name(table.name(), shard), None);
        }
        return;
    }
    for (shard, old) in before {
        if table.hash(shard) != old {
            let (name, content) = table.shard(shard);
            update.tables.insert(name, Some(content));
        }
    }
}

/// Records the shards of `new` that differ from `old` (content or count) and those
/// of `old` that are gone.
fn changed_shards<K: Ord + Clone>(
    old: &ShardedTable<K>,
    new: &ShardedTable<K>,
    update: &mut PublicationUpdate,
) {
    for shard in 0..new.shards() {
        let same = shard < old.shards()
            && old.shards() == new.shards()
            && old.hash(shard) == new.hash(shard);
        if !same {
            let (name, content) = new.shard(shard);
            update.tables.insert(name, Some(content));
        }
    }
    for shard in new.shards()..old.shards() {
        update.tables.insert(shard_name(old.name(), shard), None);
    }
}

fn services_table(compiled: &CompiledCluster, previous: Option<u32>) -> ShardedTable<ServiceKey> {
    ShardedTable::build(
        TABLE_SERVICES,
        compiled.services.iter().map(service_entry),
        previous,
    )
}

fn identity_entry(identity: u32, info: &IdentityInfo) -> NewEntry<u32> {
    let entry = IdentityEntry {
        identity,
        kind: info.kind.clone(),
        labels: info.labels.clone(),
    };
    NewEntry {
        key: identity,
        shard_key: identity.to_string(),
        value: to_value(&entry),
    }
}

fn ipcache_entry(entry: &IpCacheEntry) -> NewEntry<IpNet> {
    NewEntry {
        key: entry.prefix,
        shard_key: entry.prefix.to_string(),
        value: to_value(entry),
    }
}

fn service_entry(entry: &ServiceEntry) -> NewEntry<ServiceKey> {
    NewEntry {
        key: (entry.address, entry.port, entry.protocol),
        shard_key: format!("{}|{}|{}", entry.address, entry.port, entry.protocol),
        value: to_value(entry),
    }
}

fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("publication entries serialize")
}
