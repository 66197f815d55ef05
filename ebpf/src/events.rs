//! Counters per reason and flow events for the agent.

use aya_ebpf::helpers::generated::bpf_ktime_get_ns;
use palisade_abi::{EventBudget, FlowEvent, NodeConfig, reason};

use crate::maps::{COUNTERS, EVENT_BUDGET, EVENTS};

#[inline(always)]
pub fn count(reason: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(reason) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *slot += 1 };
    }
}

const MICRO: u64 = 1_000_000;

/// Takes one event from the endpoint's token bucket (refilled at
/// `config.events_per_second`, holding at most `config.event_burst`). Per-CPU races
/// can let a few extra events through; they never block one wrongly for long.
#[inline(always)]
fn take_event_token(cgroup_id: u64, config: &NodeConfig, now: u64) -> bool {
    let rate = config.events_per_second as u64;
    if rate == 0 {
        return false;
    }
    let cap = (config.event_burst.max(1) as u64) * MICRO;
    if let Some(bucket) = EVENT_BUDGET.get_ptr_mut(&cgroup_id) {
        // SAFETY: valid for this program run; plain data.
        let bucket = unsafe { &mut *bucket };
        let elapsed = now.saturating_sub(bucket.refilled_ns);
        // micro-tokens gained = elapsed_ns * rate / 1000 (capped first to avoid overflow).
        let gained = (elapsed.min(3_600_000_000_000) / 1_000) * rate;
        let tokens = (bucket.micro_tokens + gained).min(cap);
        bucket.refilled_ns = now;
        if tokens < MICRO {
            bucket.micro_tokens = tokens;
            return false;
        }
        bucket.micro_tokens = tokens - MICRO;
        return true;
    }
    let fresh = EventBudget {
        micro_tokens: cap - MICRO,
        refilled_ns: now,
    };
    let _ = EVENT_BUDGET.insert(&cgroup_id, &fresh, 0);
    true
}

/// Reserves a flow event in the ring buffer, lets `fill` write it in place (no copy
/// of the record on the BPF stack) and submits it, if the endpoint has event budget
/// left. A full ring buffer or an exhausted budget is counted; the verdict is
/// unaffected: events never change what passes.
#[inline(always)]
pub fn emit(cgroup_id: u64, config: &NodeConfig, fill: impl FnOnce(&mut FlowEvent)) {
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    if !take_event_token(cgroup_id, config, now) {
        count(reason::EVENT_RATE_LIMITED);
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<FlowEvent>(0) else {
        count(reason::EVENT_DROPPED);
        return;
    };
    // SAFETY: the reserved memory is exclusively ours until submit; every field is
    // written below (the record is zeroed first).
    let event = unsafe {
        let ptr = entry.as_mut_ptr();
        core::ptr::write_bytes(ptr, 0, 1);
        &mut *ptr
    };
    fill(event);
    event.timestamp_ns = now;
    entry.submit(0);
}
