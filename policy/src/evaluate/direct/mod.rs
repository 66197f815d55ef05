//! The oracle: decides flows straight from the model's policy objects with their
//! published semantics, without identities, ip cache or tables. Deliberately naive
//! (linear scans, no indexes) so that it is easy to check against the upstream
//! documentation; tests hold the compiled tables to it.
//!
//! At one end (egress at the source, ingress at the destination), tier by tier:
//! 1. Admin (AdminNetworkPolicy and TrustBoundary): the AdminNetworkPolicies whose
//!    subject selects the endpoint and the TrustBoundaries whose namespaces include the
//!    endpoint's, by priority, then kind (AdminNetworkPolicy first), then name; the
//!    first matching rule decides, except that `Pass` skips to the next tier. A
//!    TrustBoundary passes pods of the endpoint's zone and its shared services (on
//!    their ports, in their direction) and denies every other pod (`trust_boundary`).
//! 2. On egress, if EgressPolicies select the endpoint: the decision of steps 3-5,
//!    narrowed by their allowlist (`egress_policy`): kept where the allowlist allows
//!    the flow (an allow then cites the allowlist's rule), else the allowlist's
//!    implicit deny (Deny; AuditDeny in Audit mode, which a Deny of steps 3-5 beats).
//! 3. NetworkPolicy: if policies of the endpoint's namespace isolate it for the
//!    direction, the flow is allowed iff one of their rules allows it.
//! 4. Baseline (BaselineAdminNetworkPolicy), like the admin tier, only if no
//!    NetworkPolicy isolates the endpoint for the direction.
//! 5. Allowed.
//!
//! Where the APIs leave behaviour to the implementation, this follows palisade:
//! - An endpoint that no tier constrains in a direction (no isolating NetworkPolicy, no
//!   cluster policy with rules for it there) is not enforced: allowed, whatever the peer.
//! - The endpoint's own node (its Node object's addresses and those of the host-network
//!   pods on it) is allowed by the NetworkPolicy tier and by default, and never
//!   narrowed by an egress allowlist; only cluster policies can deny it.
//! - Nodes are never pods nor ipBlock members: NetworkPolicy reaches them only with
//!   rules without peers. Cluster policies select them with `nodes`, and with `networks`
//!   that contain any of their addresses (a node is one peer).
//! - IPv4-mapped IPv6 addresses and prefixes are IPv4 (the kernel cannot tell them
//!   apart).
//! - An address two pods claim belongs to the first by namespace/name.
//! - Cluster policies of equal priority are evaluated by kind, then name.
//!
//! Objects are identified by their keys in [`Cluster`]; a NetworkPolicy applies in the
//! namespace of its key.

mod cluster_policy;
mod egress_policy;
mod network_policy;
mod peer;
mod tier;
mod trust_boundary;

use super::flow::{Endpoint, FlowAddresses, FlowDecision, FlowError, IpFamily};
use super::outcome::Reason;
use crate::compile::tables::{RuleInfo, Verdict};
use crate::model::{Cluster, Direction, NetworkPolicy, ObjectRef, Pod, Tier};
use peer::{PeerKind, classify};
use std::net::IpAddr;
use tier::{TierPolicy, subject_of};

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
    let mut admin = subject_of(cluster, Tier::Admin, &namespace_labels, local, direction);
    admin.extend(trust_boundary::containing(
        cluster,
        &endpoint.namespace,
        &namespace_labels,
    ));
    admin.sort_by(|a, b| a.order().cmp(&b.order()));
    let baseline = subject_of(cluster, Tier::Baseline, &namespace_labels, local, direction);
    let allowlist = match direction {
        Direction::Egress => egress_policy::effective(cluster, &endpoint.namespace, local),
        Direction::Ingress => Vec::new(),
    };
    if isolating.is_empty() && admin.is_empty() && baseline.is_empty() && allowlist.is_empty() {
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

    if let Some(decision) = flow.tier(&admin) {
        return Some(decision);
    }
    let later = flow.later_tiers(&isolating, &baseline, own_node);
    Some(if allowlist.is_empty() || own_node {
        later
    } else {
        flow.narrowed(&allowlist, later)
    })
}

impl FlowAtEnd<'_> {
    /// What NetworkPolicy, then the baseline tier, then the default decide.
    fn later_tiers(
        &self,
        isolating: &[(&ObjectRef, &NetworkPolicy)],
        baseline: &[TierPolicy],
        own_node: bool,
    ) -> Decision {
        if !isolating.is_empty() {
            if own_node {
                return Decision::by_default(Verdict::Allow, Reason::AllowedHost);
            }
            let allowing = isolating.iter().find_map(|(policy_ref, policy)| {
                let index = policy
                    .rules(self.direction)
                    .iter()
                    .position(|rule| self.allowed_by(rule, &policy_ref.namespace))?;
                Some(RuleInfo::network_policy(policy_ref, self.direction, index))
            });
            return match allowing {
                Some(rule) => Decision::by_rule(Verdict::Allow, rule),
                None => Decision::by_default(Verdict::Deny, Reason::DeniedPolicy),
            };
        }
        if let Some(decision) = self.tier(baseline) {
            return decision;
        }
        if own_node {
            Decision::by_default(Verdict::Allow, Reason::AllowedHost)
        } else {
            Decision::by_default(Verdict::Allow, Reason::AllowedNotIsolated)
        }
    }
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
    /// The pod that receives the flow, where named ports resolve.
    fn receiver(&self) -> Option<&Pod> {
        match (self.direction, &self.peer) {
            (Direction::Ingress, _) => Some(self.local),
            (Direction::Egress, PeerKind::Pod(_, pod, _)) => Some(pod),
            (Direction::Egress, _) => None,
        }
    }
}
