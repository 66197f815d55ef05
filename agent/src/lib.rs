//! The node agent: loads palisade's kernel programs, keeps their maps in line with
//! compiled policy, maps pods to cgroups, and reports what it enforces.
//!
//! The `palisade-agent` binary is a thin command line over this library; benchmarks
//! and tests use the datapath pieces directly.

pub mod cgroupfs;
pub mod datapath;
pub mod desired;
pub mod ebpf_object;
pub mod enforcement_switch;
pub mod events;
pub mod health;
pub mod kubelet_cgroups;
pub mod kubernetes;
pub mod lsm;
pub mod pins;
pub mod preflight;
pub mod standalone;
pub mod status;
pub mod telemetry;
