//! The ends of a flow: parsing what the user writes (`NS/POD` or `ip:ADDR`) and
//! resolving it against the cluster, as the kernel would see it: an address that
//! belongs to a pod is that pod.

use palisade_policy::model::{Cluster, ObjectRef, Pod};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Prefix of an address end.
const ADDRESS_PREFIX: &str = "ip:";

/// What one end of a flow names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointSpec {
    /// `NS/POD`.
    Pod(ObjectRef),
    /// `ip:ADDR`.
    Address(IpAddr),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("invalid address in {text:?}: {reason}")]
    BadAddress { text: String, reason: String },
    #[error("{0:?} is an address: write ip:{0}")]
    BareAddress(String),
    #[error("expected NS/POD or ip:ADDR, got {0:?}")]
    Syntax(String),
}

impl FromStr for EndpointSpec {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(address) = text.strip_prefix(ADDRESS_PREFIX) {
            return address.parse().map(EndpointSpec::Address).map_err(
                |e: std::net::AddrParseError| SpecError::BadAddress {
                    text: text.to_string(),
                    reason: e.to_string(),
                },
            );
        }
        if text.parse::<IpAddr>().is_ok() {
            return Err(SpecError::BareAddress(text.to_string()));
        }
        match text.split_once('/') {
            Some((namespace, name))
                if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
            {
                Ok(EndpointSpec::Pod(ObjectRef {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                }))
            }
            _ => Err(SpecError::Syntax(text.to_string())),
        }
    }
}

impl fmt::Display for EndpointSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointSpec::Pod(pod) => write!(f, "{pod}"),
            EndpointSpec::Address(address) => write!(f, "{ADDRESS_PREFIX}{address}"),
        }
    }
}

/// An end as the user wrote it (output echoes `text`) and what it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointArg {
    pub text: String,
    pub spec: EndpointSpec,
}

impl EndpointArg {
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        Ok(Self {
            text: text.to_string(),
            spec: text.parse()?,
        })
    }
}

/// One end of a flow, resolved against the cluster.
#[derive(Clone, Copy, Debug)]
pub enum End<'a> {
    /// A pod (host-network or not). `address` is the address the user chose for it
    /// (`ip:ADDR`, a probe's `dst_ip`); None: its first address of the flow's family.
    Pod {
        pod: &'a Pod,
        address: Option<IpAddr>,
    },
    /// An address no pod has (canonical: IPv4-mapped IPv6 written as IPv4).
    External { address: IpAddr },
}

impl<'a> End<'a> {
    pub fn pod(&self) -> Option<&'a Pod> {
        match self {
            End::Pod { pod, .. } => Some(pod),
            End::External { .. } => None,
        }
    }

    /// The address this end must use, if it is not left to the flow's family.
    pub fn chosen_address(&self) -> Option<IpAddr> {
        match self {
            End::Pod { address, .. } => *address,
            End::External { address, .. } => Some(*address),
        }
    }

    /// How messages name the end: `ns/pod` or the address.
    pub fn name(&self) -> String {
        match self {
            End::Pod { pod, .. } => format!("{}/{}", pod.namespace, pod.name),
            End::External { address, .. } => address.to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("unknown pod \"{pod}\"{hint}")]
    UnknownPod { pod: ObjectRef, hint: String },
    #[error("dst_ip {address} is not an address of {end} (its addresses: {addresses})")]
    NotAnAddressOf {
        address: IpAddr,
        end: String,
        addresses: String,
    },
}

/// The cluster's pods and node addresses, indexed to resolve ends.
pub struct PodIndex<'a> {
    cluster: &'a Cluster,
    /// Canonical address -> the pod that has it: the first by namespace/name, as the
    /// compiler decides; host-network pods have their node's addresses, not their own.
    pods_by_address: HashMap<IpAddr, &'a Pod>,
    /// Canonical address -> the node it belongs to (Node objects, host-network pods).
    nodes_by_address: HashMap<IpAddr, &'a str>,
}

impl<'a> PodIndex<'a> {
    pub fn new(cluster: &'a Cluster) -> Self {
        let mut pods_by_address = HashMap::new();
        let mut nodes_by_address = HashMap::new();
        for node in cluster.nodes.values() {
            for address in &node.addresses {
                nodes_by_address
                    .entry(address.to_canonical())
                    .or_insert(node.name.as_str());
            }
        }
        for pod in cluster.pods.values() {
            for address in &pod.ips {
                let address = address.to_canonical();
                match (pod.host_network, pod.node_name.as_deref()) {
                    (false, _) => {
                        pods_by_address.entry(address).or_insert(pod);
                    }
                    (true, Some(node)) => {
                        nodes_by_address.entry(address).or_insert(node);
                    }
                    (true, None) => {}
                }
            }
        }
        Self {
            cluster,
            pods_by_address,
            nodes_by_address,
        }
    }

