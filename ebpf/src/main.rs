//! palisade's kernel programs: cgroup_skb egress and ingress.
//!
//! Attached once at the protected cgroup subtree root, they decide every IP packet of
//! every socket below it:
//! 1. loopback traffic and ICMPv6 neighbour discovery always pass;
//! 2. a packet of a tracked connection passes (`PALISADE_CT`; replies included) if
//!    the policy generation that admitted it is current; otherwise the flow is
//!    decided again like a new one, and stops if policy now denies it;
//! 3. otherwise the packet starts a new flow: its endpoint is resolved from the
//!    socket's cgroup (`endpoint.rs`), the peer's identity from the ip cache, and the
//!    verdict from the endpoint's policy table (`lookup.rs`); the node itself is always
//!    allowed; an allowed flow is tracked so its replies pass in both directions;
//! 4. denied (and audit-denied) new flows become events in `PALISADE_EVENTS` (allowed
//!    ones too when the node config asks for them).
//!
//! An ICMP/ICMPv6 error quoting a packet of a flow tracked under the current
//! generation passes as part of that flow (`related_icmp`); other ICMP is decided by
//! policy like any protocol. A full conntrack table evicts its least recently used
//! entry; the evicted flow's next packet is decided by policy as a new flow, never
//! passed blindly, and counted (`CONNTRACK_MISS_ESTABLISHED` for TCP).
//!
//! `connect.rs` adds `cgroup/connect4` and `connect6` hooks that refuse a denied TCP
//! connection at the socket (EPERM at once), with the same decision (`verdict.rs`).
//! `sock_lb.rs` translates Service addresses to backends at the socket (connect,
//! sendmsg) and back (recvmsg, getpeername), so policy always sees the backend.
//!
//! All tables are read in the slot the generation word names, so a table update
//! published by the agent takes effect for every packet at once.
#![no_std]
#![no_main]

mod connect;
mod endpoint;
mod events;
mod lookup;
mod maps;
mod packet;
mod service;
mod service_policy;
mod sock_addr;
mod sock_flow;
mod sock_lb;
mod socket_controls;
mod verdict;

use aya_ebpf::{bindings::BPF_NOEXIST, macros::cgroup_skb, programs::SkBuffContext};
use palisade_abi::{CtKey, CtValue, FlowEvent, direction, node_flags, reason, verdict as verdicts};

use crate::maps::{CONFIG, CT, GEN};

/// cgroup_skb return codes.
const PASS: i32 = 1;
const DROP: i32 = 0;
/// Every network namespace's loopback device has ifindex 1.
const LOOPBACK_IFINDEX: u32 = 1;
/// ICMPv6 router solicitation .. redirect (133..=137): neighbour discovery.
const ICMPV6_ND_FIRST: u8 = 133;
const ICMPV6_ND_LAST: u8 = 137;
/// `-EEXIST` from a map update with `BPF_NOEXIST`: another CPU tracked the flow first.
const EEXIST: i32 = -17;

#[cgroup_skb(egress)]
pub fn palisade_egress(ctx: SkBuffContext) -> i32 {
    decide(&ctx, direction::EGRESS)
}

#[cgroup_skb(ingress)]
pub fn palisade_ingress(ctx: SkBuffContext) -> i32 {
    decide(&ctx, direction::INGRESS)
}

