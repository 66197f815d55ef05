//! The table evaluator: decides new flows from compiled tables alone, step for step as
//! the kernel programs do.
//!
//! For a packet of endpoint E in direction D with peer address A:
//! 1. D not enforced for E: allow.
//! 2. A -> peer identity: the node's own addresses are HOST, anything else goes through
//!    the ip cache LPM (no match: WORLD).
//! 3. HOST: policy LPM on (E.policy_id, HOST, D, protocol, dport); nothing matches:
//!    allow (the own node's default; rows exist only where a cluster policy decides
//!    about the own node).
//! 4. Any other peer: policy LPM on (E.policy_id, peer, D, protocol, dport); if nothing
//!    matches, again with peer ANY; if still nothing: deny (fail closed).
//! 5. The reason: a row's verdict, where an allow that cites no rule is a default (the
//!    own node's for HOST, no tier deciding otherwise).
//!
//! Step 3 is where this differs from the kernel programs of ABI version 1, which allow
//! HOST without a lookup: own-node rows need the kernel to consult them.
//!
//! Keys are built with the same `palisade-abi` layout the kernel maps use, so the LPM
//! here compares the very bytes the kernel compares.

use super::flow::{Endpoint, FlowAddresses, FlowDecision, FlowError, IpFamily};
use super::lpm::LpmTable;
use super::outcome::Reason;
use crate::compile::abi_address;
use crate::compile::tables::{CompiledCluster, EndpointEntry, NodeTables, Verdict};
use crate::model::{Direction, ObjectRef};
use palisade_abi::{IpCacheKey, PolicyKey, reserved};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

/// Slot the evaluator's keys use (it holds one state, so any fixed slot works).
const SLOT: u32 = 0;

/// What the kernel decides for one new flow at one end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    pub verdict: Verdict,
    /// Index into [`CompiledCluster::rules`] of the deciding rule; None for the
    /// isolation default, and when no entry decided.
    pub rule_ref: Option<u32>,
    /// Identity the peer address resolved to.
    pub peer_identity: u32,
    pub reason: Reason,
}

/// Ip cache LPM, keyed like `PALISADE_IPCACHE` (slot + 16-byte address).
type IpCacheLpm = LpmTable<20, u32>;

/// Policy LPM, keyed like `PALISADE_POLICY`.
type PolicyLpm = LpmTable<16, (Verdict, Option<u32>)>;

/// One node's view: the cluster ip cache with the node's addresses as HOST, and the
/// node's policy table.
#[derive(Clone, Debug)]
pub struct TableEvaluator {
    ipcache: Arc<IpCacheLpm>,
    /// The node's addresses (16-byte ABI form), overlaid on the ip cache as HOST.
    host: BTreeSet<[u8; 16]>,
    policy: PolicyLpm,
}

impl TableEvaluator {
    /// The view of `node`; a node the tables do not list has no addresses and no
    /// policy entries.
    pub fn new(compiled: &CompiledCluster, node: &str) -> Self {
        Self::with_ipcache(
            Arc::new(ipcache_lpm(compiled)),
            compiled,
            compiled.nodes.get(node),
        )
    }

    fn with_ipcache(
        ipcache: Arc<IpCacheLpm>,
        compiled: &CompiledCluster,
        tables: Option<&NodeTables>,
    ) -> Self {
        let mut policy = PolicyLpm::default();
        let mut host = BTreeSet::new();
        if let Some(tables) = tables {
            for entry in compiled.policy_entries(tables) {
                policy.insert(
                    policy_key_bytes(&entry.abi_key(SLOT)),
                    entry.abi_prefix_len(),
                    (entry.verdict, entry.rule_ref),
                );
            }
            host.extend(tables.host_addresses.iter().map(|a| abi_address(*a)));
        }
        Self {
            ipcache,
            host,
            policy,
        }
    }

    /// The identity `peer` resolves to on this node.
    pub fn peer_identity(&self, peer: IpAddr) -> u32 {
        let addr = abi_address(peer);
        if self.host.contains(&addr) {
            return reserved::HOST;
        }
        let key = ipcache_key_bytes(&IpCacheKey::new(SLOT, addr));
        self.ipcache
            .lookup(&key)
            .copied()
            .unwrap_or(reserved::WORLD)
    }

