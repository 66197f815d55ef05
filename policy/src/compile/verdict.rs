//! Verdicts as the compiler carries them: what one table entry says ([`Outcome`]), and
//! what an endpoint's table says for each peer in one direction ([`PeerVerdicts`]).

use super::rules::RuleId;
use super::tables::Verdict;
use std::collections::BTreeMap;

/// A verdict and the rule that produced it. Without a rule it is a default: deny for
/// an endpoint NetworkPolicy isolates, allow where no tier decides (and for the own
/// node, see `tiers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Outcome {
    pub verdict: Verdict,
    pub rule: Option<RuleId>,
}

impl Outcome {
    /// Denied because the direction is isolated and no rule allows the flow.
    pub const ISOLATION_DEFAULT: Outcome = Outcome {
        verdict: Verdict::Deny,
        rule: None,
    };

    /// Allowed because no tier decided.
    pub const DEFAULT_ALLOW: Outcome = Outcome {
        verdict: Verdict::Allow,
        rule: None,
    };

    pub fn allowed_by(rule: RuleId) -> Self {
        Self {
            verdict: Verdict::Allow,
            rule: Some(rule),
        }
    }

    pub fn denied_by(rule: RuleId) -> Self {
        Self {
            verdict: Verdict::Deny,
            rule: Some(rule),
        }
    }

    /// The outcome for an isolated endpoint, given the first rule that allows the flow.
    pub fn of_allowing_rule(rule: &Option<RuleId>) -> Self {
        rule.map_or(Self::ISOLATION_DEFAULT, Self::allowed_by)
    }
}

/// One function per peer identity that needs its own, and the one every other peer
/// gets (`any`). A listed peer's function is complete: it already includes everything
/// `any` says, since the kernel only consults `any` for peers without rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PeerVerdicts<F> {
    pub any: F,
    pub peers: BTreeMap<u32, F>,
}

impl<F> PeerVerdicts<F> {
    /// The function for `peer`: its own if listed, else `any`.
    pub fn get(&self, peer: u32) -> &F {
        self.peers.get(&peer).unwrap_or(&self.any)
    }

    /// The pointwise combination `f(self(peer), other(peer))` for every peer either
    /// lists (and for `any`).
    pub fn zip_with<G, H>(
        &self,
        other: &PeerVerdicts<G>,
        f: impl Fn(&F, &G) -> H,
    ) -> PeerVerdicts<H> {
        let any = f(&self.any, &other.any);
        let peers = self
            .peers
            .keys()
            .chain(other.peers.keys())
            .map(|peer| (*peer, f(self.get(*peer), other.get(*peer))))
            .collect();
        PeerVerdicts { any, peers }
    }

    /// Applies `f` to every function. Peers whose image equals that of `any` are
    /// dropped: the `any` rows already say the same for them.
    pub fn map<G: PartialEq>(&self, f: impl Fn(&F) -> G) -> PeerVerdicts<G> {
        let any = f(&self.any);
        let peers = self
            .peers
            .iter()
            .map(|(peer, function)| (*peer, f(function)))
            .filter(|(_, image)| *image != any)
            .collect();
        PeerVerdicts { any, peers }
    }
}
