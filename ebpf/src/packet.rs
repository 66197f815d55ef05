//! Reads the fields a decision needs from an IP packet in a cgroup_skb context.
//!
//! In cgroup_skb programs the packet starts at the IP header. IPv4 addresses are
//! returned IPv4-mapped so that the rest of the program deals with one address form.
//! IPv6 extension headers are walked (bounded) to find the transport header. An ICMP or
//! ICMPv6 error carries the start of the packet it is about; that quoted packet's
//! addresses, protocol and ports are read too, so conntrack can tell an error about a
//! tracked flow from any other ICMP.

use aya_ebpf::programs::SkBuffContext;
use palisade_abi::{CtKey, v4_mapped};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_SCTP: u8 = 132;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_DSTOPTS: u8 = 60;
/// Extension headers walked before giving up (a packet with more is treated as
/// carrying an unknown protocol, which policy can only allow by "all protocols").
const MAX_IPV6_EXT_HEADERS: usize = 6;

/// The parts of a packet that policy and conntrack look at.
pub struct Packet {
    pub ip_version: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Transport protocol (after IPv6 extension headers).
    pub protocol: u8,
    /// Host byte order; zero for portless protocols and non-first fragments.
    pub sport: u16,
    pub dport: u16,
    /// ICMP/ICMPv6 type, zero otherwise.
    pub icmp_type: u8,
    /// TCP flags (byte 13 of the TCP header), zero otherwise.
    pub tcp_flags: u8,
    /// Any fragment (IPv4 MF set or a non-zero offset; an IPv6 fragment header).
    /// Leaving an endpoint, only a raw socket emits one (cgroup_skb egress runs
    /// before the kernel fragments).
    pub fragment: bool,
    /// For an ICMP/ICMPv6 error: offset of the packet it quotes (zero otherwise).
    /// Read by [`quoted_key`] only when needed, to keep the common path's stack small.
    pub quote_offset: u32,
}

pub const TCP_SYN: u8 = 0x02;
pub const TCP_ACK: u8 = 0x10;

/// ICMP error types that quote the offending packet (RFC 792): destination
/// unreachable, time exceeded, parameter problem.
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMP_PARAMETER_PROBLEM: u8 = 12;
/// ICMPv6 error types (RFC 4443): destination unreachable, packet too big, time
/// exceeded, parameter problem.
const ICMPV6_ERROR_FIRST: u8 = 1;
const ICMPV6_ERROR_LAST: u8 = 4;
/// An ICMP/ICMPv6 error header is 8 bytes; the quoted packet follows.
const ICMP_ERROR_HEADER: usize = 8;

/// Parses the packet; `None` if it is not IPv4/IPv6 or too short to read.
#[inline(always)]
pub fn parse(ctx: &SkBuffContext) -> Option<Packet> {
    let proto = u16::from_be(ctx.skb.protocol() as u16);
    match proto {
        ETH_P_IP => parse_v4(ctx),
        ETH_P_IPV6 => parse_v6(ctx),
        _ => None,
    }
}

/// IPv4 header without options (20 bytes) plus the first 14 bytes of a TCP header.
const V4_TCP_DIRECT_BYTES: usize = 20 + 14;

