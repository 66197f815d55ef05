//! Kubernetes NetworkPolicy (`networking.k8s.io/v1`) as verdict functions: which
//! policies isolate an endpoint, and, for each peer identity, which rule first allows
//! each (protocol, port).
//!
//! The semantics, exactly as upstream defines them:
//! - A pod is isolated for a direction iff a policy of its namespace selects it and
//!   lists the direction in `policyTypes`; then only what some rule of such a policy
//!   allows passes (the union of rules).
//! - A rule allows traffic matching any of its peers (none: every address) and any of
//!   its ports (none: every protocol and port).
//! - Named ports resolve on the pod that receives the traffic: on ingress the local
//!   endpoint, on egress the destination pod (so they never match non-pod peers).
//! - Nodes (palisade's choice where Kubernetes leaves it open) are never ipBlock
//!   members: only rules without peers allow them; the own node is always allowed
//!   (`tiers`).
//!
//! Policy objects are identified by their key in [`Cluster::network_policies`]; the key's
//! namespace is the namespace they apply in. Selections name them by their stable
//! position (`policy_numbers`), in key order.

use super::cidr::IpBlocks;
use super::identity::{EgressPortNames, Identities};
use super::pod_peers::PodPeers;
use super::policy_numbers::PolicyNumbers;
use super::port_map::PortMap;
use super::ports::spec_range;
use super::receiver::Receiver;
use super::rules::{RuleCatalog, RuleId};
use super::selection::Selection;
use super::tables::RuleInfo;
use super::verdict::PeerVerdicts;
use crate::model::{Cluster, Direction, NetworkPolicy, ObjectRef, Peer, Pod, PolicyRule, PortRef};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// For each (protocol, port): the first rule (in evaluation order: policies by key,
/// rules in order) that allows it, if any.
pub(crate) type AllowingRules = PortMap<Option<RuleId>>;

/// One rule, with the id verdicts cite it by.
struct Rule<'a> {
    id: RuleId,
    /// Namespace of the policy (where `Pods` peers without a namespace selector look).
    namespace: &'a str,
    rule: &'a PolicyRule,
}

impl Rule<'_> {
    fn names_ports(&self) -> bool {
        self.rule
            .ports
            .iter()
            .any(|spec| matches!(spec.port, Some(PortRef::Name(_))))
    }
}

/// A policy and the ids of its rules: ingress rules, then egress rules.
struct IndexedPolicy<'a> {
    namespace: &'a str,
    policy: &'a NetworkPolicy,
    rules: Vec<RuleId>,
}

impl<'a> IndexedPolicy<'a> {
    fn rules(&self, direction: Direction) -> impl Iterator<Item = Rule<'a>> + use<'a, '_> {
        let (skip, rules) = match direction {
            Direction::Ingress => (0, &self.policy.ingress),
            Direction::Egress => (self.policy.ingress.len(), &self.policy.egress),
        };
        let namespace = self.namespace;
        rules
            .iter()
            .zip(&self.rules[skip.min(self.rules.len())..])
            .map(move |(rule, id)| Rule {
                id: *id,
                namespace,
                rule,
            })
    }
}

/// The rules of the NetworkPolicy `key`, in the order its [`NumberedPolicy`] numbers
/// them: ingress, then egress.
pub(crate) fn rule_infos(key: &ObjectRef, policy: &NetworkPolicy) -> Vec<RuleInfo> {
    [Direction::Ingress, Direction::Egress]
        .into_iter()
        .flat_map(|direction| {
            (0..policy.rules(direction).len())
                .map(move |index| RuleInfo::network_policy(key, direction, index))
        })
        .collect()
}

/// Port names that egress rules of egress-isolating NetworkPolicies use.
fn egress_port_names(cluster: &Cluster) -> EgressPortNames {
    let mut names = EgressPortNames::new();
    for policy in cluster.network_policies.values() {
        if policy.isolates(Direction::Egress) {
            for spec in policy.egress.iter().flat_map(|rule| &rule.ports) {
                if let Some(PortRef::Name(name)) = &spec.port {
                    names.insert((name.clone(), spec.protocol));
                }
            }
        }
    }
    names
}