    /// Decides a new flow of `endpoint` in `direction` with `peer`. `dport` is the
    /// destination port of the flow (0 for protocols without ports).
    pub fn decide(
        &self,
        endpoint: &EndpointEntry,
        direction: Direction,
        peer: IpAddr,
        protocol: u8,
        dport: u16,
    ) -> Decision {
        let peer_identity = self.peer_identity(peer);
        let decision = |verdict, rule_ref, reason| Decision {
            verdict,
            rule_ref,
            peer_identity,
            reason,
        };
        let enforced = match direction {
            Direction::Ingress => endpoint.enforce_ingress,
            Direction::Egress => endpoint.enforce_egress,
        };
        if !enforced {
            return decision(Verdict::Allow, None, Reason::AllowedNotIsolated);
        }
        let lookup = |peer| {
            let key = PolicyKey::new(
                SLOT,
                endpoint.policy_id,
                peer,
                direction.abi(),
                protocol,
                dport,
            );
            self.policy.lookup(&policy_key_bytes(&key))
        };
        let host = peer_identity == reserved::HOST;
        let entry = if host {
            lookup(reserved::HOST)
        } else {
            lookup(peer_identity).or_else(|| lookup(reserved::ANY))
        };
        match entry {
            Some((verdict, rule_ref)) => decision(
                *verdict,
                *rule_ref,
                Reason::of_row(*verdict, rule_ref.is_some(), host),
            ),
            None if host => decision(Verdict::Allow, None, Reason::AllowedHost),
            None => decision(Verdict::Deny, None, Reason::DeniedNoEntry),
        }
    }
}

/// Every node's view, and where each endpoint lives: decides whole flows.
#[derive(Clone, Debug)]
pub struct ClusterEvaluator<'a> {
    nodes: BTreeMap<&'a str, TableEvaluator>,
    endpoints: BTreeMap<&'a ObjectRef, (&'a str, &'a EndpointEntry)>,
}

impl<'a> ClusterEvaluator<'a> {
    pub fn new(compiled: &'a CompiledCluster) -> Self {
        let ipcache = Arc::new(ipcache_lpm(compiled));
        let mut endpoints = BTreeMap::new();
        let mut nodes = BTreeMap::new();
        for (name, tables) in &compiled.nodes {
            nodes.insert(
                name.as_str(),
                TableEvaluator::with_ipcache(ipcache.clone(), compiled, Some(tables)),
            );
            for endpoint in &tables.endpoints {
                // A pod listed on two nodes (only a corrupt table can say so): first wins.
                endpoints
                    .entry(&endpoint.pod)
                    .or_insert((name.as_str(), endpoint));
            }
        }
        Self { nodes, endpoints }
    }

    /// The view of the node `pod` is an endpoint on, and its endpoint entry.
    pub fn endpoint(&self, pod: &ObjectRef) -> Option<(&TableEvaluator, &'a EndpointEntry)> {
        let (node, entry) = self.endpoints.get(pod)?;
        Some((self.nodes.get(node)?, *entry))
    }

    /// Decides a flow: egress at the source if it is an endpoint, ingress at the
    /// destination if it is one. `port` is the destination port (0 for protocols
    /// without ports). Pods use their first address of the flow's family: `family`
    /// if given, else that of an external end, else that of the source pod's first
    /// address.
    pub fn flow(
        &self,
        from: Endpoint,
        to: Endpoint,
        protocol: u8,
        port: u16,
        family: Option<IpFamily>,
    ) -> Result<FlowDecision<Decision>, FlowError> {
        let addresses = FlowAddresses::resolve(from, to, family)?;
        let decide = |end: Endpoint, direction, peer| match end {
            Endpoint::Pod(pod) => self
                .endpoint(&pod.object_ref())
                .map(|(node, entry)| node.decide(entry, direction, peer, protocol, port)),
            Endpoint::External(_) => None,
        };
        let egress = decide(from, Direction::Egress, addresses.dst);
        let ingress = decide(to, Direction::Ingress, addresses.src);
        Ok(FlowDecision::new(addresses, egress, ingress, |d| d.verdict))
    }
}

