//! Decides flows from the compiled tables, step for step as the kernel programs do
//! (through the policy library's table evaluator), and says why: which rule decided
//! each side, or which policies isolate a pod that no rule lets the flow reach.
//!
//! The library's `ClusterEvaluator::flow` picks each pod's first address of the flow's
//! family; `check` needs chosen addresses too (`ip:ADDR` of a pod, a probe's
//! `dst_ip`), so the two ends are decided here with the evaluator's per-endpoint view
//! (`ClusterEvaluator::endpoint` + `TableEvaluator::decide`), which is all `flow`
//! does besides choosing addresses. A pod talking to itself is loopback, which the
//! kernel programs always pass.

use super::endpoint::{End, PodIndex};
use super::protocol::Service;
use palisade_policy::compile::tables::{CompiledCluster, RuleInfo, Verdict};
use palisade_policy::evaluate::{ClusterEvaluator, IpFamily, Reason, strictest};
use palisade_policy::model::{Cluster, Direction, ObjectRef, Pod};
use std::net::IpAddr;

/// Everything needed to decide flows in one cluster, built once.
pub struct Simulator<'a> {
    cluster: &'a Cluster,
    compiled: &'a CompiledCluster,
    evaluator: ClusterEvaluator<'a>,
    index: PodIndex<'a>,
}

/// A decided flow.
#[derive(Clone, Debug)]
pub struct Outcome<'a> {
    pub from: End<'a>,
    pub to: End<'a>,
    /// The addresses used (canonical).
    pub src: IpAddr,
    pub dst: IpAddr,
    pub service: Service,
    /// At the source.
    pub egress: Side,
    /// At the destination.
    pub ingress: Side,
    /// The strictest of the two sides.
    pub verdict: Verdict,
}

/// The decision at one end of a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Side {
    pub direction: Direction,
    pub verdict: Verdict,
    pub basis: Basis,
    /// What decided: the rule, for [`Basis::Rule`]; the isolating policies, for
    /// [`Basis::Isolation`]; else nothing.
    pub causes: Vec<Cause>,
}

/// Why a side decided as it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis {
    /// The end is an address no pod has: palisade enforces nothing there.
    External,
    /// The end is a host-network pod: it is its node, not an endpoint.
    HostNetwork,
    /// The compiled tables have no endpoint for the pod.
    NoEndpoint,
    /// The pod talks to itself: loopback always passes.
    Loopback,
    /// No policy isolates the pod in this direction.
    NotIsolated,
    /// Policies apply to the pod in this direction, but none decides about this peer
    /// and port, and no NetworkPolicy isolates it: the flow passes.
    Undecided,
    /// The peer is the pod's own node and no rule decides about it: allowed.
    OwnNode,
    /// A policy rule decided ([`Side::causes`] names it).
    Rule,
    /// The pod is isolated in this direction and no rule matched: the isolation
    /// default denies ([`Side::causes`] names the isolating policies).
    Isolation,
    /// No rule matched and the default for the pod in this direction decided.
    Default,
    /// The tables hold no entry at all for the flow: denied, fail closed.
    NoEntry,
}

/// A policy (and rule) behind a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// `networkpolicy`, `admin`, `baseline`, ...
    pub tier: String,
    /// Kind of the policy object, e.g. `NetworkPolicy`.
    pub kind: String,
    /// None for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
    pub direction: Direction,
    /// Index in the object's `ingress`/`egress` list; None for an isolation default.
    pub rule: Option<u32>,
    /// `Allow`, `Deny`, `Pass`, ...
    pub action: String,
    /// The rule's own name where the source names rules (AdminNetworkPolicy and
    /// EgressPolicy rules, TrustBoundary services and zones); empty otherwise. Shown to
    /// people; not part of the JSON contract.
    pub rule_name: String,
}

impl Cause {
    fn of_rule(rule: &RuleInfo) -> Self {
        Self {
            tier: rule.tier.clone(),
            kind: rule.kind.clone(),
            namespace: (!rule.namespace.is_empty()).then(|| rule.namespace.clone()),
            name: rule.name.clone(),
            direction: rule.direction,
            rule: Some(rule.rule),
            action: rule.action.clone(),
            rule_name: rule.rule_name.clone(),
        }
    }

    /// The NetworkPolicy `policy` isolating a pod in `direction`: its default denies.
    fn isolation(policy: &ObjectRef, direction: Direction) -> Self {
        let rule = RuleInfo::network_policy(policy, direction, 0);
        Self {
            rule: None,
            action: "Deny".into(),
            ..Self::of_rule(&rule)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("pod {pod} has no {family} address")]
    NoAddress { pod: String, family: IpFamily },
    #[error("pod {pod} has no address (its status.podIP is not set)")]
    NoAddressAtAll { pod: String },
    #[error("{address} is not an {family} address, but the flow is {family} ({why})")]
    WrongFamily {
        address: IpAddr,
        family: IpFamily,
        why: &'static str,
    },
}

impl<'a> Simulator<'a> {
    pub fn new(cluster: &'a Cluster, compiled: &'a CompiledCluster) -> Self {
        Self {
            cluster,
            compiled,
            evaluator: ClusterEvaluator::new(compiled),
            index: PodIndex::new(cluster),
        }
    }

    pub fn cluster(&self) -> &'a Cluster {
        self.cluster
    }

