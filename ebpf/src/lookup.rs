//! Table lookups: address -> identity (ip cache), and (endpoint, peer, port) -> verdict.

use aya_ebpf::maps::lpm_trie::Key;
use palisade_abi::{
    IPCACHE_KEY_BITS, IPCACHE4_KEY_BITS, IpCache4Key, IpCacheHostKey, IpCacheKey,
    POLICY_KEY_BITS, PolicyKey, PolicyValue, reserved,
};

use crate::maps::{IPCACHE, IPCACHE_HOSTS, IPCACHE4, POLICY};

/// Identity of `addr` in `slot`; addresses the cache does not cover are WORLD. Host
/// entries are an exact-match hash in front of the tries (a host entry is the longest
/// prefix an address can have, so a hit there is the trie's answer too); IPv4
/// (mapped) addresses are then looked up in the IPv4 trie, others in the IPv6 one.
#[inline(always)]
pub fn identity_of(slot: u32, addr: [u8; 16]) -> u32 {
    let host = IpCacheHostKey { slot, addr };
    // SAFETY: plain data, read at once.
    if let Some(v) = unsafe { IPCACHE_HOSTS.get(&host) } {
        return v.identity;
    }
    let found = if is_v4_mapped(&addr) {
        let v4 = [addr[12], addr[13], addr[14], addr[15]];
        IPCACHE4.get(&Key::new(IPCACHE4_KEY_BITS, IpCache4Key::new(slot, v4)))
    } else {
        IPCACHE.get(&Key::new(IPCACHE_KEY_BITS, IpCacheKey::new(slot, addr)))
    };
    match found {
        Some(v) => v.identity,
        None => reserved::WORLD,
    }
}

/// `::ffff:a.b.c.d`, the form every IPv4 address takes in the programs.
#[inline(always)]
fn is_v4_mapped(addr: &[u8; 16]) -> bool {
    addr[..10] == [0; 10] && addr[10] == 0xff && addr[11] == 0xff
}

/// The entry of the peer's own table for this protocol and port, if any.
#[inline(always)]
pub fn peer_verdict(
    slot: u32,
    policy_id: u32,
    peer_identity: u32,
    direction: u8,
    protocol: u8,
    dport: u16,
) -> Option<PolicyValue> {
    let specific = Key::new(
        POLICY_KEY_BITS,
        PolicyKey::new(slot, policy_id, peer_identity, direction, protocol, dport),
    );
    POLICY.get(&specific).copied()
}

/// The policy entry deciding a new flow: the peer's own table if the endpoint's policy
/// names the peer, else the table for every peer. `None` means no entry at all, which
/// callers treat as deny.
#[inline(always)]
pub fn policy_verdict(
    slot: u32,
    policy_id: u32,
    peer_identity: u32,
    direction: u8,
    protocol: u8,
    dport: u16,
) -> Option<PolicyValue> {
    if let Some(v) = peer_verdict(slot, policy_id, peer_identity, direction, protocol, dport) {
        return Some(v);
    }
    let any = Key::new(
        POLICY_KEY_BITS,
        PolicyKey::new(slot, policy_id, reserved::ANY, direction, protocol, dport),
    );
    POLICY.get(&any).copied()
}
