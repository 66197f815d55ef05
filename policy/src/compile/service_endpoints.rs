//! The backends of one Service port in one IP family, as kube-proxy would pick them.
//!
//! - A Service that some EndpointSlice names (label `kubernetes.io/service-name`) takes
//!   its endpoints from its slices only, as kube-proxy does: the slices of the
//!   family, their port with the Service port's name and protocol, each endpoint's
//!   first address. An address and port in two slices counts once, a non-terminating
//!   endpoint winning over a terminating one, else the first (slices by name). Ready
//!   endpoints are used; if there are none, the serving terminating ones.
//! - A Service with a selector that no slice names (standalone clusters rarely carry
//!   slices) gets the endpoints the endpoint-slice controller would write: each pod of
//!   its namespace the selector selects that has an address of the family (pods carry
//!   no readiness here, so an address means ready), host-network pods included, at
//!   the `targetPort`, a name resolved on the pod (its first container port of that
//!   name and protocol); a pod where the name does not resolve is no backend for
//!   that port.
//!
//! A backend's pod is the one at its address: the slice's `targetRef` pod if it has
//! that address, else the (non-host-network) pod that has it, first by namespace/name
//! as in the ip cache. Backends are sorted by address, port and pod.

use super::tables::ServiceBackend;
use crate::model::{
    AddressType, Cluster, EndpointConditions, EndpointSlice, ObjectRef, PortRef, Service,
    ServicePort, SliceEndpoint,
};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::net::IpAddr;

/// The EndpointSlices of each Service and the pod at each address, indexed once.
pub(crate) struct ServiceEndpoints<'a> {
    cluster: &'a Cluster,
    /// Slices by the Service they name, in slice name order.
    slices: BTreeMap<ObjectRef, Vec<&'a EndpointSlice>>,
    /// Pods that are not host-network, by canonical address; first pod wins.
    pods_by_address: BTreeMap<IpAddr, &'a ObjectRef>,
}

impl<'a> ServiceEndpoints<'a> {
    pub fn index(cluster: &'a Cluster) -> Self {
        let mut slices: BTreeMap<ObjectRef, Vec<&EndpointSlice>> = BTreeMap::new();
        for slice in cluster.endpoint_slices.values() {
            if let Some(service) = slice.service() {
                slices.entry(service).or_default().push(slice);
            }
        }
        let mut pods_by_address = BTreeMap::new();
        for (pod_ref, pod) in cluster.pods.iter().filter(|(_, pod)| !pod.host_network) {
            for ip in &pod.ips {
                pods_by_address.entry(ip.to_canonical()).or_insert(pod_ref);
            }
        }
        Self {
            cluster,
            slices,
            pods_by_address,
        }
    }

    /// The backends of `port` of the Service `service_ref` for addresses of `family`.
    pub fn backends(
        &self,
        service_ref: &ObjectRef,
        service: &Service,
        port: &ServicePort,
        family: AddressType,
    ) -> Vec<ServiceBackend> {
        match self.slices.get(service_ref) {
            Some(slices) => self.slice_backends(slices, port, family),
            None => self.selector_backends(service, port, family),
        }
    }

    fn slice_backends(
        &self,
        slices: &[&EndpointSlice],
        port: &ServicePort,
        family: AddressType,
    ) -> Vec<ServiceBackend> {
        let mut found: BTreeMap<(IpAddr, u16), (ServiceBackend, EndpointConditions)> =
            BTreeMap::new();
        for slice in slices.iter().filter(|slice| slice.address_type == family) {
            let numbers = slice
                .ports
                .iter()
                .filter(|p| p.name == port.name && p.protocol == port.protocol)
                .filter_map(|p| p.port);
            for number in numbers {
                for endpoint in &slice.endpoints {
                    let Some(address) = endpoint.address() else {
                        continue;
                    };
                    let backend = ServiceBackend {
                        address,
                        port: number,
                        pod: self.pod_at(endpoint, address),
                    };
                    let conditions = endpoint.conditions;
                    match found.entry((address, number)) {
                        Entry::Vacant(entry) => {
                            entry.insert((backend, conditions));
                        }
                        Entry::Occupied(mut entry) => {
                            if entry.get().1.is_terminating() && !conditions.is_terminating() {
                                entry.insert((backend, conditions));
                            }
                        }
                    }
                }
            }
        }
        let usable = |wanted: fn(&EndpointConditions) -> bool| -> Vec<ServiceBackend> {
            found
                .values()
                .filter(|(_, conditions)| wanted(conditions))
                .map(|(backend, _)| backend.clone())
                .collect()
        };
        let ready = usable(EndpointConditions::is_ready);
        if ready.is_empty() {
            usable(|c| c.is_serving() && c.is_terminating())
        } else {
            ready
        }
    }

    /// The pod at `address`, which a slice endpoint names or the ip cache would.
    fn pod_at(&self, endpoint: &SliceEndpoint, address: IpAddr) -> Option<ObjectRef> {
        let named = endpoint.target_pod().filter(|pod_ref| {
            self.cluster
                .pods
                .get(pod_ref)
                .is_some_and(|pod| pod.ips.iter().any(|ip| ip.to_canonical() == address))
        });
        named.or_else(|| self.pods_by_address.get(&address).map(|r| (*r).clone()))
    }

    fn selector_backends(
        &self,
        service: &Service,
        port: &ServicePort,
        family: AddressType,
    ) -> Vec<ServiceBackend> {
        let mut found: BTreeMap<(IpAddr, u16), ServiceBackend> = BTreeMap::new();
        let selected = self.cluster.pods.iter().filter(|(pod_ref, pod)| {
            pod_ref.namespace == service.namespace && service.selects(&pod.labels)
        });
        for (pod_ref, pod) in selected {
            let address = pod
                .ips
                .iter()
                .map(|ip| ip.to_canonical())
                .find(|ip| AddressType::of(*ip) == family);
            let number = match &port.target_port {
                PortRef::Number(number) => Some(*number),
                PortRef::Name(name) => pod.named_port(name, port.protocol),
            };
            if let (Some(address), Some(number)) = (address, number) {
                found
                    .entry((address, number))
                    .or_insert_with(|| ServiceBackend {
                        address,
                        port: number,
                        pod: Some(pod_ref.clone()),
                    });
            }
        }
        found.into_values().collect()
    }
}
