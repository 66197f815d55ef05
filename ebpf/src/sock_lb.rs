//! Socket-level load balancing for Services (the design Cilium proved): a call that
//! names a Service address is rewritten, before any packet exists, to name one of the
//! Service's backends, and the reverse is done for what the socket reads back.
//!
//! - `connect4/6` (in `connect.rs`, TCP and UDP) and `sendmsg4/6` (unconnected UDP)
//!   translate the destination, then decide the flow to the backend with policy
//!   (`service_policy.rs`): denied, the call fails with EPERM at once. A Service
//!   without backends is refused the same way.
//! - `getpeername4/6` and `recvmsg4/6` turn the backend back into the Service address
//!   the socket used (`PALISADE_SVC_REVNAT`), so an application sees only the address
//!   it connected or sent to; a UDP client that checks the source of replies keeps
//!   working.
//!
//! Translation applies to every socket under the protected root, endpoint or not, as
//! kube-proxy applies to every pod; only the policy part depends on the caller being
//! an endpoint. Everything after the hooks (the packet programs, conntrack, the
//! backend's ingress) sees the backend's address and the `targetPort`, so it needs
//! nothing Service-specific.

use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};
use palisade_abi::reason;

use crate::events;
use crate::maps::{self, GEN};
use crate::service::{self, Pick};
use crate::service_policy;
use crate::sock_addr::{self, user_addr};

/// sock_addr return codes: 1 lets the call proceed, 0 fails it with EPERM.
pub const PROCEED: i32 = 1;
pub const REJECT: i32 = 0;

/// What the Service translation made of a call.
pub enum Forwarded {
    /// The destination is no Service address: decide it as it is.
    NotAService,
    /// Translated to a backend that policy admits.
    Translated,
    /// A Service without backends, or a backend policy denies (counted and reported).
    Refused,
}

/// Translates the destination of a connect or sendmsg if it is a Service address.
#[inline(always)]
pub fn forward<const V6: bool>(ctx: &SockAddrContext, pick: Pick) -> Forwarded {
    let vip = user_addr::<V6>(ctx);
    let vip_port_be = sock_addr::user_port_be(ctx);
    let protocol = sock_addr::protocol(ctx);
    let generation = GEN.get(0).map(|g| g.generation).unwrap_or(0);
    let Some(service) = service::lookup(generation & 1, vip, vip_port_be, protocol) else {
        return Forwarded::NotAService;
    };
    // Only now: the first call gives a socket a cookie, which most sockets never need.
    let cookie = sock_addr::socket_cookie(ctx);
    let Some(backend) = service::pick_backend(&service, pick, cookie) else {
        if maps::enforcement_off() {
            // Switched off: a Service without backends is left to kube-proxy.
            events::count(reason::ALLOWED_ENFORCEMENT_OFF);
            return Forwarded::NotAService;
        }
        return Forwarded::Refused;
    };
    // The compiler gives a Service address backends of its own family only; an IPv4
    // hook could not name an IPv6 backend anyway.
    if !V6 && !palisade_abi::is_v4_mapped(&backend.addr) {
        return Forwarded::Refused;
    }
    let port = u16::from_be(backend.port_be);
    if !service_policy::admit(generation, backend.addr, port, protocol) {
        return Forwarded::Refused;
    }
    sock_addr::set_user_addr::<V6>(ctx, &backend.addr);
    sock_addr::set_user_port_be(ctx, backend.port_be);
    service::remember(cookie, &backend, vip, vip_port_be);
    Forwarded::Translated
}

#[cgroup_sock_addr(sendmsg4)]
pub fn palisade_sendmsg4(ctx: SockAddrContext) -> i32 {
    sendmsg::<false>(&ctx)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn palisade_sendmsg6(ctx: SockAddrContext) -> i32 {
    sendmsg::<true>(&ctx)
}

/// A datagram sent with an address (unconnected UDP). Datagrams to anything but a
/// Service address proceed: the packet programs decide them, and their egress drop
/// already fails the send with EPERM; only they can tell a reply (conntrack), and the
/// socket's own address is often not known here.
#[inline(always)]
fn sendmsg<const V6: bool>(ctx: &SockAddrContext) -> i32 {
    match forward::<V6>(ctx, Pick::PerSocket) {
        Forwarded::NotAService | Forwarded::Translated => PROCEED,
        Forwarded::Refused => REJECT,
    }
}

#[cgroup_sock_addr(recvmsg4)]
pub fn palisade_recvmsg4(ctx: SockAddrContext) -> i32 {
    reverse::<false>(&ctx);
    PROCEED
}

#[cgroup_sock_addr(recvmsg6)]
pub fn palisade_recvmsg6(ctx: SockAddrContext) -> i32 {
    reverse::<true>(&ctx);
    PROCEED
}

#[cgroup_sock_addr(getpeername4)]
pub fn palisade_getpeername4(ctx: SockAddrContext) -> i32 {
    reverse::<false>(&ctx);
    PROCEED
}

#[cgroup_sock_addr(getpeername6)]
pub fn palisade_getpeername6(ctx: SockAddrContext) -> i32 {
    reverse::<true>(&ctx);
    PROCEED
}

/// Rewrites a backend the socket reached through a Service back to that Service's
/// address. (These hooks cannot fail the call: the kernel only accepts 1.)
#[inline(always)]
fn reverse<const V6: bool>(ctx: &SockAddrContext) {
    let addr = user_addr::<V6>(ctx);
    let port_be = sock_addr::user_port_be(ctx);
    let cookie = sock_addr::socket_cookie(ctx);
    if let Some(vip) = service::original(cookie, addr, port_be) {
        sock_addr::set_user_addr::<V6>(ctx, &vip.addr);
        sock_addr::set_user_port_be(ctx, vip.port_be);
    }
}
