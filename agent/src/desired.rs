//! What the kernel maps of this node must hold, computed from compiled policy. Pure:
//! the agent's I/O (cgroup resolution, map writes) happens around it.
//!
//! Keys here carry no slot: the slot is chosen when the state is written
//! (`datapath::tables`). Every key is normalized (bits past its prefix length are
//! zero) so that two keys the LPM trie treats as one compare equal here too.

use palisade_abi::{
    BackendValue, BindPorts, BindRange, EndpointInfo, IpCacheValue, MAX_BIND_RANGES, NodeConfig,
    PolicyKey, PolicyValue, ServiceValue, endpoint_flags, ipcache_prefix_len, reserved,
};
use palisade_policy::compile::abi_address;
use palisade_policy::compile::tables::{
    CompiledCluster, EndpointEntry, IpCacheEntry, PolicyEntry, PortRangeEntry, ServiceEntry,
};
use palisade_policy::model::ObjectRef;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The ip cache as the maps hold it: prefix -> identity. Shared (`Arc`) between the
/// states that hold it, since it is the one table that grows with the cluster: a
/// pass that changes only local endpoints reuses it, and the writer skips its diff
/// when both states hold the same one.
pub type IpCacheTable = BTreeMap<IpPrefix, IpCacheValue>;

/// An ip cache prefix: 16-byte address (IPv4-mapped for IPv4) and the number of
/// significant address bits (96 + n for an IPv4 /n).
pub type IpPrefix = ([u8; 16], u32);

/// A policy entry's key without its slot:
/// (prefixlen, policy_id, peer_identity, direction, protocol, dport).
pub type PolicyRow = (u32, u32, u32, u8, u8, u16);

/// A Service table key without its slot: (address in 16-byte form, port, protocol),
/// port in host byte order.
pub type ServiceRow = ([u8; 16], u16, u8);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredState {
    pub config: NodeConfig,
    /// cgroup id -> endpoint.
    pub endpoints: BTreeMap<u64, EndpointInfo>,
    /// Address (16-byte form) of a local endpoint -> its cgroup id.
    pub local_addrs: BTreeMap<[u8; 16], u64>,
    pub ipcache: Arc<IpCacheTable>,
    pub policy: BTreeMap<PolicyRow, PolicyValue>,
    /// (cgroup id, IP version) of a local endpoint -> its first address of that
    /// version (16-byte form), for the socket hooks' Service policy.
    pub endpoint_addrs: BTreeMap<(u64, u32), [u8; 16]>,
    /// Service address, port, protocol -> number of backends.
    pub services: BTreeMap<ServiceRow, ServiceValue>,
    /// (Service address, port, protocol, backend index) -> backend.
    pub service_backends: BTreeMap<(ServiceRow, u32), BackendValue>,
    /// cgroup id of an endpoint with `RESTRICT_BIND` -> the ports it may bind.
    pub bind_ports: BTreeMap<u64, BindPorts>,
}

/// Builds the node's desired state. `cgroup_ids` maps the pods of this node whose
/// cgroup exists to its id; endpoints without one are left out (they are pending).
/// `pod_ips` gives the addresses of pods, for the socket hooks' own-address check.
pub fn build(
    compiled: &CompiledCluster,
    node: &str,
    cgroup_ids: &BTreeMap<ObjectRef, u64>,
    pod_ips: &BTreeMap<ObjectRef, Vec<IpAddr>>,
    config: NodeConfig,
) -> DesiredState {
    let host_addresses = compiled
        .nodes
        .get(node)
        .map_or(&[][..], |t| &t.host_addresses[..]);
    let ipcache = Arc::new(ipcache_table(&compiled.ipcache, host_addresses));
    build_with_ipcache(compiled, ipcache, node, cgroup_ids, pod_ips, config)
}

/// The ip cache of a node: the cluster's entries, and this node's own addresses as
/// `HOST` (they are a node identity in the cluster-wide cache).
pub fn ipcache_table(entries: &[IpCacheEntry], host_addresses: &[IpAddr]) -> IpCacheTable {
    let mut table: IpCacheTable = entries.iter().map(ipcache_row).collect();
    for addr in host_addresses {
        let (prefix, value) = ipcache_row(&IpCacheEntry {
            prefix: (*addr).into(),
            identity: reserved::HOST,
        });
        table.insert(prefix, value);
    }
    table
}