/// The common case read straight from the linear packet data (no helper call): an
/// unfragmented IPv4 TCP or UDP packet without IP options whose first 34 bytes are in
/// the linear part. Anything else returns None and takes the general path.
#[inline(always)]
fn parse_v4_direct(ctx: &SkBuffContext) -> Option<Packet> {
    // SAFETY: reading two fields of the program's own context.
    let (data, end) = unsafe { ((*ctx.skb.skb).data as usize, (*ctx.skb.skb).data_end as usize) };
    if data + V4_TCP_DIRECT_BYTES > end {
        return None;
    }
    // SAFETY: the bounds check above covers every byte read (the verifier checks it).
    let hdr = unsafe { &*(data as *const [u8; V4_TCP_DIRECT_BYTES]) };
    let protocol = hdr[9];
    if hdr[0] != 0x45
        || hdr[6] & 0x3f != 0
        || hdr[7] != 0
        || (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
    {
        return None;
    }
    Some(Packet {
        ip_version: 4,
        src: v4_mapped([hdr[12], hdr[13], hdr[14], hdr[15]]),
        dst: v4_mapped([hdr[16], hdr[17], hdr[18], hdr[19]]),
        protocol,
        sport: u16::from_be_bytes([hdr[20], hdr[21]]),
        dport: u16::from_be_bytes([hdr[22], hdr[23]]),
        icmp_type: 0,
        tcp_flags: if protocol == IPPROTO_TCP { hdr[33] } else { 0 },
        fragment: false,
        quote_offset: 0,
    })
}

#[inline(always)]
fn parse_v4(ctx: &SkBuffContext) -> Option<Packet> {
    if let Some(pkt) = parse_v4_direct(ctx) {
        return Some(pkt);
    }
    // One load for the whole fixed header: each load is a helper call.
    let hdr: [u8; 20] = ctx.load(0).ok()?;
    let ihl = ((hdr[0] & 0x0f) as usize) * 4;
    if ihl < 20 {
        return None;
    }
    let frag = u16::from_be_bytes([hdr[6], hdr[7]]);
    let protocol = hdr[9];
    let src = [hdr[12], hdr[13], hdr[14], hdr[15]];
    let dst = [hdr[16], hdr[17], hdr[18], hdr[19]];
    let non_first_fragment = frag & 0x1fff != 0;
    // More Fragments (0x2000) or an offset.
    let fragment = frag & 0x3fff != 0;
    let mut pkt = Packet {
        ip_version: 4,
        src: v4_mapped(src),
        dst: v4_mapped(dst),
        protocol,
        sport: 0,
        dport: 0,
        icmp_type: 0,
        tcp_flags: 0,
        fragment,
        quote_offset: 0,
    };
    if !non_first_fragment {
        read_transport(ctx, ihl, &mut pkt);
    }
    Some(pkt)
}

#[inline(always)]
fn parse_v6(ctx: &SkBuffContext) -> Option<Packet> {
    // next header, hop limit and both addresses in one load (bytes 6..40).
    let hdr: [u8; 34] = ctx.load(6).ok()?;
    let mut next = hdr[0];
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&hdr[2..18]);
    dst.copy_from_slice(&hdr[18..34]);
    let mut offset: usize = 40;
    let mut non_first_fragment = false;
    let mut fragment = false;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let hdr: [u8; 2] = ctx.load(offset).ok()?;
                next = hdr[0];
                offset += (hdr[1] as usize + 1) * 8;
            }
            IPPROTO_AH => {
                let hdr: [u8; 2] = ctx.load(offset).ok()?;
                next = hdr[0];
                offset += (hdr[1] as usize + 2) * 4;
            }
            IPPROTO_FRAGMENT => {
                let hdr: [u8; 4] = ctx.load(offset).ok()?;
                next = hdr[0];
                let frag_off = u16::from_be_bytes([hdr[2], hdr[3]]) & 0xfff8;
                non_first_fragment = frag_off != 0;
                fragment = true;
                offset += 8;
            }
            _ => break,
        }
    }
    let mut pkt = Packet {
        ip_version: 6,
        src,
        dst,
        protocol: next,
        sport: 0,
        dport: 0,
        icmp_type: 0,
        tcp_flags: 0,
        fragment,
        quote_offset: 0,
    };
    if !non_first_fragment {
        read_transport(ctx, offset, &mut pkt);
    }
    Some(pkt)
}

