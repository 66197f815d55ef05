//! The lab's network wiring: network namespaces, the node namespace's bridge,
//! and the veth pair joining each pod to it. Everything here happens inside
//! namespaces the lab created; nothing touches the host's network namespace
//! except the `/run/netns` entries `ip netns` keeps.

use crate::iproute::ip;
use anyhow::Result;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// Where `ip netns` keeps its named network namespaces.
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// The file of the named network namespace `name`, to `setns()` into.
pub(crate) fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// The bridge in the node namespace that every pod's veth is attached to.
pub(crate) const BRIDGE: &str = "br0";

/// The interface name of a pod's side of its veth pair.
pub(crate) const POD_INTERFACE: &str = "eth0";

/// Prefix lengths of the pod network.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PrefixLens {
    pub v4: u8,
    pub v6: u8,
}

/// Creates the network namespace `name` (`/run/netns/<name>`).
pub(crate) fn create_netns(name: &str) -> Result<()> {
    ip(&["netns", "add", name])
}

/// Deletes the network namespace `name`, which also destroys its interfaces.
pub(crate) fn delete_netns(name: &str) -> Result<()> {
    ip(&["netns", "del", name])
}

/// Brings up loopback in the node namespace and creates the bridge, up.
pub(crate) fn set_up_node(node_netns: &str) -> Result<()> {
    ip(&["-n", node_netns, "link", "set", "lo", "up"])?;
    ip(&["-n", node_netns, "link", "add", BRIDGE, "type", "bridge"])?;
    ip(&["-n", node_netns, "link", "set", BRIDGE, "up"])
}

/// Gives the bridge an address, making the node namespace reachable from pods.
pub(crate) fn add_bridge_address(
    node_netns: &str,
    address: IpAddr,
    prefix_lens: PrefixLens,
) -> Result<()> {
    add_address(node_netns, BRIDGE, address, prefix_lens)
}

/// Gives the bridge a further address as a host route (/32 or /128): no
/// subnet of its own, reachable from pods through their default route.
pub(crate) fn add_bridge_host_address(node_netns: &str, address: IpAddr) -> Result<()> {
    let full = PrefixLens { v4: 32, v6: 128 };
    add_address(node_netns, BRIDGE, address, full)
}

/// Creates the veth pair `peer` (in the node namespace, on the bridge) /
/// `eth0` (in the pod namespace), addresses `eth0` and brings the pod's
/// interfaces up.
pub(crate) fn wire_pod(
    node_netns: &str,
    pod_netns: &str,
    peer: &str,
    addresses: &[IpAddr],
    prefix_lens: PrefixLens,
) -> Result<()> {
    ip(&[
        "-n",
        node_netns,
        "link",
        "add",
        peer,
        "type",
        "veth",
        "peer",
        "name",
        POD_INTERFACE,
        "netns",
        pod_netns,
    ])?;
    ip(&[
        "-n", node_netns, "link", "set", peer, "master", BRIDGE, "up",
    ])?;
    for &address in addresses {
        add_address(pod_netns, POD_INTERFACE, address, prefix_lens)?;
    }
    ip(&["-n", pod_netns, "link", "set", "lo", "up"])?;
    ip(&["-n", pod_netns, "link", "set", POD_INTERFACE, "up"])
}

/// Routes everything the pod can't reach directly via the node's address.
pub(crate) fn add_default_route(pod_netns: &str, via: IpAddr) -> Result<()> {
    let family = family_flag(via);
    let via = via.to_string();
    ip(&[
        "-n",
        pod_netns,
        family,
        "route",
        "add",
        "default",
        "via",
        &via,
        "dev",
        POD_INTERFACE,
    ])
}

/// Adds `address` to `device`; IPv6 addresses skip duplicate address
/// detection so they are usable at once.
fn add_address(netns: &str, device: &str, address: IpAddr, prefix_lens: PrefixLens) -> Result<()> {
    let cidr = match address {
        IpAddr::V4(v4) => format!("{v4}/{}", prefix_lens.v4),
        IpAddr::V6(v6) => format!("{v6}/{}", prefix_lens.v6),
    };
    let mut args = vec!["-n", netns, "addr", "add", &cidr, "dev", device];
    if address.is_ipv6() {
        args.push("nodad");
    }
    ip(&args)
}

fn family_flag(address: IpAddr) -> &'static str {
    match address {
        IpAddr::V4(_) => "-4",
        IpAddr::V6(_) => "-6",
    }
}

/// Collects the addresses of an optional IPv4 / IPv6 pair.
pub(crate) fn addresses(ipv4: Option<Ipv4Addr>, ipv6: Option<Ipv6Addr>) -> Vec<IpAddr> {
    ipv4.map(IpAddr::V4)
        .into_iter()
        .chain(ipv6.map(IpAddr::V6))
        .collect()
}
