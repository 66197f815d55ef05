//! Verdicts as the compiler carries them: what one table entry says ([`Outcome`]), and
//! what an endpoint's table says for each peer in one direction ([`PeerVerdicts`]).

use super::rules::RuleId;
use super::tables::Verdict;
use rustc_hash::FxHashMap;

/// A verdict and the rule that produced it. Without a rule it is a default: deny for
/// an endpoint NetworkPolicy isolates, allow where no tier decides (and for the own
/// node, see `tiers`).
///
/// Packed to six bytes (two-byte aligned): port maps hold one per run of ports, and
/// `Option<RuleId>` takes four.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(C, packed(2))]
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
    /// (peer, index into `functions`), sorted by peer, each peer once; only peers
    /// whose function differs from `any`. A sorted list, not a map: tables are built
    /// by merging these in peer order, millions of times per compile.
    peers: Vec<(u32, u32)>,
    functions: Vec<F>,
}

/// Equal when they give every peer the same function, however the functions are
/// stored.
impl<F: PartialEq> PartialEq for PeerVerdicts<F> {
    fn eq(&self, other: &Self) -> bool {
        self.any == other.any
            && self.peers.len() == other.peers.len()
            && self.peers.iter().zip(&other.peers).all(|(a, b)| {
                a.0 == b.0 && self.functions[a.1 as usize] == other.functions[b.1 as usize]
            })
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
            peers: Vec::new(),
            functions: Vec::new(),
        }
    }

    /// Whether every peer has `any`.
    pub fn is_uniform(&self) -> bool {
        self.peers.is_empty()
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
        // Stable: of a peer listed twice, the later group's entry comes last and stays.
        verdicts.peers.sort_by_key(|(peer, _)| *peer);
        let mut deduped: Vec<(u32, u32)> = Vec::with_capacity(verdicts.peers.len());
        for entry in verdicts.peers.drain(..) {
            match deduped.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => deduped.push(entry),
            }
        }
        verdicts.peers = deduped;
        verdicts
    }

    /// Gives `peer` the function `function`, listed even where it equals `any` (the
    /// own node's rows must be complete: the kernel never falls back to ANY for it).
    pub fn insert(&mut self, peer: u32, function: F) {
        let index = u32::try_from(self.functions.len()).expect("fewer than 2^32 functions");
        self.functions.push(function);
        match self.peers.binary_search_by_key(&peer, |(p, _)| *p) {
            Ok(at) => self.peers[at].1 = index,
            Err(at) => self.peers.insert(at, (peer, index)),
        }
    }

    /// The pointwise combination `f(self(peer), other(peer))` for every peer either
    /// lists (and for `any`), each distinct pair of functions computed once.
    pub fn zip_with<G, H: PartialEq>(
        &self,
        other: &PeerVerdicts<G>,
        f: impl Fn(&F, &G) -> H,
    ) -> PeerVerdicts<H> {
        let any = f(&self.any, &other.any);
        let mut out = Combined::new(any, self.peers.len().max(other.peers.len()));
        let (a, b) = (&self.peers, &other.peers);
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let (peer, pair) = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    i += 1;
                    j += 1;
                    (x.0, (Some(x.1), Some(y.1)))
                }
                (Some(x), Some(y)) if x.0 < y.0 => {
                    i += 1;
                    (x.0, (Some(x.1), None))
                }
                (Some(x), None) => {
                    i += 1;
                    (x.0, (Some(x.1), None))
                }
                (_, Some(y)) => {
                    j += 1;
                    (y.0, (None, Some(y.1)))
                }
                (None, None) => break,
            };
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
        let mut out = Combined::new(any, self.peers.len());
        for (peer, index) in &self.peers {
            out.add(*peer, (Some(*index), None), || {
                f(&self.functions[*index as usize])
            });
        }
        out.finish()
    }
}

/// Builds the result of [`PeerVerdicts::zip_with`] and [`PeerVerdicts::map`]: one
/// function per distinct pair of input functions. Peers must be added ascending.
struct Combined<H> {
    verdicts: PeerVerdicts<H>,
    /// Input pair -> output index, or None where the output equals `any`.
    memo: FxHashMap<(FunctionIndex, FunctionIndex), Option<u32>>,
}

impl<H: PartialEq> Combined<H> {
    fn new(any: H, peers: usize) -> Self {
        let mut verdicts = PeerVerdicts::uniform(any);
        verdicts.peers.reserve(peers);
        Self {
            verdicts,
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
            debug_assert!(verdicts.peers.last().is_none_or(|last| last.0 < peer));
            verdicts.peers.push((peer, index));
        }
    }

    fn finish(self) -> PeerVerdicts<H> {
        self.verdicts
    }
}
