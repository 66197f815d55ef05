//! Crafted packets for `BPF_PROG_TEST_RUN` on cgroup_skb programs: an Ethernet header
//! (the kernel strips it) and an IPv4 or IPv6 packet whose transport header starts
//! with the two ports (TCP SYN, UDP, SCTP INIT), and the `__sk_buff` context that
//! names the device.

use std::net::IpAddr;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_SCTP: u8 = 132;

/// Offset of `ifindex` in `struct __sk_buff` (after len, pkt_type, mark,
/// queue_mapping, protocol, vlan_present, vlan_tci, vlan_proto, priority,
/// ingress_ifindex: ten u32).
const SKB_IFINDEX_OFFSET: usize = 40;

/// The `ctx_in` of a test run that sends the packet through device `ifindex`.
pub fn skb_context(ifindex: u32) -> [u8; SKB_IFINDEX_OFFSET + 4] {
    let mut ctx = [0u8; SKB_IFINDEX_OFFSET + 4];
    ctx[SKB_IFINDEX_OFFSET..].copy_from_slice(&ifindex.to_ne_bytes());
    ctx
}

/// A packet from `src:sport` to `dst:dport` of `protocol` (TCP SYN, UDP datagram or
/// SCTP INIT chunk; any other protocol gets 8 bytes of zeros), with an Ethernet
/// header in front. Panics if the families differ.
pub fn ip_packet(src: IpAddr, dst: IpAddr, protocol: u8, sport: u16, dport: u16) -> Vec<u8> {
    let transport = transport(protocol, sport, dport);
    let mut pkt = Vec::with_capacity(14 + 40 + transport.len());
    pkt.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2]);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pkt.extend_from_slice(&ETH_P_IP.to_be_bytes());
            let total = (20 + transport.len()) as u16;
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = 64;
            ip[9] = protocol;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let sum = checksum(&ip);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            pkt.extend_from_slice(&ip);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            pkt.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
            let mut ip = [0u8; 40];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&(transport.len() as u16).to_be_bytes());
            ip[6] = protocol;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            pkt.extend_from_slice(&ip);
        }
        _ => panic!("ip_packet: mixed address families"),
    }
    pkt.extend_from_slice(&transport);
    pkt
}

fn transport(protocol: u8, sport: u16, dport: u16) -> Vec<u8> {
    let ports = |len: usize| {
        let mut h = vec![0u8; len];
        h[0..2].copy_from_slice(&sport.to_be_bytes());
        h[2..4].copy_from_slice(&dport.to_be_bytes());
        h
    };
    match protocol {
        IPPROTO_TCP => {
            let mut tcp = ports(20);
            tcp[12] = 5 << 4; // data offset: 5 words
            tcp[13] = 0x02; // SYN
            tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
            tcp
        }
        IPPROTO_UDP => {
            let mut udp = ports(8);
            udp[4..6].copy_from_slice(&8u16.to_be_bytes());
            udp
        }
        IPPROTO_SCTP => {
            // Common header (ports, verification tag 0, checksum) + an INIT chunk.
            let mut sctp = ports(12 + 20);
            sctp[12] = 1; // chunk type INIT
            sctp[14..16].copy_from_slice(&20u16.to_be_bytes());
            sctp[16..20].copy_from_slice(&0x1234_5678u32.to_be_bytes()); // initiate tag
            sctp
        }
        _ => vec![0u8; 8],
    }
}

fn checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_sit_at_the_start_of_every_transport_header() {
        for proto in [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP] {
            let p = ip_packet(
                "10.0.0.1".parse().unwrap(),
                "10.0.0.2".parse().unwrap(),
                proto,
                1234,
                9003,
            );
            assert_eq!(&p[12..14], &ETH_P_IP.to_be_bytes());
            assert_eq!(p[14 + 9], proto);
            assert_eq!(&p[34..38], &[0x04, 0xd2, 0x23, 0x2b]);
        }
    }

    #[test]
    fn ipv4_header_checksum_verifies() {
        let p = ip_packet(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            IPPROTO_UDP,
            1,
            2,
        );
        assert_eq!(checksum(&p[14..34]), 0);
    }
}
