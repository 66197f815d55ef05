//! The cluster tables (identities, ip cache, Services) put back together from the
//! controller's `ClusterTable` shards. Pure.
//!
//! Each shard is parsed once, when it arrives ([`parse_shard`]): its entries are kept
//! typed (an ip cache entry is a few bytes, its JSON value a few hundred), and a shard
//! with a bad entry is refused as a whole, naming the object and the entry, while the
//! previous version of that shard stays in use.
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

/// One `ClusterTable` shard with its entries parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedShard {
    pub table: String,
    pub shard: u32,
    pub shards: u32,
    pub generation: i64,
    pub entries: ShardEntries,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardEntries {
    Identities(Vec<(u32, IdentityInfo)>),
    IpCache(Vec<IpCacheEntry>),
    Services(Vec<ServiceEntry>),
    /// A table this agent does not know (a newer controller's): ignored.
    Other,
}

/// Parses the entries of shard `name`; a bad entry refuses the shard, naming it.
pub fn parse_shard(name: &str, spec: ClusterTableSpec) -> Result<ParsedShard, Incomplete> {
    fn typed<T: serde::de::DeserializeOwned>(
        name: &str,
        table: &str,
        entries: Vec<serde_json::Value>,
    ) -> Result<Vec<T>, Incomplete> {
        entries
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                serde_json::from_value(entry).map_err(|e| Incomplete::BadEntry {
                    name: name.to_string(),
                    table: table.to_string(),
                    index,
                    error: e.to_string(),
                })
            })
            .collect()
    }
    let entries = match spec.table.as_str() {
        TABLE_IDENTITIES => ShardEntries::Identities(
            typed::<IdentityEntry>(name, &spec.table, spec.entries)?
                .into_iter()
                .map(|e| {
                    let info = IdentityInfo {
                        kind: e.kind,
                        labels: e.labels,
                    };
                    (e.identity, info)
                })
                .collect(),
        ),
        TABLE_IPCACHE => ShardEntries::IpCache(typed(name, &spec.table, spec.entries)?),
        TABLE_SERVICES => ShardEntries::Services(typed(name, &spec.table, spec.entries)?),
        _ => ShardEntries::Other,
    };
    Ok(ParsedShard {
        table: spec.table,
        shard: spec.shard,
        shards: spec.shards,
        generation: spec.generation,
        entries,
    })
}

/// Assembles the tables from every `ClusterTable` shard seen (by object name).
pub fn assemble(shards: &BTreeMap<String, ParsedShard>) -> Result<ClusterTables, Incomplete> {
    let mut out = ClusterTables::default();
    for table in TABLES {
        let of_table: Vec<(&String, &ParsedShard)> =
            shards.iter().filter(|(_, s)| s.table == table).collect();
        let chosen = complete_set(table, &of_table)?;
        for (_, shard) in &chosen {
            match &shard.entries {
                ShardEntries::Identities(entries) => {
                    out.identities.extend(entries.iter().cloned());
                }
                ShardEntries::IpCache(entries) => out.ipcache.extend_from_slice(entries),
                ShardEntries::Services(entries) => out.services.extend_from_slice(entries),
                ShardEntries::Other => {}
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
    shards: &[(&'a String, &'a ParsedShard)],
) -> Result<Vec<(&'a String, &'a ParsedShard)>, Incomplete> {
    if shards.is_empty() {
        return Err(Incomplete::NoShards {
            table: table.to_string(),
        });
    }
    let counts: BTreeSet<u32> = shards.iter().map(|(_, s)| s.shards).collect();
    let mut best: Option<(i64, Vec<(&String, &ParsedShard)>)> = None;
    let mut first_gap = None;
    for count in counts {
        let set: BTreeMap<u32, (&String, &ParsedShard)> = shards
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
    ) -> (String, ParsedShard) {
        let name = format!("{table}-{shard:03}-{shards}");
        let spec = ClusterTableSpec {
            table: table.into(),
            shard,
            shards,
            generation,
            content_hash: format!("h{generation}"),
            entries,
        };
        let parsed = parse_shard(&name, spec).unwrap();
        (name, parsed)
    }

    fn one_shard_each() -> BTreeMap<String, ParsedShard> {
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
        let spec = ClusterTableSpec {
            table: TABLE_IPCACHE.into(),
            shard: 0,
            shards: 1,
            generation: 1,
            content_hash: "h".into(),
            entries: vec![
                json!({"prefix": "10.0.0.1/32", "identity": 300}),
                json!({"prefix": "nope"}),
            ],
        };
        let err = parse_shard("ipcache-000", spec).unwrap_err();
        assert!(
            matches!(&err, Incomplete::BadEntry { index: 1, name, .. } if name == "ipcache-000"),
            "{err}"
        );
    }
}
