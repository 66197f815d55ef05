//! Reading and rewriting the address a socket call names (`struct bpf_sock_addr`), for
//! the `cgroup/connect*`, `sendmsg*`, `recvmsg*` and `getpeername*` hooks.
//!
//! The kernel lets an IPv4 hook touch only `user_ip4` and an IPv6 hook only
//! `user_ip6`, and `user_ip6` only with 4-byte loads and stores: each accessor is
//! generic over the family (`V6`), so every program contains the accesses of its own
//! family only, and the IPv6 words are read and written with volatile 4-byte accesses
//! that the compiler may not merge. Addresses are returned in palisade's 16-byte form
//! (IPv4-mapped for IPv4), ports in network byte order (as `sin_port`).

use aya_ebpf::{helpers::generated::bpf_get_socket_cookie, programs::SockAddrContext};
use palisade_abi::v4_mapped;

/// The address the call names: the destination of a connect or sendmsg, the source
/// of a received datagram, the peer of getpeername.
#[inline(always)]
pub fn user_addr<const V6: bool>(ctx: &SockAddrContext) -> [u8; 16] {
    if !V6 {
        // SAFETY: reading a 4-byte field of the program's own context.
        let ip4 = unsafe { (*ctx.sock_addr).user_ip4 };
        return v4_mapped(ip4.to_ne_bytes());
    }
    let mut addr = [0u8; 16];
    for i in 0..4 {
        // SAFETY: 4-byte load of a context field (volatile: never widened).
        let word = unsafe { core::ptr::read_volatile(&(*ctx.sock_addr).user_ip6[i]) };
        addr[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
    }
    addr
}

/// Replaces the address the call names. An IPv4 hook takes the last 4 bytes of an
/// IPv4-mapped address.
#[inline(always)]
pub fn set_user_addr<const V6: bool>(ctx: &SockAddrContext, addr: &[u8; 16]) {
    if !V6 {
        let ip4 = u32::from_ne_bytes([addr[12], addr[13], addr[14], addr[15]]);
        // SAFETY: 4-byte store to a context field the kernel lets this hook write.
        unsafe { (*ctx.sock_addr).user_ip4 = ip4 };
        return;
    }
    for i in 0..4 {
        let word = u32::from_ne_bytes([
            addr[i * 4],
            addr[i * 4 + 1],
            addr[i * 4 + 2],
            addr[i * 4 + 3],
        ]);
        // SAFETY: 4-byte store to a context field (volatile: never widened).
        unsafe { core::ptr::write_volatile(&mut (*ctx.sock_addr).user_ip6[i], word) };
    }
}

/// The port the call names, network byte order.
#[inline(always)]
pub fn user_port_be(ctx: &SockAddrContext) -> u16 {
    // SAFETY: 4-byte load of a context field; the port is its low 16 bits, as stored
    // in `sin_port`.
    unsafe { (*ctx.sock_addr).user_port as u16 }
}

/// Replaces the port the call names (network byte order).
#[inline(always)]
pub fn set_user_port_be(ctx: &SockAddrContext, port_be: u16) {
    // SAFETY: 4-byte store to a context field the kernel lets this hook write.
    unsafe { (*ctx.sock_addr).user_port = u32::from(port_be) };
}

/// The socket's IP protocol number (6 TCP, 17 UDP, ...).
#[inline(always)]
pub fn protocol(ctx: &SockAddrContext) -> u8 {
    // SAFETY: 4-byte load of a read-only context field.
    unsafe { (*ctx.sock_addr).protocol as u8 }
}

/// The socket's cookie: a number unique to it for as long as the node runs.
#[inline(always)]
pub fn socket_cookie(ctx: &SockAddrContext) -> u64 {
    // SAFETY: the helper reads the context's socket.
    unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) }
}
