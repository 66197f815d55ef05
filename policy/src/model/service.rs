//! `v1` Service, validated: the virtual addresses a Service answers on and the ports
//! it forwards, and how its backends are found (its selector).
//!
//! Kubernetes applies NetworkPolicy to the backend pod behind a Service address, not to
//! the address itself; palisade's datapath translates a Service address to a backend
//! when a socket connects or sends (socket load balancing), so the compiler maps each
//! Service address and port to its backends (`crate::compile`).

use super::{AddressType, Labels, PortRef, Protocol};
use std::net::IpAddr;

/// `spec.type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceType {
    #[default]
    ClusterIp,
    NodePort,
    LoadBalancer,
    /// A DNS alias (`spec.externalName`): no address, nothing to translate.
    ExternalName,
}

impl ServiceType {
    pub const fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIp => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
            ServiceType::ExternalName => "ExternalName",
        }
    }
}

/// One entry of `spec.ports`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePort {
    /// `name`; empty when not written (Kubernetes' default), which only a Service with
    /// a single port may leave out. EndpointSlice ports match it by name.
    pub name: String,
    pub protocol: Protocol,
    /// The port the Service answers on.
    pub port: u16,
    /// `targetPort`: the backend's port, a number or a container port name resolved on
    /// each backend pod; defaulted to `port`.
    pub target_port: PortRef,
    /// `nodePort`, for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    pub service_type: ServiceType,
    /// `spec.clusterIPs` (or `spec.clusterIP`), canonical, at most one per family, the
    /// primary family first. Empty for headless Services and for Services whose
    /// addresses are not allocated (not written in a manifest).
    pub cluster_ips: Vec<IpAddr>,
    /// `clusterIP: None`: DNS names the backends directly; no virtual address.
    pub headless: bool,
    pub ports: Vec<ServicePort>,
    /// `spec.selector`; None when absent or empty, as Kubernetes treats both: the
    /// Service's endpoints are then whatever EndpointSlices name it.
    pub selector: Option<Labels>,
    /// `spec.externalIPs`, canonical, in order, each once.
    pub external_ips: Vec<IpAddr>,
}

/// Which of a Service's fields a virtual address comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VirtualIpSource {
    ClusterIp,
    ExternalIp,
}

impl Service {
    /// The addresses traffic to this Service is sent to, to be translated to a backend:
    /// its cluster IPs, then its external IPs of a family it has a cluster IP of. None
    /// for headless and ExternalName Services, nor for a Service without cluster IPs.
    ///
    /// This is what kube-proxy programs: it skips headless, ExternalName and
    /// address-less Services entirely, and each family's proxier takes the external IPs
    /// of its family only for Services with a cluster IP of that family.
    pub fn virtual_ips(&self) -> impl Iterator<Item = (IpAddr, VirtualIpSource)> + '_ {
        let translated = !self.headless && self.service_type != ServiceType::ExternalName;
        let cluster_ips = if translated {
            self.cluster_ips.as_slice()
        } else {
            &[]
        };
        let external = self.external_ips.iter().filter(move |ip| {
            cluster_ips
                .iter()
                .any(|c| AddressType::of(*c) == AddressType::of(**ip))
        });
        cluster_ips
            .iter()
            .map(|ip| (*ip, VirtualIpSource::ClusterIp))
            .chain(external.map(|ip| (*ip, VirtualIpSource::ExternalIp)))
    }

    /// Whether `labels` (of a pod in the Service's namespace) are selected.
    pub fn selects(&self, labels: &Labels) -> bool {
        self.selector.as_ref().is_some_and(|selector| {
            selector
                .0
                .iter()
                .all(|(key, value)| labels.get(key) == Some(value.as_str()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(cluster_ips: &[&str], external_ips: &[&str]) -> Service {
        Service {
            namespace: "x".into(),
            name: "web".into(),
            service_type: ServiceType::ClusterIp,
            cluster_ips: cluster_ips.iter().map(|ip| ip.parse().unwrap()).collect(),
            headless: false,
            ports: Vec::new(),
            selector: None,
            external_ips: external_ips.iter().map(|ip| ip.parse().unwrap()).collect(),
        }
    }

    fn virtual_ips(service: &Service) -> Vec<String> {
        service
            .virtual_ips()
            .map(|(ip, source)| format!("{ip} {source:?}"))
            .collect()
    }

    #[test]
    fn external_ips_need_a_cluster_ip_of_their_family() {
        let single = service(&["10.96.0.1"], &["203.0.113.1", "2001:db8::1"]);
        assert_eq!(
            virtual_ips(&single),
            ["10.96.0.1 ClusterIp", "203.0.113.1 ExternalIp"]
        );
        let dual = service(&["fd00::1", "10.96.0.1"], &["2001:db8::1", "203.0.113.1"]);
        assert_eq!(
            virtual_ips(&dual),
            [
                "fd00::1 ClusterIp",
                "10.96.0.1 ClusterIp",
                "2001:db8::1 ExternalIp",
                "203.0.113.1 ExternalIp"
            ]
        );
        assert!(virtual_ips(&service(&[], &["203.0.113.1"])).is_empty());
    }

    #[test]
    fn headless_and_external_name_services_have_no_virtual_ips() {
        let headless = Service {
            headless: true,
            ..service(&[], &["203.0.113.1"])
        };
        assert!(virtual_ips(&headless).is_empty());
        let alias = Service {
            service_type: ServiceType::ExternalName,
            ..service(&["10.96.0.1"], &[])
        };
        assert!(virtual_ips(&alias).is_empty());
    }

    #[test]
    fn selectors_match_labels_and_no_selector_matches_nothing() {
        let labels: Labels = [("app", "web"), ("tier", "a")].into_iter().collect();
        let mut web = service(&[], &[]);
        assert!(!web.selects(&labels));
        web.selector = Some([("app", "web")].into_iter().collect());
        assert!(web.selects(&labels));
        web.selector = Some([("app", "db")].into_iter().collect());
        assert!(!web.selects(&labels));
    }
}