    pub fn resolve(&self, spec: &EndpointSpec) -> Result<End<'a>, EndpointError> {
        match spec {
            EndpointSpec::Pod(pod_ref) => match self.cluster.pods.get(pod_ref) {
                Some(pod) => Ok(End::Pod { pod, address: None }),
                None => Err(EndpointError::UnknownPod {
                    pod: pod_ref.clone(),
                    hint: self.unknown_pod_hint(pod_ref),
                }),
            },
            EndpointSpec::Address(address) => Ok(self.address(*address)),
        }
    }

    /// What an address is: a pod's (that pod) or not.
    pub fn address(&self, address: IpAddr) -> End<'a> {
        let address = address.to_canonical();
        match self.pods_by_address.get(&address) {
            Some(pod) => End::Pod {
                pod,
                address: Some(address),
            },
            None => End::External { address },
        }
    }

    /// The node an address belongs to, if any.
    pub fn node_of(&self, address: IpAddr) -> Option<&'a str> {
        self.nodes_by_address.get(&address.to_canonical()).copied()
    }

    /// `end` reached at `address` (a probe's `dst_ip`), which must be one of its
    /// addresses.
    pub fn at_address(&self, end: End<'a>, address: IpAddr) -> Result<End<'a>, EndpointError> {
        let address = address.to_canonical();
        let not_its_address = |addresses: String| EndpointError::NotAnAddressOf {
            address,
            end: end.name(),
            addresses,
        };
        match end {
            End::Pod { pod, .. } => {
                if pod.ips.iter().any(|ip| ip.to_canonical() == address) {
                    Ok(End::Pod {
                        pod,
                        address: Some(address),
                    })
                } else if pod.ips.is_empty() {
                    Err(not_its_address("none".into()))
                } else {
                    let ips: Vec<String> = pod.ips.iter().map(ToString::to_string).collect();
                    Err(not_its_address(ips.join(", ")))
                }
            }
            End::External { address: own, .. } if own == address => Ok(end),
            End::External { address: own, .. } => Err(not_its_address(own.to_string())),
        }
    }

    /// Why a pod may not be found: close names, or what the namespace holds.
    fn unknown_pod_hint(&self, wanted: &ObjectRef) -> String {
        const MAX: usize = 5;
        let wanted_text = wanted.to_string();
        let mut close: Vec<(usize, String)> = self
            .cluster
            .pods
            .keys()
            .filter_map(|pod_ref| {
                let text = pod_ref.to_string();
                let distance = strsim::levenshtein(&wanted_text, &text);
                let near =
                    distance <= (wanted_text.len() / 4).max(2) || pod_ref.name == wanted.name;
                near.then_some((distance, text))
            })
            .collect();
        if !close.is_empty() {
            close.sort();
            let names: Vec<String> = close.into_iter().take(MAX).map(|(_, t)| t).collect();
            return format!(" (did you mean {}?)", names.join(", "));
        }
        let in_namespace: Vec<&str> = self
            .cluster
            .pods
            .keys()
            .filter(|pod_ref| pod_ref.namespace == wanted.namespace)
            .map(|pod_ref| pod_ref.name.as_str())
            .collect();
        match in_namespace.len() {
            0 if self.cluster.pods.is_empty() => ": the manifests define no pods".into(),
            0 => format!(": no pod is in namespace {:?}", wanted.namespace),
            n if n <= MAX => format!(
                " (pods in namespace {}: {})",
                wanted.namespace,
                in_namespace.join(", ")
            ),
            n => format!(
                " (pods in namespace {}: {}, and {} more)",
                wanted.namespace,
                in_namespace[..MAX].join(", "),
                n - MAX
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_policy::model::{Labels, Node};

    fn pod_ref(namespace: &str, name: &str) -> ObjectRef {
        ObjectRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn pod(namespace: &str, name: &str, ips: &[&str], host_network: bool) -> Pod {
        Pod {
            namespace: namespace.into(),
            name: name.into(),
            uid: None,
            labels: Labels::default(),
            ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
            node_name: Some("n1".into()),
            host_network,
            ports: Vec::new(),
            cgroup_path: None,
        }
    }

    fn cluster() -> Cluster {
        let mut cluster = Cluster::default();
        for pod in [
            pod("shop", "frontend", &["10.0.0.1", "fd00::1"], false),
            pod("shop", "backend", &["10.0.0.2"], false),
            pod("shop", "frontend-2", &["10.0.0.3"], false),
            pod("ops", "agent", &["192.168.0.1"], true),
            pod("ops", "frontend", &[], false),
        ] {
            cluster.pods.insert(pod.object_ref(), pod);
        }
        cluster.nodes.insert(
            "n1".into(),
            Node {
                name: "n1".into(),
                labels: Labels::default(),
                addresses: vec!["192.168.0.1".parse().unwrap()],
            },
        );
        cluster
    }

    #[test]
    fn parses_pods_and_addresses() {
        assert_eq!(
            "shop/db".parse::<EndpointSpec>(),
            Ok(EndpointSpec::Pod(pod_ref("shop", "db")))
        );
        assert_eq!(
            "ip:fd00::7".parse::<EndpointSpec>(),
            Ok(EndpointSpec::Address("fd00::7".parse().unwrap()))
        );
        assert_eq!(
            "10.0.0.1".parse::<EndpointSpec>(),
            Err(SpecError::BareAddress("10.0.0.1".into()))
        );
        for bad in ["shop", "/db", "shop/", "a/b/c", ""] {
            assert_eq!(
                bad.parse::<EndpointSpec>(),
                Err(SpecError::Syntax(bad.into())),
                "{bad:?}"
            );
        }
        let error = "ip:10.0.0.256".parse::<EndpointSpec>().unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid address in \"ip:10.0.0.256\""),
            "{error}"
        );
        let arg = EndpointArg::parse("ip:::ffff:10.0.0.1").unwrap();
        assert_eq!(arg.text, "ip:::ffff:10.0.0.1");
    }

    #[test]
    fn a_pods_address_is_that_pod() {
        let cluster = cluster();
        let index = PodIndex::new(&cluster);
        let end = index
            .resolve(&EndpointSpec::Address("::ffff:10.0.0.2".parse().unwrap()))
            .unwrap();
        assert_eq!(end.name(), "shop/backend");
        assert_eq!(end.chosen_address(), Some("10.0.0.2".parse().unwrap()));

        // A host-network pod's address is its node's: an external end on that node.
        let node_address = "192.168.0.1".parse().unwrap();
        let end = index.address(node_address);
        assert!(matches!(end, End::External { .. }), "{end:?}");
        assert_eq!(index.node_of(node_address), Some("n1"));
        let outside = "203.0.113.1".parse().unwrap();
        assert!(matches!(index.address(outside), End::External { .. }));
        assert_eq!(index.node_of(outside), None);
    }

    #[test]
    fn dst_ip_must_be_the_ends_address() {
        let cluster = cluster();
        let index = PodIndex::new(&cluster);
        let frontend = index
            .resolve(&EndpointSpec::Pod(pod_ref("shop", "frontend")))
            .unwrap();
        let v6 = index
            .at_address(frontend, "fd00::1".parse().unwrap())
            .unwrap();
        assert_eq!(v6.chosen_address(), Some("fd00::1".parse().unwrap()));
        let error = index
            .at_address(frontend, "10.0.0.2".parse().unwrap())
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "dst_ip 10.0.0.2 is not an address of shop/frontend (its addresses: 10.0.0.1, fd00::1)"
        );
    }

    #[test]
    fn unknown_pods_come_with_close_matches() {
        let cluster = cluster();
        let index = PodIndex::new(&cluster);
        let message = |namespace: &str, name: &str| {
            index
                .resolve(&EndpointSpec::Pod(pod_ref(namespace, name)))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            message("shop", "frontnd"),
            "unknown pod \"shop/frontnd\" (did you mean shop/frontend, shop/frontend-2?)"
        );
        assert_eq!(
            message("dev", "frontend"),
            "unknown pod \"dev/frontend\" (did you mean ops/frontend, shop/frontend?)"
        );
        assert_eq!(
            message("shop", "x"),
            "unknown pod \"shop/x\" (pods in namespace shop: backend, frontend, frontend-2)"
        );
        assert_eq!(
            message("nowhere", "x"),
            "unknown pod \"nowhere/x\": no pod is in namespace \"nowhere\""
        );
        let empty = Cluster::default();
        let error = PodIndex::new(&empty)
            .resolve(&EndpointSpec::Pod(pod_ref("a", "b")))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown pod \"a/b\": the manifests define no pods"
        );
    }
}
