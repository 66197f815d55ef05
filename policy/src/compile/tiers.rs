//! The tier chain: how the policy sources together decide, per endpoint, direction,
//! peer and (protocol, port).
//!
//! Each tier yields a [`TierVerdict`] per point: an [`Outcome`] where it decides, None
//! where it has no say. The first tier that decides wins; where none does, the flow is
//! allowed ([`Outcome::DEFAULT_ALLOW`]). An egress [`Allowlist`] (EgressPolicy) does
//! not decide but narrows what the tiers after it decide:
//!
//! ```text
//! admin (AdminNetworkPolicy, TrustBoundary: first matching rule; Pass: no say)
//!   -> egress allowlist AND (
//!        NetworkPolicy (isolated: allowed iff a rule allows; not isolated: no say)
//!          -> baseline (first matching rule)
//!          -> allowed )
//! ```
//!
//! "AND": where the allowlist allows, the later tiers' outcome stands (an allow cites
//! the allowlist's rule); where it does not, its implicit deny (Deny, or AuditDeny in
//! Audit mode, which a Deny of the later tiers beats).
//!
//! The endpoint's own node (peer HOST) gets the same chain with one palisade rule at
//! the NetworkPolicy tier: an isolated endpoint always allows its own node (kubelet
//! probes), which Kubernetes leaves to the implementation. Cluster policies decide
//! about the own node like about any other node; the egress allowlist does not narrow
//! it.
//!
//! Tiers are combined pointwise on [`PortMap`]s, so the encoder never learns where an
//! outcome came from, and a source that narrows instead of deciding (an egress
//! allowlist ANDed after the admin tier) is one more combinator.

use super::cluster_rules::{FirstMatches, RuleMatch, TierMatches};
use super::network_policy::AllowingRules;
use super::port_map::PortMap;
use super::rules::RuleId;
use super::tables::Verdict;
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
            peers: PeerVerdicts::uniform(PortMap::constant(None)),
            own_node: PortMap::constant(None),
        }
    }

    /// Whether the tier has no say about anything (see [`TierVerdicts::silent`]).
    fn is_silent(&self) -> bool {
        let nothing = PortMap::constant(None);
        self.peers.is_uniform() && self.peers.any == nothing && self.own_node == nothing
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

/// An egress allowlist of one endpoint: for each peer and (protocol, port) the rule
/// that allows it, if any; and the outcome of what it does not allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Allowlist {
    pub allowing: PeerVerdicts<PortMap<Option<RuleId>>>,
    /// Deny, or AuditDeny, citing the implicit deny.
    pub otherwise: Outcome,
}

impl Allowlist {
    /// `rest` (what the later tiers decide) narrowed by the allowlist.
    fn narrow(&self, rest: &PeerVerdicts<PortMap<Outcome>>) -> PeerVerdicts<PortMap<Outcome>> {
        self.allowing.zip_with(rest, |allowing, rest| {
            allowing.zip_with(rest, |allowing, rest| {
                narrowed(*allowing, *rest, self.otherwise)
            })
        })
    }
}

/// One point of the allowlist AND the later tiers.
fn narrowed(allowing: Option<RuleId>, rest: Outcome, otherwise: Outcome) -> Outcome {
    match allowing {
        Some(rule) if rest.verdict == Verdict::Allow => Outcome::allowed_by(rule),
        Some(_) => rest,
        // An audited allowlist reports; a real deny of the later tiers still drops.
        None if rest.verdict == Verdict::Deny && otherwise.verdict != Verdict::Deny => rest,
        None => otherwise,
    }
}

/// Chains the stages, highest precedence first: `admin` decides where it does; else
/// `allowlist` (if any) narrows what `later` (in order, the first that decides wins,
/// else allowed) decides.
pub(crate) fn chain(
    admin: &TierVerdicts,
    allowlist: Option<&Allowlist>,
    later: &[TierVerdicts],
) -> Decided {
    // A silent tier changes nothing in a combination (and every tier's functions are
    // already reduced: no listed peer has the function of `any`), so only the others
    // are combined: usually one tier alone, with no pass over its peers at all.
    let speaking: Vec<&TierVerdicts> = later.iter().filter(|tier| !tier.is_silent()).collect();
    let combined;
    let later: &TierVerdicts = match speaking.as_slice() {
        [] => {
            combined = TierVerdicts::silent();
            &combined
        }
        [only] => only,
        [first, rest @ ..] => {
            combined = rest
                .iter()
                .fold((*first).clone(), |earlier, later| TierVerdicts {
                    peers: earlier
                        .peers
                        .zip_with(&later.peers, |a, b| a.zip_with(b, first_decision)),
                    own_node: earlier.own_node.zip_with(&later.own_node, first_decision),
                });
            &combined
        }
    };
    let finish = |function: &PortMap<TierVerdict>| {
        function.map(|verdict| verdict.unwrap_or(Outcome::DEFAULT_ALLOW))
    };
    let mut rest = later.peers.map(finish);
    if let Some(allowlist) = allowlist {
        rest = allowlist.narrow(&rest);
    }
    let first_or = |first: &PortMap<TierVerdict>, rest: &PortMap<Outcome>| {
        first.zip_with(rest, |first, rest| first.unwrap_or(*rest))
    };
    // `map` and `zip_with` drop the peers whose function is that of `any`.
    let peers = if admin.peers.is_uniform() && admin.peers.any == PortMap::constant(None) {
        rest
    } else {
        admin.peers.zip_with(&rest, first_or)
    };
    let own_node = Some(first_or(&admin.own_node, &finish(&later.own_node)))
        .filter(|function| *function != PortMap::constant(Outcome::DEFAULT_ALLOW));
    Decided { peers, own_node }
}

