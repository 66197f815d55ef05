//! The [`Lab`]: a node network namespace with a bridge, a cgroup subtree root,
//! and the pods added to them.

mod node_addresses;
mod probes;
mod processes;
mod stale;
mod teardown;

pub(crate) use stale::test_pin_path;

use crate::cgroup2::{self, Cgroup2Mount};
use crate::iproute;
use crate::lab_id::new_lab_id;
use crate::locate::netprobe_path;
use crate::pod::{CONTAINER_CGROUP, PodHandle, PodSpec};
use crate::process::ProcessTracker;
use crate::topology::{self, PrefixLens};
use anyhow::{Context, Result, bail, ensure};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// How many times [`Lab::new`] draws a new id when the one drawn is taken.
const ID_ATTEMPTS: usize = 8;

/// How a lab is set up. `LabConfig::default()` gives a /24 and a /64 pod
/// network, no node addresses, and the netprobe binary from
/// [`netprobe_path`](crate::netprobe_path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabConfig {
    /// Prefix length of every IPv4 address in the lab (pods and node).
    pub v4_prefix_len: u8,
    /// Prefix length of every IPv6 address in the lab (pods and node).
    pub v6_prefix_len: u8,
    /// Address of the bridge in the node namespace; pods get a default route
    /// via it. See [`Lab::set_node_addrs`].
    pub node_ipv4: Option<Ipv4Addr>,
    pub node_ipv6: Option<Ipv6Addr>,
    /// The `palisade-netprobe` binary; `None` finds it with
    /// [`netprobe_path`](crate::netprobe_path).
    pub netprobe: Option<PathBuf>,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            v4_prefix_len: 24,
            v6_prefix_len: 64,
            node_ipv4: None,
            node_ipv6: None,
            netprobe: None,
        }
    }
}

/// A set of emulated pods on one emulated node. Dropping it kills its
/// processes and removes its network namespaces and cgroups.
#[derive(Debug)]
pub struct Lab {
    id: String,
    cgroup2: Cgroup2Mount,
    cgroup_root: PathBuf,
    node_netns: String,
    prefix_lens: PrefixLens,
    node_ipv4: Option<Ipv4Addr>,
    node_ipv6: Option<Ipv6Addr>,
    /// Addresses added with [`Lab::add_node_address`], in order.
    extra_node_addrs: Vec<IpAddr>,
    netprobe: PathBuf,
    pods: Vec<PodHandle>,
    pods_started: usize,
    /// Network namespaces this lab created and has not deleted, oldest first.
    netns_created: Vec<String>,
    cgroup_root_created: bool,
    processes: ProcessTracker,
    torn_down: bool,
}

impl Lab {
    /// A lab with the default [`LabConfig`]. Its cgroup root is
    /// `<cgroup2 mount>/<prefix>-<id>`.
    pub fn new(prefix: &str) -> Result<Lab> {
        Lab::with_config(prefix, LabConfig::default())
    }

    /// A lab set up as `config` says.
    pub fn with_config(prefix: &str, config: LabConfig) -> Result<Lab> {
        cgroup2::check_name(prefix).context("invalid lab prefix")?;
        ensure!(
            config.v4_prefix_len <= 32 && config.v6_prefix_len <= 128,
            "invalid prefix lengths /{} (IPv4) and /{} (IPv6)",
            config.v4_prefix_len,
            config.v6_prefix_len
        );
        let euid = nix::unistd::geteuid();
        ensure!(
            euid.is_root(),
            "palisade-lab must run as root (euid 0) to create network namespaces and cgroups; \
             running as euid {euid}"
        );
        iproute::ensure_available()?;
        stale::sweep_once();
        let cgroup2 = Cgroup2Mount::find()?;
        let netprobe = match config.netprobe {
            Some(path) if path.is_file() => path,
            Some(path) => bail!("netprobe binary {} does not exist", path.display()),
            None => netprobe_path()?,
        };

        let mut lab = Lab {
            id: String::new(),
            cgroup_root: PathBuf::new(),
            node_netns: String::new(),
            cgroup2,
            prefix_lens: PrefixLens {
                v4: config.v4_prefix_len,
                v6: config.v6_prefix_len,
            },
            node_ipv4: None,
            node_ipv6: None,
            extra_node_addrs: Vec::new(),
            netprobe,
            pods: Vec::new(),
            pods_started: 0,
            netns_created: Vec::new(),
            cgroup_root_created: false,
            processes: ProcessTracker::default(),
            torn_down: false,
        };
        // From here on, dropping `lab` on an error removes what was created.
        lab.claim_id(prefix)?;
        topology::create_netns(&lab.node_netns)?;
        lab.netns_created.push(lab.node_netns.clone());
        topology::set_up_node(&lab.node_netns)?;
        lab.set_node_addrs(config.node_ipv4, config.node_ipv6)?;
        Ok(lab)
    }

