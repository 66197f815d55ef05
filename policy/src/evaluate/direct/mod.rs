//! The oracle: decides flows straight from the model's policy objects with their
//! published semantics, without identities, ip cache or tables. Deliberately naive
//! (linear scans, no indexes) so that it is easy to check against the upstream
//! documentation; tests hold the compiled tables to it.
//!
//! At one end (egress at the source, ingress at the destination), tier by tier:
//! 1. Admin (AdminNetworkPolicy): the policies whose subject selects the endpoint, by
//!    priority then name, rules in order; the first matching rule decides, except that
//!    `Pass` skips to the next tier.
//! 2. NetworkPolicy: if policies of the endpoint's namespace isolate it for the
//!    direction, the flow is allowed iff one of their rules allows it.
//! 3. Baseline (BaselineAdminNetworkPolicy), like the admin tier, only if no
//!    NetworkPolicy isolates the endpoint for the direction.
//! 4. Allowed.
//!
//! Where the APIs leave behaviour to the implementation, this follows palisade:
//! - An endpoint that no tier constrains in a direction (no isolating NetworkPolicy, no
//!   cluster policy with rules for it there) is not enforced: allowed, whatever the peer.
//! - The endpoint's own node (its Node object's addresses and those of the host-network
//!   pods on it) is allowed by the NetworkPolicy tier and by default; only cluster
//!   policies can deny it.
//! - Nodes are never pods nor ipBlock members: NetworkPolicy reaches them only with
//!   rules without peers. Cluster policies select them with `nodes`, and with `networks`
//!   that contain any of their addresses (a node is one peer).
//! - IPv4-mapped IPv6 addresses and prefixes are IPv4 (the kernel cannot tell them
//!   apart).
//! - An address two pods claim belongs to the first by namespace/name.
//! - Cluster policies of equal priority are evaluated by name.
//!
//! Objects are identified by their keys in [`Cluster`]; a NetworkPolicy applies in the
//! namespace of its key.

mod cluster_policy;
mod network_policy;
mod peer;

use super::flow::{Endpoint, FlowAddresses, FlowDecision, FlowError, IpFamily};
use super::outcome::Reason;
use crate::compile::tables::{RuleInfo, Verdict};
use crate::model::{
    Cluster, ClusterPolicy, Direction, Labels, NetworkPolicy, ObjectRef, Pod, RuleAction, Tier,
};
use peer::{PeerKind, classify};
use std::net::IpAddr;

/// What the policies decide for one new flow at one end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The rule that decided: the first matching cluster policy rule, or the first
    /// NetworkPolicy rule (policies by namespace/name, rules in order) that allows the
    /// flow; None when a default decided.
    pub rule: Option<RuleInfo>,
    pub reason: Reason,
}

/// Decides a flow: egress at the source if it is an endpoint, ingress at the
/// destination if it is one. Same addressing as [`super::ClusterEvaluator::flow`].
pub fn flow(
    cluster: &Cluster,
    from: Endpoint,
    to: Endpoint,
    protocol: u8,
    port: u16,
    family: Option<IpFamily>,
) -> Result<FlowDecision<Decision>, FlowError> {
    let addresses = FlowAddresses::resolve(from, to, family)?;
    let end = |end: Endpoint, direction, peer| match end {
        Endpoint::Pod(pod) => decide(cluster, &pod.object_ref(), direction, peer, protocol, port),
        Endpoint::External(_) => None,
    };
    let egress = end(from, Direction::Egress, addresses.dst);
    let ingress = end(to, Direction::Ingress, addresses.src);
    Ok(FlowDecision::new(addresses, egress, ingress, |d| d.verdict))
}