fn first_decision(earlier: &TierVerdict, later: &TierVerdict) -> TierVerdict {
    earlier.or(*later)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::rules::RuleCatalog;
    use crate::compile::tables::RuleInfo;
    use crate::model::{Direction, ObjectRef};

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
            peers: PeerVerdicts::uniform(any),
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
        let decided = chain(&admin, None, &[baseline]).peers.any;
        assert_eq!(decided.get(TCP, 80).verdict, Verdict::Deny);
        assert_eq!(*decided.get(TCP, 81), Outcome::allowed_by(ids[1]));
        let alone = chain(&admin, None, &[]).peers.any;
        assert_eq!(*alone.get(TCP, 81), Outcome::DEFAULT_ALLOW);
    }

    #[test]
    fn the_own_node_needs_rows_only_when_a_tier_decides_against_its_default() {
        let ids = rule_ids(1);
        let mut admin = TierVerdicts::silent();
        assert_eq!(chain(&admin, None, &[]).own_node, None);
        admin.own_node = PortMap::constant(Some(Outcome::denied_by(ids[0])));
        let own = chain(&admin, None, &[])
            .own_node
            .expect("rows for the own node");
        assert_eq!(own.get(TCP, 1).verdict, Verdict::Deny);
    }

    fn allowlist(allowing: PortMap<Option<RuleId>>, otherwise: Outcome) -> Allowlist {
        Allowlist {
            allowing: PeerVerdicts::uniform(allowing),
            otherwise,
        }
    }

    #[test]
    fn an_allowlist_narrows_the_later_tiers_and_the_admin_tier_overrides_it() {
        let ids = rule_ids(4);
        let port_80 = crate::compile::ports::PortRange::single(80);
        let port_81 = crate::compile::ports::PortRange::single(81);
        let list = allowlist(
            PortMap::on_range(TCP, port_80, Some(ids[1]), None),
            Outcome::denied_by(ids[2]),
        );
        let np_allows_all = tier(PortMap::constant(Some(Outcome::allowed_by(ids[3]))));
        let decided = chain(&TierVerdicts::silent(), Some(&list), &[np_allows_all])
            .peers
            .any;
        assert_eq!(*decided.get(TCP, 80), Outcome::allowed_by(ids[1]));
        assert_eq!(*decided.get(TCP, 81), Outcome::denied_by(ids[2]));
        // Nothing after it: allowed where it allows, its deny elsewhere.
        let alone = chain(&TierVerdicts::silent(), Some(&list), &[]).peers.any;
        assert_eq!(*alone.get(TCP, 80), Outcome::allowed_by(ids[1]));
        // The admin tier is decided before the allowlist.
        let admin = tier(PortMap::on_range(
            TCP,
            port_81,
            Some(Outcome::allowed_by(ids[0])),
            None,
        ));
        let decided = chain(&admin, Some(&list), &[]).peers.any;
        assert_eq!(*decided.get(TCP, 81), Outcome::allowed_by(ids[0]));
        assert_eq!(decided.get(TCP, 82).verdict, Verdict::Deny);
    }

    #[test]
    fn an_audited_allowlist_reports_and_a_later_deny_still_drops() {
        let ids = rule_ids(2);
        let port_80 = crate::compile::ports::PortRange::single(80);
        let audit = Outcome {
            verdict: Verdict::AuditDeny,
            rule: Some(ids[0]),
        };
        let list = allowlist(PortMap::constant(None), audit);
        let np = tier(PortMap::on_range(
            TCP,
            port_80,
            Some(Outcome::allowed_by(ids[1])),
            Some(Outcome::ISOLATION_DEFAULT),
        ));
        let decided = chain(&TierVerdicts::silent(), Some(&list), &[np]).peers.any;
        assert_eq!(*decided.get(TCP, 80), audit);
        assert_eq!(*decided.get(TCP, 81), Outcome::ISOLATION_DEFAULT);
    }
}