    pub fn index(&self) -> &PodIndex<'a> {
        &self.index
    }

    /// Decides the flow from `from` to `to` for `service`. The addresses: those the
    /// ends chose, else each pod's first address of the flow's family, which is
    /// `family` if given, else that of a chosen address, else that of the source
    /// pod's first address (then the destination's), else IPv4.
    pub fn check(
        &self,
        from: End<'a>,
        to: End<'a>,
        service: Service,
        family: Option<IpFamily>,
    ) -> Result<Outcome<'a>, AddressError> {
        let (src, dst) = addresses(&from, &to, family)?;
        let loopback = match (from.pod(), to.pod()) {
            (Some(a), Some(b)) => a.namespace == b.namespace && a.name == b.name,
            _ => false,
        };
        let (egress, ingress) = if loopback {
            (
                Side::plain(Direction::Egress, Basis::Loopback),
                Side::plain(Direction::Ingress, Basis::Loopback),
            )
        } else {
            (
                self.side(&from, Direction::Egress, dst, service),
                self.side(&to, Direction::Ingress, src, service),
            )
        };
        Ok(Outcome {
            from,
            to,
            src,
            dst,
            service,
            verdict: strictest(egress.verdict, ingress.verdict),
            egress,
            ingress,
        })
    }

    /// The decision at `end` for a new flow in `direction` with the address `peer`.
    fn side(&self, end: &End<'a>, direction: Direction, peer: IpAddr, service: Service) -> Side {
        let pod = match end {
            End::External { .. } => return Side::plain(direction, Basis::External),
            End::Pod { pod, .. } if pod.host_network => {
                return Side::plain(direction, Basis::HostNetwork);
            }
            End::Pod { pod, .. } => *pod,
        };
        let Some((node, entry)) = self.evaluator.endpoint(&pod.object_ref()) else {
            return Side::plain(direction, Basis::NoEndpoint);
        };
        let decision = node.decide(
            entry,
            direction,
            peer,
            service.protocol.number(),
            service.port,
        );
        let (basis, causes) = match (decision.rule_ref, decision.reason) {
            (Some(rule_ref), _) => (
                Basis::Rule,
                self.compiled
                    .rules
                    .get(rule_ref as usize)
                    .map(Cause::of_rule)
                    .into_iter()
                    .collect(),
            ),
            (None, Reason::AllowedNotIsolated) => {
                let enforced = match direction {
                    Direction::Ingress => entry.enforce_ingress,
                    Direction::Egress => entry.enforce_egress,
                };
                let basis = if enforced {
                    Basis::Undecided
                } else {
                    Basis::NotIsolated
                };
                (basis, Vec::new())
            }
            (None, Reason::AllowedHost) => (Basis::OwnNode, Vec::new()),
            (None, Reason::DeniedNoEntry) => (Basis::NoEntry, Vec::new()),
            (None, Reason::DeniedPolicy) => (Basis::Isolation, self.isolating(pod, direction)),
            (None, Reason::AllowedPolicy | Reason::AuditDenied) => (Basis::Default, Vec::new()),
        };
        Side {
            direction,
            verdict: decision.verdict,
            basis,
            causes,
        }
    }

    /// The NetworkPolicies that isolate `pod` in `direction`: those of its namespace
    /// that select it and list the direction in `policyTypes`.
    fn isolating(&self, pod: &Pod, direction: Direction) -> Vec<Cause> {
        self.cluster
            .network_policies
            .iter()
            .filter(|(policy_ref, policy)| {
                policy_ref.namespace == pod.namespace
                    && policy.isolates(direction)
                    && policy.pod_selector.matches(&pod.labels)
            })
            .map(|(policy_ref, _)| Cause::isolation(policy_ref, direction))
            .collect()
    }
}

impl Side {
    /// An allowing side with nothing to cite.
    fn plain(direction: Direction, basis: Basis) -> Self {
        Self {
            direction,
            verdict: Verdict::Allow,
            basis,
            causes: Vec::new(),
        }
    }
}

fn addresses(
    from: &End,
    to: &End,
    family: Option<IpFamily>,
) -> Result<(IpAddr, IpAddr), AddressError> {
    let first_family = |end: &End| {
        end.pod()
            .and_then(|pod| pod.ips.first())
            .map(|ip| IpFamily::of(*ip))
    };
    let chosen = from.chosen_address().or(to.chosen_address());
    let (family, why) = match (family, chosen) {
        (Some(family), _) => (family, "as --family asks"),
        (None, Some(address)) => (IpFamily::of(address), "both ends use one family"),
        (None, None) => (
            first_family(from)
                .or_else(|| first_family(to))
                .unwrap_or(IpFamily::V4),
            "both ends use one family",
        ),
    };
    let address = |end: &End| match *end {
        End::External { address, .. }
        | End::Pod {
            address: Some(address),
            ..
        } if IpFamily::of(address) == family => Ok(address.to_canonical()),
        End::External { address, .. }
        | End::Pod {
            address: Some(address),
            ..
        } => Err(AddressError::WrongFamily {
            address,
            family,
            why,
        }),
        End::Pod { pod, address: None } => pod
            .ips
            .iter()
            .map(|ip| ip.to_canonical())
            .find(|ip| IpFamily::of(*ip) == family)
            .ok_or_else(|| {
                let name = end.name();
                if pod.ips.is_empty() {
                    AddressError::NoAddressAtAll { pod: name }
                } else {
                    AddressError::NoAddress { pod: name, family }
                }
            }),
    };
    Ok((address(from)?, address(to)?))
}
