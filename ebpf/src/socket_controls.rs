//! Socket controls for untrusted workloads (EgressPolicy `sockets`), which packet
//! filters cannot offer: no raw IP sockets, no packet sockets, `bind()` only to
//! allowed ports. Each refusal is counted and reported as an event naming the
//! endpoint's policy; with `AUDIT_SOCKETS` the call is reported and allowed.
//!
//! - `cgroup/sock_create` sees every socket a process in the protected subtree
//!   creates with an IP family (`AF_INET`, `AF_INET6`): it refuses `SOCK_RAW` there.
//!   It also checks `AF_PACKET`, should a kernel run it for other families (this one
//!   does not: `inet_create`/`inet6_create` are its only callers).
//! - `lsm_cgroup/socket_post_create` (BPF LSM, kernel >= 6.0 with `bpf` in the active
//!   LSM list) sees every family: it refuses `AF_PACKET` (whose frames bypass every
//!   cgroup network hook) and, as a second layer, raw IP sockets.
//! - `cgroup/bind4` and `bind6` refuse an explicit `bind()` to a port outside the
//!   endpoint's ranges (`PALISADE_BIND_PORTS`). Port 0 (let the kernel choose) is
//!   allowed: the kernel then picks an ephemeral port, as it does for the implicit
//!   binds (autobind by `listen()`, `connect()` or a send on an unbound socket) that
//!   these hooks never see. Bind ranges therefore restrict the ports a workload can
//!   choose, not the ephemeral range (`net.ipv4.ip_local_port_range`).
//!
//! Returning 0 makes the call fail with EPERM; 1 lets it go on.

use aya_ebpf::{
    macros::{cgroup_sock, cgroup_sock_addr, lsm_cgroup},
    programs::{LsmContext, SockAddrContext, SockContext},
};
use palisade_abi::{
    BindPorts, EndpointKey, FlowEvent, MAX_BIND_RANGES, direction, endpoint_flags, event_kind,
    reason, verdict,
};

use crate::endpoint::{self, Endpoint};
use crate::maps::{BIND_PORTS, CONFIG, GEN};
use crate::{events, sock_addr};

const ALLOW: i32 = 1;
const REFUSE: i32 = 0;

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
const AF_PACKET: u32 = 17;
const SOCK_RAW: u32 = 3;
/// `type` of `socket()` may carry `SOCK_NONBLOCK | SOCK_CLOEXEC` in the LSM hook's
/// argument; the socket type is the low bits.
const SOCK_TYPE_MASK: u32 = 0xf;

#[cgroup_sock(sock_create)]
pub fn palisade_sock_create(ctx: SockContext) -> i32 {
    // SAFETY: reading 4-byte fields of the program's own context.
    let (family, kind, protocol) =
        unsafe { ((*ctx.sock).family, (*ctx.sock).type_, (*ctx.sock).protocol) };
    decide_socket(family, kind, protocol)
}

#[lsm_cgroup(hook = "socket_post_create")]
pub fn palisade_socket_post_create(ctx: LsmContext) -> i32 {
    // socket_post_create(struct socket *sock, int family, int type, int protocol,
    // int kern): sockets the kernel creates for itself are not the workload's.
    let family: i32 = ctx.arg(1);
    let kind: i32 = ctx.arg(2);
    let protocol: i32 = ctx.arg(3);
    let kern: i32 = ctx.arg(4);
    if kern != 0 {
        return ALLOW;
    }
    decide_socket(family as u32, kind as u32, protocol as u32)
}

#[cgroup_sock_addr(bind4)]
pub fn palisade_bind4(ctx: SockAddrContext) -> i32 {
    decide_bind::<false>(&ctx)
}

#[cgroup_sock_addr(bind6)]
pub fn palisade_bind6(ctx: SockAddrContext) -> i32 {
    decide_bind::<true>(&ctx)
}

