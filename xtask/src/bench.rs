//! `cargo xtask bench`: builds everything and runs the benchmarks. Benchmarks report
//! numbers and ratios to a baseline of the same run; they assert nothing.

use crate::run::{status, step};
use crate::{build, paths, setup};
use anyhow::Result;
use std::process::Command;

/// What the throughput benchmark compares palisade with, and measures with.
const BENCH_PACKAGES: &[&str] = &["iperf3", "iptables", "nftables"];

pub fn run() -> Result<()> {
    setup::run()?;
    setup::install_debian_packages(BENCH_PACKAGES)?;
    build::run()?;
    step("datapath per-packet cost (BPF_PROG_TEST_RUN)");
    status(Command::new(paths::release_bin("palisade-bench")).arg("datapath"))?;
    step("policy compiler at cluster scale");
    status(Command::new(paths::release_bin("palisade-bench")).arg("compile"))?;
    step("controller at cluster scale against the API-server double");
    status(Command::new(paths::release_bin("palisade-bench")).arg("controller"))?;
    step("node agent on Kubernetes: memory, apply latency, pod cgroup to map entry");
    status(Command::new(paths::release_bin("palisade-bench")).arg("agent"))?;
    step("throughput, latency and connection rate against iptables and nftables");
    status(Command::new(paths::release_bin("palisade-bench")).arg("throughput"))
}