/// Decides one flow from compiled tables. Builds every node's view: to decide many
/// flows, build a [`ClusterEvaluator`] once.
pub fn flow(
    compiled: &CompiledCluster,
    from: Endpoint,
    to: Endpoint,
    protocol: u8,
    port: u16,
    family: Option<IpFamily>,
) -> Result<FlowDecision<Decision>, FlowError> {
    ClusterEvaluator::new(compiled).flow(from, to, protocol, port, family)
}

fn ipcache_lpm(compiled: &CompiledCluster) -> IpCacheLpm {
    let mut lpm = IpCacheLpm::default();
    for entry in &compiled.ipcache {
        lpm.insert(
            ipcache_key_bytes(&entry.abi_key(SLOT)),
            entry.abi_prefix_len(),
            entry.identity,
        );
    }
    lpm
}

/// The bytes of an ip cache key as they lie in memory (`_be` fields already hold
/// network order, so their native bytes are the wire bytes).
fn ipcache_key_bytes(key: &IpCacheKey) -> [u8; 20] {
    let mut bytes = [0; 20];
    bytes[..4].copy_from_slice(&key.slot_be.to_ne_bytes());
    bytes[4..].copy_from_slice(&key.addr);
    bytes
}

/// The bytes of a policy key as they lie in memory.
fn policy_key_bytes(key: &PolicyKey) -> [u8; 16] {
    let mut bytes = [0; 16];
    bytes[..4].copy_from_slice(&key.slot_be.to_ne_bytes());
    bytes[4..8].copy_from_slice(&key.policy_id_be.to_ne_bytes());
    bytes[8..12].copy_from_slice(&key.peer_identity_be.to_ne_bytes());
    bytes[12] = key.direction;
    bytes[13] = key.protocol;
    bytes[14..].copy_from_slice(&key.dport_be.to_ne_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::tables::IpCacheEntry;
    use palisade_abi::{IPCACHE_KEY_BITS, POLICY_KEY_BITS};
    use std::net::Ipv4Addr;

    #[test]
    fn resolves_a_hundred_thousand_entries_with_host_overlay() {
        let pod_identity = |i: u32| reserved::FIRST_ALLOCATED + i % 1000;
        let mut ipcache: Vec<IpCacheEntry> = (0..100_000u32)
            .map(|i| IpCacheEntry {
                prefix: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)).into(),
                identity: pod_identity(i),
            })
            .collect();
        ipcache.push(IpCacheEntry {
            prefix: "10.0.0.0/8".parse().unwrap(),
            identity: 5000,
        });
        let node = NodeTables {
            host_addresses: vec!["10.0.0.7".parse().unwrap()],
            ..NodeTables::default()
        };
        let compiled = CompiledCluster {
            ipcache,
            nodes: BTreeMap::from([("n".to_string(), node)]),
            ..CompiledCluster::default()
        };
        let started = std::time::Instant::now();
        let evaluator = TableEvaluator::new(&compiled, "n");
        for i in (0..100_000u32).step_by(7).filter(|i| *i != 7) {
            let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            assert_eq!(evaluator.peer_identity(addr), pod_identity(i));
        }
        assert!(started.elapsed().as_secs() < 10);
        assert_eq!(
            evaluator.peer_identity("10.0.0.7".parse().unwrap()),
            reserved::HOST
        );
        assert_eq!(
            evaluator.peer_identity("::ffff:10.0.0.7".parse().unwrap()),
            reserved::HOST
        );
        assert_eq!(evaluator.peer_identity("10.200.0.1".parse().unwrap()), 5000);
        assert_eq!(
            evaluator.peer_identity("11.0.0.1".parse().unwrap()),
            reserved::WORLD
        );
        assert_eq!(
            evaluator.peer_identity("fd00::1".parse().unwrap()),
            reserved::WORLD
        );
        // Another node sees the same address as whatever the ip cache says.
        let other = TableEvaluator::new(&compiled, "elsewhere");
        assert_eq!(
            other.peer_identity("10.0.0.7".parse().unwrap()),
            pod_identity(7)
        );
    }

    #[test]
    fn key_bytes_cover_the_abi_key_data() {
        assert_eq!(IPCACHE_KEY_BITS, 20 * 8);
        assert_eq!(POLICY_KEY_BITS, 16 * 8);
        let key = PolicyKey::new(1, 2, 3, 1, 6, 0x1f90);
        assert_eq!(
            policy_key_bytes(&key),
            [0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 1, 6, 0x1f, 0x90]
        );
    }
}
