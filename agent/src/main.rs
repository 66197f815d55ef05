//! `palisade-agent`: the node agent's command line. The work is done by the
//! `palisade_agent` library (this crate's lib target).
//!
//! Modes: `kubernetes` (the node agent of a cluster), `standalone` (a directory of
//! manifests, no cluster), `enforcement off|on` (the node's emergency off switch) and
//! `cleanup` (remove every pinned object). docs/agent.md documents them.

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use palisade_agent::{enforcement_switch, kubernetes, pins, standalone, telemetry};
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
    /// Enforce this node's policy as the palisade controller publishes it (the
    /// chart's DaemonSet).
    Kubernetes {
        /// This node's name (the Node, its NodePolicy, and its pods' spec.nodeName).
        #[arg(long, env = "PALISADE_NODE_NAME")]
        node_name: String,
        /// kubeconfig file; default: the in-cluster service account, else KUBECONFIG.
        #[arg(long, env = "PALISADE_KUBECONFIG")]
        kubeconfig: Option<PathBuf>,
        /// The agent's own pod UID (the chart sets it through the downward API). In a
        /// container's cgroup namespace /proc/self/cgroup says only `0::/`, so the
        /// agent finds its own pod cgroup by this UID and keeps its own traffic (to the
        /// API server) out of enforcement, as host traffic.
        #[arg(long, env = "PALISADE_POD_UID")]
        pod_uid: Option<String>,
        /// The kubelet's cgroup root on the cgroup2 mount; the programs attach at its
        /// kubepods cgroup (kubepods.slice or kubepods).
        #[arg(long, default_value = "/sys/fs/cgroup")]
        cgroup_root: PathBuf,
        /// bpffs directory for this agent's pins (its parent must be a bpffs: the
        /// host's /sys/fs/bpf through a hostPath volume).
        #[arg(long, default_value = "/sys/fs/bpf/palisade")]
        pin_path: PathBuf,
        /// Address of /healthz, /readyz and /status.
        #[arg(long, default_value = "0.0.0.0:9876")]
        health_addr: SocketAddr,
        /// Address of /metrics (Prometheus).
        #[arg(long, default_value = "0.0.0.0:9877")]
        metrics_addr: SocketAddr,
        /// Serve the flow event stream here (`GET /events`, newline-delimited JSON).
        #[arg(long, value_name = "ADDR:PORT")]
        events_addr: Option<SocketAddr>,
        /// Verdict for pod cgroups no endpoint entry covers yet (a pod the controller
        /// has not published, or whose cgroup the agent has not mapped yet).
        #[arg(long, value_enum, default_value_t = UnknownEndpoint::Deny)]
        unknown_endpoint: UnknownEndpoint,
        /// Flow events each endpoint may emit per second.
        #[arg(long, default_value_t = palisade_abi::NodeConfig::DEFAULT_EVENTS_PER_SECOND)]
        events_per_second: u32,
        /// Flow events an endpoint may emit in a burst.
        #[arg(long, default_value_t = palisade_abi::NodeConfig::DEFAULT_EVENT_BURST)]
        event_burst: u32,
        /// Entries of the conntrack table (LRU), applied when the table is created.
        #[arg(long, default_value_t = palisade_abi::capacity::CONNTRACK,
              value_parser = clap::value_parser!(u32).range(i64::from(palisade_abi::capacity::CONNTRACK_MIN)..=16_777_216))]
        conntrack_max: u32,
        /// Full resync period in seconds (pod cgroup rescan behind inotify, counters).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
        resync_seconds: u64,
    },
    /// The node's emergency off switch: `off` makes the kernel programs pass
    /// everything at once (still counting), until `on`; survives agent restarts.
    Enforcement {
        #[arg(value_enum)]
        state: SwitchArg,
        #[arg(long, default_value = "/sys/fs/bpf/palisade")]
        pin_path: PathBuf,
    },
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

impl UnknownEndpoint {
    fn verdict(self) -> u8 {
        match self {
            UnknownEndpoint::Allow => palisade_abi::verdict::ALLOW,
            UnknownEndpoint::Deny => palisade_abi::verdict::DENY,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SwitchArg {
    Off,
    On,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.log_json);
    match cli.command {
        Command::Kubernetes {
            node_name,
            kubeconfig,
            pod_uid,
            cgroup_root,
            pin_path,
            health_addr,
            metrics_addr,
            events_addr,
            unknown_endpoint,
            events_per_second,
            event_burst,
            conntrack_max,
            resync_seconds,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(kubernetes::run(kubernetes::Options {
                node_name,
                kubeconfig,
                pod_uid,
                cgroup_root,
                pin_path,
                health_addr,
                metrics_addr,
                events_addr,
                unknown_endpoint_verdict: unknown_endpoint.verdict(),
                events_per_second,
                event_burst,
                conntrack_max,
                resync: std::time::Duration::from_secs(resync_seconds),
            }))
        }
        Command::Enforcement { state, pin_path } => {
            let mut switch = enforcement_switch::Switch::open(&pin_path)?;
            let now = switch.set_by_command(state == SwitchArg::Off)?;
            if now.enforcing() {
                tracing::warn!(pin_path = %pin_path.display(), "enforcement is ON");
            } else {
                tracing::warn!(
                    pin_path = %pin_path.display(),
                    command_off = now.command_off,
                    node_label_off = now.node_label_off,
                    "enforcement is OFF: everything passes until `palisade-agent enforcement on`"
                );
            }
            println!(
                "{}",
                serde_json::to_string(&now).expect("switch state serializes")
            );
            Ok(())
        }
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
                unknown_endpoint_verdict: unknown_endpoint.verdict(),
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