/// [`build`] with the node's ip cache already made ([`ipcache_table`]);
/// `compiled.ipcache` is not read.
pub fn build_with_ipcache(
    compiled: &CompiledCluster,
    ipcache: Arc<IpCacheTable>,
    node: &str,
    cgroup_ids: &BTreeMap<ObjectRef, u64>,
    pod_ips: &BTreeMap<ObjectRef, Vec<IpAddr>>,
    config: NodeConfig,
) -> DesiredState {
    let mut state = DesiredState {
        config,
        ipcache,
        ..Default::default()
    };
    for entry in &compiled.services {
        add_service(&mut state, entry);
    }
    let Some(tables) = compiled.nodes.get(node) else {
        return state;
    };
    for ep in &tables.endpoints {
        let Some(&cgroup_id) = cgroup_ids.get(&ep.pod) else {
            continue;
        };
        let mut flags = 0;
        if ep.enforce_ingress {
            flags |= endpoint_flags::ENFORCE_INGRESS;
        }
        if ep.enforce_egress {
            flags |= endpoint_flags::ENFORCE_EGRESS;
        }
        flags |= socket_flags(ep);
        if let Some(ranges) = &ep.bind_ports {
            match bind_ports(ranges) {
                Some(ports) => {
                    state.bind_ports.insert(cgroup_id, ports);
                }
                None => tracing::error!(
                    pod = %format!("{}/{}", ep.pod.namespace, ep.pod.name),
                    ranges = ranges.len(),
                    max = MAX_BIND_RANGES,
                    "too many bind port ranges: the pod may bind no port until its \
                     EgressPolicies name fewer"
                ),
            }
        }
        for ip in pod_ips.get(&ep.pod).into_iter().flatten() {
            state.local_addrs.insert(abi_address(*ip), cgroup_id);
            // The first address of each version is the pod's source address.
            let version = if ip.to_canonical().is_ipv4() { 4 } else { 6 };
            state
                .endpoint_addrs
                .entry((cgroup_id, version))
                .or_insert_with(|| abi_address(*ip));
        }
        state.endpoints.insert(
            cgroup_id,
            EndpointInfo {
                identity: ep.identity,
                policy_id: ep.policy_id,
                flags,
                _pad: 0,
            },
        );
    }
    for entry in compiled.policy_entries(tables) {
        let (row, value) = policy_row(&entry);
        state.policy.insert(row, value);
    }
    state
}

/// The endpoint flags of an endpoint's socket controls.
fn socket_flags(ep: &EndpointEntry) -> u32 {
    let mut flags = 0;
    if ep.deny_raw_sockets {
        flags |= endpoint_flags::DENY_RAW_SOCKETS;
    }
    if ep.deny_packet_sockets {
        flags |= endpoint_flags::DENY_PACKET_SOCKETS;
    }
    if ep.bind_ports.is_some() {
        flags |= endpoint_flags::RESTRICT_BIND;
    }
    if ep.audit_sockets {
        flags |= endpoint_flags::AUDIT_SOCKETS;
    }
    flags
}

/// The kernel form of an endpoint's bind port ranges; None when they do not fit.
fn bind_ports(ranges: &[PortRangeEntry]) -> Option<BindPorts> {
    if ranges.len() > MAX_BIND_RANGES {
        return None;
    }
    let mut ports = BindPorts {
        count: ranges.len() as u32,
        ..Default::default()
    };
    for (slot, r) in ports.ranges.iter_mut().zip(ranges) {
        *slot = BindRange {
            protocol: r.protocol,
            _pad: 0,
            first: r.first,
            last: r.last,
        };
    }
    Some(ports)
}

