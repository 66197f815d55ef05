//! Flows between two ends: which addresses a probe uses, and how the decisions of the
//! source's egress and the destination's ingress make the flow's verdict. Shared by
//! both evaluators; the decisions themselves are theirs.

use super::outcome::strictest;
use crate::compile::tables::Verdict;
use crate::model::{ObjectRef, Pod};
use std::fmt;
use std::net::IpAddr;

/// One end of a flow.
#[derive(Clone, Copy, Debug)]
pub enum Endpoint<'a> {
    /// A pod; it uses its first address of the flow's family. It is decided for if it
    /// is an endpoint (not host-network).
    Pod(&'a Pod),
    /// An address that is not a pod's end: never decided for.
    External(IpAddr),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    /// The family as the kernel sees it: IPv4-mapped IPv6 is IPv4.
    pub fn of(addr: IpAddr) -> Self {
        match addr.to_canonical() {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        })
    }
}

/// Why a probe names no flow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("pod {pod} has no {family} address")]
    NoAddress { pod: ObjectRef, family: IpFamily },
    #[error("address {addr} is not {family}")]
    FamilyMismatch { addr: IpAddr, family: IpFamily },
}

/// The decisions on a flow. `D` is the evaluator's per-end decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowDecision<D> {
    /// Source address (canonical: IPv4-mapped IPv6 written as IPv4).
    pub src: IpAddr,
    /// Destination address (canonical).
    pub dst: IpAddr,
    /// The source's egress decision; None when the source is not an endpoint.
    pub egress: Option<D>,
    /// The destination's ingress decision; None when it is not an endpoint.
    pub ingress: Option<D>,
    /// [`strictest`] of both ends; an end that is not an endpoint allows.
    pub verdict: Verdict,
}

impl<D> FlowDecision<D> {
    pub(crate) fn new(
        addresses: FlowAddresses,
        egress: Option<D>,
        ingress: Option<D>,
        verdict_of: impl Fn(&D) -> Verdict,
    ) -> Self {
        let end = |d: &Option<D>| d.as_ref().map_or(Verdict::Allow, &verdict_of);
        let verdict = strictest(end(&egress), end(&ingress));
        Self {
            src: addresses.src,
            dst: addresses.dst,
            egress,
            ingress,
            verdict,
        }
    }
}

/// The addresses of a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FlowAddresses {
    pub src: IpAddr,
    pub dst: IpAddr,
}

impl FlowAddresses {
    /// The family is `family` if given, else that of an external end, else that of the
    /// source pod's first address (then the destination's), else IPv4. Pods use their
    /// first address of that family.
    pub fn resolve(
        from: Endpoint,
        to: Endpoint,
        family: Option<IpFamily>,
    ) -> Result<Self, FlowError> {
        let preferred = |end: Endpoint| match end {
            Endpoint::External(addr) => Some(IpFamily::of(addr)),
            Endpoint::Pod(_) => None,
        };
        let first = |end: Endpoint| match end {
            Endpoint::Pod(pod) => pod.ips.first().copied().map(IpFamily::of),
            Endpoint::External(_) => None,
        };
        let family = family
            .or_else(|| preferred(from))
            .or_else(|| preferred(to))
            .or_else(|| first(from))
            .or_else(|| first(to))
            .unwrap_or(IpFamily::V4);
        Ok(Self {
            src: address(from, family)?,
            dst: address(to, family)?,
        })
    }
}

fn address(end: Endpoint, family: IpFamily) -> Result<IpAddr, FlowError> {
    match end {
        Endpoint::External(addr) if IpFamily::of(addr) == family => Ok(addr.to_canonical()),
        Endpoint::External(addr) => Err(FlowError::FamilyMismatch { addr, family }),
        Endpoint::Pod(pod) => pod
            .ips
            .iter()
            .map(|ip| ip.to_canonical())
            .find(|ip| IpFamily::of(*ip) == family)
            .ok_or_else(|| FlowError::NoAddress {
                pod: pod.object_ref(),
                family,
            }),
    }
}
