//! Further addresses of the node namespace beyond its gateway addresses: the
//! InternalIPs of several emulated nodes, say, whose host-network servers all
//! live in the one node namespace.

use super::Lab;
use crate::topology;
use anyhow::{Context, Result, ensure};
use std::net::IpAddr;

impl Lab {
    /// Gives the node namespace's bridge one more address, as a host route
    /// (/32 or /128). Pods reach it through their default route, the node
    /// address of its family (see [`set_node_addrs`](Self::set_node_addrs)),
    /// which must be set first; it may lie outside the pod network. Serve on
    /// it with [`serve_in_node_at`](Self::serve_in_node_at): a server on every
    /// node address would answer UDP from whichever address the route back
    /// prefers.
    pub fn add_node_address(&mut self, address: IpAddr) -> Result<()> {
        let gateway = match address {
            IpAddr::V4(_) => self.node_ipv4.map(IpAddr::V4),
            IpAddr::V6(_) => self.node_ipv6.map(IpAddr::V6),
        };
        let Some(gateway) = gateway else {
            anyhow::bail!(
                "lab {} has no node address of the family of {address} yet: set one with \
                 set_node_addrs (the pods' route to {address})",
                self.id
            );
        };
        ensure!(
            address != gateway && !self.extra_node_addrs.contains(&address),
            "lab {} already has the node address {address}",
            self.id
        );
        if let Some(pod) = self.pods.iter().find(|pod| pod.ips().contains(&address)) {
            anyhow::bail!(
                "{address} is the address of pod {} of lab {}",
                pod.name,
                self.id
            );
        }
        topology::add_bridge_host_address(&self.node_netns, address)
            .with_context(|| format!("giving the node the further address {address}"))?;
        self.extra_node_addrs.push(address);
        Ok(())
    }

    /// The addresses added with [`add_node_address`](Self::add_node_address),
    /// in order.
    pub fn extra_node_addresses(&self) -> &[IpAddr] {
        &self.extra_node_addrs
    }
}