/// Decides a new flow of the pod `endpoint` in `direction` with the address `peer`;
/// None if the pod is not an endpoint (unknown or host-network).
pub fn decide(
    cluster: &Cluster,
    endpoint: &ObjectRef,
    direction: Direction,
    peer: IpAddr,
    protocol: u8,
    dport: u16,
) -> Option<Decision> {
    let local = cluster.pods.get(endpoint).filter(|pod| !pod.host_network)?;
    let namespace_labels = cluster.namespace_labels(&endpoint.namespace);
    let isolating: Vec<(&ObjectRef, &NetworkPolicy)> = cluster
        .network_policies
        .iter()
        .filter(|(policy_ref, policy)| {
            policy_ref.namespace == endpoint.namespace
                && policy.isolates(direction)
                && policy.pod_selector.matches(&local.labels)
        })
        .collect();
    let admin = subject_of(cluster, Tier::Admin, &namespace_labels, local, direction);
    let baseline = subject_of(cluster, Tier::Baseline, &namespace_labels, local, direction);
    if isolating.is_empty() && admin.is_empty() && baseline.is_empty() {
        return Some(Decision::by_default(
            Verdict::Allow,
            Reason::AllowedNotIsolated,
        ));
    }

    let node = local.node_name.as_deref().unwrap_or("");
    let flow = FlowAtEnd {
        cluster,
        direction,
        local,
        peer: classify(cluster, node, peer),
        protocol,
        dport,
    };
    let own_node = matches!(flow.peer, PeerKind::OwnNode(_));

    if let Some(decision) = flow.cluster_tier(&admin) {
        return Some(decision);
    }
    if !isolating.is_empty() {
        if own_node {
            return Some(Decision::by_default(Verdict::Allow, Reason::AllowedHost));
        }
        let allowing = isolating.iter().find_map(|(policy_ref, policy)| {
            let index = policy
                .rules(direction)
                .iter()
                .position(|rule| flow.allowed_by(rule, &policy_ref.namespace))?;
            Some(RuleInfo::network_policy(policy_ref, direction, index))
        });
        return Some(match allowing {
            Some(rule) => Decision::by_rule(Verdict::Allow, rule),
            None => Decision::by_default(Verdict::Deny, Reason::DeniedPolicy),
        });
    }
    if let Some(decision) = flow.cluster_tier(&baseline) {
        return Some(decision);
    }
    Some(if own_node {
        Decision::by_default(Verdict::Allow, Reason::AllowedHost)
    } else {
        Decision::by_default(Verdict::Allow, Reason::AllowedNotIsolated)
    })
}

impl Decision {
    fn by_default(verdict: Verdict, reason: Reason) -> Self {
        Self {
            verdict,
            rule: None,
            reason,
        }
    }

    fn by_rule(verdict: Verdict, rule: RuleInfo) -> Self {
        Self {
            verdict,
            rule: Some(rule),
            reason: Reason::of_entry(verdict),
        }
    }
}

/// The cluster policies of `tier` whose subject is the pod (in a namespace with
/// `namespace_labels`) and that have rules for `direction`, in evaluation order.
fn subject_of<'a>(
    cluster: &'a Cluster,
    tier: Tier,
    namespace_labels: &Labels,
    pod: &Pod,
    direction: Direction,
) -> Vec<&'a ClusterPolicy> {
    let mut policies: Vec<&ClusterPolicy> = cluster
        .cluster_policies
        .values()
        .filter(|policy| {
            policy.tier == tier
                && !policy.rules(direction).is_empty()
                && policy.subject.selects(namespace_labels, &pod.labels)
        })
        .collect();
    policies.sort_by_key(|policy| (policy.priority, &policy.name, policy.kind));
    policies
}

/// A new flow at one end, to be matched against rules.
struct FlowAtEnd<'a> {
    cluster: &'a Cluster,
    direction: Direction,
    local: &'a Pod,
    peer: PeerKind<'a>,
    protocol: u8,
    dport: u16,
}

impl FlowAtEnd<'_> {
    /// What a cluster policy tier made of `policies` (in evaluation order) decides: the
    /// first matching rule's Allow or Deny; None if no rule matches or the first that
    /// does passes.
    fn cluster_tier(&self, policies: &[&ClusterPolicy]) -> Option<Decision> {
        for policy in policies {
            for (index, rule) in policy.rules(self.direction).iter().enumerate() {
                if !self.matches(rule) {
                    continue;
                }
                let info = RuleInfo::cluster_policy(policy, self.direction, index, rule.action);
                return match rule.action {
                    RuleAction::Allow => Some(Decision::by_rule(Verdict::Allow, info)),
                    RuleAction::Deny => Some(Decision::by_rule(Verdict::Deny, info)),
                    RuleAction::Pass => None,
                };
            }
        }
        None
    }

    /// The pod that receives the flow, where named ports resolve.
    fn receiver(&self) -> Option<&Pod> {
        match (self.direction, &self.peer) {
            (Direction::Ingress, _) => Some(self.local),
            (Direction::Egress, PeerKind::Pod(_, pod, _)) => Some(pod),
            (Direction::Egress, _) => None,
        }
    }
}
