//! Counters per reason and flow events for the agent.

use aya_ebpf::helpers::generated::bpf_ktime_get_ns;
use palisade_abi::{FlowEvent, reason};

use crate::maps::{COUNTERS, EVENTS};

#[inline(always)]
pub fn count(reason: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(reason) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *slot += 1 };
    }
}

/// Reserves a flow event in the ring buffer, lets `fill` write it in place (no copy
/// of the record on the BPF stack) and submits it. A full ring buffer is counted as a
/// dropped event; the verdict is unaffected: events never change what passes.
#[inline(always)]
pub fn emit(fill: impl FnOnce(&mut FlowEvent)) {
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
    // SAFETY: plain helper call.
    event.timestamp_ns = unsafe { bpf_ktime_get_ns() };
    entry.submit(0);
}
