//! A one-flow cache per socket, in front of conntrack: the fast path of established
//! traffic.
//!
//! A packet of an established connection normally costs one conntrack lookup, a
//! jhash over the 40-byte `CtKey` and a walk of its LRU bucket. The socket the packet
//! belongs to (`skb->sk`, a full socket for established TCP and for connected or
//! unconnected UDP) can carry a small value in socket-local storage instead
//! (`BPF_MAP_TYPE_SK_STORAGE`, found through a per-socket cache slot, no hashing):
//! the key of the last flow that socket passed and the policy generation that
//! admitted it. A packet whose key and the current generation both match passes at
//! once; anything else (another flow of the same socket, a listener's new peers, a
//! policy change since) takes the conntrack path, which decides exactly as before and
//! refreshes the cache when it allows.
//!
//! Why it never opens anything: an entry is written only after conntrack or policy
//! allowed the flow under that generation, and it is read only under the same
//! generation, which is exactly conntrack's own rule. A conntrack entry evicted while
//! its socket still caches the flow lets that flow's packets pass under the generation
//! that admitted them, as the entry would have: a reply of an allowed connection stays
//! a reply (conntrack alone would re-decide it as a new flow of the other direction).
//! A policy change publishes a new generation, so every cached flow is decided again.
//! A flow let through only by the emergency off switch (`ct_flags::ENFORCEMENT_OFF`)
//! is never cached: the switch flips without a new generation.
//!
//! The map is not pinned: it holds no state that conntrack does not. It lives as long
//! as the programs that use it; after an agent restart the new programs start with an
//! empty cache and fill it from conntrack.

use aya_ebpf::{
    bindings::{BPF_SK_STORAGE_GET_F_CREATE, bpf_sock},
    btf_maps::SkStorage,
    helpers::generated::bpf_sk_storage_get,
    macros::btf_map,
    programs::SkBuffContext,
};
use core::ffi::c_void;
use palisade_abi::CtKey;

/// The cached flow of one socket.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SockFlow {
    /// The flow, as conntrack keys it (addresses IPv4-mapped, ports big-endian).
    pub key: CtKey,
    /// `GenerationWord::generation` under which the flow was allowed.
    pub generation: u32,
    pub _pad: u32,
}

#[btf_map]
static PALISADE_SOCK_FLOW: SkStorage<SockFlow> = SkStorage::new();

#[inline(always)]
fn map() -> *mut c_void {
    core::ptr::from_ref(&PALISADE_SOCK_FLOW).cast_mut().cast()
}

/// The packet's socket, if it has one. `bpf_sk_storage_get` itself returns nothing for
/// a socket that is not a full one (a request or time-wait socket), so no
/// `bpf_sk_fullsock` call is needed first.
#[inline(always)]
fn socket(ctx: &SkBuffContext) -> *mut bpf_sock {
    // SAFETY: reading a field of the program's own context.
    unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk }
}

/// Whether this packet's socket last passed this very flow under `generation`.
#[inline(always)]
pub fn passes(ctx: &SkBuffContext, key: &CtKey, generation: u32) -> bool {
    let sk = socket(ctx);
    if sk.is_null() {
        return false;
    }
    // SAFETY: `sk` is the packet's socket; no value is created (null value, no flags).
    let flow = unsafe { bpf_sk_storage_get(map(), sk.cast(), core::ptr::null_mut(), 0) }
        .cast::<SockFlow>();
    if flow.is_null() {
        return false;
    }
    // SAFETY: the storage is valid for this program run; plain data.
    let flow = unsafe { &*flow };
    flow.generation == generation && same_flow(&flow.key, key)
}

/// Records that this packet's socket passed `key` under `generation`.
#[inline(always)]
pub fn remember(ctx: &SkBuffContext, key: &CtKey, generation: u32) {
    let sk = socket(ctx);
    if sk.is_null() {
        return;
    }
    let mut value = SockFlow {
        key: *key,
        generation,
        _pad: 0,
    };
    // SAFETY: `sk` is the packet's socket; `value` initialises a new entry.
    let flow = unsafe {
        bpf_sk_storage_get(
            map(),
            sk.cast(),
            (&raw mut value).cast(),
            u64::from(BPF_SK_STORAGE_GET_F_CREATE),
        )
    }
    .cast::<SockFlow>();
    if !flow.is_null() {
        // SAFETY: as above; an existing entry is overwritten with the new flow.
        unsafe { *flow = value };
    }
}

/// Field-wise key comparison (the verifier sees plain loads, no memcmp loop).
#[inline(always)]
fn same_flow(a: &CtKey, b: &CtKey) -> bool {
    a.remote_addr == b.remote_addr
        && a.local_addr == b.local_addr
        && a.remote_port_be == b.remote_port_be
        && a.local_port_be == b.local_port_be
        && a.protocol == b.protocol
}