#[inline(always)]
fn decide_socket(family: u32, kind: u32, protocol: u32) -> i32 {
    let (flag, kind_reported, ip_version) = if family == AF_PACKET {
        (endpoint_flags::DENY_PACKET_SOCKETS, event_kind::PACKET_SOCKET, 0)
    } else if (family == AF_INET || family == AF_INET6) && kind & SOCK_TYPE_MASK == SOCK_RAW {
        let version = if family == AF_INET { 4 } else { 6 };
        (endpoint_flags::DENY_RAW_SOCKETS, event_kind::RAW_SOCKET, version)
    } else {
        return ALLOW;
    };
    let generation = GEN.get(0).map(|g| g.generation).unwrap_or(0);
    let slot = generation & 1;
    let Some(ep) = endpoint::resolve_current(slot) else {
        return ALLOW;
    };
    if ep.info.flags & flag == 0 {
        return ALLOW;
    }
    refuse(&ep, generation, |e: &mut FlowEvent| {
        e.kind = kind_reported;
        e.ip_version = ip_version;
        if kind_reported == event_kind::PACKET_SOCKET {
            // The ethertype, as passed to socket() (network byte order).
            e.remote_port = u16::from_be(protocol as u16);
        } else {
            e.protocol = protocol as u8;
        }
    })
}

#[inline(always)]
fn decide_bind<const V6: bool>(ctx: &SockAddrContext) -> i32 {
    let port = u16::from_be(sock_addr::user_port_be(ctx));
    if port == 0 {
        // The kernel picks an ephemeral port: not the workload's choice.
        return ALLOW;
    }
    let generation = GEN.get(0).map(|g| g.generation).unwrap_or(0);
    let slot = generation & 1;
    let Some(ep) = endpoint::resolve_current(slot) else {
        return ALLOW;
    };
    if ep.info.flags & endpoint_flags::RESTRICT_BIND == 0 {
        return ALLOW;
    }
    let protocol = sock_addr::protocol(ctx);
    let key = EndpointKey {
        cgroup_id: ep.cgroup_id,
        slot,
        _pad: 0,
    };
    // SAFETY: plain data, read before any map update.
    if let Some(ports) = unsafe { BIND_PORTS.get(&key) }
        && allows(ports, protocol, port)
    {
        return ALLOW;
    }
    let local = sock_addr::user_addr::<V6>(ctx);
    refuse(&ep, generation, |e: &mut FlowEvent| {
        e.kind = event_kind::BIND;
        e.local_addr = local;
        e.local_port = port;
        e.protocol = protocol;
        e.ip_version = if palisade_abi::is_v4_mapped(&local) || !V6 {
            4
        } else {
            6
        };
    })
}

/// Whether one of the endpoint's ranges holds `port` for `protocol`.
#[inline(always)]
fn allows(ports: &BindPorts, protocol: u8, port: u16) -> bool {
    for i in 0..MAX_BIND_RANGES {
        if i as u32 >= ports.count {
            break;
        }
        let r = &ports.ranges[i];
        if r.protocol == protocol && r.first <= port && port <= r.last {
            return true;
        }
    }
    false
}

/// Reports a refused socket call of `ep` (the event names its policy; `fill` adds
/// what was asked for) and returns the answer: refused, or allowed in audit mode.
#[inline(always)]
fn refuse(ep: &Endpoint, generation: u32, fill: impl FnOnce(&mut FlowEvent)) -> i32 {
    let audit = ep.info.flags & endpoint_flags::AUDIT_SOCKETS != 0;
    let (v, why, answer) = if audit {
        (verdict::AUDIT_DENY, reason::AUDIT_DENIED_SOCKET, ALLOW)
    } else if crate::maps::enforcement_off() {
        (verdict::AUDIT_DENY, reason::ALLOWED_ENFORCEMENT_OFF, ALLOW)
    } else {
        (verdict::DENY, reason::DENIED_SOCKET, REFUSE)
    };
    events::count(why);
    let config = CONFIG.get(generation & 1).copied().unwrap_or_default();
    events::emit(ep.cgroup_id, &config, |e: &mut FlowEvent| {
        e.cgroup_id = ep.cgroup_id;
        e.direction = direction::EGRESS;
        e.verdict = v;
        e.identity = ep.info.identity;
        e.policy_id = ep.info.policy_id;
        e.rule_ref = palisade_abi::RULE_REF_DEFAULT;
        e.generation = generation;
        fill(e);
    });
    answer
}
