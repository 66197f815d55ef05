//! The emulated cluster of one example: a lab holding an emulated pod (network
//! namespace + cgroup) per pod-network Pod of the manifests, with the manifest's
//! addresses (dual-stack where the Pod has both families) and an echo server on every
//! TCP and UDP container port it declares.
//!
//! A Pod whose `palisade.dev/cgroup-path` is a child of another Pod's (a kruntimes Run
//! in its Runtime Pod, see `examples/kruntimes/README.md`) is no pod of its own: it is a
//! child cgroup of that Pod's emulated pod, sharing its network namespace and
//! addresses, and its probes run from inside that cgroup. Host-network Pods are not
//! emulated (peers only).

use anyhow::{Context, Result, ensure};
use palisade_lab::harness::agent_nodes::agent_nodes;
use palisade_lab::{Lab, LabConfig, PodHandle, PodSpec, ProbeOrigin};
use palisade_policy::model::{Cluster, ObjectRef, Pod, Protocol};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// The cgroup root prefix of the labs.
const LAB_PREFIX: &str = "pl-seeds";

/// Node name of the one agent of an example whose pods name no node (standalone mode
/// puts such pods on the agent's own node).
const DEFAULT_NODE: &str = "seed-examples";

/// Prefix lengths the lab gives its addresses at most; shorter where the example's
/// pods do not share such a subnet, so that every pod reaches every other on the
/// bridge.
const MAX_V4_PREFIX_LEN: u8 = 24;
const MAX_V6_PREFIX_LEN: u8 = 64;

/// An emulated endpoint: a pod, or a child cgroup of one (a Run).
struct Endpoint {
    pod: PodHandle,
    /// The Run's cgroup (absolute), below the pod's; none for the pod itself.
    child: Option<PathBuf>,
    /// Its `palisade.dev/cgroup-path`.
    cgroup_path: String,
}

pub struct Testbed {
    pub lab: Lab,
    endpoints: BTreeMap<ObjectRef, Endpoint>,
    /// The nodes that run an agent, each enforcing its own pods.
    pub nodes: Vec<String>,
}

impl Testbed {
    /// Builds the lab for `cluster` and starts every server.
    pub fn build(cluster: &Cluster) -> Result<Self> {
        let enforced: Vec<&Pod> = cluster.pods.values().filter(|p| !p.host_network).collect();
        let parents = run_parents(&enforced);
        let nodes = agent_nodes(
            enforced.iter().map(|p| (key(p), p.node_name.as_deref())),
            DEFAULT_NODE,
        )?;
        let (v4_prefix_len, v6_prefix_len) = prefix_lens(&enforced);
        let mut lab = Lab::with_config(
            LAB_PREFIX,
            LabConfig {
                v4_prefix_len,
                v6_prefix_len,
                ..Default::default()
            },
        )?;
        let mut endpoints = BTreeMap::new();
        for pod in enforced
            .iter()
            .filter(|p| !parents.contains_key(&p.object_ref()))
        {
            let handle =
                emulate(&mut lab, pod).with_context(|| format!("emulating pod {}", key(pod)))?;
            let cgroup_path = handle.cgroup_path_annotation().to_string();
            endpoints.insert(
                pod.object_ref(),
                Endpoint {
                    pod: handle,
                    child: None,
                    cgroup_path,
                },
            );
        }
        for (run, parent) in &parents {
            let parent_endpoint = endpoints.get(parent).filter(|e| e.child.is_none());
            let endpoint = parent_endpoint
                .context("that pod is a Run itself: this harness emulates one level of Runs")
                .and_then(|parent| run_endpoint(&lab, cluster, run, parent))
                .with_context(|| format!("emulating {run} in the cgroup of {parent}"))?;
            endpoints.insert(run.clone(), endpoint);
        }
        Ok(Testbed {
            lab,
            endpoints,
            nodes,
        })
    }

    /// The `palisade.dev/cgroup-path` of a pod: its emulated cgroup; none for a pod
    /// that is not emulated (host network: a peer only, as the agent sees it).
    pub fn cgroup_path(&self, pod: &ObjectRef) -> Option<String> {
        self.endpoints.get(pod).map(|e| e.cgroup_path.clone())
    }

    /// Where probes from `pod` run: its container cgroup, or a Run's own cgroup.
    pub fn origin(&self, pod: &ObjectRef) -> Option<ProbeOrigin> {
        let endpoint = self.endpoints.get(pod)?;
        Some(match &endpoint.child {
            Some(cgroup) => ProbeOrigin::PodCgroup(endpoint.pod.clone(), cgroup.clone()),
            None => ProbeOrigin::Pod(endpoint.pod.clone()),
        })
    }

    /// How many emulated pods and Runs (child cgroups) there are.
    pub fn counts(&self) -> (usize, usize) {
        let runs = self
            .endpoints
            .values()
            .filter(|e| e.child.is_some())
            .count();
        (self.endpoints.len() - runs, runs)
    }
}

fn key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace, pod.name)
}

