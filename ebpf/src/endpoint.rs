//! Resolves the local endpoint of a packet from its socket's cgroup.
//!
//! The programs are attached once at the protected subtree root, so they run for
//! every descendant cgroup. The endpoint is the most specific cgroup on the path from
//! the socket's cgroup up to the root that has an entry in `PALISADE_ENDPOINTS`: a pod
//! entry covers its containers and any cgroup a workload creates below them.

use aya_ebpf::{
    helpers::generated::{bpf_get_current_ancestor_cgroup_id, bpf_skb_ancestor_cgroup_id},
    programs::SkBuffContext,
};
use palisade_abi::{EndpointInfo, EndpointKey, capacity::MAX_CGROUP_LEVEL};

use crate::maps::ENDPOINTS;

/// Steps of the binary search for the socket cgroup's level: 2^6 > MAX_CGROUP_LEVEL.
const LEVEL_SEARCH_STEPS: usize = 6;

pub struct Endpoint {
    pub cgroup_id: u64,
    pub info: EndpointInfo,
}

/// The endpoint of this packet's socket cgroup in `slot`, if any.
#[inline(always)]
pub fn resolve(ctx: &SkBuffContext, slot: u32) -> Option<Endpoint> {
    // SAFETY: the helper only reads the skb's socket cgroup; the pointer is the
    // program's context.
    resolve_with(
        |level| unsafe { bpf_skb_ancestor_cgroup_id(ctx.skb.skb, level) },
        slot,
    )
}

/// The endpoint of the current task's cgroup in `slot`, if any (socket hooks run in
/// the calling process).
#[inline(always)]
pub fn resolve_current(slot: u32) -> Option<Endpoint> {
    // SAFETY: plain helper call on the current task.
    resolve_with(
        |level| unsafe { bpf_get_current_ancestor_cgroup_id(level) },
        slot,
    )
}

#[inline(always)]
fn resolve_with(ancestor: impl Fn(i32) -> u64, slot: u32) -> Option<Endpoint> {
    // The helper returns 0 for levels deeper than the cgroup's own, so the deepest
    // valid level is found by binary search (invariant: ancestor(low) != 0; level 0 is
    // the root and always exists).
    let mut low: i32 = 0;
    let mut high: i32 = MAX_CGROUP_LEVEL;
    for _ in 0..LEVEL_SEARCH_STEPS {
        if low >= high {
            break;
        }
        let mid = (low + high + 1) / 2;
        if ancestor(mid) != 0 {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    // Walk up from the socket's own cgroup; the first entry found is the most specific.
    let mut level = low;
    for _ in 0..=MAX_CGROUP_LEVEL {
        if level < 0 {
            break;
        }
        let cgroup_id = ancestor(level);
        let key = EndpointKey {
            cgroup_id,
            slot,
            _pad: 0,
        };
        // SAFETY: values are plain data; the reference is used before any map update.
        if let Some(info) = unsafe { ENDPOINTS.get(&key) } {
            return Some(Endpoint {
                cgroup_id,
                info: *info,
            });
        }
        level -= 1;
    }
    None
}
