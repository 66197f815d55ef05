//! Socket-control probes: `socket` (create a raw IP or packet socket), `bind` (bind a
//! TCP or UDP socket to a local port) and `fragment` (send one hand-made IPv4 packet,
//! whole or a non-first fragment, through a raw `IPPROTO_RAW` socket). Each prints
//! one JSON line, `{"op": OP, "result": "ok" | "eperm" | "error", "errno": N}`, and
//! exits 0: the result is the answer, not the exit code.

use super::args::{BindArgs, FragmentArgs, SocketArgs, SocketKind};
use crate::probe::Proto;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;

/// ETH_P_ALL, as `socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL))` takes it.
const ETH_P_ALL: u16 = 0x0003;
/// UDP's protocol number, for the packets `fragment` builds.
const IPPROTO_UDP: u8 = 17;

pub(super) fn socket(args: &SocketArgs) -> ExitCode {
    let (family, kind, protocol) = match args.kind {
        SocketKind::Raw4 => (libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
        SocketKind::Raw6 => (libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6),
        SocketKind::Packet => (
            libc::AF_PACKET,
            libc::SOCK_RAW,
            i32::from(ETH_P_ALL.to_be()),
        ),
    };
    print_result("socket", open(family, kind, protocol).map(drop))
}

pub(super) fn bind(args: &BindArgs) -> ExitCode {
    let family = if args.addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let kind = match args.proto {
        Proto::Tcp => libc::SOCK_STREAM,
        Proto::Udp => libc::SOCK_DGRAM,
    };
    let result =
        open(family, kind, 0).and_then(|fd| bind_to(&fd, SocketAddr::new(args.addr, args.port)));
    print_result("bind", result)
}

pub(super) fn fragment(args: &FragmentArgs) -> ExitCode {
    let result = open(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW).and_then(|fd| {
        let packet = ipv4_udp_packet(args.src, args.dst, !args.whole);
        send_to(&fd, &packet, SocketAddr::new(IpAddr::V4(args.dst), 0))
    });
    print_result("fragment", result)
}

pub(super) fn open(family: i32, kind: i32, protocol: i32) -> Result<OwnedFd, i32> {
    // SAFETY: plain syscall; a non-negative return is a new fd we own.
    let fd = unsafe { libc::socket(family, kind | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bind_to(fd: &OwnedFd, addr: SocketAddr) -> Result<(), i32> {
    let (storage, len) = sockaddr(addr);
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes.
    let rc = unsafe { libc::bind(fd.as_raw_fd(), (&raw const storage).cast(), len) };
    if rc == 0 { Ok(()) } else { Err(errno()) }
}

/// `sendto(fd, packet, to)`.
pub(super) fn send_to(fd: &OwnedFd, packet: &[u8], to: SocketAddr) -> Result<(), i32> {
    let (storage, len) = sockaddr(to);
    // SAFETY: valid buffer and sockaddr for the call's duration.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&raw const storage).cast(),
            len,
        )
    };
    if rc >= 0 { Ok(()) } else { Err(errno()) }
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// An IPv4 packet carrying 16 bytes of a UDP datagram to port 9: the whole datagram
/// (8-byte header and 8 bytes of data), or, as `non_first`, the data at offset 8 of a
/// datagram whose first fragment is never sent.
fn ipv4_udp_packet(src: Ipv4Addr, dst: Ipv4Addr, non_first: bool) -> Vec<u8> {
    let payload: Vec<u8> = if non_first {
        b"fragment".to_vec()
    } else {
        let mut udp = vec![0u8; 8];
        udp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        udp[2..4].copy_from_slice(&9u16.to_be_bytes());
        udp[4..6].copy_from_slice(&16u16.to_be_bytes());
        udp.extend_from_slice(b"palisade");
        udp
    };
    let total = 20 + payload.len();
    let mut ip = vec![0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&0x5a5au16.to_be_bytes());
    // Offset in 8-byte units, no flags: the last fragment, starting at byte 8.
    let frag: u16 = if non_first { 1 } else { 0 };
    ip[6..8].copy_from_slice(&frag.to_be_bytes());
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&payload);
    ip
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub(super) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn print_result(op: &str, result: Result<(), i32>) -> ExitCode {
    let line = match result {
        Ok(()) => serde_json::json!({"op": op, "result": "ok", "errno": 0}),
        Err(e) if e == libc::EPERM => serde_json::json!({"op": op, "result": "eperm", "errno": e}),
        Err(e) => serde_json::json!({"op": op, "result": "error", "errno": e,
                                      "error": std::io::Error::from_raw_os_error(e).to_string()}),
    };
    println!("{line}");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_have_a_valid_header_checksum_and_fragment_offset() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let frag = ipv4_udp_packet(src, dst, true);
        assert_eq!(checksum(&frag[..20]), 0);
        assert_eq!(u16::from_be_bytes([frag[6], frag[7]]) & 0x1fff, 1);
        let whole = ipv4_udp_packet(src, dst, false);
        assert_eq!(checksum(&whole[..20]), 0);
        assert_eq!(u16::from_be_bytes([whole[6], whole[7]]), 0);
        assert_eq!(whole.len(), 36);
    }
}
