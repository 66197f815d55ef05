//! Policy for a flow to a Service, decided at the socket once the backend is picked:
//! the verdict is the one policy gives for that backend, as in Kubernetes, where
//! NetworkPolicy applies to the pod behind the Service, never to its address.
//!
//! Two decisions, each with the code the packet programs use (`verdict.rs`):
//! - egress at the caller, if it is an endpoint, toward the backend's address and
//!   port (the Service port's `targetPort`);
//! - ingress at the backend, if it is an endpoint on this node, from the caller's own
//!   address (`PALISADE_ENDPOINT_ADDRS`: the socket may not have one yet).
//!
//! Either one denying fails the call with EPERM at once. The packet programs decide
//! the same flow again (they see the backend after the translation) and remain the
//! backstop: a backend on another node, or a caller palisade does not know, is
//! decided there only (an ingress drop then shows as a timeout). Connections to a
//! pod's own address travel over loopback and always proceed.

use aya_ebpf::{macros::map, maps::HashMap};
use palisade_abi::{
    EndpointAddrKey, EndpointInfo, EndpointKey, FlowEvent, LocalAddrKey, capacity, direction,
    is_v4_mapped, verdict,
};

use crate::endpoint::{self, Endpoint};
use crate::events;
use crate::maps::{CONFIG, ENDPOINTS, LOCAL_ADDRS};
use crate::verdict::{Decision, decide_flow};

/// (cgroup id, slot, IP version) -> the endpoint's own address of that version.
#[map(name = "PALISADE_ENDPOINT_ADDRS")]
pub static ENDPOINT_ADDRS: HashMap<EndpointAddrKey, [u8; 16]> =
    HashMap::pinned(2 * capacity::ENDPOINT_ADDRS_PER_SLOT, 0);

/// Whether the calling process may open a flow of `protocol` to the backend
/// `backend:port` (host byte order) under `generation`.
#[inline(always)]
pub fn admit(generation: u32, backend: [u8; 16], port: u16, protocol: u8) -> bool {
    let slot = generation & 1;
    let Some(caller) = endpoint::resolve_current(slot) else {
        // Not an endpoint: the packet programs apply the node's default.
        return true;
    };
    let backend_key = LocalAddrKey {
        slot,
        addr: backend,
    };
    // SAFETY: plain data, copied at once.
    let backend_owner = unsafe { LOCAL_ADDRS.get(&backend_key) }.copied();
    if backend_owner == Some(caller.cgroup_id) {
        return true;
    }
    let egress = decide_flow(
        slot,
        &caller.info,
        backend,
        direction::EGRESS,
        protocol,
        port,
    );
    if egress.verdict == verdict::DENY {
        let unknown_yet = [0u8; 16];
        let flow = (unknown_yet, backend, port, protocol);
        report(generation, &caller, &egress, direction::EGRESS, flow);
        return false;
    }

    let Some(owner) = backend_owner else {
        return true;
    };
    let version = if is_v4_mapped(&backend) { 4 } else { 6 };
    let own = EndpointAddrKey {
        cgroup_id: caller.cgroup_id,
        slot,
        ip_version: version,
    };
    // SAFETY: plain data, copied at once.
    let Some(caller_addr) = (unsafe { ENDPOINT_ADDRS.get(&own) }).copied() else {
        return true;
    };
    let at_backend = EndpointKey {
        cgroup_id: owner,
        slot,
        _pad: 0,
    };
    // SAFETY: plain data, copied at once.
    let Some(info) = (unsafe { ENDPOINTS.get(&at_backend) }).copied() else {
        return true;
    };
    let ingress = decide_flow(slot, &info, caller_addr, direction::INGRESS, protocol, port);
    if ingress.verdict == verdict::DENY {
        let server = Endpoint {
            cgroup_id: owner,
            info,
        };
        let flow = (backend, caller_addr, port, protocol);
        report(generation, &server, &ingress, direction::INGRESS, flow);
        return false;
    }
    true
}

/// Counts a denial and reports it as a flow event of `at`. `flow` is (local address,
/// peer address, server port, protocol) from `at`'s side; the local address is zero
/// when the socket has none yet.
#[inline(always)]
fn report(
    generation: u32,
    at: &Endpoint,
    d: &Decision,
    dir: u8,
    flow: ([u8; 16], [u8; 16], u16, u8),
) {
    let (local, peer, port, protocol) = flow;
    events::count(d.reason);
    let config = CONFIG.get(generation & 1).copied().unwrap_or_default();
    let info: &EndpointInfo = &at.info;
    events::emit(at.cgroup_id, &config, |e: &mut FlowEvent| {
        e.cgroup_id = at.cgroup_id;
        e.local_addr = local;
        e.remote_addr = peer;
        if dir == direction::EGRESS {
            e.remote_port = port;
        } else {
            e.local_port = port;
        }
        e.protocol = protocol;
        e.direction = dir;
        e.verdict = verdict::DENY;
        e.ip_version = if is_v4_mapped(&peer) { 4 } else { 6 };
        e.identity = info.identity;
        e.peer_identity = d.peer_identity;
        e.policy_id = info.policy_id;
        e.rule_ref = d.rule_ref;
        e.generation = generation;
    });
}
