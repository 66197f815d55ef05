//! palisade EgressPolicies as the compiler needs them: which policies are an
//! endpoint's effective allowlist, what that allowlist allows per peer identity and
//! (protocol, port), what it does with the rest, and the per-endpoint outputs that
//! are not policy rows (DNS name rules, socket controls).
//!
//! Semantics (see [`crate::model::EgressPolicy`]): the effective policies of a pod are
//! the enforcing ones that select it, or if there are none the audit ones; a flow is in
//! the allowlist iff some rule of an effective policy matches its destination and port
//! (the first such rule, by policy namespace/name and rule order, is cited); a flow
//! outside it gets the first effective policy's implicit deny (Deny, or AuditDeny when
//! the effective policies audit). CIDRs match every identity whose addresses are in
//! them, nodes included; pod selectors match pod identities; DNS names match no
//! identity (the DNS proxy adds FQDN identities at run time).

use super::cidr::IpBlocks;
use super::identity::Identities;
use super::policy_numbers::PolicyNumbers;
use super::port_map::PortMap;
use super::ports::PortRange;
use super::rules::{RuleCatalog, RuleId};
use super::selection::Selection;
use super::tables::{PortRangeEntry, RuleInfo, Verdict};
use super::tiers::Allowlist;
use super::verdict::{Outcome, PeerVerdicts};
use crate::model::{
    Cluster, EgressPeer, EgressPolicy, EgressRule, Enforcement, Pod, ProtocolPorts,
};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::{BTreeMap, BTreeSet};

struct IndexedPolicy<'a> {
    policy: &'a EgressPolicy,
    /// One id per rule of `policy.egress`.
    rules: Vec<RuleId>,
    implicit_deny: RuleId,
}

/// Every EgressPolicy of the cluster, by stable position (`policy_numbers`).
pub(crate) struct EgressPolicies<'a> {
    /// None where no policy has the position.
    policies: Vec<Option<IndexedPolicy<'a>>>,
    /// Namespace -> the positions of its policies, in key order (the order in which
    /// selections list them and rules are evaluated).
    by_namespace: FxHashMap<&'a str, Vec<usize>>,
}

/// The rules of the EgressPolicy `policy`, in the order its [`NumberedPolicy`]
/// numbers them: its rules, then its implicit deny.
///
/// [`NumberedPolicy`]: super::policy_numbers::NumberedPolicy
pub(crate) fn rule_infos(policy: &EgressPolicy) -> Vec<RuleInfo> {
    (0..policy.egress.len())
        .map(|index| RuleInfo::egress_policy(policy, index))
        .chain([RuleInfo::egress_policy_implicit_deny(policy)])
        .collect()
}

/// A DNS name rule of an endpoint's effective allowlist, before publication.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct FqdnRule {
    pub pattern: String,
    pub ports: Vec<PortRangeEntry>,
    pub rule: RuleId,
}

/// What the effective EgressPolicies say about an endpoint's sockets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SocketControls {
    pub deny_raw: bool,
    pub deny_packet: bool,
    pub bind_ports: Option<Vec<PortRangeEntry>>,
    /// The controls are reported, not enforced.
    pub audit: bool,
}

impl<'a> EgressPolicies<'a> {
    /// Numbers the cluster's policies in key order, entering their rules in `catalog`
    /// (tier `egress`: after the cluster tiers, before NetworkPolicy), each policy's
    /// implicit deny after its rules.
    pub fn number(cluster: &Cluster, catalog: &mut RuleCatalog) -> PolicyNumbers {
        PolicyNumbers::in_key_order(
            cluster
                .egress_policies
                .iter()
                .map(|(key, policy)| (key, rule_infos(policy))),
            catalog,
        )
    }

    /// Indexes the policies, numbered by `numbers` (which numbers every one of them).
    pub fn index(cluster: &'a Cluster, numbers: &PolicyNumbers) -> Self {
        let mut policies: Vec<Option<IndexedPolicy<'a>>> = Vec::new();
        policies.resize_with(numbers.positions(), || None);
        let mut by_namespace: FxHashMap<&'a str, Vec<usize>> = FxHashMap::default();
        for (key, policy) in &cluster.egress_policies {
            // Never skipped: a policy left out would open what it narrows.
            let numbered = numbers
                .get(key)
                .expect("every EgressPolicy of the cluster is numbered");
            let (implicit_deny, rules) = numbered
                .rules
                .split_last()
                .expect("an EgressPolicy has its implicit deny");
            policies[numbered.position] = Some(IndexedPolicy {
                policy,
                rules: rules.to_vec(),
                implicit_deny: *implicit_deny,
            });
            by_namespace
                .entry(key.namespace.as_str())
                .or_default()
                .push(numbered.position);
        }
        Self {
            policies,
            by_namespace,
        }
    }

