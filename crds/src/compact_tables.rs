//! The wire form of a NodePolicy's `policyTables`: each table in its compact encoding
//! (`palisade_policy::compile::compact`: each distinct row list once, with the peers
//! that have it), keyed by the node-local policy id as a JSON string. In memory the
//! tables stay plain [`PolicyTable`]s; this module is the serde `with` of the field.
//!
//! The compact form is what keeps a NodePolicy small: at the benchmark's scale
//! (5,000 nodes, 150,000 pods, 10,000 policies) the largest node's tables are about
//! 15 MB as plain rows and about 260 KB compact, well under the API server's request
//! limit. Decoding refuses a malformed table, naming its id and the shape.

use palisade_policy::compile::compact::CompactPolicyTable;
use palisade_policy::compile::tables::PolicyTable;
use serde::de::{Deserialize, Deserializer, Error};
use serde::ser::{SerializeMap, Serializer};
use std::collections::BTreeMap;

pub fn serialize<S: Serializer>(
    tables: &BTreeMap<u32, PolicyTable>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(tables.len()))?;
    for (policy_id, table) in tables {
        map.serialize_entry(&policy_id.to_string(), &CompactPolicyTable::of(table))?;
    }
    map.end()
}

pub fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<u32, PolicyTable>, D::Error> {
    BTreeMap::<String, CompactPolicyTable>::deserialize(deserializer)?
        .into_iter()
        .map(|(key, compact)| {
            let policy_id = key.parse::<u32>().map_err(|_| {
                D::Error::custom(format!(
                    "policyTables: key {key:?} is not an unsigned integer"
                ))
            })?;
            let table = compact
                .expand()
                .map_err(|e| D::Error::custom(format!("policyTables[{key}]: {e}")))?;
            Ok((policy_id, table))
        })
        .collect()
}
