//! Builders for Services and EndpointSlices in test clusters, straight from the model
//! types, in the style of `fixture`.

use super::fixture::{ip, labels, object_ref};
use crate::compile::tables::ServiceBackend;
use crate::model::{
    AddressType, Cluster, EndpointConditions, EndpointSlice, PortRef, Protocol, Service,
    ServicePort, ServiceType, SliceEndpoint, SlicePort, TargetRef,
};

/// A ClusterIP Service with these cluster IPs, selector (None if empty) and ports.
pub fn service(
    namespace: &str,
    name: &str,
    cluster_ips: &[&str],
    selector: &[(&str, &str)],
    ports: Vec<ServicePort>,
) -> Service {
    Service {
        namespace: namespace.to_string(),
        name: name.to_string(),
        service_type: ServiceType::ClusterIp,
        cluster_ips: cluster_ips.iter().map(|s| ip(s)).collect(),
        headless: false,
        ports,
        selector: (!selector.is_empty()).then(|| labels(selector)),
        external_ips: Vec::new(),
    }
}

/// A Service port forwarding `port` to the port number `target`.
pub fn service_port(name: &str, protocol: Protocol, port: u16, target: u16) -> ServicePort {
    ServicePort {
        name: name.to_string(),
        protocol,
        port,
        target_port: PortRef::Number(target),
        node_port: None,
    }
}

/// A Service port forwarding `port` to the container port named `target`.
pub fn named_service_port(name: &str, protocol: Protocol, port: u16, target: &str) -> ServicePort {
    ServicePort {
        target_port: PortRef::Name(target.to_string()),
        ..service_port(name, protocol, port, port)
    }
}

/// An EndpointSlice of the Service `service` (same namespace).
pub fn slice(
    namespace: &str,
    name: &str,
    service: &str,
    address_type: AddressType,
    endpoints: Vec<SliceEndpoint>,
    ports: Vec<SlicePort>,
) -> EndpointSlice {
    EndpointSlice {
        namespace: namespace.to_string(),
        name: name.to_string(),
        service_name: Some(service.to_string()),
        address_type,
        endpoints,
        ports,
    }
}

/// A slice endpoint at `address` with these conditions, naming `pod` (in `namespace`)
/// if given.
pub fn slice_endpoint(
    address: &str,
    conditions: EndpointConditions,
    pod: Option<(&str, &str)>,
) -> SliceEndpoint {
    SliceEndpoint {
        addresses: vec![ip(address)],
        conditions,
        target_ref: pod.map(|(namespace, name)| TargetRef {
            kind: "Pod".to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }),
        node_name: None,
    }
}

pub fn slice_port(name: &str, protocol: Protocol, port: u16) -> SlicePort {
    SlicePort {
        name: name.to_string(),
        protocol,
        port: Some(port),
    }
}

/// Conditions as written: `None` fields are left out.
pub fn conditions(
    ready: Option<bool>,
    serving: Option<bool>,
    terminating: Option<bool>,
) -> EndpointConditions {
    EndpointConditions {
        ready,
        serving,
        terminating,
    }
}

/// A ready endpoint's conditions: none written, which kube-proxy reads as ready.
pub fn ready() -> EndpointConditions {
    conditions(None, None, None)
}

/// A terminating endpoint that still serves, as the endpoint-slice controller marks it.
pub fn draining() -> EndpointConditions {
    conditions(Some(false), Some(true), Some(true))
}

/// A backend at `address:port`, of the pod `namespace/name` if given.
pub fn backend(address: &str, port: u16, pod: Option<(&str, &str)>) -> ServiceBackend {
    ServiceBackend {
        address: ip(address),
        port,
        pod: pod.map(|(namespace, name)| object_ref(namespace, name)),
    }
}

/// `cluster` with these Services and EndpointSlices added.
pub fn with_services(
    mut cluster: Cluster,
    services: Vec<Service>,
    slices: Vec<EndpointSlice>,
) -> Cluster {
    for service in services {
        let key = object_ref(&service.namespace, &service.name);
        cluster.services.insert(key, service);
    }
    for slice in slices {
        let key = object_ref(&slice.namespace, &slice.name);
        cluster.endpoint_slices.insert(key, slice);
    }
    cluster
}
