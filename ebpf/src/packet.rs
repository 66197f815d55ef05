//! Reads the fields a decision needs from an IP packet in a cgroup_skb context.
//!
//! In cgroup_skb programs the packet starts at the IP header. IPv4 addresses are
//! returned IPv4-mapped so that the rest of the program deals with one address form.
//! IPv6 extension headers are walked (bounded) to find the transport header.

use aya_ebpf::programs::SkBuffContext;
use palisade_abi::v4_mapped;

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
    /// A fragment other than the first: no transport header to read.
    pub non_first_fragment: bool,
}

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

#[inline(always)]
fn parse_v4(ctx: &SkBuffContext) -> Option<Packet> {
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
    let mut pkt = Packet {
        ip_version: 4,
        src: v4_mapped(src),
        dst: v4_mapped(dst),
        protocol,
        sport: 0,
        dport: 0,
        icmp_type: 0,
        non_first_fragment,
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
        non_first_fragment,
    };
    if !non_first_fragment {
        read_transport(ctx, offset, &mut pkt);
    }
    Some(pkt)
}

/// Fills ports (TCP, UDP, SCTP: the first 4 bytes of each header are the ports) or
/// the ICMP type. A truncated transport header leaves them zero.
#[inline(always)]
fn read_transport(ctx: &SkBuffContext, offset: usize, pkt: &mut Packet) {
    match pkt.protocol {
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP => {
            if let Ok(ports) = ctx.load::<[u8; 4]>(offset) {
                pkt.sport = u16::from_be_bytes([ports[0], ports[1]]);
                pkt.dport = u16::from_be_bytes([ports[2], ports[3]]);
            }
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            if let Ok(t) = ctx.load::<u8>(offset) {
                pkt.icmp_type = t;
            }
        }
        _ => {}
    }
}
