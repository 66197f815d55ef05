//! Reads a JSON object whose keys are decimal integers into a `BTreeMap<u32, T>`.
//!
//! JSON object keys are strings; serde_json reads them as integers only when it
//! knows the key type at the map itself. Behind `#[serde(flatten)]` the map is
//! buffered first and that knowledge is lost, so `NodePolicySpec` (whose content is
//! flattened) could not be read from a `serde_json::Value`. Reading the keys as
//! strings and parsing them works in both cases and names a bad key.

use serde::de::{Deserialize, Deserializer, Error};
use std::collections::BTreeMap;

pub fn deserialize<'de, D, T>(deserializer: D) -> Result<BTreeMap<u32, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    BTreeMap::<String, T>::deserialize(deserializer)?
        .into_iter()
        .map(|(key, value)| {
            key.parse::<u32>()
                .map(|key| (key, value))
                .map_err(|_| D::Error::custom(format!("key {key:?} is not an unsigned integer")))
        })
        .collect()
}
