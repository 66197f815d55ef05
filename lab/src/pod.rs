//! Pods: what the caller asks for ([`PodSpec`]) and what it gets back
//! ([`PodHandle`]).

use crate::cgroup2::check_name;
use anyhow::{Context, Result, bail};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// Name of the container cgroup created under each pod cgroup.
pub(crate) const CONTAINER_CGROUP: &str = "ctr";

/// A pod to add to a lab. Its addresses get the lab's prefix lengths (see
/// [`LabConfig`](crate::LabConfig)); a pod needs at least one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSpec {
    /// Unique within the lab; also the pod cgroup's directory name, so made of
    /// ASCII letters, digits, `-`, `_` and `.`, not starting with `.`.
    pub name: String,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
}

impl PodSpec {
    /// An IPv4-only pod.
    pub fn ipv4(name: &str, ipv4: Ipv4Addr) -> Self {
        PodSpec {
            name: name.to_owned(),
            ipv4: Some(ipv4),
            ipv6: None,
        }
    }

    /// An IPv6-only pod.
    pub fn ipv6(name: &str, ipv6: Ipv6Addr) -> Self {
        PodSpec {
            name: name.to_owned(),
            ipv4: None,
            ipv6: Some(ipv6),
        }
    }

    /// A pod with both an IPv4 and an IPv6 address.
    pub fn dual_stack(name: &str, ipv4: Ipv4Addr, ipv6: Ipv6Addr) -> Self {
        PodSpec {
            name: name.to_owned(),
            ipv4: Some(ipv4),
            ipv6: Some(ipv6),
        }
    }

    /// Checks the spec on its own (uniqueness is the lab's business).
    pub(crate) fn validate(&self) -> Result<()> {
        let name = &self.name;
        check_name(name).context("invalid pod name")?;
        if self.ipv4.is_none() && self.ipv6.is_none() {
            bail!("pod {name:?} needs an IPv4 or an IPv6 address");
        }
        let addresses = self
            .ipv4
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.ipv6.map(IpAddr::V6));
        for address in addresses {
            let broadcast = address == IpAddr::V4(Ipv4Addr::BROADCAST);
            if address.is_unspecified()
                || address.is_loopback()
                || address.is_multicast()
                || broadcast
            {
                bail!("pod {name:?} cannot have the address {address}: not a unicast host address");
            }
        }
        Ok(())
    }
}

/// A pod of a lab: where it lives and how it is named. Cheap to clone; it
/// stays valid (as data) after the lab is gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodHandle {
    pub(crate) name: String,
    pub(crate) netns: String,
    pub(crate) ipv4: Option<Ipv4Addr>,
    pub(crate) ipv6: Option<Ipv6Addr>,
    pub(crate) cgroup_dir: PathBuf,
    pub(crate) cgroup_path: String,
    pub(crate) cgroup_id: u64,
}

impl PodHandle {
    /// The pod's name, as given in its [`PodSpec`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of the pod's network namespace (`/run/netns/<name>`).
    pub fn netns(&self) -> &str {
        &self.netns
    }

    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.ipv4
    }

    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        self.ipv6
    }

    /// The pod's addresses, IPv4 first.
    pub fn ips(&self) -> Vec<IpAddr> {
        let v4 = self.ipv4.map(IpAddr::V4);
        let v6 = self.ipv6.map(IpAddr::V6);
        v4.into_iter().chain(v6).collect()
    }

    /// The pod cgroup (absolute path).
    pub fn cgroup_dir(&self) -> &Path {
        &self.cgroup_dir
    }

    /// The container cgroup below the pod cgroup, where pod processes run.
    pub fn container_cgroup_dir(&self) -> PathBuf {
        self.cgroup_dir.join(CONTAINER_CGROUP)
    }

    /// The pod cgroup's path from the cgroup2 hierarchy root, with a leading
    /// `/`, exactly as the `0::` line of `/proc/<pid>/cgroup` shows it.
    pub fn cgroup_path_annotation(&self) -> &str {
        &self.cgroup_path
    }

    /// The container cgroup's path, in the form of
    /// [`cgroup_path_annotation`](Self::cgroup_path_annotation).
    pub fn container_cgroup_path_annotation(&self) -> String {
        format!("{}/{CONTAINER_CGROUP}", self.cgroup_path)
    }

    /// The pod cgroup's id (the inode number of its directory).
    pub fn cgroup_id(&self) -> u64 {
        self.cgroup_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kubernetes_like_names() {
        let spec = PodSpec::ipv4("web-7d9f.abc_1", Ipv4Addr::new(10, 90, 0, 2));
        assert!(spec.validate().is_ok());
    }

    #[test]
    fn rejects_names_that_are_not_plain_directory_names() {
        for name in ["", "..", "a/b", "cgroup.procs"] {
            let spec = PodSpec::ipv4(name, Ipv4Addr::new(10, 90, 0, 2));
            assert!(spec.validate().is_err(), "{name:?} was accepted");
        }
    }

    #[test]
    fn rejects_addresses_that_are_not_unicast_host_addresses() {
        for address in [
            "0.0.0.0",
            "127.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "ff02::1",
        ] {
            let address: IpAddr = address.parse().expect("address");
            let spec = match address {
                IpAddr::V4(v4) => PodSpec::ipv4("a", v4),
                IpAddr::V6(v6) => PodSpec::ipv6("a", v6),
            };
            assert!(spec.validate().is_err(), "{address} was accepted");
        }
    }

    #[test]
    fn rejects_pods_without_addresses() {
        let spec = PodSpec {
            name: "a".into(),
            ipv4: None,
            ipv6: None,
        };
        assert!(spec.validate().is_err());
    }
}
