//! Compiled rows as `palisade-abi` LPM keys (prefix length + key data) and values: how
//! a [`PolicyEntry`] or [`IpCacheEntry`] is laid out in the kernel maps. The reference
//! evaluator looks rows up through these, the way the kernel does.

use super::tables::{IpCacheEntry, PolicyEntry};
use ipnet::IpNet;
use palisade_abi::{
    IpCacheKey, IpCacheValue, POLICY_PREFIX_ANY_PORT, POLICY_PREFIX_ANY_PROTOCOL, PolicyKey,
    PolicyValue, RULE_REF_DEFAULT, ipcache_prefix_len, v4_mapped,
};
use std::net::IpAddr;

/// An address as the kernel maps store it: IPv6, or IPv4-mapped IPv6.
pub fn abi_address(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => v4_mapped(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Bits of the 16-byte address that a prefix fixes (96 more for IPv4, stored mapped).
fn abi_address_bits(prefix: &IpNet) -> u32 {
    match prefix {
        IpNet::V4(v4) => 96 + u32::from(v4.prefix_len()),
        IpNet::V6(v6) => u32::from(v6.prefix_len()),
    }
}

impl IpCacheEntry {
    /// LPM prefix length of the entry (slot bits included).
    pub fn abi_prefix_len(&self) -> u32 {
        ipcache_prefix_len(abi_address_bits(&self.prefix))
    }

    /// LPM key data of the entry.
    pub fn abi_key(&self, slot: u32) -> IpCacheKey {
        IpCacheKey::new(slot, abi_address(self.prefix.network()))
    }

    pub fn abi_value(&self) -> IpCacheValue {
        IpCacheValue {
            identity: self.identity,
            flags: 0,
        }
    }
}

impl PolicyEntry {
    /// Port prefix bits the entry fixes: `port_prefix_len` capped at 16, and none for a
    /// `protocol: None` entry, which matches every protocol and port.
    fn port_bits(&self) -> u8 {
        match self.protocol {
            None => 0,
            Some(_) => self.port_prefix_len.min(16),
        }
    }

    /// LPM prefix length of the entry (slot bits included).
    pub fn abi_prefix_len(&self) -> u32 {
        match self.protocol {
            None => POLICY_PREFIX_ANY_PROTOCOL,
            Some(_) => POLICY_PREFIX_ANY_PORT + u32::from(self.port_bits()),
        }
    }

    /// LPM key data of the entry, bits past the prefix cleared.
    pub fn abi_key(&self, slot: u32) -> PolicyKey {
        let port_mask = u16::MAX
            .checked_shl(16 - u32::from(self.port_bits()))
            .unwrap_or(0);
        PolicyKey::new(
            slot,
            self.policy_id,
            self.peer_identity,
            self.direction.abi(),
            self.protocol.unwrap_or(0),
            self.port & port_mask,
        )
    }

    pub fn abi_value(&self) -> PolicyValue {
        PolicyValue {
            verdict: self.verdict.abi(),
            flags: 0,
            _pad: 0,
            rule_ref: self.rule_ref.unwrap_or(RULE_REF_DEFAULT),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::tables::Verdict;
    use crate::model::Direction;

    fn entry(protocol: Option<u8>, port: u16, port_prefix_len: u8) -> PolicyEntry {
        PolicyEntry {
            policy_id: 7,
            peer_identity: 300,
            direction: Direction::Egress,
            protocol,
            port,
            port_prefix_len,
            verdict: Verdict::Allow,
            rule_ref: None,
        }
    }

    #[test]
    fn policy_keys_follow_the_prefix_layout() {
        assert_eq!(
            entry(None, 80, 16).abi_prefix_len(),
            POLICY_PREFIX_ANY_PROTOCOL
        );
        let any = entry(None, 80, 16).abi_key(1);
        assert_eq!((any.protocol, any.dport_be), (0, 0));
        assert_eq!(u32::from_be(any.slot_be), 1);
        assert_eq!(u32::from_be(any.policy_id_be), 7);
        assert_eq!(u32::from_be(any.peer_identity_be), 300);

        assert_eq!(
            entry(Some(6), 80, 0).abi_prefix_len(),
            POLICY_PREFIX_ANY_PORT
        );
        assert_eq!(entry(Some(6), 80, 0).abi_key(0).dport_be, 0);

        let block = entry(Some(6), 1000 | 7, 13);
        assert_eq!(block.abi_prefix_len(), POLICY_PREFIX_ANY_PORT + 13);
        assert_eq!(u16::from_be(block.abi_key(0).dport_be), 1000);

        let exact = entry(Some(17), 53, 40);
        assert_eq!(exact.abi_prefix_len(), POLICY_PREFIX_ANY_PORT + 16);
        assert_eq!(u16::from_be(exact.abi_key(0).dport_be), 53);
        assert_eq!(entry(None, 0, 0).abi_value().rule_ref, RULE_REF_DEFAULT);
    }

    #[test]
    fn ipcache_keys_map_ipv4() {
        let v4 = IpCacheEntry {
            prefix: "10.0.0.0/8".parse().unwrap(),
            identity: 300,
        };
        assert_eq!(v4.abi_prefix_len(), 32 + 96 + 8);
        assert_eq!(v4.abi_key(0).addr, v4_mapped([10, 0, 0, 0]));
        let v6 = IpCacheEntry {
            prefix: "fd00::/64".parse().unwrap(),
            identity: 300,
        };
        assert_eq!(v6.abi_prefix_len(), 32 + 64);
        assert_eq!(v6.abi_value().identity, 300);
    }
}
