//! Early rejection at the socket: `cgroup/connect4` and `cgroup/connect6` refuse a TCP
//! connection that policy denies, so the caller gets EPERM at once instead of a
//! timeout while its SYNs are dropped. The packet programs remain the backstop.
//!
//! A connection to a Service address (TCP or UDP) is first translated to one of the
//! Service's backends and decided for that backend (`sock_lb.rs`); everything below
//! concerns connections to anything else.
//!
//! Only TCP is decided here: a datagram that egress policy drops already fails its
//! send with EPERM at the packet level, and a connected UDP socket may be a reply
//! path that only conntrack (in the packet programs) can recognise.
//!
//! These hooks run in the calling process, so the endpoint is resolved from the
//! caller's cgroup (the packet programs use the socket's, which is the same unless a
//! socket is passed between cgroups; the packet path then decides).

use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};
use palisade_abi::{FlowEvent, LocalAddrKey, direction, verdict};

use crate::maps::{CONFIG, GEN, LOCAL_ADDRS};
use crate::service::Pick;
use crate::sock_lb::{self, Forwarded, PROCEED, REJECT};
use crate::{endpoint, events, packet, sock_addr, verdict as policy};

#[cgroup_sock_addr(connect4)]
pub fn palisade_connect4(ctx: SockAddrContext) -> i32 {
    connect::<false>(&ctx)
}

#[cgroup_sock_addr(connect6)]
pub fn palisade_connect6(ctx: SockAddrContext) -> i32 {
    // An AF_INET6 socket connecting to ::ffff:a.b.c.d lands here too; the mapped form
    // is how IPv4 is stored everywhere, so it gets the IPv4 verdict (and the IPv4
    // Service).
    connect::<true>(&ctx)
}

#[inline(always)]
fn connect<const V6: bool>(ctx: &SockAddrContext) -> i32 {
    match sock_lb::forward::<V6>(ctx, Pick::Random) {
        Forwarded::NotAService => decide(ctx, sock_addr::user_addr::<V6>(ctx)),
        Forwarded::Translated => PROCEED,
        Forwarded::Refused => REJECT,
    }
}

#[inline(always)]
fn decide(ctx: &SockAddrContext, remote: [u8; 16]) -> i32 {
    // SAFETY: reading 4-byte fields of the program's own context.
    let (protocol, user_port) = unsafe { ((*ctx.sock_addr).protocol, (*ctx.sock_addr).user_port) };
    if protocol != u32::from(packet::IPPROTO_TCP) || is_loopback(&remote) {
        return PROCEED;
    }
    // user_port holds the port in network byte order in its low 16 bits.
    let port = u16::from_be(user_port as u16);
    let generation = GEN.get(0).map(|g| g.generation).unwrap_or(0);
    let slot = generation & 1;
    let Some(ep) = endpoint::resolve_current(slot) else {
        // Not a known endpoint: the packet programs apply the node's default.
        return PROCEED;
    };
    let own = LocalAddrKey { slot, addr: remote };
    // SAFETY: plain data, compared at once.
    if unsafe { LOCAL_ADDRS.get(&own) }.is_some_and(|owner| *owner == ep.cgroup_id) {
        return PROCEED;
    }
    let d = policy::decide_flow(
        slot,
        &ep.info,
        remote,
        direction::EGRESS,
        packet::IPPROTO_TCP,
        port,
    );
    if d.verdict != verdict::DENY {
        // Allowed and audit-denied connections go ahead; the packet programs admit
        // (and report) them.
        return PROCEED;
    }
    events::count(d.reason);
    let config = CONFIG.get(slot).copied().unwrap_or_default();
    events::emit(ep.cgroup_id, &config, |e: &mut FlowEvent| {
        e.cgroup_id = ep.cgroup_id;
        e.remote_addr = remote;
        e.remote_port = port;
        e.protocol = packet::IPPROTO_TCP;
        e.direction = direction::EGRESS;
        e.verdict = verdict::DENY;
        e.ip_version = if palisade_abi::is_v4_mapped(&remote) {
            4
        } else {
            6
        };
        e.identity = ep.info.identity;
        e.peer_identity = d.peer_identity;
        e.policy_id = ep.info.policy_id;
        e.rule_ref = d.rule_ref;
        e.generation = generation;
    });
    REJECT
}

/// 127.0.0.0/8, ::1 and their IPv4-mapped forms never leave the pod.
#[inline(always)]
fn is_loopback(addr: &[u8; 16]) -> bool {
    if palisade_abi::is_v4_mapped(addr) {
        return addr[12] == 127;
    }
    addr[..15].iter().all(|b| *b == 0) && addr[15] == 1
}
