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
//!
//! A flow to a Service address and port (`ip:VIP` with a port the Service exposes) is
//! decided as the datapath decides it: the socket hooks translate it to a backend
//! before any packet exists, so each backend is decided as a direct flow to the
//! backend's address and target port, and the Service flow's verdict is the strictest
//! of its backends' (a Service without backends is refused at the source). See
//! `palisade_policy::evaluate::services`.

use super::endpoint::{End, PodIndex};
use super::protocol::Service;
use palisade_policy::compile::tables::{CompiledCluster, RuleInfo, ServiceEntry, Verdict};
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
    /// Set when `to` is a Service address and port: the flow goes to one of its
    /// backends, each decided on its own; `egress` and `ingress` are then those of
    /// the strictest backend.
    pub via_service: Option<ServiceOutcome<'a>>,
}

/// A flow to a Service address, per backend.
#[derive(Clone, Debug)]
pub struct ServiceOutcome<'a> {
    /// The Service, namespace/name.
    pub service: ObjectRef,
    /// One per backend, in the Service table's order: the flow to the backend's
    /// address and target port.
    pub backends: Vec<Outcome<'a>>,
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
    /// The destination is a Service address with no backends: the datapath refuses
    /// the flow at the source.
    NoBackends,
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
        if let End::External { .. } = to {
            let protocol = service.protocol.number();
            let entry = palisade_policy::evaluate::services::service(
                self.compiled,
                dst,
                service.port,
                protocol,
            );
            if let Some(entry) = entry {
                return self.check_service(from, to, (src, dst), service, entry);
            }
        }
        self.check_direct(from, to, (src, dst), service)
    }

    /// Decides the flow from `from` at `src` to `to` at `dst`, as addressed (no
    /// Service translation: the datapath translates once).
    fn check_direct(
        &self,
        from: End<'a>,
        to: End<'a>,
        (src, dst): (IpAddr, IpAddr),
        service: Service,
    ) -> Result<Outcome<'a>, AddressError> {
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
            via_service: None,
        })
    }

    /// Decides a flow to the Service address `to` (whose table entry is `entry`):
    /// each backend as a direct flow from `src` to the backend's address and port.
    fn check_service(
        &self,
        from: End<'a>,
        to: End<'a>,
        (src, dst): (IpAddr, IpAddr),
        service: Service,
        entry: &ServiceEntry,
    ) -> Result<Outcome<'a>, AddressError> {
        let backends = entry
            .backends
            .iter()
            .map(|backend| {
                let port = Service {
                    port: backend.port,
                    ..service
                };
                let to = self.index.address(backend.address);
                self.check_direct(from, to, (src, backend.address.to_canonical()), port)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let strictest_side = |side: fn(&Outcome<'a>) -> Side| {
            backends.iter().map(side).reduce(|a, b| {
                if strictest(a.verdict, b.verdict) == a.verdict {
                    a
                } else {
                    b
                }
            })
        };
        let egress = strictest_side(|o| o.egress.clone()).unwrap_or(Side {
            direction: Direction::Egress,
            verdict: Verdict::Deny,
            basis: Basis::NoBackends,
            causes: Vec::new(),
        });
        let ingress = strictest_side(|o| o.ingress.clone())
            .unwrap_or_else(|| Side::plain(Direction::Ingress, Basis::External));
        Ok(Outcome {
            from,
            to,
            src,
            dst,
            service,
            verdict: strictest(egress.verdict, ingress.verdict),
            egress,
            ingress,
            via_service: Some(ServiceOutcome {
                service: entry.service.clone(),
                backends,
            }),
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