    /// The pod's effective EgressPolicies (namespace `namespace`): the enforcing ones
    /// that select it, else the audit ones. Empty: its egress is not narrowed.
    pub fn effective(&self, namespace: &str, pod: &Pod) -> Selection {
        let in_namespace = self
            .by_namespace
            .get(namespace)
            .map_or(&[][..], Vec::as_slice);
        let selecting = |enforcement: Enforcement| {
            in_namespace.iter().copied().filter(move |i| {
                self.policies[*i].as_ref().is_some_and(|p| {
                    p.policy.enforcement == enforcement
                        && p.policy.pod_selector.matches(&pod.labels)
                })
            })
        };
        let enforcing = Selection::new(selecting(Enforcement::Enforce));
        if enforcing.is_empty() {
            Selection::new(selecting(Enforcement::Audit))
        } else {
            enforcing
        }
    }

    /// What `selection` (effective policies, not empty) does with a flow it does not
    /// allow: the first policy's implicit deny, audited if the policies audit.
    pub fn otherwise(&self, selection: &Selection) -> Outcome {
        let Some(first) = self.selected(selection).next() else {
            return Outcome::DEFAULT_ALLOW;
        };
        let verdict = match first.policy.enforcement {
            Enforcement::Enforce => Verdict::Deny,
            Enforcement::Audit => Verdict::AuditDeny,
        };
        Outcome {
            verdict,
            rule: Some(first.implicit_deny),
        }
    }

    /// The DNS name rules of `selection`, sorted.
    pub fn fqdn_rules(&self, selection: &Selection) -> Vec<FqdnRule> {
        let mut rules: Vec<FqdnRule> = self
            .selected(selection)
            .flat_map(|p| p.policy.egress.iter().zip(&p.rules))
            .flat_map(|(rule, id)| {
                rule.to.iter().filter_map(move |peer| match peer {
                    EgressPeer::Fqdn(pattern) => Some(FqdnRule {
                        pattern: pattern.as_str().to_string(),
                        ports: rule.ports.iter().map(port_range_entry).collect(),
                        rule: *id,
                    }),
                    _ => None,
                })
            })
            .collect();
        rules.sort_unstable();
        rules.dedup();
        rules
    }

    /// The socket controls of `selection`: restricted where a policy with `sockets`
    /// says so and no policy with `sockets` allows it.
    pub fn socket_controls(&self, selection: &Selection) -> SocketControls {
        let stated: Vec<_> = self
            .selected(selection)
            .filter_map(|p| Some((p.policy.enforcement, p.policy.sockets.as_ref()?)))
            .collect();
        if stated.is_empty() {
            return SocketControls::default();
        }
        let deny_raw = !stated.iter().any(|(_, s)| s.allow_raw);
        let deny_packet = !stated.iter().any(|(_, s)| s.allow_packet);
        let bind_ports = stated
            .iter()
            .map(|(_, s)| s.bind_ports.as_ref())
            .collect::<Option<Vec<_>>>()
            .map(|lists| {
                let ranges: BTreeSet<PortRangeEntry> =
                    lists.into_iter().flatten().map(port_range_entry).collect();
                ranges.into_iter().collect()
            });
        let restricts = deny_raw || deny_packet || bind_ports.is_some();
        SocketControls {
            deny_raw,
            deny_packet,
            bind_ports,
            audit: restricts && stated.iter().all(|(e, _)| *e == Enforcement::Audit),
        }
    }

    fn selected<'s>(
        &'s self,
        selection: &'s Selection,
    ) -> impl Iterator<Item = &'s IndexedPolicy<'a>> + 's {
        selection
            .positions()
            .iter()
            .filter_map(|i| self.policies.get(*i)?.as_ref())
    }
}

fn port_range_entry(ports: &ProtocolPorts) -> PortRangeEntry {
    PortRangeEntry {
        protocol: ports.protocol.number(),
        first: ports.first,
        last: ports.last,
    }
}

/// Computes allowlists for endpoints and the peer identities they can reach.
pub(crate) struct AllowlistEvaluator<'a> {
    policies: &'a EgressPolicies<'a>,
    identities: &'a Identities,
    blocks: &'a IpBlocks,
    /// Identities some address resolves to; others never need rows.
    peer_identities: &'a BTreeSet<u32>,
}

