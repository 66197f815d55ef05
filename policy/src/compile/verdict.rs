//! Verdicts as the compiler carries them: what one table entry says ([`Outcome`]), and
//! what an endpoint's table says for each peer in one direction ([`PeerVerdicts`]).

use super::rules::RuleId;
use super::tables::Verdict;
use rustc_hash::FxHashMap;
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
///
/// Peers share functions: thousands of peer identities a rule selects alike ("from
/// app=frontend in any namespace") have one function, stored once. Combining two
/// `PeerVerdicts` computes each distinct pair of functions once, so the cost of a
/// table follows the number of distinct functions, not the number of peers.
#[derive(Clone, Debug)]
pub(crate) struct PeerVerdicts<F> {
    pub any: F,
    /// Peer -> index into `functions`; only peers whose function differs from `any`.
    peers: BTreeMap<u32, u32>,
    functions: Vec<F>,
}

/// Equal when they give every peer the same function, however the functions are
/// stored.
impl<F: PartialEq> PartialEq for PeerVerdicts<F> {
    fn eq(&self, other: &Self) -> bool {
        self.any == other.any
            && self.peers.len() == other.peers.len()
            && self
                .peers
                .keys()
                .all(|peer| other.peers.contains_key(peer) && self.get(*peer) == other.get(*peer))
    }
}

impl<F: Eq> Eq for PeerVerdicts<F> {}

/// Which function a peer has in one [`PeerVerdicts`]: its own (by index) or `any`.
type FunctionIndex = Option<u32>;

impl<F> PeerVerdicts<F> {
    /// `any` for every peer.
    pub fn uniform(any: F) -> Self {
        Self {
            any,
            peers: BTreeMap::new(),
            functions: Vec::new(),
        }
    }

    /// The function for `peer`: its own if listed, else `any`.
    pub fn get(&self, peer: u32) -> &F {
        self.peers
            .get(&peer)
            .map_or(&self.any, |index| &self.functions[*index as usize])
    }

    /// Each distinct function with the peers that have it, ascending.
    pub fn groups(&self) -> Vec<(&F, Vec<u32>)> {
        let mut groups: Vec<(&F, Vec<u32>)> =
            self.functions.iter().map(|f| (f, Vec::new())).collect();
        for (peer, index) in &self.peers {
            groups[*index as usize].1.push(*peer);
        }
        groups.retain(|(_, peers)| !peers.is_empty());
        groups
    }

    fn index_of(&self, peer: u32) -> FunctionIndex {
        self.peers.get(&peer).copied()
    }

    fn function(&self, index: FunctionIndex) -> &F {
        index.map_or(&self.any, |index| &self.functions[index as usize])
    }
}

impl<F: PartialEq> PeerVerdicts<F> {
    /// `any`, and for each group's peers the group's function. A peer named by two
    /// groups gets the later one. Groups whose function equals `any` add nothing.
    pub fn from_groups<P: IntoIterator<Item = u32>>(
        any: F,
        groups: impl IntoIterator<Item = (F, P)>,
    ) -> Self {
        let mut verdicts = Self::uniform(any);
        for (function, peers) in groups {
            if function == verdicts.any {
                continue;
            }
            let index = u32::try_from(verdicts.functions.len()).expect("fewer than 2^32 functions");
            verdicts.functions.push(function);
            verdicts
                .peers
                .extend(peers.into_iter().map(|peer| (peer, index)));
        }
        verdicts
    }

    /// Gives `peer` the function `function`, listed even where it equals `any` (the
    /// own node's rows must be complete: the kernel never falls back to ANY for it).
    pub fn insert(&mut self, peer: u32, function: F) {
        let index = u32::try_from(self.functions.len()).expect("fewer than 2^32 functions");
        self.functions.push(function);
        self.peers.insert(peer, index);
    }

    /// The pointwise combination `f(self(peer), other(peer))` for every peer either
    /// lists (and for `any`), each distinct pair of functions computed once.
    pub fn zip_with<G, H: PartialEq>(
        &self,
        other: &PeerVerdicts<G>,
        f: impl Fn(&F, &G) -> H,
    ) -> PeerVerdicts<H> {
        let any = f(&self.any, &other.any);
        let mut out = Combined::new(any);
        for peer in merged_keys(&self.peers, &other.peers) {
            let pair = (self.index_of(peer), other.index_of(peer));
            out.add(peer, pair, || {
                f(self.function(pair.0), other.function(pair.1))
            });
        }
        out.finish()
    }

    /// Applies `f` to every function, each once. Peers whose image equals that of
    /// `any` are dropped: the `any` rows already say the same for them.
    pub fn map<G: PartialEq>(&self, f: impl Fn(&F) -> G) -> PeerVerdicts<G> {
        let any = f(&self.any);
        let mut out = Combined::new(any);
        for (peer, index) in &self.peers {
            out.add(*peer, (Some(*index), None), || {
                f(&self.functions[*index as usize])
            });
        }
        out.finish()
    }
}

/// Builds the result of [`PeerVerdicts::zip_with`] and [`PeerVerdicts::map`]: one
/// function per distinct pair of input functions.
struct Combined<H> {
    verdicts: PeerVerdicts<H>,
    /// Input pair -> output index, or None where the output equals `any`.
    memo: FxHashMap<(FunctionIndex, FunctionIndex), Option<u32>>,
}

impl<H: PartialEq> Combined<H> {
    fn new(any: H) -> Self {
        Self {
            verdicts: PeerVerdicts::uniform(any),
            memo: FxHashMap::default(),
        }
    }

    fn add(&mut self, peer: u32, pair: (FunctionIndex, FunctionIndex), f: impl FnOnce() -> H) {
        let verdicts = &mut self.verdicts;
        let index = *self.memo.entry(pair).or_insert_with(|| {
            let function = f();
            (function != verdicts.any).then(|| {
                verdicts.functions.push(function);
                u32::try_from(verdicts.functions.len() - 1).expect("fewer than 2^32 functions")
            })
        });
        if let Some(index) = index {
            verdicts.peers.insert(peer, index);
        }
    }

    fn finish(self) -> PeerVerdicts<H> {
        self.verdicts
    }
}

/// The keys of two maps, ascending, each once.
fn merged_keys<'a>(
    a: &'a BTreeMap<u32, u32>,
    b: &'a BTreeMap<u32, u32>,
) -> impl Iterator<Item = u32> + 'a {
    let mut a = a.keys().copied().peekable();
    let mut b = b.keys().copied().peekable();
    std::iter::from_fn(move || match (a.peek().copied(), b.peek().copied()) {
        (Some(x), Some(y)) if x == y => {
            a.next();
            b.next()
        }
        (Some(x), Some(y)) if x < y => a.next(),
        (Some(_), Some(_)) => b.next(),
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}
