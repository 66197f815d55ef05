//! The Service tables in the kernel: a Service address, port and protocol to its
//! backends (slotted, written by the agent from `CompiledCluster::services`), and the
//! reverse-translation map the socket hooks keep per socket (kernel state).
//!
//! Backend choice: a `connect()` (TCP, or UDP that connects) picks a backend at
//! random, like Cilium; each connection is its own flow. An unconnected UDP socket
//! picks by a hash of its socket cookie, so all its datagrams to one Service go to one
//! backend, as kube-proxy's conntrack keeps one UDP 5-tuple on one backend.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    helpers::generated::bpf_get_prandom_u32,
    macros::map,
    maps::{HashMap, LruHashMap},
};
use palisade_abi::{
    BackendKey, BackendValue, RevNatKey, RevNatValue, ServiceKey, ServiceValue, capacity,
};

/// (slot, Service address, port, protocol) -> number of backends. Written only by the
/// agent; allocated per entry (most clusters hold far fewer than the capacity).
#[map(name = "PALISADE_SERVICES")]
pub static SERVICES: HashMap<ServiceKey, ServiceValue> =
    HashMap::pinned(2 * capacity::SERVICES_PER_SLOT, BPF_F_NO_PREALLOC as u32);

/// (slot, Service address, port, protocol, index) -> backend. Written only by the agent.
#[map(name = "PALISADE_SVC_BACKENDS")]
pub static SERVICE_BACKENDS: HashMap<BackendKey, BackendValue> = HashMap::pinned(
    2 * capacity::SERVICE_BACKENDS_PER_SLOT,
    BPF_F_NO_PREALLOC as u32,
);

/// (socket cookie, backend) -> the Service address the socket used. Kernel only; an
/// entry evicted while its socket lives makes that socket see the backend's address
/// in getpeername/recvmsg (its traffic is unaffected).
#[map(name = "PALISADE_SVC_REVNAT")]
pub static SERVICE_REV_NAT: LruHashMap<RevNatKey, RevNatValue> =
    LruHashMap::pinned(capacity::SERVICE_REV_NAT, 0);

/// How a backend is picked.
#[derive(Clone, Copy)]
pub enum Pick {
    /// A new connection: any backend.
    Random,
    /// A datagram of an unconnected socket: the same backend for every datagram of
    /// that socket.
    PerSocket,
}

/// A Service address, port and protocol, and its number of backends.
pub struct Service {
    key: ServiceKey,
    pub backend_count: u32,
}

/// The Service at `addr:port_be` over `protocol` in `slot`, if there is one.
#[inline(always)]
pub fn lookup(slot: u32, addr: [u8; 16], port_be: u16, protocol: u8) -> Option<Service> {
    let key = ServiceKey {
        addr,
        port_be,
        protocol,
        _pad: 0,
        slot,
    };
    // SAFETY: plain data, copied at once.
    let backend_count = unsafe { SERVICES.get(&key) }?.backend_count;
    Some(Service { key, backend_count })
}

/// Picks one of the Service's backends; None if it has none (or, were the tables
/// inconsistent, which the slots rule out, the entry is missing). `cookie` is the
/// socket's, for [`Pick::PerSocket`].
#[inline(always)]
pub fn pick_backend(service: &Service, pick: Pick, cookie: u64) -> Option<BackendValue> {
    let count = service.backend_count;
    if count == 0 {
        return None;
    }
    let draw = match pick {
        // SAFETY: plain helper call.
        Pick::Random => unsafe { bpf_get_prandom_u32() },
        Pick::PerSocket => per_socket_draw(cookie),
    };
    let key = BackendKey {
        service: service.key,
        index: draw % count,
        _pad: 0,
    };
    // SAFETY: plain data, copied at once.
    unsafe { SERVICE_BACKENDS.get(&key) }.copied()
}

/// A well-mixed 32-bit number from a socket cookie (cookies are handed out in
/// sequence, so their low bits alone would alternate).
#[inline(always)]
fn per_socket_draw(cookie: u64) -> u32 {
    (cookie.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
}

/// Remembers that the socket `cookie` reached `backend` through `vip:vip_port_be`.
#[inline(always)]
pub fn remember(cookie: u64, backend: &BackendValue, vip: [u8; 16], vip_port_be: u16) {
    let key = RevNatKey {
        cookie,
        backend_addr: backend.addr,
        backend_port_be: backend.port_be,
        _pad: [0; 6],
    };
    let value = RevNatValue {
        addr: vip,
        port_be: vip_port_be,
        _pad: 0,
        _reserved: 0,
    };
    // An LRU insert only fails without memory; the socket then sees the backend's
    // address, its traffic is unaffected.
    let _ = SERVICE_REV_NAT.insert(&key, &value, 0);
}

/// The Service address the socket `cookie` used to reach `addr:port_be`, if it did.
#[inline(always)]
pub fn original(cookie: u64, addr: [u8; 16], port_be: u16) -> Option<RevNatValue> {
    let key = RevNatKey {
        cookie,
        backend_addr: addr,
        backend_port_be: port_be,
        _pad: [0; 6],
    };
    // SAFETY: plain data, copied at once.
    unsafe { SERVICE_REV_NAT.get(&key) }.copied()
}