/// The Service table rows of one Service address, port and protocol: its backend
/// count and its backends in the compiled (sorted) order.
fn add_service(state: &mut DesiredState, entry: &ServiceEntry) {
    let row: ServiceRow = (abi_address(entry.address), entry.port, entry.protocol);
    for (index, backend) in entry.backends.iter().enumerate() {
        state.service_backends.insert(
            (row, index as u32),
            BackendValue {
                addr: abi_address(backend.address),
                port_be: backend.port.to_be(),
                _pad: 0,
                flags: 0,
            },
        );
    }
    state.services.insert(
        row,
        ServiceValue {
            backend_count: entry.backends.len() as u32,
            flags: 0,
        },
    );
}

/// The slot-less trie key and the value of an ip cache entry, encoded by the policy
/// library (the same encoding its reference evaluator reads).
fn ipcache_row(entry: &IpCacheEntry) -> (IpPrefix, IpCacheValue) {
    let bits = entry.abi_prefix_len() - ipcache_prefix_len(0);
    ((entry.abi_key(0).addr, bits), entry.abi_value())
}

/// The slot-less trie key and the value of a policy entry.
fn policy_row(entry: &PolicyEntry) -> (PolicyRow, PolicyValue) {
    (
        policy_row_of_key(entry.abi_prefix_len(), &entry.abi_key(0)),
        entry.abi_value(),
    )
}

