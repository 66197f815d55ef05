//! The cluster tables (identities, ip cache, Services) put back together from the
//! controller's `ClusterTable` shards. Pure.
//!
//! A table is used only when complete: for its shard count `n`, every shard `0..n` is
//! present and says `shards: n`. While the controller re-shards a table (some shards
//! written with the new count, some not yet) or a shard has not arrived, the table is
//! incomplete and the agent keeps the state it last applied: a half-received set would
//! drop identities or addresses, and with them allowed flows.

use palisade_crds::publication::{
    ClusterTableSpec, IdentityEntry, TABLE_IDENTITIES, TABLE_IPCACHE, TABLE_SERVICES, TABLES,
};
use palisade_policy::compile::tables::{IdentityInfo, IpCacheEntry, ServiceEntry};
use std::collections::{BTreeMap, BTreeSet};

/// The three tables, complete.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterTables {
    pub identities: BTreeMap<u32, IdentityInfo>,
    pub ipcache: Vec<IpCacheEntry>,
    pub services: Vec<ServiceEntry>,
    /// Shard count of each table, as assembled.
    pub shard_counts: BTreeMap<String, u32>,
}

/// Why the tables cannot be used yet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Incomplete {
    #[error("ClusterTable {table}: no shard published yet")]
    NoShards { table: String },
    #[error(
        "ClusterTable {table}: shards {missing:?} of {shards} missing or of another shard count (re-sharding or not received yet)"
    )]
    MissingShards {
        table: String,
        shards: u32,
        missing: Vec<u32>,
    },
    #[error("ClusterTable {name}: entry {index} is not a valid {table} entry: {error}")]
    BadEntry {
        name: String,
        table: String,
        index: usize,
        error: String,
    },
}

/// Assembles the tables from every `ClusterTable` spec seen (by object name).
pub fn assemble(shards: &BTreeMap<String, ClusterTableSpec>) -> Result<ClusterTables, Incomplete> {
    let mut out = ClusterTables::default();
    for table in TABLES {
        let of_table: Vec<(&String, &ClusterTableSpec)> =
            shards.iter().filter(|(_, s)| s.table == table).collect();
        let chosen = complete_set(table, &of_table)?;
        for (name, spec) in &chosen {
            for (index, entry) in spec.entries.iter().enumerate() {
                let bad = |error: String| Incomplete::BadEntry {
                    name: (*name).clone(),
                    table: table.to_string(),
                    index,
                    error,
                };
                match table {
                    TABLE_IDENTITIES => {
                        let e: IdentityEntry = serde_json::from_value(entry.clone())
                            .map_err(|e| bad(e.to_string()))?;
                        out.identities.insert(
                            e.identity,
                            IdentityInfo {
                                kind: e.kind,
                                labels: e.labels,
                            },
                        );
                    }
                    TABLE_IPCACHE => out.ipcache.push(
                        serde_json::from_value(entry.clone()).map_err(|e| bad(e.to_string()))?,
                    ),
                    TABLE_SERVICES => out.services.push(
                        serde_json::from_value(entry.clone()).map_err(|e| bad(e.to_string()))?,
                    ),
                    _ => {}
                }
            }
        }
        out.shard_counts
            .insert(table.to_string(), chosen.len() as u32);
    }
    out.ipcache.sort();
    out.services
        .sort_by_key(|s| (s.address, s.port, s.protocol));
    Ok(out)
}

