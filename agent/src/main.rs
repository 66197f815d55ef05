//! `palisade-agent`: the node agent's command line. The work is done by the
//! `palisade_agent` library (this crate's lib target).
//!
//! Modes: `standalone` (a directory of manifests, no cluster) and `cleanup` (remove
//! every pinned object). The Kubernetes mode builds on the same pieces.

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use palisade_agent::{pins, standalone, telemetry};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "palisade-agent", version, about = "palisade node agent")]
struct Cli {
    /// Log JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "PALISADE_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enforce the policies of a manifests directory on this machine, no Kubernetes.
    Standalone {
        /// Directory of Kubernetes-style YAML (Namespaces, Nodes, Pods, policies).
        #[arg(long)]
        manifests: PathBuf,
        /// Directory of the cgroup2 mount to protect (absolute); every cgroup below it
        /// is covered.
        #[arg(long)]
        cgroup_root: PathBuf,
        /// Address of /healthz, /readyz and /status.
        #[arg(long, default_value = "127.0.0.1:9876")]
        health_addr: SocketAddr,
        /// bpffs directory for this agent's pins.
        #[arg(long, default_value = "/sys/fs/bpf/palisade")]
        pin_path: PathBuf,
        /// Name of this node (pods with this spec.nodeName, or none, are local).
        #[arg(long)]
        node_name: Option<String>,
        /// Verdict for cgroups under the root that no pod entry covers.
        #[arg(long, value_enum, default_value_t = UnknownEndpoint::Allow)]
        unknown_endpoint: UnknownEndpoint,
        /// Flow events (denied and audit-denied flows) each endpoint may emit per
        /// second; more are counted (`event_rate_limited`), not reported.
        #[arg(long, default_value_t = palisade_abi::NodeConfig::DEFAULT_EVENTS_PER_SECOND)]
        events_per_second: u32,
        /// Flow events an endpoint may emit in a burst.
        #[arg(long, default_value_t = palisade_abi::NodeConfig::DEFAULT_EVENT_BURST)]
        event_burst: u32,
        /// Report allowed new flows too (verdict `allow`), within the same
        /// per-endpoint budget as denials.
        #[arg(long)]
        allow_events: bool,
        /// Serve the flow event stream here (`GET /events`, newline-delimited JSON;
        /// `palisadectl observe --agent ADDR:PORT` follows it).
        #[arg(long, value_name = "ADDR:PORT")]
        events_addr: Option<SocketAddr>,
        /// Entries of the conntrack table (LRU), applied when the table is created; a
        /// pinned table of another size is kept (see /status.conntrack).
        #[arg(long, default_value_t = palisade_abi::capacity::CONNTRACK,
              value_parser = clap::value_parser!(u32).range(i64::from(palisade_abi::capacity::CONNTRACK_MIN)..=16_777_216))]
        conntrack_max: u32,
    },
    /// Remove every link, program and map pinned under --pin-path.
    Cleanup {
        #[arg(long, default_value = "/sys/fs/bpf/palisade")]
        pin_path: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum UnknownEndpoint {
    Allow,
    Deny,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.log_json);
    match cli.command {
        Command::Standalone {
            manifests,
            cgroup_root,
            health_addr,
            pin_path,
            node_name,
            unknown_endpoint,
            events_per_second,
            event_burst,
            allow_events,
            events_addr,
            conntrack_max,
        } => {
            let node_name = match node_name {
                Some(n) => n,
                None => hostname()?,
            };
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(standalone::run(standalone::Options {
                manifests,
                cgroup_root,
                health_addr,
                pin_path,
                node_name,
                unknown_endpoint_verdict: match unknown_endpoint {
                    UnknownEndpoint::Allow => palisade_abi::verdict::ALLOW,
                    UnknownEndpoint::Deny => palisade_abi::verdict::DENY,
                },
                events_per_second,
                event_burst,
                allow_events,
                events_addr,
                conntrack_max,
            }))
        }
        Command::Cleanup { pin_path } => {
            let removed = pins::PinLayout::new(&pin_path).remove_all()?;
            tracing::info!(removed, pin_path = %pin_path.display(), "removed pinned objects");
            Ok(())
        }
    }
}

fn hostname() -> Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    Ok(name.trim().to_string())
}