/// Every NetworkPolicy of the cluster, indexed for the compiler's questions.
pub(crate) struct NetworkPolicies<'a> {
    /// By position ([`NumberedPolicy::position`]); None where no policy has it.
    policies: Vec<Option<IndexedPolicy<'a>>>,
    /// Namespace -> the positions of the policies that apply there, in key order. A
    /// pod is only ever selected by policies of its own namespace.
    by_namespace: FxHashMap<&'a str, Vec<usize>>,
    egress_port_names: EgressPortNames,
}

impl<'a> NetworkPolicies<'a> {
    /// Numbers the cluster's policies in key order, entering their rules in `catalog`.
    pub fn number(cluster: &Cluster, catalog: &mut RuleCatalog) -> PolicyNumbers {
        PolicyNumbers::in_key_order(
            cluster
                .network_policies
                .iter()
                .map(|(key, policy)| (key, rule_infos(key, policy))),
            catalog,
        )
    }

    /// Indexes the policies, numbered by `numbers` (which numbers every one of them).
    pub fn index(cluster: &'a Cluster, numbers: &PolicyNumbers) -> Self {
        let mut policies: Vec<Option<IndexedPolicy<'a>>> = Vec::new();
        policies.resize_with(numbers.positions(), || None);
        let mut by_namespace: FxHashMap<&'a str, Vec<usize>> = FxHashMap::default();
        for (policy_ref, policy) in &cluster.network_policies {
            // Never skipped: a policy left out would open what it isolates.
            let numbered = numbers
                .get(policy_ref)
                .expect("every NetworkPolicy of the cluster is numbered");
            let namespace = policy_ref.namespace.as_str();
            policies[numbered.position] = Some(IndexedPolicy {
                namespace,
                policy,
                rules: numbered.rules.clone(),
            });
            by_namespace
                .entry(namespace)
                .or_default()
                .push(numbered.position);
        }
        Self {
            policies,
            by_namespace,
            egress_port_names: egress_port_names(cluster),
        }
    }

    fn indexed(&self) -> impl Iterator<Item = (usize, &IndexedPolicy<'a>)> {
        self.policies
            .iter()
            .enumerate()
            .filter_map(|(position, policy)| Some((position, policy.as_ref()?)))
    }

    /// Port names that egress rules of egress-isolating policies use: the ones pod
    /// identities must tell apart.
    pub fn egress_port_names(&self) -> &EgressPortNames {
        &self.egress_port_names
    }

    /// The policies that isolate the pod `namespace`/`pod` for `direction`. Empty: the
    /// direction is not isolated.
    pub fn isolating(&self, namespace: &str, pod: &Pod, direction: Direction) -> Selection {
        let in_namespace = self
            .by_namespace
            .get(namespace)
            .map_or(&[][..], Vec::as_slice);
        Selection::new(in_namespace.iter().copied().filter(|i| {
            self.policies[*i].as_ref().is_some_and(|p| {
                p.policy.isolates(direction) && p.policy.pod_selector.matches(&pod.labels)
            })
        }))
    }
}

/// Computes which rules allow what, for endpoints and the peer identities that can
/// reach them.
pub(crate) struct RuleEvaluator<'a> {
    policies: &'a NetworkPolicies<'a>,
    identities: &'a Identities,
    blocks: &'a IpBlocks,
    /// Identities some address resolves to; others never need rows.
    peer_identities: &'a BTreeSet<u32>,
    pod_peers: PodPeers<'a>,
}

impl<'a> RuleEvaluator<'a> {
    pub fn new(
        policies: &'a NetworkPolicies<'a>,
        identities: &'a Identities,
        blocks: &'a IpBlocks,
        peer_identities: &'a BTreeSet<u32>,
    ) -> Self {
        Self {
            policies,
            identities,
            blocks,
            peer_identities,
            pod_peers: PodPeers::new(identities),
        }
    }

