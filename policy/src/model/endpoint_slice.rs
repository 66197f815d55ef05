//! `discovery.k8s.io/v1` EndpointSlice, validated: the backends of a Service as the
//! cluster publishes them, with their conditions, read as kube-proxy reads them.

use super::{ObjectRef, Protocol};
use std::net::IpAddr;

/// Label naming the Service (in the slice's namespace) an EndpointSlice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `addressType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddressType {
    Ipv4,
    Ipv6,
    /// Domain names: no proxy translates to them, palisade ignores the slice.
    Fqdn,
}

impl AddressType {
    pub const fn as_str(self) -> &'static str {
        match self {
            AddressType::Ipv4 => "IPv4",
            AddressType::Ipv6 => "IPv6",
            AddressType::Fqdn => "FQDN",
        }
    }

    /// The IP address type of `addr` (canonical).
    pub fn of(addr: IpAddr) -> Self {
        match addr.to_canonical() {
            IpAddr::V4(_) => AddressType::Ipv4,
            IpAddr::V6(_) => AddressType::Ipv6,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSlice {
    pub namespace: String,
    pub name: String,
    /// [`SERVICE_NAME_LABEL`]: the Service in `namespace` this slice belongs to; None
    /// for a slice that names none (no Service uses it).
    pub service_name: Option<String>,
    pub address_type: AddressType,
    pub endpoints: Vec<SliceEndpoint>,
    pub ports: Vec<SlicePort>,
}

impl EndpointSlice {
    /// The Service this slice belongs to.
    pub fn service(&self) -> Option<ObjectRef> {
        self.service_name.as_ref().map(|name| ObjectRef {
            namespace: self.namespace.clone(),
            name: name.clone(),
        })
    }
}

/// One entry of `endpoints`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceEndpoint {
    /// `addresses`, canonical, of the slice's address type; empty in FQDN slices. Only
    /// the first is used: "no semantics are defined for additional addresses beyond
    /// the first, and kube-proxy does not look at them" (the API reference).
    pub addresses: Vec<IpAddr>,
    pub conditions: EndpointConditions,
    /// `targetRef`, the object behind the endpoint (usually a Pod).
    pub target_ref: Option<TargetRef>,
    /// `nodeName`.
    pub node_name: Option<String>,
}

impl SliceEndpoint {
    /// The address traffic is sent to.
    pub fn address(&self) -> Option<IpAddr> {
        self.addresses.first().copied()
    }

    /// The pod `targetRef` names, if it names one.
    pub fn target_pod(&self) -> Option<ObjectRef> {
        self.target_ref
            .as_ref()
            .filter(|target| target.kind == "Pod")
            .map(|target| ObjectRef {
                namespace: target.namespace.clone(),
                name: target.name.clone(),
            })
    }
}

/// `conditions`, as written (None: not written). The accessors read them as the API
/// reference and kube-proxy do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EndpointConditions {
    pub ready: Option<bool>,
    pub serving: Option<bool>,
    pub terminating: Option<bool>,
}

impl EndpointConditions {
    /// Ready to receive new connections; not written means ready.
    pub fn is_ready(&self) -> bool {
        self.ready.unwrap_or(true)
    }

    /// Able to receive traffic, whether terminating or not; not written means serving.
    pub fn is_serving(&self) -> bool {
        self.serving.unwrap_or(true)
    }

    /// Shutting down; not written means not terminating.
    pub fn is_terminating(&self) -> bool {
        self.terminating.unwrap_or(false)
    }
}

/// `targetRef`; `namespace` defaulted to the slice's.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// One entry of `ports`: the backends' port for the Service port of the same name and
/// protocol.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlicePort {
    /// Empty when not written (Kubernetes' default); matches the Service port's name.
    pub name: String,
    pub protocol: Protocol,
    /// None when not written: the API reserves that for "all ports", which no proxy
    /// implements; kube-proxy ignores such a port, and so does palisade.
    pub port: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwritten_conditions_mean_ready_serving_not_terminating() {
        let unwritten = EndpointConditions::default();
        assert!(unwritten.is_ready() && unwritten.is_serving() && !unwritten.is_terminating());
        let draining = EndpointConditions {
            ready: Some(false),
            serving: Some(true),
            terminating: Some(true),
        };
        assert!(!draining.is_ready() && draining.is_serving() && draining.is_terminating());
    }

    #[test]
    fn only_pod_target_refs_name_a_pod() {
        let mut endpoint = SliceEndpoint {
            addresses: vec!["10.0.0.1".parse().unwrap()],
            conditions: EndpointConditions::default(),
            target_ref: Some(TargetRef {
                kind: "Pod".into(),
                namespace: "x".into(),
                name: "web-1".into(),
            }),
            node_name: None,
        };
        assert_eq!(endpoint.target_pod().unwrap().to_string(), "x/web-1");
        endpoint.target_ref.as_mut().unwrap().kind = "VirtualMachine".into();
        assert_eq!(endpoint.target_pod(), None);
        assert_eq!(endpoint.address(), Some("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn address_types_of_addresses_are_canonical() {
        assert_eq!(
            AddressType::of("::ffff:10.0.0.1".parse().unwrap()),
            AddressType::Ipv4
        );
        assert_eq!(
            AddressType::of("fd00::1".parse().unwrap()),
            AddressType::Ipv6
        );
    }
}
