//! Driving palisade's real binaries against a lab: locating them, running
//! `palisade-agent standalone` on the lab's cgroup root, writing manifests for the
//! lab's pods, and reading the agent's health and status. Used by the kernel tests
//! and by `cargo xtask demo`.

pub mod agent;
pub mod agent_nodes;
pub mod binaries;
pub mod dual_stack_lab;
pub mod http;
pub mod manifests;