#[inline(always)]
fn decide(ctx: &SkBuffContext, dir: u8) -> i32 {
    // SAFETY: reading a field of the program's own context.
    if unsafe { (*ctx.skb.skb).ifindex } == LOOPBACK_IFINDEX {
        events::count(reason::ALLOWED_ALWAYS);
        return PASS;
    }
    let Some(pkt) = packet::parse(ctx) else {
        events::count(reason::NOT_IP);
        return PASS;
    };
    if pkt.protocol == packet::IPPROTO_ICMPV6
        && pkt.icmp_type >= ICMPV6_ND_FIRST
        && pkt.icmp_type <= ICMPV6_ND_LAST
    {
        events::count(reason::ALLOWED_ALWAYS);
        return PASS;
    }

    let egress = dir == direction::EGRESS;
    if egress && pkt.fragment {
        // Only raw sockets emit fragments (cgroup_skb egress runs before the kernel
        // fragments): a non-first one has no ports to decide on, and a first one
        // would let its followers through. Dropped for every cgroup under the root.
        if maps::enforcement_off() {
            events::count(reason::ALLOWED_ENFORCEMENT_OFF);
            return PASS;
        }
        events::count(reason::DENIED_FRAGMENT);
        return DROP;
    }
    let generation = GEN.get(0).map(|g| g.generation).unwrap_or(0);
    let slot = generation & 1;
    let (local_port, remote_port) = if egress {
        (pkt.sport, pkt.dport)
    } else {
        (pkt.dport, pkt.sport)
    };
    let ct_key = CtKey {
        local_addr: if egress { pkt.src } else { pkt.dst },
        remote_addr: if egress { pkt.dst } else { pkt.src },
        local_port_be: local_port.to_be(),
        remote_port_be: remote_port.to_be(),
        protocol: pkt.protocol,
        _pad: [0; 3],
    };
    if pkt.quote_offset != 0 && related_icmp(ctx, &pkt, &ct_key, egress, generation) {
        events::count(reason::ALLOWED_RELATED_ICMP);
        return PASS;
    }

    // The socket's own cache of its last allowed flow (`sock_flow.rs`): the common
    // case of an established connection, decided without hashing.
    if sock_flow::passes(ctx, &ct_key, generation) {
        events::count(reason::ALLOWED_CONNTRACK);
        return PASS;
    }

    // A tracked flow passes if the policy generation that admitted it is current.
    // Otherwise policy changed since: the flow is decided again, as its first packet
    // was (same direction and server port), and stops here if it is now denied.
    let tracked = CT.get_ptr_mut(&ct_key);
    let (flow_dir, flow_port) = match tracked {
        Some(ct) => {
            // SAFETY: the pointer is valid for this program run; plain data.
            let (origin, admitted_in, ct_flags) =
                unsafe { ((*ct).origin, (*ct).generation, (*ct).flags) };
            // A flow admitted only because enforcement was off is decided again once
            // it is back on.
            if admitted_in == generation
                && (ct_flags & palisade_abi::ct_flags::ENFORCEMENT_OFF == 0
                    || maps::enforcement_off())
            {
                events::count(reason::ALLOWED_CONNTRACK);
                if ct_flags & palisade_abi::ct_flags::ENFORCEMENT_OFF == 0 {
                    sock_flow::remember(ctx, &ct_key, generation);
                }
                return PASS;
            }
            let server_port = if origin == direction::EGRESS {
                remote_port
            } else {
                local_port
            };
            (origin, server_port)
        }
        None => {
            if pkt.protocol == packet::IPPROTO_TCP
                && pkt.tcp_flags & (packet::TCP_SYN | packet::TCP_ACK) != packet::TCP_SYN
            {
                // Not a connection opener, yet untracked: its entry was evicted (or
                // removed by a policy change). Decided below as a new flow.
                events::count(reason::CONNTRACK_MISS_ESTABLISHED);
            }
            (dir, pkt.dport)
        }
    };

    let Some(ep) = endpoint::resolve(ctx, slot) else {
        events::count(reason::UNKNOWN_ENDPOINT);
        let unknown = CONFIG
            .get(slot)
            .map(|c| c.unknown_endpoint_verdict)
            .unwrap_or(verdicts::DENY as u32);
        if unknown == verdicts::ALLOW as u32 {
            if let Some(ct) = tracked {
                // SAFETY: as above. Still allowed under this generation: later
                // packets of the flow take the fast path again.
                unsafe { (*ct).generation = generation };
            }
            return PASS;
        }
        if maps::enforcement_off() {
            events::count(reason::ALLOWED_ENFORCEMENT_OFF);
            return PASS;
        }
        if tracked.is_some() {
            untrack(&ct_key);
        }
        return DROP;
    };

    let d = verdict::decide_flow(
        slot,
        &ep.info,
        ct_key.remote_addr,
        flow_dir,
        pkt.protocol,
        flow_port,
    );
    let (decision, rule_ref) = (d.verdict, d.rule_ref);
    let flags = if d.switched_off {
        palisade_abi::ct_flags::ENFORCEMENT_OFF
    } else {
        0
    };
    events::count(d.reason);

    let config = CONFIG.get(slot).copied().unwrap_or_default();
    let report = decision != verdicts::ALLOW
        || (tracked.is_none() && config.flags & node_flags::ALLOW_EVENTS != 0);
    if report {
        events::emit(ep.cgroup_id, &config, |e: &mut FlowEvent| {
            e.cgroup_id = ep.cgroup_id;
            e.local_addr = ct_key.local_addr;
            e.remote_addr = ct_key.remote_addr;
            e.local_port = local_port;
            e.remote_port = remote_port;
            e.protocol = pkt.protocol;
            e.direction = flow_dir;
            e.verdict = decision;
            e.ip_version = pkt.ip_version;
            e.identity = ep.info.identity;
            e.peer_identity = d.peer_identity;
            e.policy_id = ep.info.policy_id;
            e.rule_ref = rule_ref;
            e.generation = generation;
        });
    }
    if decision == verdicts::DENY {
        if tracked.is_some() {
            untrack(&ct_key);
        }
        return DROP;
    }

    if let Some(ct) = tracked {
        // SAFETY: as above; the entry stays tracked, now under this generation.
        unsafe {
            (*ct).generation = generation;
            (*ct).verdict = decision;
            (*ct).rule_ref = rule_ref;
            (*ct).flags = flags;
        }
        // The socket cache has no switch bit: a flow only the off switch lets
        // through is never cached, so it is decided again once enforcement is on.
        if flags == 0 {
            sock_flow::remember(ctx, &ct_key, generation);
        }
        return PASS;
    }
    let entry = CtValue {
        origin: dir,
        verdict: decision,
        flags,
        generation,
        rule_ref,
        _reserved: 0,
    };
    // A full LRU table makes room by evicting its least recently used entry; an insert
    // fails only when the kernel finds no element to reuse at all.
    match CT.insert(&ct_key, &entry, u64::from(BPF_NOEXIST)) {
        Ok(()) => {
            events::count(reason::CONNTRACK_CREATED);
            if flags == 0 {
                sock_flow::remember(ctx, &ct_key, generation);
            }
        }
        Err(EEXIST) => {}
        Err(err) => {
            // The packet itself was allowed; its replies, if their direction is
            // isolated, will be re-decided by policy (fail closed), not passed.
            events::count(reason::CONNTRACK_INSERT_FAILED);
            aya_log_ebpf::warn!(ctx, "palisade: conntrack insert failed: {}", err);
        }
    }
    PASS
}

