//! The emulated cluster a group of cases runs on: one lab holding an emulated pod
//! (network namespace + cgroup) per pod of the cases, each serving its TCP and UDP
//! ports, and the host-network pods' servers in the lab's node namespace at their
//! node's address.
//!
//! Cases share a testbed when their pods agree on everything but labels (namespace,
//! name, address, node, host network, ports): labels live only in the manifests,
//! which change per case.

use super::cases::{Case, PodSpec};
use anyhow::{Context, Result, bail, ensure};
use palisade_lab::harness::agent_nodes::agent_nodes;
use palisade_lab::{Lab, LabConfig, PodHandle};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

/// The cgroup root prefix of the labs.
const LAB_PREFIX: &str = "pl-kconf";

/// Prefix length of every pod address: the pods of a testbed share one /16.
const POD_PREFIX_LEN: u8 = 16;

/// Node name of the one agent of a testbed whose pods name no node.
pub const DEFAULT_NODE: &str = "kernel-conformance";

/// The cases that share pods, in file order.
pub fn group_by_pods(cases: &[Case]) -> Vec<Vec<&Case>> {
    let mut groups: Vec<(String, Vec<&Case>)> = Vec::new();
    for case in cases {
        let key = pods_key(case);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, group)) => group.push(case),
            None => groups.push((key, vec![case])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

/// What a testbed depends on: every pod but its labels, and the nodes' addresses.
fn pods_key(case: &Case) -> String {
    let pods: Vec<_> = case
        .cluster
        .pods
        .iter()
        .map(|pod| {
            let ports: Vec<_> = pod.ports.iter().map(|p| (p.port, &p.protocol)).collect();
            (
                &pod.ns,
                &pod.name,
                &pod.ip,
                &pod.node,
                pod.host_network,
                ports,
            )
        })
        .collect();
    let nodes: Vec<_> = case
        .cluster
        .nodes
        .iter()
        .map(|node| (&node.name, &node.ip))
        .collect();
    format!("{pods:?} {nodes:?}")
}

/// `ns/name`, as probes name pods.
pub fn pod_key(pod: &PodSpec) -> String {
    format!("{}/{}", pod.ns, pod.name)
}

pub struct Testbed {
    pub lab: Lab,
    /// Emulated pods by `ns/name`.
    pods: BTreeMap<String, PodHandle>,
    /// Host-network pods by `ns/name`.
    host_network: BTreeSet<String>,
    /// The nodes that run an agent, each enforcing its own pods.
    pub nodes: Vec<String>,
}

impl Testbed {
    /// Builds the lab for `cases` (which share pods) and starts every server.
    pub fn build(cases: &[&Case]) -> Result<Self> {
        let first = cases.first().context("a testbed needs a case")?;
        let pods = &first.cluster.pods;
        let (enforced, host): (Vec<&PodSpec>, Vec<&PodSpec>) =
            pods.iter().partition(|pod| !pod.host_network);
        let nodes = agent_nodes(
            enforced.iter().map(|p| (pod_key(p), p.node.as_deref())),
            DEFAULT_NODE,
        )?;
        let node_addresses = node_addresses(first, &host)?;
        let gateway = if node_addresses.is_empty() {
            None
        } else {
            Some(gateway(&enforced, &node_addresses)?)
        };
        let mut lab = Lab::with_config(
            LAB_PREFIX,
            LabConfig {
                v4_prefix_len: POD_PREFIX_LEN,
                node_ipv4: gateway,
                ..Default::default()
            },
        )?;
        for &address in &node_addresses {
            lab.add_node_address(address)?;
        }
        let probed = probed_ports(cases);
        let mut handles = BTreeMap::new();
        for pod in &enforced {
            let key = pod_key(pod);
            let ip = pod_ipv4(pod)?;
            let handle = lab
                .add_pod(palisade_lab::PodSpec::ipv4(
                    &format!("{}.{}", pod.ns, pod.name),
                    ip,
                ))
                .with_context(|| format!("emulating pod {key}"))?;
            let (tcp, udp) = served_ports(&[pod], &probed);
            lab.serve(&handle, &tcp, &udp)
                .with_context(|| format!("serving the ports of pod {key}"))?;
            handles.insert(key, handle);
        }
        // Host-network pods share their node's address: one server per address.
        let mut by_address: BTreeMap<IpAddr, Vec<&PodSpec>> = BTreeMap::new();
        for pod in &host {
            by_address.entry(pod_ip(pod)?).or_default().push(pod);
        }
        for (address, pods) in by_address {
            let (tcp, udp) = served_ports(&pods, &probed);
            lab.serve_in_node_at(address, &tcp, &udp)
                .with_context(|| format!("serving the host-network ports of {address}"))?;
        }
        Ok(Testbed {
            lab,
            pods: handles,
            host_network: host.iter().map(|pod| pod_key(pod)).collect(),
            nodes,
        })
    }

    /// The emulated pod `ns/name`, if it is one (host-network pods are not).
    pub fn pod(&self, key: &str) -> Option<&PodHandle> {
        self.pods.get(key)
    }

    pub fn is_host_network(&self, key: &str) -> bool {
        self.host_network.contains(key)
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    pub fn host_network_count(&self) -> usize {
        self.host_network.len()
    }

    /// The `palisade.dev/cgroup-path` annotation of a pod: its emulated pod's cgroup;
    /// none for a host-network pod (a peer only, as the agent sees it).
    pub fn cgroup_path(&self, pod: &PodSpec) -> Option<String> {
        self.pods
            .get(&pod_key(pod))
            .map(|handle| handle.cgroup_path_annotation().to_string())
    }
}

/// The addresses the node namespace answers on: every node's, and every
/// host-network pod's (which is its node's), in order of appearance.
fn node_addresses(case: &Case, host: &[&PodSpec]) -> Result<Vec<IpAddr>> {
    let mut addresses = Vec::new();
    let node_ips = case.cluster.nodes.iter().map(|node| {
        node.ip
            .parse::<IpAddr>()
            .with_context(|| format!("node {}: bad address {:?}", node.name, node.ip))
    });
    for address in node_ips.chain(host.iter().map(|pod| pod_ip(pod))) {
        let address = address?;
        ensure!(
            address.is_ipv4(),
            "node address {address}: this harness emulates IPv4 nodes only"
        );
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    Ok(addresses)
}

/// The node's address in the pods' /16, their route to the node addresses:
/// `a.b.255.254`, which must be free.
fn gateway(enforced: &[&PodSpec], node_addresses: &[IpAddr]) -> Result<Ipv4Addr> {
    let first = enforced
        .first()
        .context("node addresses but no pod to reach them")?;
    let [a, b, ..] = pod_ipv4(first)?.octets();
    let gateway = Ipv4Addr::new(a, b, 255, 254);
    for pod in enforced {
        let [c, d, ..] = pod_ipv4(pod)?.octets();
        ensure!(
            (c, d) == (a, b),
            "pods {} and {} are not in one /16: this harness puts all pods on one subnet",
            pod_key(first),
            pod_key(pod)
        );
        ensure!(
            pod_ipv4(pod)? != gateway,
            "pod {} has {gateway}, the address this harness gives the node",
            pod_key(pod)
        );
    }
    ensure!(
        !node_addresses.contains(&IpAddr::V4(gateway)),
        "a node has {gateway}, the address this harness gives the node in the pod network"
    );
    Ok(gateway)
}

/// Per pod (`ns/name`), the ports probes of the cases aim at, by protocol.
type ProbedPorts = BTreeMap<(String, String), BTreeSet<u16>>;

fn probed_ports(cases: &[&Case]) -> ProbedPorts {
    let mut probed = ProbedPorts::new();
    for probe in cases.iter().flat_map(|case| &case.probes) {
        probed
            .entry((probe.to.clone(), probe.protocol.to_ascii_uppercase()))
            .or_default()
            .insert(probe.port);
    }
    probed
}

/// The TCP and UDP ports to serve for `pods` (which share an address): those they
/// declare and those probes aim at. SCTP is not served: this kernel has none.
fn served_ports(pods: &[&PodSpec], probed: &ProbedPorts) -> (Vec<u16>, Vec<u16>) {
    let ports = |protocol: &str| -> Vec<u16> {
        let mut ports = BTreeSet::new();
        for pod in pods {
            let declared = pod.ports.iter().filter(|p| p.protocol == protocol);
            ports.extend(declared.map(|p| p.port));
            if let Some(aimed) = probed.get(&(pod_key(pod), protocol.to_string())) {
                ports.extend(aimed);
            }
        }
        ports.into_iter().collect()
    };
    (ports("TCP"), ports("UDP"))
}

fn pod_ip(pod: &PodSpec) -> Result<IpAddr> {
    pod.ip
        .parse()
        .with_context(|| format!("pod {}: bad address {:?}", pod_key(pod), pod.ip))
}

fn pod_ipv4(pod: &PodSpec) -> Result<Ipv4Addr> {
    match pod_ip(pod)? {
        IpAddr::V4(v4) => Ok(v4),
        IpAddr::V6(v6) => bail!(
            "pod {} has the IPv6 address {v6}: this harness emulates IPv4 pods only",
            pod_key(pod)
        ),
    }
}
