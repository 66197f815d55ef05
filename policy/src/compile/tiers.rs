//! The tier chain: how the policy sources together decide, per endpoint, direction,
//! peer and (protocol, port).
//!
//! Each tier yields a [`TierVerdict`] per point: an [`Outcome`] where it decides, None
//! where it has no say. The first tier that decides wins; where none does, the flow is
//! allowed ([`Outcome::DEFAULT_ALLOW`]):
//!
//! ```text
//! admin (first matching rule; Pass: no say)
//!   -> NetworkPolicy (isolated: allowed iff a rule allows; not isolated: no say)
//!   -> baseline (first matching rule)
//!   -> allowed
//! ```
//!
//! The endpoint's own node (peer HOST) gets the same chain with one palisade rule at
//! the NetworkPolicy tier: an isolated endpoint always allows its own node (kubelet
//! probes), which Kubernetes leaves to the implementation. Cluster policies decide
//! about the own node like about any other node.
//!
//! Tiers are combined pointwise on [`PortMap`]s, so the encoder never learns where an
//! outcome came from, and a source that narrows instead of deciding (an egress
//! allowlist ANDed after the admin tier) is one more combinator.

use super::cluster_rules::{FirstMatches, RuleMatch, TierMatches};
use super::network_policy::AllowingRules;
use super::port_map::PortMap;
use super::verdict::{Outcome, PeerVerdicts};
use crate::model::RuleAction;

/// One tier's say about a point: decided, or None (the next tier decides).
pub(crate) type TierVerdict = Option<Outcome>;

/// A tier's verdict functions for one endpoint and direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TierVerdicts {
    pub peers: PeerVerdicts<PortMap<TierVerdict>>,
    /// For the endpoint's own node (HOST).
    pub own_node: PortMap<TierVerdict>,
}

impl TierVerdicts {
    /// A tier with no say about anything: a source that selects nothing.
    pub fn silent() -> Self {
        Self {
            peers: PeerVerdicts {
                any: PortMap::constant(None),
                peers: Default::default(),
            },
            own_node: PortMap::constant(None),
        }
    }

    /// A cluster policy tier: the first matching rule decides, `Pass` hands over. It
    /// has no say about the own node unless `matches` was asked about it.
    pub fn of_first_matches(matches: &TierMatches) -> Self {
        let decide = |first: &FirstMatches| first.map(first_match_verdict);
        Self {
            peers: matches.peers.map(decide),
            own_node: matches
                .own_node
                .as_ref()
                .map_or_else(|| PortMap::constant(None), decide),
        }
    }

    /// The NetworkPolicy tier of an endpoint isolated by policies that allow what
    /// `allowing` says: it decides every point, and allows the own node.
    pub fn of_isolating_network_policies(allowing: &PeerVerdicts<AllowingRules>) -> Self {
        Self {
            peers: allowing.map(|rules| rules.map(|rule| Some(Outcome::of_allowing_rule(rule)))),
            own_node: PortMap::constant(Some(Outcome::DEFAULT_ALLOW)),
        }
    }
}

fn first_match_verdict(first: &Option<RuleMatch>) -> TierVerdict {
    let matched = (*first)?;
    match matched.action {
        RuleAction::Allow => Some(Outcome::allowed_by(matched.rule)),
        RuleAction::Deny => Some(Outcome::denied_by(matched.rule)),
        RuleAction::Pass => None,
    }
}

/// What the tiers decide together for one endpoint and direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decided {
    pub peers: PeerVerdicts<PortMap<Outcome>>,
    /// For the own node; None when it is allowed everywhere, its default, so that the
    /// kernel needs no rows for it.
    pub own_node: Option<PortMap<Outcome>>,
}

/// Chains `tiers`, highest precedence first.
pub(crate) fn chain(tiers: &[TierVerdicts]) -> Decided {
    let combined = tiers
        .iter()
        .fold(TierVerdicts::silent(), |earlier, later| TierVerdicts {
            peers: earlier
                .peers
                .zip_with(&later.peers, |a, b| a.zip_with(b, first_decision)),
            own_node: earlier.own_node.zip_with(&later.own_node, first_decision),
        });
    let finish = |function: &PortMap<TierVerdict>| {
        function.map(|verdict| verdict.unwrap_or(Outcome::DEFAULT_ALLOW))
    };
    let own_node = Some(finish(&combined.own_node))
        .filter(|function| *function != PortMap::constant(Outcome::DEFAULT_ALLOW));
    Decided {
        peers: combined.peers.map(finish),
        own_node,
    }
}

fn first_decision(earlier: &TierVerdict, later: &TierVerdict) -> TierVerdict {
    earlier.or(*later)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::rules::{RuleCatalog, RuleId};
    use crate::compile::tables::{RuleInfo, Verdict};
    use crate::model::{Direction, ObjectRef};
    use std::collections::BTreeMap;

    const TCP: u8 = 6;

    fn rule_ids(n: usize) -> Vec<RuleId> {
        let mut catalog = RuleCatalog::default();
        let policy = ObjectRef {
            namespace: "ns".into(),
            name: "p".into(),
        };
        (0..n)
            .map(|i| catalog.add(RuleInfo::network_policy(&policy, Direction::Ingress, i)))
            .collect()
    }

    fn tier(any: PortMap<TierVerdict>) -> TierVerdicts {
        TierVerdicts {
            peers: PeerVerdicts {
                any,
                peers: BTreeMap::new(),
            },
            own_node: PortMap::constant(None),
        }
    }

    #[test]
    fn the_first_tier_that_decides_wins_and_nothing_deciding_allows() {
        let ids = rule_ids(2);
        let range = crate::compile::ports::PortRange::single(80);
        let admin = tier(PortMap::on_range(
            TCP,
            range,
            Some(Outcome::denied_by(ids[0])),
            None,
        ));
        let baseline = tier(PortMap::constant(Some(Outcome::allowed_by(ids[1]))));
        let decided = chain(&[admin.clone(), baseline]).peers.any;
        assert_eq!(decided.get(TCP, 80).verdict, Verdict::Deny);
        assert_eq!(*decided.get(TCP, 81), Outcome::allowed_by(ids[1]));
        let alone = chain(&[admin]).peers.any;
        assert_eq!(*alone.get(TCP, 81), Outcome::DEFAULT_ALLOW);
    }

    #[test]
    fn the_own_node_needs_rows_only_when_a_tier_decides_against_its_default() {
        let ids = rule_ids(1);
        let mut admin = TierVerdicts::silent();
        assert_eq!(chain(&[admin.clone()]).own_node, None);
        admin.own_node = PortMap::constant(Some(Outcome::denied_by(ids[0])));
        let own = chain(&[admin]).own_node.expect("rows for the own node");
        assert_eq!(own.get(TCP, 1).verdict, Verdict::Deny);
    }
}