/// The slot-less form of a policy trie key.
pub fn policy_row_of_key(prefixlen: u32, key: &PolicyKey) -> PolicyRow {
    (
        prefixlen,
        u32::from_be(key.policy_id_be),
        u32::from_be(key.peer_identity_be),
        key.direction,
        key.protocol,
        u16::from_be(key.dport_be),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_abi::{POLICY_PREFIX_ANY_PORT, POLICY_PREFIX_ANY_PROTOCOL, RULE_REF_DEFAULT};
    use palisade_policy::compile::tables::{ServiceBackend, Verdict};
    use palisade_policy::model::Direction;

    fn pod(name: &str) -> ObjectRef {
        ObjectRef {
            namespace: "shop".into(),
            name: name.into(),
        }
    }

    #[test]
    fn services_become_counted_backend_rows_with_ports_in_network_order() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let backend = |addr: &str, name: &str| ServiceBackend {
            address: ip(addr),
            port: 8080,
            pod: Some(pod(name)),
        };
        let compiled = CompiledCluster {
            services: vec![
                ServiceEntry {
                    address: ip("10.96.0.10"),
                    port: 80,
                    protocol: 6,
                    service: pod("web"),
                    backends: vec![backend("10.0.0.1", "web-1"), backend("10.0.0.2", "web-2")],
                },
                ServiceEntry {
                    address: ip("10.96.0.11"),
                    port: 53,
                    protocol: 17,
                    service: pod("empty"),
                    backends: vec![],
                },
            ],
            ..Default::default()
        };
        let state = build(
            &compiled,
            "node-1",
            &BTreeMap::new(),
            &BTreeMap::new(),
            NodeConfig::default(),
        );
        let web = (abi_address(ip("10.96.0.10")), 80, 6);
        let empty = (abi_address(ip("10.96.0.11")), 53, 17);
        assert_eq!(state.services[&web].backend_count, 2);
        assert_eq!(state.services[&empty].backend_count, 0);
        assert_eq!(state.service_backends.len(), 2);
        let second = state.service_backends[&(web, 1)];
        assert_eq!(second.addr, abi_address(ip("10.0.0.2")));
        assert_eq!(second.port_be, 8080u16.to_be());
    }

    #[test]
    fn endpoints_record_their_first_address_of_each_version() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut compiled = CompiledCluster::default();
        let tables = compiled.nodes.entry("node-1".into()).or_default();
        tables
            .endpoints
            .push(palisade_policy::compile::tables::EndpointEntry {
                pod: pod("client"),
                cgroup_path: None,
                identity: 300,
                policy_id: 1,
                enforce_ingress: false,
                enforce_egress: true,
                deny_raw_sockets: false,
                deny_packet_sockets: false,
                bind_ports: None,
                audit_sockets: false,
            });
        let cgroups = BTreeMap::from([(pod("client"), 77u64)]);
        let ips = BTreeMap::from([(
            pod("client"),
            vec![ip("10.0.0.3"), ip("fd00::3"), ip("10.0.0.4")],
        )]);
        let state = build(&compiled, "node-1", &cgroups, &ips, NodeConfig::default());
        assert_eq!(state.endpoint_addrs.len(), 2);
        assert_eq!(state.endpoint_addrs[&(77, 4)], abi_address(ip("10.0.0.3")));
        assert_eq!(state.endpoint_addrs[&(77, 6)], abi_address(ip("fd00::3")));
        assert_eq!(state.local_addrs.len(), 3);
    }

    #[test]
    fn socket_controls_become_flags_and_bind_ranges() {
        let mut compiled = CompiledCluster::default();
        let tables = compiled.nodes.entry("node-1".into()).or_default();
        let range = |first, last| PortRangeEntry {
            protocol: 6,
            first,
            last,
        };
        let entry = |name: &str, ranges: Vec<PortRangeEntry>| EndpointEntry {
            pod: pod(name),
            cgroup_path: None,
            identity: 300,
            policy_id: 1,
            enforce_ingress: false,
            enforce_egress: true,
            deny_raw_sockets: true,
            deny_packet_sockets: false,
            bind_ports: Some(ranges),
            audit_sockets: true,
        };
        tables
            .endpoints
            .push(entry("ok", vec![range(8080, 8080), range(9000, 9010)]));
        tables.endpoints.push(entry(
            "too-many",
            (0..=MAX_BIND_RANGES as u16)
                .map(|p| range(p + 1, p + 1))
                .collect(),
        ));
        let cgroups = BTreeMap::from([(pod("ok"), 1u64), (pod("too-many"), 2u64)]);
        let state = build(
            &compiled,
            "node-1",
            &cgroups,
            &BTreeMap::new(),
            NodeConfig::default(),
        );
        let flags = state.endpoints[&1].flags;
        assert_eq!(
            flags,
            endpoint_flags::ENFORCE_EGRESS
                | endpoint_flags::DENY_RAW_SOCKETS
                | endpoint_flags::RESTRICT_BIND
                | endpoint_flags::AUDIT_SOCKETS
        );
        let ports = state.bind_ports[&1];
        assert_eq!(ports.count, 2);
        assert_eq!((ports.ranges[1].first, ports.ranges[1].last), (9000, 9010));
        assert_eq!(ports.ranges[2], BindRange::default());
        // Too many ranges: restricted, with no port at all (fail closed).
        assert!(state.endpoints[&2].flags & endpoint_flags::RESTRICT_BIND != 0);
        assert!(!state.bind_ports.contains_key(&2));
    }

    #[test]
    fn ipv4_prefixes_are_mapped_and_masked() {
        let entry = |prefix: &str| IpCacheEntry {
            prefix: prefix.parse::<ipnet::IpNet>().unwrap().trunc(),
            identity: 300,
        };
        let ((addr, bits), _) = ipcache_row(&entry("10.0.1.1/4"));
        assert_eq!(bits, 100);
        assert_eq!(&addr[10..], &[0xff, 0xff, 0, 0, 0, 0]);
        let ((addr, bits), _) = ipcache_row(&entry("fd00::1/128"));
        assert_eq!(bits, 128);
        assert_eq!(addr[15], 1);
    }

    #[test]
    fn policy_rows_are_normalized() {
        let entry = PolicyEntry {
            policy_id: 7,
            peer_identity: 300,
            direction: Direction::Egress,
            protocol: Some(6),
            port: 1027,
            port_prefix_len: 14,
            verdict: Verdict::Allow,
            rule_ref: Some(3),
        };
        let (row, value) = policy_row(&entry);
        assert_eq!(row, (POLICY_PREFIX_ANY_PORT + 14, 7, 300, 1, 6, 1024));
        assert_eq!(value.rule_ref, 3);
        let any = PolicyEntry {
            protocol: None,
            port_prefix_len: 0,
            port: 0,
            rule_ref: None,
            verdict: Verdict::Deny,
            ..entry
        };
        let (row, value) = policy_row(&any);
        assert_eq!(row.0, POLICY_PREFIX_ANY_PROTOCOL);
        assert_eq!(value.rule_ref, RULE_REF_DEFAULT);
    }
}
