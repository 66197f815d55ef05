//! Flows to a Service address: the backends the compiled Service table translates it
//! to, and what the tables decide for the flow to each.
//!
//! The datapath translates a Service address when a socket connects (or sends, for
//! UDP), before any packet exists, so the kernel's policy hooks only ever see the flow
//! to the chosen backend. A flow to a Service is therefore decided per backend exactly
//! as a direct flow to it: egress at the source against the backend's address and
//! port, ingress at the backend's pod with the source's address. The port is the
//! backend's (the Service port's `targetPort` resolved on the pod): NetworkPolicy
//! applies to the target port on the pod, as in Kubernetes, never to the Service port.
//! A backend at the source's own address is reached over loopback, which the kernel
//! programs always pass.
//!
//! The combined verdict is the strictest of the backends' verdicts: the datapath picks
//! a backend per connection, so a Service address is reachable only if every backend
//! is. Calling it allowed when some backend is denied would describe some connections
//! only, and the failures would look random; the per-backend decisions say which
//! backend is the problem. A Service address without backends is denied: the datapath
//! refuses the connection (as kube-proxy does), though no policy decided it.

use super::flow::{Endpoint, FlowAddresses, FlowDecision, FlowError, IpFamily};
use super::outcome::strictest;
use super::table::{ClusterEvaluator, Decision};
use crate::compile::tables::{CompiledCluster, ServiceBackend, ServiceEntry, Verdict};
use crate::model::{Direction, ObjectRef};
use std::net::IpAddr;

/// The Service table entry for `vip:port` over `protocol` (an IANA number), if `vip`
/// is a Service address with that port.
pub fn service(
    compiled: &CompiledCluster,
    vip: IpAddr,
    port: u16,
    protocol: u8,
) -> Option<&ServiceEntry> {
    let key = (vip.to_canonical(), port, protocol);
    let services = &compiled.services;
    services
        .binary_search_by(|entry| (entry.address, entry.port, entry.protocol).cmp(&key))
        .ok()
        .map(|index| &services[index])
}

/// The backends the datapath translates `vip:port` over `protocol` to; None if that is
/// no Service address and port, empty if the Service has no backends.
pub fn backends(
    compiled: &CompiledCluster,
    vip: IpAddr,
    port: u16,
    protocol: u8,
) -> Option<&[ServiceBackend]> {
    service(compiled, vip, port, protocol).map(|entry| entry.backends.as_slice())
}

/// The decisions on a flow to one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendDecision {
    pub backend: ServiceBackend,
    /// The translated flow: `dst` is the backend's address, the port its port.
    pub flow: FlowDecision<Decision>,
    /// The backend is at the source's own address: the flow stays on loopback and
    /// passes, neither end decided.
    pub loopback: bool,
}

/// The decisions on a flow to a Service address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceFlowDecision {
    pub service: ObjectRef,
    /// The Service address, port and protocol the flow was sent to.
    pub address: IpAddr,
    pub port: u16,
    pub protocol: u8,
    /// The source's address (canonical), of the Service address's family.
    pub src: IpAddr,
    /// One per backend, in the Service table's order.
    pub backends: Vec<BackendDecision>,
    /// The strictest backend verdict; Deny without backends.
    pub verdict: Verdict,
}

impl ClusterEvaluator<'_> {
    /// Decides a flow from `from` to the Service address of `service`, backend by
    /// backend (see the module documentation). A pod source uses its first address of
    /// the Service address's family.
    pub fn flow_to_service(
        &self,
        from: Endpoint,
        service: &ServiceEntry,
    ) -> Result<ServiceFlowDecision, FlowError> {
        let family = IpFamily::of(service.address);
        let to = Endpoint::External(service.address);
        let src = FlowAddresses::resolve(from, to, Some(family))?.src;
        let protocol = service.protocol;
        let backends: Vec<BackendDecision> = service
            .backends
            .iter()
            .map(|backend| {
                let addresses = FlowAddresses {
                    src,
                    dst: backend.address,
                };
                let loopback = backend.address == src;
                let (egress, ingress) = if loopback {
                    (None, None)
                } else {
                    let egress = match from {
                        Endpoint::Pod(pod) => self.decide_at(
                            &pod.object_ref(),
                            Direction::Egress,
                            backend.address,
                            protocol,
                            backend.port,
                        ),
                        Endpoint::External(_) => None,
                    };
                    let ingress = backend.pod.as_ref().and_then(|pod| {
                        self.decide_at(pod, Direction::Ingress, src, protocol, backend.port)
                    });
                    (egress, ingress)
                };
                BackendDecision {
                    backend: backend.clone(),
                    flow: FlowDecision::new(addresses, egress, ingress, |d| d.verdict),
                    loopback,
                }
            })
            .collect();
        let verdict = backends
            .iter()
            .map(|decision| decision.flow.verdict)
            .reduce(strictest)
            .unwrap_or(Verdict::Deny);
        Ok(ServiceFlowDecision {
            service: service.service.clone(),
            address: service.address,
            port: service.port,
            protocol,
            src,
            backends,
            verdict,
        })
    }

    /// The decision at the endpoint `pod`; None if it is not one.
    fn decide_at(
        &self,
        pod: &ObjectRef,
        direction: Direction,
        peer: IpAddr,
        protocol: u8,
        port: u16,
    ) -> Option<Decision> {
        self.endpoint(pod)
            .map(|(node, entry)| node.decide(entry, direction, peer, protocol, port))
    }
}

/// Decides a flow from `from` to `vip:port` over `protocol`, as the datapath does when
/// `vip:port` is a Service address: per backend, with a combined verdict. `Ok(None)`
/// when it is no Service address and port (decide it with [`super::flow`]). Builds
/// every node's view: to decide many flows, build a [`ClusterEvaluator`] once and use
/// [`service`] with [`ClusterEvaluator::flow_to_service`].
pub fn flow_via_service(
    compiled: &CompiledCluster,
    from: Endpoint,
    vip: IpAddr,
    protocol: u8,
    port: u16,
) -> Result<Option<ServiceFlowDecision>, FlowError> {
    let Some(entry) = service(compiled, vip, port, protocol) else {
        return Ok(None);
    };
    ClusterEvaluator::new(compiled)
        .flow_to_service(from, entry)
        .map(Some)
}
