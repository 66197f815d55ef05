//! Emulated Kubernetes pods for kernel tests and the demo.
//!
//! A [`Lab`] is a "node" network namespace holding a Linux bridge, plus a
//! cgroup v2 subtree root where the caller attaches its BPF programs. Each pod
//! added to it is a network namespace wired to the bridge by a veth pair and a
//! pod cgroup (with a `ctr` container cgroup below it) under that root.
//! Processes run in pods are instances of the `palisade-netprobe` binary built
//! from this crate: echo servers, one-shot connection probes and long-lived
//! connections whose round trips are reported as they happen.
//!
//! Everything a lab creates is removed when it is dropped, including while a
//! test panics.
//!
//! ```no_run
//! use palisade_lab::{Lab, PodSpec, Proto};
//! use std::time::Duration;
//!
//! # fn main() -> anyhow::Result<()> {
//! let mut lab = Lab::new("palisade-example")?;
//! let client = lab.add_pod(PodSpec::ipv4("client", "10.90.0.2".parse()?))?;
//! let server = lab.add_pod(PodSpec::ipv4("server", "10.90.0.3".parse()?))?;
//! lab.serve(&server, &[8080], &[])?;
//! let result = lab.probe(&client, "10.90.0.3".parse()?, Proto::Tcp, 8080, Duration::from_secs(1))?;
//! assert!(result.allowed());
//! # Ok(())
//! # }
//! ```

mod cgroup2;
pub mod foreign_program;
pub mod harness;
mod held_connection;
mod iproute;
mod lab;
mod lab_id;
mod locate;
pub mod netprobe;
mod pidfd;
mod pod;
mod probe;
mod process;
pub mod report;
pub mod test_run;
mod topology;

pub use cgroup2::{Cgroup2Mount, cgroup_id};
pub use held_connection::HeldConnection;
pub use lab::{Lab, LabConfig};
pub use locate::{NETPROBE_ENV, netprobe_path};
pub use pod::{PodHandle, PodSpec};
pub use probe::{Outcome, ProbeOrigin, ProbeResult, ProbeSpec, Proto, RecheckedProbe};