    /// Draws ids until one whose node netns and cgroup root are both free,
    /// and creates the cgroup root (the claim).
    fn claim_id(&mut self, prefix: &str) -> Result<()> {
        for _ in 0..ID_ATTEMPTS {
            let id = new_lab_id();
            let node_netns = format!("pl{id}n");
            let cgroup_root = self.cgroup2.mount_point().join(format!("{prefix}-{id}"));
            if cgroup_root.exists() || topology::netns_path(&node_netns).exists() {
                continue;
            }
            cgroup2::create(&cgroup_root)?;
            self.cgroup_root_created = true;
            stale::write_claim(&id, &cgroup_root)?;
            self.id = id;
            self.node_netns = node_netns;
            self.cgroup_root = cgroup_root;
            return Ok(());
        }
        bail!("could not find a free lab id in {ID_ATTEMPTS} attempts");
    }

    /// This lab's unique id, part of all its namespace and cgroup names.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The cgroup subtree root holding all pod cgroups (absolute path); attach
    /// BPF programs here.
    pub fn cgroup_root(&self) -> &Path {
        &self.cgroup_root
    }

    /// The cgroup2 mount the lab's cgroups live in.
    pub fn cgroup2_mount(&self) -> &Cgroup2Mount {
        &self.cgroup2
    }

    /// The node network namespace (holding the bridge).
    pub fn node_netns(&self) -> &str {
        &self.node_netns
    }

    /// Every network namespace of this lab: the node's, then the pods'.
    pub fn netns_names(&self) -> Vec<String> {
        self.netns_created.clone()
    }

    pub fn node_ipv4(&self) -> Option<Ipv4Addr> {
        self.node_ipv4
    }

    pub fn node_ipv6(&self) -> Option<Ipv6Addr> {
        self.node_ipv6
    }

    /// The netprobe binary this lab runs.
    pub fn netprobe(&self) -> &Path {
        &self.netprobe
    }

    /// The pods added so far, in order.
    pub fn pods(&self) -> &[PodHandle] {
        &self.pods
    }

    /// The pod named `name`, if any.
    pub fn pod(&self, name: &str) -> Option<&PodHandle> {
        self.pods.iter().find(|pod| pod.name == name)
    }

    /// Gives the node namespace's bridge the given addresses (each family can
    /// be set once) and routes every pod of that family via it, so "node to
    /// pod" and "pod to node" traffic can be tested.
    pub fn set_node_addrs(&mut self, ipv4: Option<Ipv4Addr>, ipv6: Option<Ipv6Addr>) -> Result<()> {
        ensure!(
            ipv4.is_none() || self.node_ipv4.is_none(),
            "lab {} already has node IPv4 address {:?}",
            self.id,
            self.node_ipv4
        );
        ensure!(
            ipv6.is_none() || self.node_ipv6.is_none(),
            "lab {} already has node IPv6 address {:?}",
            self.id,
            self.node_ipv6
        );
        for address in topology::addresses(ipv4, ipv6) {
            topology::add_bridge_address(&self.node_netns, address, self.prefix_lens)
                .with_context(|| format!("giving the node address {address}"))?;
            match address {
                IpAddr::V4(v4) => self.node_ipv4 = Some(v4),
                IpAddr::V6(v6) => self.node_ipv6 = Some(v6),
            }
            for pod in &self.pods {
                if pod.ips().iter().any(|ip| ip.is_ipv4() == address.is_ipv4()) {
                    topology::add_default_route(&pod.netns, address)
                        .with_context(|| format!("routing pod {} via the node", pod.name))?;
                }
            }
        }
        Ok(())
    }

