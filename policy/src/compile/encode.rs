//! Verdict functions -> rows of the `PALISADE_POLICY` LPM table.
//!
//! For each peer (and for ANY) the rows encode one [`PortMap<Outcome>`] exactly, given
//! the lookup the kernel makes (longest prefix over protocol, then port bits):
//! - a `protocol: None` row with the value for every protocol the map does not list
//!   (always present, so a peer that has rows never falls through to ANY);
//! - per listed protocol, optionally a port-prefix-0 row with a protocol default, and
//!   the port prefixes that cover exactly the runs whose outcome differs from it.
//!
//! The protocol default is chosen to minimize rows: "all TCP ports but 22" is two rows,
//! "TCP 1000-2000" is eight. The encoder knows nothing about where outcomes come from,
//! so every policy source that yields a verdict function can use it.

use super::port_map::PortMap;
use super::ports::PortRange;
use super::rules::{RuleId, RuleRefs};
use super::tables::PolicyRow;
use super::verdict::{Outcome, PeerVerdicts};
use crate::model::Direction;
use palisade_abi::reserved;

/// One row of an endpoint's policy table, before the table gets its policy id: a
/// published row whose `rule_ref` is the cited rule's [`RuleId`] number. The
/// incremental compiler publishes every rule under its number, so its published
/// tables share these rows (`nodes::publish_table`) instead of holding a copy.
pub(crate) type Row = PolicyRow;

impl PolicyRow {
    /// The row `outcome` gives, citing its rule by number.
    fn of_outcome(
        peer_identity: u32,
        direction: Direction,
        (protocol, port, port_prefix_len): (Option<u8>, u16, u8),
        outcome: Outcome,
    ) -> Self {
        let Outcome { verdict, rule } = outcome;
        Self {
            peer_identity,
            direction,
            protocol,
            port,
            port_prefix_len,
            verdict,
            rule_ref: rule.map(RuleId::index),
        }
    }

    /// The rule a row of an endpoint table cites.
    pub(crate) fn rule(&self) -> Option<RuleId> {
        self.rule_ref.map(RuleId::from_index)
    }

    /// The published row of a row of an endpoint table, citing its rule by the rule's
    /// published index.
    pub(crate) fn publish(&self, rule_refs: &RuleRefs) -> PolicyRow {
        PolicyRow {
            rule_ref: self.rule().and_then(|rule| rule_refs.get(rule)),
            ..*self
        }
    }
}

/// The rows for one direction of an endpoint table.
pub(crate) fn encode_direction(
    direction: Direction,
    verdicts: &PeerVerdicts<PortMap<Outcome>>,
) -> Vec<Row> {
    let mut rows = Vec::new();
    encode_peer(reserved::ANY, direction, &verdicts.any, &mut rows);
    // Each distinct function is encoded once and its rows repeated for its peers.
    let mut shape = Vec::new();
    for (function, peers) in verdicts.groups() {
        shape.clear();
        encode_peer(reserved::ANY, direction, function, &mut shape);
        for peer in peers {
            rows.extend(shape.iter().map(|row| Row {
                peer_identity: peer,
                ..*row
            }));
        }
    }
    rows
}

fn encode_peer(peer: u32, direction: Direction, function: &PortMap<Outcome>, rows: &mut Vec<Row>) {
    let row = |protocol, port, port_prefix_len, outcome| {
        Row::of_outcome(peer, direction, (protocol, port, port_prefix_len), outcome)
    };
    let other = *function.other();
    rows.push(row(None, 0, 0, other));
    for (protocol, runs) in function.protocols() {
        let default = protocol_default(other, &runs);
        if default != other {
            rows.push(row(Some(protocol), 0, 0, default));
        }
        for (range, outcome) in runs.iter().filter(|(_, outcome)| **outcome != default) {
            for prefix in range.prefixes() {
                rows.push(row(Some(protocol), prefix.port, prefix.len, **outcome));
            }
        }
    }
}

/// The outcome of a protocol's port-prefix-0 row that leaves the fewest rows, counting
/// that row itself unless it equals `other` (then the `protocol: None` row serves and
/// it is not written). Ties go to `other`, then to the outcome of the lowest ports.
fn protocol_default(other: Outcome, runs: &[(PortRange, &Outcome)]) -> Outcome {
    let rows_with = |default: Outcome| {
        usize::from(default != other)
            + runs
                .iter()
                .filter(|(_, outcome)| **outcome != default)
                .map(|(range, _)| range.prefixes().count())
                .sum::<usize>()
    };
    let mut best = (rows_with(other), other);
    for (_, outcome) in runs {
        let rows = rows_with(**outcome);
        if rows < best.0 {
            best = (rows, **outcome);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::rules::RuleCatalog;
    use crate::compile::tables::{RuleInfo, Verdict};
    use crate::model::ObjectRef;

    const TCP: u8 = 6;
    const UDP: u8 = 17;

    fn allow() -> Outcome {
        let mut catalog = RuleCatalog::default();
        let policy = ObjectRef {
            namespace: "ns".into(),
            name: "p".into(),
        };
        Outcome::allowed_by(catalog.add(RuleInfo::network_policy(&policy, Direction::Ingress, 0)))
    }

    fn deny() -> Outcome {
        Outcome::ISOLATION_DEFAULT
    }

    fn rows(function: PortMap<Outcome>) -> Vec<(Option<u8>, u16, u8, Verdict)> {
        let verdicts = PeerVerdicts::uniform(function);
        encode_direction(Direction::Ingress, &verdicts)
            .into_iter()
            .map(|r| (r.protocol, r.port, r.port_prefix_len, r.verdict))
            .collect()
    }

    fn range(first: u16, last: u16) -> PortRange {
        PortRange::new(first, last).unwrap()
    }

    #[test]
    fn constant_functions_are_one_row() {
        assert_eq!(
            rows(PortMap::constant(deny())),
            vec![(None, 0, 0, Verdict::Deny)]
        );
        assert_eq!(
            rows(PortMap::constant(allow())),
            vec![(None, 0, 0, Verdict::Allow)]
        );
    }

    #[test]
    fn whole_protocols_are_one_row() {
        let f = PortMap::on_range(UDP, PortRange::ALL, allow(), deny());
        assert_eq!(
            rows(f),
            vec![
                (None, 0, 0, Verdict::Deny),
                (Some(UDP), 0, 0, Verdict::Allow)
            ]
        );
    }

    #[test]
    fn ranges_become_their_prefixes() {
        let f = PortMap::on_range(TCP, range(1000, 2000), allow(), deny());
        let r = rows(f);
        assert_eq!(r[0], (None, 0, 0, Verdict::Deny));
        assert_eq!(r.len(), 1 + 8);
        assert!(
            r[1..]
                .iter()
                .all(|row| row.0 == Some(TCP) && row.3 == Verdict::Allow)
        );
    }

    #[test]
    fn holes_are_cheaper_than_their_complement() {
        // All TCP ports but 22: allow TCP, deny 22, instead of 16 + 16 prefixes.
        let f = PortMap::on_range(TCP, range(0, 21), allow(), deny()).zip_with(
            &PortMap::on_range(TCP, range(23, 65535), allow(), deny()),
            |a, b| if a.verdict == Verdict::Allow { *a } else { *b },
        );
        assert_eq!(
            rows(f),
            vec![
                (None, 0, 0, Verdict::Deny),
                (Some(TCP), 0, 0, Verdict::Allow),
                (Some(TCP), 22, 16, Verdict::Deny),
            ]
        );
    }
}
