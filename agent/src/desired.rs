//! What the kernel maps of this node must hold, computed from compiled policy. Pure:
//! the agent's I/O (cgroup resolution, map writes) happens around it.
//!
//! Keys here carry no slot: the slot is chosen when the state is written
//! (`datapath::tables`). Every key is normalized (bits past its prefix length are
//! zero) so that two keys the LPM trie treats as one compare equal here too.

use palisade_abi::{
    EndpointInfo, IpCacheValue, NodeConfig, POLICY_PREFIX_ANY_PORT, POLICY_PREFIX_ANY_PROTOCOL,
    PolicyValue, RULE_REF_DEFAULT, endpoint_flags, reserved, v4_mapped,
};
use palisade_policy::compile::tables::{CompiledCluster, PolicyEntry};
use palisade_policy::model::ObjectRef;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// An ip cache prefix: 16-byte address (IPv4-mapped for IPv4) and the number of
/// significant address bits (96 + n for an IPv4 /n).
pub type IpPrefix = ([u8; 16], u32);

/// A policy entry's key without its slot:
/// (prefixlen, policy_id, peer_identity, direction, protocol, dport).
pub type PolicyRow = (u32, u32, u32, u8, u8, u16);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredState {
    pub config: NodeConfig,
    /// cgroup id -> endpoint.
    pub endpoints: BTreeMap<u64, EndpointInfo>,
    pub ipcache: BTreeMap<IpPrefix, IpCacheValue>,
    pub policy: BTreeMap<PolicyRow, PolicyValue>,
}

/// Builds the node's desired state. `cgroup_ids` maps the pods of this node whose
/// cgroup exists to its id; endpoints without one are left out (they are pending).
pub fn build(
    compiled: &CompiledCluster,
    node: &str,
    cgroup_ids: &BTreeMap<ObjectRef, u64>,
    config: NodeConfig,
) -> DesiredState {
    let mut state = DesiredState {
        config,
        ..Default::default()
    };
    for entry in &compiled.ipcache {
        state.ipcache.insert(
            prefix_of(entry.prefix.addr(), entry.prefix.prefix_len()),
            IpCacheValue {
                identity: entry.identity,
                flags: 0,
            },
        );
    }
    let Some(tables) = compiled.nodes.get(node) else {
        return state;
    };
    for addr in &tables.host_addresses {
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        state.ipcache.insert(
            prefix_of(*addr, bits),
            IpCacheValue {
                identity: reserved::HOST,
                flags: 0,
            },
        );
    }
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
    for entry in &tables.policy {
        let (row, value) = policy_row(entry);
        state.policy.insert(row, value);
    }
    state
}

/// The 16-byte form and address-bit count of `addr/len`, host bits cleared.
pub fn prefix_of(addr: IpAddr, len: u8) -> IpPrefix {
    match addr {
        IpAddr::V4(a) => {
            let len = u32::from(len.min(32));
            let masked = u32::from(a) & mask32(len);
            (v4_mapped(masked.to_be_bytes()), 96 + len)
        }
        IpAddr::V6(a) => {
            let len = u32::from(len.min(128));
            let masked = u128::from(a) & mask128(len);
            (masked.to_be_bytes(), len)
        }
    }
}

fn mask32(len: u32) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

fn mask128(len: u32) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    }
}

/// The trie key and value of one compiled policy entry.
pub fn policy_row(entry: &PolicyEntry) -> (PolicyRow, PolicyValue) {
    let (prefixlen, protocol, port) = match entry.protocol {
        None => (POLICY_PREFIX_ANY_PROTOCOL, 0, 0),
        Some(protocol) => {
            let bits = u32::from(entry.port_prefix_len.min(16));
            let port_mask = if bits == 0 {
                0
            } else {
                u16::MAX << (16 - bits)
            };
            (
                POLICY_PREFIX_ANY_PORT + bits,
                protocol,
                entry.port & port_mask,
            )
        }
    };
    (
        (
            prefixlen,
            entry.policy_id,
            entry.peer_identity,
            entry.direction.abi(),
            protocol,
            port,
        ),
        PolicyValue {
            verdict: entry.verdict.abi(),
            flags: 0,
            _pad: 0,
            rule_ref: entry.rule_ref.unwrap_or(RULE_REF_DEFAULT),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_policy::compile::tables::Verdict;
    use palisade_policy::model::Direction;

    #[test]
    fn ipv4_prefixes_are_mapped_and_masked() {
        let (addr, bits) = prefix_of("10.0.1.1".parse().unwrap(), 4);
        assert_eq!(bits, 100);
        assert_eq!(&addr[10..], &[0xff, 0xff, 0, 0, 0, 0]);
        let (addr, bits) = prefix_of("fd00::1".parse().unwrap(), 128);
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
