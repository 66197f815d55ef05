//! The rules of a cluster policy tier as verdict functions: for an endpoint and each
//! peer identity, the first rule (in the tier's evaluation order) that matches each
//! (protocol, port).
//!
//! Matching, as AdminNetworkPolicy defines it:
//! - `namespaces` and `pods` peers match pod identities (never host-network pods,
//!   whose addresses are node addresses); `nodes` peers match node identities;
//!   `networks` peers match every identity whose addresses are in the CIDR: pods,
//!   nodes (any of a node's addresses) and plain CIDR identities.
//! - A rule without `ports` matches every protocol and port; `namedPort` resolves on
//!   the pod that receives the traffic.
//! - A rule with no peers matches nothing.

use super::cidr::IpBlocks;
use super::cluster_policy::{ClusterPolicies, IndexedRule};
use super::identity::{Identities, NodeIdentity};
use super::port_map::PortMap;
use super::ports::PortRange;
use super::receiver::Receiver;
use super::rules::RuleId;
use super::selection::Selection;
use super::verdict::PeerVerdicts;
use crate::model::{ClusterPeer, ClusterPort, Direction, Pod, Protocol, RuleAction, Tier};
use rustc_hash::FxHashSet;
use std::collections::{BTreeMap, BTreeSet};

/// A rule that matched: what it does and the id verdicts cite it by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RuleMatch {
    pub action: RuleAction,
    pub rule: RuleId,
}

/// For each (protocol, port): the first rule of a tier that matches, if any.
pub(crate) type FirstMatches = PortMap<Option<RuleMatch>>;

/// What the rules of one tier say about an endpoint in one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TierMatches {
    /// Per peer identity; every rule names its peers, so `any` never matches.
    pub peers: PeerVerdicts<FirstMatches>,
    /// For the endpoint's own node, if asked for.
    pub own_node: Option<FirstMatches>,
}

/// Computes first matches for endpoints and the peer identities that can reach them.
pub(crate) struct ClusterRuleEvaluator<'a> {
    policies: &'a ClusterPolicies<'a>,
    identities: &'a Identities,
    blocks: &'a IpBlocks,
    /// Identities some address resolves to; others never need rows.
    peer_identities: &'a BTreeSet<u32>,
}

impl<'a> ClusterRuleEvaluator<'a> {
    pub fn new(
        policies: &'a ClusterPolicies<'a>,
        identities: &'a Identities,
        blocks: &'a IpBlocks,
        peer_identities: &'a BTreeSet<u32>,
    ) -> Self {
        Self {
            policies,
            identities,
            blocks,
            peer_identities,
        }
    }

    /// The first matches of the `tier` policies `selection` names for the endpoint
    /// `local` in `direction`, per peer, and for `own_node` if given. Only peers some
    /// rule matches are listed.
    pub fn first_matches(
        &self,
        tier: Tier,
        selection: &Selection,
        direction: Direction,
        local: &Pod,
        own_node: Option<&NodeIdentity>,
    ) -> TierMatches {
        let rules = self.policies.rules(tier, selection, direction);
        let matched: Vec<BTreeSet<u32>> = rules.iter().map(|r| self.matched_peers(r)).collect();
        let candidates: BTreeSet<u32> = matched.iter().flatten().copied().collect();

        // Peers matched by the same rules share a function, unless a matched rule's
        // named ports resolve on the peer (egress).
        let names_ports = |rule: &IndexedRule| {
            direction == Direction::Egress
                && rule
                    .rule
                    .ports
                    .iter()
                    .any(|port| matches!(port, ClusterPort::Named(_)))
        };
        let mut groups: BTreeMap<(Vec<usize>, Option<u32>), Vec<u32>> = BTreeMap::new();
        for peer in candidates.intersection(self.peer_identities) {
            let signature: Vec<usize> = (0..rules.len())
                .filter(|i| matched[*i].contains(peer))
                .collect();
            let own = signature
                .iter()
                .any(|i| names_ports(rules[*i]))
                .then_some(*peer);
            groups.entry((signature, own)).or_default().push(*peer);
        }
        let peers = PeerVerdicts::from_groups(
            PortMap::constant(None),
            groups.into_iter().map(|((signature, own), peers)| {
                let receiver = Receiver::of(
                    direction,
                    local,
                    own.and_then(|peer| self.identities.pods.get(&peer)),
                );
                let function = first_match(signature.iter().map(|i| rules[*i]), receiver);
                (function, peers)
            }),
        );
        let own_node = own_node.map(|node| {
            // A node is never a pod: names resolve only on the local endpoint.
            let receiver = Receiver::of(direction, local, None);
            first_match(
                rules
                    .iter()
                    .copied()
                    .filter(|r| matches_node(r, node, self.blocks)),
                receiver,
            )
        });
        TierMatches { peers, own_node }
    }