/// The shards of one complete set of `table`, in shard order. Among several complete
/// sets (leftovers of an older shard count not deleted yet), the one holding the
/// newest shard generation wins.
fn complete_set<'a>(
    table: &str,
    shards: &[(&'a String, &'a ClusterTableSpec)],
) -> Result<Vec<(&'a String, &'a ClusterTableSpec)>, Incomplete> {
    if shards.is_empty() {
        return Err(Incomplete::NoShards {
            table: table.to_string(),
        });
    }
    let counts: BTreeSet<u32> = shards.iter().map(|(_, s)| s.shards).collect();
    let mut best: Option<(i64, Vec<(&String, &ClusterTableSpec)>)> = None;
    let mut first_gap = None;
    for count in counts {
        let set: BTreeMap<u32, (&String, &ClusterTableSpec)> = shards
            .iter()
            .filter(|(_, s)| s.shards == count && s.shard < count)
            .map(|(n, s)| (s.shard, (*n, *s)))
            .collect();
        let missing: Vec<u32> = (0..count).filter(|i| !set.contains_key(i)).collect();
        if count == 0 || !missing.is_empty() {
            first_gap.get_or_insert(Incomplete::MissingShards {
                table: table.to_string(),
                shards: count,
                missing,
            });
            continue;
        }
        let newest = set.values().map(|(_, s)| s.generation).max().unwrap_or(0);
        if best.as_ref().is_none_or(|(g, _)| newest > *g) {
            best = Some((newest, set.into_values().collect()));
        }
    }
    best.map(|(_, set)| set)
        .ok_or_else(|| first_gap.expect("a count was seen"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shard(
        table: &str,
        shard: u32,
        shards: u32,
        generation: i64,
        entries: Vec<serde_json::Value>,
    ) -> (String, ClusterTableSpec) {
        (
            format!("{table}-{shard:03}-{shards}"),
            ClusterTableSpec {
                table: table.into(),
                shard,
                shards,
                generation,
                content_hash: format!("h{generation}"),
                entries,
            },
        )
    }

    fn one_shard_each() -> BTreeMap<String, ClusterTableSpec> {
        BTreeMap::from([
            shard(
                TABLE_IDENTITIES,
                0,
                1,
                1,
                vec![json!({"identity": 300, "kind": "pod", "labels": ["app=web"]})],
            ),
            shard(
                TABLE_IPCACHE,
                0,
                1,
                1,
                vec![json!({"prefix": "10.0.0.1/32", "identity": 300})],
            ),
            shard(TABLE_SERVICES, 0, 1, 1, vec![]),
        ])
    }

    #[test]
    fn complete_tables_are_assembled() {
        let tables = assemble(&one_shard_each()).unwrap();
        assert_eq!(tables.identities[&300].labels, ["app=web"]);
        assert_eq!(tables.ipcache.len(), 1);
        assert_eq!(tables.ipcache[0].identity, 300);
        assert!(tables.services.is_empty());
        assert_eq!(tables.shard_counts.len(), 3);
    }

    #[test]
    fn a_missing_table_or_shard_is_incomplete() {
        let mut shards = one_shard_each();
        shards.retain(|_, s| s.table != TABLE_SERVICES);
        assert_eq!(
            assemble(&shards),
            Err(Incomplete::NoShards {
                table: TABLE_SERVICES.into()
            })
        );

        let mut shards = one_shard_each();
        shards.retain(|_, s| s.table != TABLE_IPCACHE);
        let (n, s) = shard(TABLE_IPCACHE, 1, 2, 1, vec![]);
        shards.insert(n, s);
        assert_eq!(
            assemble(&shards),
            Err(Incomplete::MissingShards {
                table: TABLE_IPCACHE.into(),
                shards: 2,
                missing: vec![0]
            })
        );
    }

    #[test]
    fn resharding_halfway_is_incomplete_until_every_shard_has_the_new_count() {
        // Was one shard; the controller doubled it and has written shard 0 only.
        let mut shards = one_shard_each();
        shards.retain(|_, s| s.table != TABLE_IPCACHE);
        let (n, s) = shard(
            TABLE_IPCACHE,
            0,
            2,
            2,
            vec![json!({"prefix": "10.0.0.1/32", "identity": 300})],
        );
        shards.insert(n, s);
        assert!(matches!(
            assemble(&shards),
            Err(Incomplete::MissingShards { shards: 2, .. })
        ));
        let (n, s) = shard(
            TABLE_IPCACHE,
            1,
            2,
            2,
            vec![json!({"prefix": "10.0.0.2/32", "identity": 301})],
        );
        shards.insert(n, s);
        assert_eq!(assemble(&shards).unwrap().ipcache.len(), 2);
    }

    #[test]
    fn of_two_complete_sets_the_newest_wins() {
        let mut shards = one_shard_each();
        // Leftover shards of an older, larger count, not deleted yet.
        for i in 0..2 {
            let (n, s) = shard(
                TABLE_IPCACHE,
                i,
                2,
                0,
                vec![json!({"prefix": format!("10.9.0.{i}/32"), "identity": 9})],
            );
            shards.insert(n, s);
        }
        let tables = assemble(&shards).unwrap();
        assert_eq!(tables.ipcache.len(), 1);
        assert_eq!(tables.ipcache[0].identity, 300);
    }

    #[test]
    fn a_bad_entry_names_the_object_and_index() {
        let mut shards = one_shard_each();
        shards
            .values_mut()
            .find(|s| s.table == TABLE_IPCACHE)
            .unwrap()
            .entries
            .push(json!({"prefix": "nope"}));
        let err = assemble(&shards).unwrap_err();
        assert!(
            matches!(err, Incomplete::BadEntry { index: 1, .. }),
            "{err}"
        );
    }
}
