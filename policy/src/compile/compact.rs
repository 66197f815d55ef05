//! A compact, lossless encoding of a [`PolicyTable`] for publication: most of a
//! table's rows are the same few rows repeated for thousands of peer identities ("from
//! app=frontend in any namespace" selects one identity per namespace), so the compact
//! form stores each distinct row list once (a *shape*: rows without their peer) with
//! the peers that have it, as a delta-coded varint list in hex.
//!
//! `CompactPolicyTable::of(table).expand() == *table` for every table (rows sorted, as
//! published).

use super::tables::{PolicyRow, PolicyTable, TableFqdnRule, Verdict};
use crate::model::Direction;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// See the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactPolicyTable {
    /// Each distinct row list, with the peers that have exactly these rows.
    pub shapes: Vec<Shape>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fqdn_rules: Vec<TableFqdnRule>,
}

/// Rows shared by several peers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// The peers, ascending: hex of LEB128 varints, the first peer and then each
    /// peer's difference to the one before.
    pub peers: String,
    /// `[direction (0 ingress, 1 egress), protocol (-1: any), port, port prefix
    /// length, verdict (0 allow, 1 deny, 2 audit-deny), rule_ref (-1: none)]` per row.
    pub rows: Vec<[i64; 6]>,
}

/// Why a compact table does not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompactError {
    #[error("shape {shape}: peers are not hex of LEB128 varints")]
    Peers { shape: usize },
    #[error("shape {shape}, row {row}: field out of range")]
    Row { shape: usize, row: usize },
}

impl CompactPolicyTable {
    /// The compact form of `table`.
    pub fn of(table: &PolicyTable) -> Self {
        let mut by_peer: BTreeMap<u32, Vec<[i64; 6]>> = BTreeMap::new();
        for row in table.rows.iter() {
            by_peer
                .entry(row.peer_identity)
                .or_default()
                .push(encode_row(row));
        }
        // Shapes in order of their first (lowest) peer: deterministic.
        let mut shapes: Vec<(Vec<[i64; 6]>, Vec<u32>)> = Vec::new();
        let mut index: BTreeMap<Vec<[i64; 6]>, usize> = BTreeMap::new();
        for (peer, rows) in by_peer {
            match index.get(&rows) {
                Some(i) => shapes[*i].1.push(peer),
                None => {
                    index.insert(rows.clone(), shapes.len());
                    shapes.push((rows, vec![peer]));
                }
            }
        }
        Self {
            shapes: shapes
                .into_iter()
                .map(|(rows, peers)| Shape {
                    peers: encode_peers(&peers),
                    rows,
                })
                .collect(),
            fqdn_rules: table.fqdn_rules.clone(),
        }
    }

    /// The table this encodes, rows sorted.
    pub fn expand(&self) -> Result<PolicyTable, CompactError> {
        let mut rows = Vec::new();
        for (shape_index, shape) in self.shapes.iter().enumerate() {
            let peers =
                decode_peers(&shape.peers).ok_or(CompactError::Peers { shape: shape_index })?;
            for peer in peers {
                for (row_index, fields) in shape.rows.iter().enumerate() {
                    let row = decode_row(peer, fields).ok_or(CompactError::Row {
                        shape: shape_index,
                        row: row_index,
                    })?;
                    rows.push(row);
                }
            }
        }
        rows.sort_unstable();
        Ok(PolicyTable {
            rows: rows.into(),
            fqdn_rules: self.fqdn_rules.clone(),
        })
    }
}

fn encode_row(row: &PolicyRow) -> [i64; 6] {
    [
        match row.direction {
            Direction::Ingress => 0,
            Direction::Egress => 1,
        },
        row.protocol.map_or(-1, i64::from),
        i64::from(row.port),
        i64::from(row.port_prefix_len),
        match row.verdict {
            Verdict::Allow => 0,
            Verdict::Deny => 1,
            Verdict::AuditDeny => 2,
        },
        row.rule_ref.map_or(-1, i64::from),
    ]
}

fn decode_row(peer: u32, fields: &[i64; 6]) -> Option<PolicyRow> {
    let [direction, protocol, port, prefix, verdict, rule_ref] = *fields;
    Some(PolicyRow {
        peer_identity: peer,
        direction: match direction {
            0 => Direction::Ingress,
            1 => Direction::Egress,
            _ => return None,
        },
        protocol: match protocol {
            -1 => None,
            p => Some(u8::try_from(p).ok()?),
        },
        port: u16::try_from(port).ok()?,
        port_prefix_len: u8::try_from(prefix).ok().filter(|p| *p <= 16)?,
        verdict: match verdict {
            0 => Verdict::Allow,
            1 => Verdict::Deny,
            2 => Verdict::AuditDeny,
            _ => return None,
        },
        rule_ref: match rule_ref {
            -1 => None,
            r => Some(u32::try_from(r).ok()?),
        },
    })
}

fn encode_peers(peers: &[u32]) -> String {
    let mut bytes = Vec::with_capacity(peers.len() * 3);
    let mut previous = 0u32;
    for peer in peers {
        let mut value = peer - previous;
        previous = *peer;
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                bytes.push(byte);
                break;
            }
            bytes.push(byte | 0x80);
        }
    }
    hex::encode(bytes)
}

fn decode_peers(text: &str) -> Option<Vec<u32>> {
    let bytes = hex::decode(text).ok()?;
    let mut peers = Vec::new();
    let (mut value, mut shift, mut previous) = (0u64, 0u32, 0u32);
    for byte in bytes {
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            let delta = u32::try_from(value).ok()?;
            previous = previous.checked_add(delta)?;
            peers.push(previous);
            value = 0;
            shift = 0;
        } else {
            shift += 7;
            if shift > 28 {
                return None;
            }
        }
    }
    (shift == 0).then_some(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(peer: u32, port: u16, verdict: Verdict, rule_ref: Option<u32>) -> PolicyRow {
        PolicyRow {
            peer_identity: peer,
            direction: Direction::Ingress,
            protocol: Some(6),
            port,
            port_prefix_len: 16,
            verdict,
            rule_ref,
        }
    }

    #[test]
    fn tables_round_trip_and_shapes_are_shared() {
        let mut rows = Vec::new();
        for peer in [0, 3, 256, 300_000, 16_777_215] {
            rows.push(row(peer, 80, Verdict::Allow, Some(2)));
            rows.push(PolicyRow {
                protocol: None,
                port: 0,
                port_prefix_len: 0,
                ..row(peer, 0, Verdict::Deny, None)
            });
        }
        rows.push(row(7, 22, Verdict::AuditDeny, Some(0)));
        rows.sort_unstable();
        let table = PolicyTable {
            rows: rows.into(),
            fqdn_rules: Vec::new(),
        };
        let compact = CompactPolicyTable::of(&table);
        assert_eq!(compact.shapes.len(), 2);
        assert_eq!(compact.expand().unwrap(), table);
        let json = serde_json::to_string(&compact).unwrap();
        let back: CompactPolicyTable = serde_json::from_str(&json).unwrap();
        assert_eq!(back.expand().unwrap(), table);
    }

    #[test]
    fn corrupt_peers_are_an_error() {
        let compact = CompactPolicyTable {
            shapes: vec![Shape {
                peers: "8080".into(),
                rows: vec![[0, 6, 80, 16, 0, -1]],
            }],
            fqdn_rules: Vec::new(),
        };
        assert_eq!(compact.expand(), Err(CompactError::Peers { shape: 0 }));
    }
}