    /// The positions of the `tier` policies one of whose rules matches some identity of
    /// this evaluator's identities (see `RuleEvaluator::touched_policies`).
    pub fn touched_policies(&self, tier: Tier) -> FxHashSet<usize> {
        (0..self.policies.len(tier))
            .filter(|position| {
                self.policies
                    .policy_rules(tier, *position)
                    .any(|rule| !self.matched_peers(rule).is_empty())
            })
            .collect()
    }

    /// The identities a rule's peers match.
    fn matched_peers(&self, rule: &IndexedRule) -> BTreeSet<u32> {
        let mut matched = BTreeSet::new();
        for peer in &rule.rule.peers {
            match peer {
                ClusterPeer::Namespaces(namespaces) => matched.extend(
                    self.identities
                        .pods
                        .iter()
                        .filter(|(_, pod)| namespaces.matches(&pod.namespace_labels))
                        .map(|(id, _)| *id),
                ),
                ClusterPeer::Pods {
                    namespace_selector,
                    pod_selector,
                } => matched.extend(
                    self.identities
                        .pods
                        .iter()
                        .filter(|(_, pod)| {
                            namespace_selector.matches(&pod.namespace_labels)
                                && pod_selector.matches(&pod.labels)
                        })
                        .map(|(id, _)| *id),
                ),
                ClusterPeer::Nodes(nodes) => matched.extend(
                    self.identities
                        .nodes
                        .iter()
                        .filter(|(_, node)| nodes.matches(&node.labels))
                        .map(|(id, _)| *id),
                ),
                ClusterPeer::Networks(cidrs) => {
                    for cidr in cidrs {
                        if let Some(in_block) = self
                            .blocks
                            .id_of(*cidr, &[])
                            .and_then(|block| self.identities.in_block.get(&block))
                        {
                            matched.extend(in_block.iter().copied());
                        }
                    }
                }
            }
        }
        matched
    }
}

/// Whether a rule's peers match the node `node`.
fn matches_node(rule: &IndexedRule, node: &NodeIdentity, blocks: &IpBlocks) -> bool {
    rule.rule.peers.iter().any(|peer| match peer {
        ClusterPeer::Nodes(nodes) => nodes.matches(&node.labels),
        ClusterPeer::Networks(cidrs) => cidrs.iter().any(|cidr| {
            blocks
                .id_of(*cidr, &[])
                .is_some_and(|block| node.membership.contains(&block))
        }),
        ClusterPeer::Namespaces(_) | ClusterPeer::Pods { .. } => false,
    })
}

/// For each (protocol, port), the first of `rules` (all of which match the peer) whose
/// ports match traffic `receiver` receives.
fn first_match<'r>(
    rules: impl IntoIterator<Item = &'r IndexedRule<'r>>,
    receiver: Receiver,
) -> FirstMatches {
    rules
        .into_iter()
        .fold(PortMap::constant(None), |first, rule| {
            let matched = RuleMatch {
                action: rule.rule.action,
                rule: rule.id,
            };
            first.zip_with(&ports_matched(&rule.rule.ports, receiver), |first, hit| {
                first.or_else(|| hit.then_some(matched))
            })
        })
}

/// The (protocol, port) pairs `ports` match for traffic `receiver` receives.
fn ports_matched(ports: &[ClusterPort], receiver: Receiver) -> PortMap<bool> {
    if ports.is_empty() {
        return PortMap::constant(true);
    }
    let on = |protocol: Protocol, range| PortMap::on_range(protocol.number(), range, true, false);
    let mut matched = PortMap::constant(false);
    for port in ports {
        let maps: Vec<PortMap<bool>> = match port {
            ClusterPort::Number { protocol, port } => vec![on(*protocol, PortRange::single(*port))],
            ClusterPort::Range {
                protocol,
                first,
                last,
            } => PortRange::new(*first, *last)
                .map(|range| on(*protocol, range))
                .into_iter()
                .collect(),
            ClusterPort::Named(name) => Protocol::ALL
                .into_iter()
                .filter_map(|protocol| {
                    let port = receiver.named_port(name, protocol)?;
                    Some(on(protocol, PortRange::single(port)))
                })
                .collect(),
        };
        for map in maps {
            matched = matched.zip_with(&map, |a, b| *a || *b);
        }
    }
    matched
}