    /// For the endpoint `local`, isolated for `direction` by `selection`: per peer, the
    /// first rule that allows each (protocol, port). Only peers that some rule treats
    /// differently from an address no rule names are listed.
    pub fn allowing_rules(
        &self,
        selection: &Selection,
        direction: Direction,
        local: &Pod,
    ) -> PeerVerdicts<AllowingRules> {
        // In evaluation order (the selection lists policies in key order): the first
        // rule that allows a point is the one with the lowest index here.
        let rules: Vec<Rule> = selection
            .positions()
            .iter()
            .filter_map(|i| self.policies.policies.get(*i)?.as_ref())
            .flat_map(|p| p.rules(direction))
            .collect();
        // Where named ports resolve for traffic with `peer` (None: a peer no rule names).
        let receiver = |peer: Option<u32>| {
            Receiver::of(
                direction,
                local,
                peer.and_then(|p| self.identities.pods.get(&p)),
            )
        };
        // Only egress named ports make a rule's ports depend on the peer.
        let depends_on_peer = |r: &Rule| direction == Direction::Egress && r.names_ports();
        let ports: Vec<LocalRules> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| ports_allowed(r, i, receiver(None)))
            .collect();
        let matched: Vec<Rc<BTreeSet<u32>>> = rules.iter().map(|r| self.matched_peers(r)).collect();

        // Rules without peers match every peer.
        let peerless: Vec<usize> = (0..rules.len())
            .filter(|i| rules[*i].rule.peers.is_empty())
            .collect();
        let any = rules
            .iter()
            .zip(&ports)
            .filter(|(r, _)| r.rule.peers.is_empty())
            .fold(PortMap::constant(None), |acc, (_, ports)| {
                union(&acc, ports)
            });

        // Peers some rule names; and on egress, when a rule without peers names ports,
        // the pods those names may resolve on.
        let mut candidates: BTreeSet<u32> = match matched.as_slice() {
            [only] => (**only).clone(),
            _ => matched.iter().flat_map(|m| m.iter()).copied().collect(),
        };
        if rules
            .iter()
            .any(|r| r.rule.peers.is_empty() && depends_on_peer(r))
        {
            candidates.extend(
                self.identities
                    .pods
                    .iter()
                    .filter(|(_, pod)| !pod.named_ports.is_empty())
                    .map(|(id, _)| *id),
            );
        }