/// Fills ports (TCP, UDP, SCTP: the first 4 bytes of each header are the ports), TCP
/// flags, or the ICMP type (and, for an error, the quoted packet). A truncated
/// transport header leaves them zero.
#[inline(always)]
fn read_transport(ctx: &SkBuffContext, offset: usize, pkt: &mut Packet) {
    match pkt.protocol {
        IPPROTO_TCP => {
            // Ports, sequence and acknowledgement numbers, offset, flags: one load.
            if let Ok(hdr) = ctx.load::<[u8; 14]>(offset) {
                pkt.sport = u16::from_be_bytes([hdr[0], hdr[1]]);
                pkt.dport = u16::from_be_bytes([hdr[2], hdr[3]]);
                pkt.tcp_flags = hdr[13];
            }
        }
        IPPROTO_UDP | IPPROTO_SCTP => {
            if let Ok(ports) = ctx.load::<[u8; 4]>(offset) {
                pkt.sport = u16::from_be_bytes([ports[0], ports[1]]);
                pkt.dport = u16::from_be_bytes([ports[2], ports[3]]);
            }
        }
        IPPROTO_ICMP => {
            if let Ok(t) = ctx.load::<u8>(offset) {
                pkt.icmp_type = t;
                if matches!(
                    t,
                    ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED | ICMP_PARAMETER_PROBLEM
                ) {
                    pkt.quote_offset = (offset + ICMP_ERROR_HEADER) as u32;
                }
            }
        }
        IPPROTO_ICMPV6 => {
            if let Ok(t) = ctx.load::<u8>(offset) {
                pkt.icmp_type = t;
                if (ICMPV6_ERROR_FIRST..=ICMPV6_ERROR_LAST).contains(&t) {
                    pkt.quote_offset = (offset + ICMP_ERROR_HEADER) as u32;
                }
            }
        }
        _ => {}
    }
}

/// The conntrack key of the packet an ICMP error quotes (`pkt.quote_offset` set by
/// [`parse`]), as seen from the side that sent that packet: for ICMP an IPv4 header
/// and the first 8 bytes of its payload (RFC 792), for ICMPv6 an IPv6 header and what
/// follows. `sent_by_local`: the quoted packet left the local endpoint (an error
/// arriving), else it arrived there (an error leaving). `None` if unreadable, a
/// non-first fragment, or an IPv6 packet with extension headers (only a transport
/// header right after the fixed header is read; such an error is then decided by
/// policy as ICMPv6, failing closed).
#[inline(always)]
pub fn quoted_key(ctx: &SkBuffContext, pkt: &Packet, sent_by_local: bool) -> Option<CtKey> {
    let offset = pkt.quote_offset as usize;
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    let protocol;
    let transport;
    if pkt.protocol == IPPROTO_ICMP {
        let hdr: [u8; 20] = ctx.load(offset).ok()?;
        let ihl = ((hdr[0] & 0x0f) as usize) * 4;
        if hdr[0] >> 4 != 4 || ihl < 20 || u16::from_be_bytes([hdr[6], hdr[7]]) & 0x1fff != 0 {
            return None;
        }
        protocol = hdr[9];
        src[10] = 0xff;
        src[11] = 0xff;
        dst[10] = 0xff;
        dst[11] = 0xff;
        src[12..].copy_from_slice(&hdr[12..16]);
        dst[12..].copy_from_slice(&hdr[16..20]);
        transport = offset + ihl;
    } else {
        let first: [u8; 8] = ctx.load(offset).ok()?;
        if first[0] >> 4 != 6 {
            return None;
        }
        protocol = first[6];
        src = ctx.load(offset + 8).ok()?;
        dst = ctx.load(offset + 24).ok()?;
        transport = offset + 40;
    }
    // Ports as on the wire (network byte order), as conntrack keeps them.
    let mut ports = [0u16; 2];
    if matches!(protocol, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP) {
        ports = ctx.load(transport).ok()?;
    }
    let key = if sent_by_local {
        CtKey {
            local_addr: src,
            remote_addr: dst,
            local_port_be: ports[0],
            remote_port_be: ports[1],
            protocol,
            _pad: [0; 3],
        }
    } else {
        CtKey {
            local_addr: dst,
            remote_addr: src,
            local_port_be: ports[1],
            remote_port_be: ports[0],
            protocol,
            _pad: [0; 3],
        }
    };
    Some(key)
}