impl<'a> AllowlistEvaluator<'a> {
    pub fn new(
        policies: &'a EgressPolicies<'a>,
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

    /// The allowlist of the effective policies `selection` (not empty): per peer, the
    /// first rule that allows each (protocol, port); peers no rule names get nothing.
    pub fn allowlist(&self, selection: &Selection) -> Allowlist {
        let rules: Vec<(&EgressPolicy, &EgressRule, RuleId)> = self
            .policies
            .selected(selection)
            .flat_map(|p| {
                let policy = p.policy;
                policy
                    .egress
                    .iter()
                    .zip(&p.rules)
                    .map(move |(rule, id)| (policy, rule, *id))
            })
            .collect();
        // Per peer, the rules that name it (in id order); peers named by the same
        // rules share a function.
        let mut named_by: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, (policy, rule, _)) in rules.iter().enumerate() {
            for peer in self.matched_peers(policy, rule) {
                if self.peer_identities.contains(&peer) {
                    named_by.entry(peer).or_default().push(i);
                }
            }
        }
        let mut groups: BTreeMap<Vec<usize>, Vec<u32>> = BTreeMap::new();
        for (peer, signature) in named_by {
            groups.entry(signature).or_default().push(peer);
        }
        let ports: Vec<PortMap<Option<RuleId>>> = rules
            .iter()
            .map(|(_, rule, id)| ports_allowed(&rule.ports, *id))
            .collect();
        let groups = groups.into_iter().map(|(signature, peers)| {
            // Rules come in evaluation order (policies by key, rules in order): an
            // earlier rule keeps the points it allows.
            let function = signature
                .iter()
                .fold(PortMap::constant(None), |function, i| {
                    function.zip_with(&ports[*i], |first, this| first.or(*this))
                });
            (function, peers)
        });
        Allowlist {
            allowing: PeerVerdicts::from_groups(PortMap::constant(None), groups),
            otherwise: self.policies.otherwise(selection),
        }
    }

    /// The positions of the policies one of whose rules matches some identity of this
    /// evaluator's identities (see `RuleEvaluator::touched_policies`).
    pub fn touched_policies(&self) -> FxHashSet<usize> {
        self.policies
            .policies
            .iter()
            .enumerate()
            .filter_map(|(position, p)| Some((position, p.as_ref()?)))
            .filter(|(_, p)| {
                p.policy
                    .egress
                    .iter()
                    .any(|rule| !self.matched_peers(p.policy, rule).is_empty())
            })
            .map(|(position, _)| position)
            .collect()
    }

    /// The identities the destinations of `rule` (of `policy`) match.
    fn matched_peers(&self, policy: &EgressPolicy, rule: &EgressRule) -> BTreeSet<u32> {
        let mut matched = BTreeSet::new();
        for peer in &rule.to {
            match peer {
                EgressPeer::Pods {
                    namespace_selector,
                    pod_selector,
                } => matched.extend(
                    self.identities
                        .pods
                        .iter()
                        .filter(|(_, pod)| {
                            let in_namespace = match namespace_selector {
                                None => pod.namespace == policy.namespace,
                                Some(selector) => selector.matches(&pod.namespace_labels),
                            };
                            in_namespace
                                && pod_selector
                                    .as_ref()
                                    .is_none_or(|selector| selector.matches(&pod.labels))
                        })
                        .map(|(id, _)| *id),
                ),
                EgressPeer::Cidr { cidr, except } => {
                    if let Some(in_block) = self
                        .blocks
                        .id_of(*cidr, except)
                        .and_then(|block| self.identities.in_block.get(&block))
                    {
                        matched.extend(in_block.iter().copied());
                    }
                }
                // Names have no identity until the DNS proxy resolves them.
                EgressPeer::Fqdn(_) => {}
            }
        }
        matched
    }
}

/// The (protocol, port) pairs a rule with `ports` allows, citing `rule`.
fn ports_allowed(ports: &[ProtocolPorts], rule: RuleId) -> PortMap<Option<RuleId>> {
    if ports.is_empty() {
        return PortMap::constant(Some(rule));
    }
    ports
        .iter()
        .filter_map(|p| {
            let range = PortRange::new(p.first, p.last)?;
            Some(PortMap::on_range(
                p.protocol.number(),
                range,
                Some(rule),
                None,
            ))
        })
        .fold(PortMap::constant(None), |acc, m| {
            acc.zip_with(&m, |a, b| a.or(*b))
        })
}
