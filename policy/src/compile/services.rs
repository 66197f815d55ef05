//! The Service table: each Service address, port and protocol to its backends, which
//! the datapath's socket load balancer translates a connect or sendmsg to.
//!
//! Addresses are each Service's virtual IPs ([`Service::virtual_ips`]: cluster IPs,
//! and external IPs of a family with a cluster IP); headless and ExternalName Services
//! have none. Backends come from `service_endpoints`, of the address's family only. A
//! Service address without backends keeps its entries, with no backends: the datapath
//! refuses such a connection, as kube-proxy does, rather than letting it leave for an
//! address that routes nowhere.
//!
//! Two Services claiming one (address, port, protocol) cannot both be translated: a
//! cluster IP claim wins over an external IP claim, then the first Service by
//! namespace/name. The table is sorted by (address, port, protocol), one entry each.
//!
//! [`Service::virtual_ips`]: crate::model::Service::virtual_ips

use super::service_endpoints::ServiceEndpoints;
use super::tables::ServiceEntry;
use crate::model::{AddressType, Cluster, VirtualIpSource};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The Service table of `cluster`.
pub(crate) fn compile(cluster: &Cluster) -> Vec<ServiceEntry> {
    let endpoints = ServiceEndpoints::index(cluster);
    let mut entries: BTreeMap<(IpAddr, u16, u8), ServiceEntry> = BTreeMap::new();
    for claim in [VirtualIpSource::ClusterIp, VirtualIpSource::ExternalIp] {
        for (service_ref, service) in &cluster.services {
            let addresses = service
                .virtual_ips()
                .filter(|(_, source)| *source == claim)
                .map(|(address, _)| address);
            for address in addresses {
                for port in &service.ports {
                    let protocol = port.protocol.number();
                    entries
                        .entry((address, port.port, protocol))
                        .or_insert_with(|| ServiceEntry {
                            address,
                            port: port.port,
                            protocol,
                            service: service_ref.clone(),
                            backends: endpoints.backends(
                                service_ref,
                                service,
                                port,
                                AddressType::of(address),
                            ),
                        });
                }
            }
        }
    }
    entries.into_values().collect()
}