    /// Adds a pod: its network namespace with `eth0` on the node's bridge,
    /// its addresses, a default route via each node address of its families,
    /// and its cgroups `<root>/<name>` and `<root>/<name>/ctr`.
    pub fn add_pod(&mut self, spec: PodSpec) -> Result<PodHandle> {
        spec.validate()?;
        ensure!(
            self.pod(&spec.name).is_none(),
            "lab {} already has a pod named {:?}",
            self.id,
            spec.name
        );
        let index = self.pods_started;
        self.pods_started += 1;
        let netns = format!("pl{}p{index}", self.id);
        let cgroup_dir = self.cgroup_root.join(&spec.name);
        let result = self.create_pod(&spec, &netns, index, &cgroup_dir);
        let pod = match result {
            Ok(pod) => pod,
            Err(error) => {
                let error = self.undo_pod(&netns, &cgroup_dir, error);
                return Err(error.context(format!("adding pod {:?} to lab {}", spec.name, self.id)));
            }
        };
        self.pods.push(pod.clone());
        Ok(pod)
    }

    fn create_pod(
        &mut self,
        spec: &PodSpec,
        netns: &str,
        index: usize,
        cgroup_dir: &Path,
    ) -> Result<PodHandle> {
        topology::create_netns(netns)?;
        self.netns_created.push(netns.to_owned());
        let addresses = topology::addresses(spec.ipv4, spec.ipv6);
        let peer = format!("vp{index}");
        topology::wire_pod(&self.node_netns, netns, &peer, &addresses, self.prefix_lens)?;
        if let (Some(_), Some(gateway)) = (spec.ipv4, self.node_ipv4) {
            topology::add_default_route(netns, IpAddr::V4(gateway))?;
        }
        if let (Some(_), Some(gateway)) = (spec.ipv6, self.node_ipv6) {
            topology::add_default_route(netns, IpAddr::V6(gateway))?;
        }
        cgroup2::create(cgroup_dir)?;
        cgroup2::create(&cgroup_dir.join(CONTAINER_CGROUP))?;
        Ok(PodHandle {
            name: spec.name.clone(),
            netns: netns.to_owned(),
            ipv4: spec.ipv4,
            ipv6: spec.ipv6,
            cgroup_dir: cgroup_dir.to_path_buf(),
            cgroup_path: self.cgroup2.cgroup_path(cgroup_dir)?,
            cgroup_id: cgroup2::cgroup_id(cgroup_dir)?,
        })
    }

    /// Removes what a failed [`add_pod`](Self::add_pod) created, adding any
    /// failure to do so to `error`.
    fn undo_pod(&mut self, netns: &str, cgroup_dir: &Path, error: anyhow::Error) -> anyhow::Error {
        let mut problems = Vec::new();
        if self.netns_created.iter().any(|created| created == netns) {
            match topology::delete_netns(netns) {
                Ok(()) => self.netns_created.retain(|created| created != netns),
                Err(undo_error) => problems.push(undo_error),
            }
        }
        problems.extend(cgroup2::remove_tree(cgroup_dir));
        problems.into_iter().fold(error, |error, problem| {
            error.context(format!(
                "and undoing the partly added pod failed: {problem:#}"
            ))
        })
    }

    /// Creates the cgroup `<pod cgroup>/<name>` and returns its path. Works at
    /// any time, e.g. after BPF programs were attached to the cgroup root.
    pub fn add_child_cgroup(&self, pod: &PodHandle, name: &str) -> Result<PathBuf> {
        cgroup2::check_name(name).context("invalid child cgroup name")?;
        ensure!(
            pod.cgroup_dir.parent() == Some(self.cgroup_root.as_path()),
            "pod {} is not a pod of lab {}",
            pod.name,
            self.id
        );
        let dir = pod.cgroup_dir.join(name);
        cgroup2::create(&dir)?;
        Ok(dir)
    }
}