        // Peers the same rules match share a function, unless a matched rule's named
        // ports resolve on the peer.
        let mut groups: BTreeMap<(Vec<usize>, Option<u32>), Vec<u32>> = BTreeMap::new();
        for peer in candidates.intersection(self.peer_identities) {
            let signature: Vec<usize> = (0..rules.len())
                .filter(|i| !rules[*i].rule.peers.is_empty() && matched[*i].contains(peer))
                .collect();
            let own = signature
                .iter()
                .chain(&peerless)
                .any(|i| depends_on_peer(&rules[*i]))
                .then_some(*peer);
            groups.entry((signature, own)).or_default().push(*peer);
        }
        let groups = groups.into_iter().map(|((signature, own), peers)| {
            let function = signature
                .iter()
                .chain(&peerless)
                .fold(any.clone(), |function, i| {
                    if own.is_some() && depends_on_peer(&rules[*i]) {
                        union(&function, &ports_allowed(&rules[*i], *i, receiver(own)))
                    } else {
                        union(&function, &ports[*i])
                    }
                });
            (function, peers)
        });
        let cite = |function: &LocalRules| function.map(|rule| rule.map(|i| rules[i].id));
        let groups: Vec<(AllowingRules, Vec<u32>)> = groups
            .map(|(function, peers)| (cite(&function), peers))
            .collect();
        PeerVerdicts::from_groups(cite(&any), groups)
    }

    /// Whether the evaluator computes rows for `peer`.
    pub fn is_peer(&self, peer: u32) -> bool {
        self.peer_identities.contains(&peer)
    }

    /// The positions of the policies one of whose rules treats some pod identity of
    /// this evaluator's identities differently from an address no rule names: the
    /// rules names it, or (egress) a rule without peers names ports that may resolve
    /// on it. Over identities restricted to a few changed peers, the policies whose
    /// rows those peers may have.
    pub fn touched_policies(&self) -> FxHashSet<usize> {
        let pods = &self.identities.pods;
        let named_ports = pods.values().any(|pod| !pod.named_ports.is_empty());
        let in_blocks = !self.identities.in_block.is_empty();
        let touches = |direction: Direction, rule: &Rule<'a>| {
            if rule.rule.peers.is_empty() {
                return direction == Direction::Egress && named_ports && rule.names_ports();
            }
            rule.rule.peers.iter().any(|peer| match peer {
                Peer::Pods {
                    namespace_selector,
                    pod_selector,
                } => pods.values().any(|pod| {
                    let in_namespace = match namespace_selector {
                        None => pod.namespace == rule.namespace,
                        Some(selector) => selector.matches(&pod.namespace_labels),
                    };
                    in_namespace
                        && pod_selector
                            .as_ref()
                            .is_none_or(|selector| selector.matches(&pod.labels))
                }),
                Peer::IpBlock { cidr, except } => {
                    in_blocks
                        && self
                            .blocks
                            .id_of(*cidr, except)
                            .is_some_and(|block| self.identities.in_block.contains_key(&block))
                }
            })
        };
        self.policies
            .indexed()
            .filter(|(_, policy)| {
                [Direction::Ingress, Direction::Egress]
                    .into_iter()
                    .any(|direction| policy.rules(direction).any(|r| touches(direction, &r)))
            })
            .map(|(position, _)| position)
            .collect()
    }

    /// The identities a rule's peers name (empty for a rule without peers).
    fn matched_peers(&self, rule: &Rule<'a>) -> Rc<BTreeSet<u32>> {
        // One peer selecting pods (the common rule): its memoized selection as is.
        if let [
            Peer::Pods {
                namespace_selector,
                pod_selector,
            },
        ] = rule.rule.peers.as_slice()
        {
            return self.pod_peers.selected(
                rule.namespace,
                namespace_selector.as_ref(),
                pod_selector.as_ref(),
            );
        }
        let mut matched = BTreeSet::new();
        for peer in &rule.rule.peers {
            match peer {
                Peer::Pods {
                    namespace_selector,
                    pod_selector,
                } => matched.extend(
                    self.pod_peers
                        .selected(
                            rule.namespace,
                            namespace_selector.as_ref(),
                            pod_selector.as_ref(),
                        )
                        .iter(),
                ),
                Peer::IpBlock { cidr, except } => {
                    if let Some(in_block) = self
                        .blocks
                        .id_of(*cidr, except)
                        .and_then(|block| self.identities.in_block.get(&block))
                    {
                        // Nodes are never ipBlock members.
                        matched.extend(
                            in_block
                                .iter()
                                .filter(|id| !self.identities.nodes.contains_key(id)),
                        );
                    }
                }
            }
        }
        Rc::new(matched)
    }
}

/// For each (protocol, port): the first rule that allows it, by its index in the
/// evaluation order of one endpoint's rules.
type LocalRules = PortMap<Option<usize>>;

/// The (protocol, port) pairs a rule (number `index` in the evaluation order) allows
/// for traffic `receiver` receives.
fn ports_allowed(rule: &Rule, index: usize, receiver: Receiver) -> LocalRules {
    if rule.rule.ports.is_empty() {
        return PortMap::constant(Some(index));
    }
    rule.rule
        .ports
        .iter()
        .filter_map(|spec| {
            let range = spec_range(spec, |name| receiver.named_port(name, spec.protocol))?;
            Some(PortMap::on_range(
                spec.protocol.number(),
                range,
                Some(index),
                None,
            ))
        })
        .fold(PortMap::constant(None), |acc, m| union(&acc, &m))
}

/// Pointwise union of allow sets, citing the first rule where both allow.
fn union(a: &LocalRules, b: &LocalRules) -> LocalRules {
    a.zip_with(b, |x, y| match (x, y) {
        (Some(x), Some(y)) => Some(*x.min(y)),
        (Some(rule), None) | (None, Some(rule)) => Some(*rule),
        (None, None) => None,
    })
}
