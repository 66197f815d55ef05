//! Helpers for running palisade's kernel programs with `BPF_PROG_TEST_RUN` on crafted
//! packets (benchmarks, and protocols this kernel cannot open, such as SCTP).
//!
//! A test run hands the program a socket in the calling task's cgroup and network
//! namespace, and the loopback device unless the context names another: the programs
//! always pass loopback, so [`private_network_device`] gives the caller a device of
//! its own to name, in a network namespace of its own.

mod device;
mod packets;

pub use device::private_network_device;
pub use packets::{ip_packet, skb_context};
