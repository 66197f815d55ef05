//! palisade's benchmarks. Benchmarks are not tests: they assert nothing about time.
//! Each reports ratios to a baseline measured in the same run and writes its results
//! under `bench/results/`.
//!
//! - `datapath`: per-packet cost of the cgroup_skb program with BPF_PROG_TEST_RUN, for
//!   growing ip caches and identity counts (the curve must stay flat);
//! - `compile`: the policy compiler on a 5,000-node, 150,000-pod synthetic cluster;
//! - `controller`: the controller binary against the API-server double at that scale
//!   (initial sync, memory, pod and policy changes to objects written; absolute
//!   numbers);
//! - `agent`: the agent binary on a node of 250 pods in a 100,000-pod cluster (memory,
//!   apply latency for 1, 100 and 10,000 changed entries, pod cgroup to map entry);
//! - `throughput`: iperf3, round trips and connection rate across a veth pair with no
//!   program, palisade, iptables and nftables, each with the same 10,000 rules.

mod agent;
mod compile;
mod controller;
mod datapath;
mod load;
mod throughput;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "palisade-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Per-packet cost with BPF_PROG_TEST_RUN (needs root).
    Datapath {
        /// Test runs per measurement.
        #[arg(long, default_value_t = 200_000)]
        repeat: u32,
        /// Measurements per configuration (the median is reported).
        #[arg(long, default_value_t = 7)]
        rounds: usize,
    },
    /// The compiler at cluster scale (no privileges needed).
    Compile {
        /// Only time a full compile and `Compiler::new` at the target scale, for
        /// profiling (`perf record`); writes no results.
        #[arg(long)]
        profile: bool,
    },
    /// The controller binary against the API-server double at cluster scale.
    Controller {
        /// Divide the 5,000 nodes, 2,000 namespaces and 150,000 pods by this.
        #[arg(long, default_value_t = 1)]
        divide: usize,
        /// Pods created, one at a time.
        #[arg(long, default_value_t = 200)]
        pods: usize,
        /// NetworkPolicies changed, one at a time.
        #[arg(long, default_value_t = 20)]
        policies: usize,
        /// The controller binary (default: palisade-controller beside this one).
        #[arg(long)]
        controller_bin: Option<std::path::PathBuf>,
    },
    /// The agent binary on Kubernetes, fed by the controller binary through the
    /// API-server double (needs root).
    Agent,
    /// Throughput, latency and connection rate against iptables and nftables (needs
    /// root, iperf3, iptables and nftables).
    Throughput {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// A load generator, run by `throughput` inside an emulated pod.
    #[command(hide = true)]
    Load {
        #[arg(num_args = 4)]
        args: Vec<String>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Datapath { repeat, rounds } => datapath::run(repeat, rounds),
        Command::Compile { profile: false } => compile::run(),
        Command::Compile { profile: true } => compile::profile(),
        Command::Controller {
            divide,
            pods,
            policies,
            controller_bin,
        } => {
            let full = controller::FULL;
            let scale = controller::Scale {
                nodes: full.nodes / divide,
                namespaces: full.namespaces / divide,
                pods: full.pods / divide,
            };
            controller::run(scale, pods, policies, controller_bin)
        }
        Command::Agent => agent::run(),
        Command::Throughput { seconds } => throughput::run(seconds),
        Command::Load { args } => load::run(&args),
    }
}