/// Deletes a flow's entry because policy no longer allows it, counting the deletion
/// (user space derives evictions from created, removed and live entries).
#[inline(always)]
fn untrack(key: &CtKey) {
    if CT.remove(key).is_ok() {
        events::count(reason::CONNTRACK_REMOVED);
    }
}

/// Whether an ICMP/ICMPv6 error is about a flow tracked under `generation`: the
/// quoted packet, turned into the conntrack key of the side it was sent by, has an
/// entry. An error leaving an endpoint quotes a packet the endpoint received, so it
/// must go back to that packet's sender from the address it was sent to (nothing
/// else: a raw socket cannot use a tracked flow to reach a third party); an error
/// arriving quotes a packet the endpoint sent, and may come from any router on the
/// way. A stale entry (older generation) does not count: the error is then decided
/// by policy as ICMP, and the flow's own next packet revalidates the entry.
///
#[inline(always)]
fn related_icmp(
    ctx: &SkBuffContext,
    pkt: &packet::Packet,
    outer: &CtKey,
    egress: bool,
    generation: u32,
) -> bool {
    let Some(key) = packet::quoted_key(ctx, pkt, !egress) else {
        return false;
    };
    // The error goes to (or comes from) the flow's own endpoint address; leaving, it
    // also goes back to the flow's peer.
    if key.local_addr != outer.local_addr || (egress && key.remote_addr != outer.remote_addr) {
        return false;
    }
    // SAFETY: plain data, read at once.
    unsafe { CT.get(&key) }.is_some_and(|ct| ct.generation == generation)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual BSD/GPL\0";