/// The Runs among `pods`: each pod whose cgroup annotation is a direct child of
/// another pod's, with that pod.
fn run_parents(pods: &[&Pod]) -> BTreeMap<ObjectRef, ObjectRef> {
    let by_cgroup: BTreeMap<&str, ObjectRef> = pods
        .iter()
        .filter_map(|p| Some((p.cgroup_path.as_deref()?, p.object_ref())))
        .collect();
    pods.iter()
        .filter_map(|pod| {
            let (parent_path, _) = pod.cgroup_path.as_deref()?.rsplit_once('/')?;
            let parent = by_cgroup.get(parent_path)?;
            Some((pod.object_ref(), parent.clone()))
        })
        .collect()
}

/// The longest prefix lengths (up to the defaults) that put all pods on one subnet.
fn prefix_lens(pods: &[&Pod]) -> (u8, u8) {
    let common = |bits: Vec<u128>, width: u32, max: u8| -> u8 {
        let Some(first) = bits.first() else {
            return max;
        };
        let differing = bits.iter().fold(0u128, |acc, b| acc | (b ^ first));
        let shared = (differing.leading_zeros() - (128 - width)).min(u32::from(max));
        u8::try_from(shared).unwrap_or(max)
    };
    let addresses = pods.iter().flat_map(|p| &p.ips);
    let v4: Vec<u128> = addresses
        .clone()
        .filter_map(|ip| match ip {
            IpAddr::V4(a) => Some(u128::from(u32::from(*a))),
            IpAddr::V6(_) => None,
        })
        .collect();
    let v6: Vec<u128> = addresses
        .filter_map(|ip| match ip {
            IpAddr::V6(a) => Some(u128::from(*a)),
            IpAddr::V4(_) => None,
        })
        .collect();
    (
        common(v4, 32, MAX_V4_PREFIX_LEN),
        common(v6, 128, MAX_V6_PREFIX_LEN),
    )
}

/// Adds `pod` to the lab with its addresses and serves its TCP and UDP ports.
fn emulate(lab: &mut Lab, pod: &Pod) -> Result<PodHandle> {
    let (ipv4, ipv6) = addresses(pod)?;
    let handle = lab.add_pod(PodSpec {
        name: format!("{}.{}", pod.namespace, pod.name),
        ipv4,
        ipv6,
    })?;
    let ports = |protocol: Protocol| -> Vec<u16> {
        let ports: BTreeSet<u16> = pod
            .ports
            .iter()
            .filter(|p| p.protocol == protocol)
            .map(|p| p.port)
            .collect();
        ports.into_iter().collect()
    };
    ensure!(
        ports(Protocol::Sctp).is_empty(),
        "it declares SCTP ports {:?}: the lab's netprobe serves TCP and UDP only",
        ports(Protocol::Sctp)
    );
    let (tcp, udp) = (ports(Protocol::Tcp), ports(Protocol::Udp));
    if !(tcp.is_empty() && udp.is_empty()) {
        lab.serve(&handle, &tcp, &udp)
            .context("serving its container ports")?;
    }
    Ok(handle)
}

/// A pod's addresses: at most one per family, at least one.
fn addresses(pod: &Pod) -> Result<(Option<Ipv4Addr>, Option<Ipv6Addr>)> {
    let (mut ipv4, mut ipv6) = (None, None);
    for ip in &pod.ips {
        let taken = match ip {
            IpAddr::V4(a) => ipv4.replace(*a).is_some(),
            IpAddr::V6(a) => ipv6.replace(*a).is_some(),
        };
        ensure!(!taken, "it has two addresses of one family ({:?})", pod.ips);
    }
    ensure!(
        ipv4.is_some() || ipv6.is_some(),
        "it has no address (status.podIPs)"
    );
    Ok((ipv4, ipv6))
}

/// The Run `run` as a child cgroup of its Runtime Pod's emulated pod (named as the
/// last part of the Run's cgroup annotation), with the Runtime Pod's addresses.
fn run_endpoint(
    lab: &Lab,
    cluster: &Cluster,
    run: &ObjectRef,
    parent: &Endpoint,
) -> Result<Endpoint> {
    let pod = &cluster.pods[run];
    ensure!(
        pod.ips == parent.pod.ips(),
        "its addresses {:?} are not the pod's {:?}: a Run shares its Runtime Pod's",
        pod.ips,
        parent.pod.ips()
    );
    ensure!(
        pod.ports.is_empty(),
        "it declares container ports: the Runtime Pod's servers would answer for it"
    );
    let name = pod
        .cgroup_path
        .as_deref()
        .and_then(|path| path.rsplit_once('/'))
        .map(|(_, name)| name)
        .context("it has no cgroup annotation")?;
    let dir = lab.add_child_cgroup(&parent.pod, name)?;
    let cgroup_path = lab.cgroup2_mount().cgroup_path(&dir)?;
    Ok(Endpoint {
        pod: parent.pod.clone(),
        child: Some(dir),
        cgroup_path,
    })
}
