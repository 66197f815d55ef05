//! `palisade-controller`: the cluster brain. It compiles namespaces, pods, nodes and
//! policies into identities, the IP-to-identity cache and per-node policy tables with
//! the same library the agent and `palisadectl` use.
//!
//! `run` is the controller on Kubernetes (see docs/controller.md): watches, compiles,
//! publishes ClusterTables and NodePolicies, writes policy status, elects a leader on
//! a Lease, serves `/metrics`, `/healthz` and `/readyz`. `compile` runs the
//! compilation offline on a manifests directory and prints what would be published,
//! for review and for diffing in CI.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use palisade_controller::controller::{self, Settings};
use palisade_controller::health::{self, Readiness};
use palisade_controller::leader::LeaseSettings;
use palisade_controller::metrics::Metrics;
use palisade_controller::telemetry;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "palisade-controller",
    version,
    about = "palisade cluster controller"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the cluster (in-cluster config, or --kubeconfig).
    Run(RunArgs),
    /// Compile a manifests directory and print the result as JSON: identities, ip
    /// cache, rules and per-node tables (or one node's with --node).
    Compile {
        #[arg(long)]
        manifests: PathBuf,
        /// Print only this node's tables (plus the cluster-wide parts).
        #[arg(long)]
        node: Option<String>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// A kubeconfig file; without it the in-cluster service account (or
    /// $KUBECONFIG / ~/.kube/config) is used.
    #[arg(long, env = "PALISADE_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Where /metrics is served.
    #[arg(long, env = "PALISADE_METRICS_ADDR", default_value = "0.0.0.0:9090")]
    metrics_addr: SocketAddr,
    /// Where /healthz and /readyz are served.
    #[arg(long, env = "PALISADE_HEALTH_ADDR", default_value = "0.0.0.0:9091")]
    health_addr: SocketAddr,
    /// The coordination.k8s.io/v1 Lease replicas elect a leader on.
    #[arg(
        long,
        env = "PALISADE_LEASE_NAME",
        default_value = "palisade-controller"
    )]
    lease_name: String,
    #[arg(
        long,
        env = "PALISADE_LEASE_NAMESPACE",
        default_value = "palisade-system"
    )]
    lease_namespace: String,
    /// This replica's holder identity (the chart passes the pod name).
    #[arg(long, env = "PALISADE_IDENTITY")]
    identity: Option<String>,
    /// Lease duration in seconds: how long a dead leader blocks a standby.
    #[arg(long, env = "PALISADE_LEASE_DURATION", default_value_t = 15)]
    lease_duration: u64,
    /// How often the leader renews (and a standby retries), in milliseconds.
    #[arg(long, env = "PALISADE_LEASE_RETRY_MS", default_value_t = 2000)]
    lease_retry_ms: u64,
    /// How long to wait for more changes after one before reconciling, in milliseconds
    /// (0: take what is queued; changes arriving during a reconcile make the next batch).
    #[arg(long, env = "PALISADE_DEBOUNCE_MS", default_value_t = 0)]
    debounce_ms: u64,
    /// Log one JSON object per line.
    #[arg(long, env = "PALISADE_LOG_JSON")]
    log_json: bool,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(args),
        Command::Compile { manifests, node } => compile(&manifests, node.as_deref()),
    }
}

fn run(args: RunArgs) -> Result<()> {
    telemetry::init(args.log_json);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let config = match &args.kubeconfig {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
            }
            None => kube::Config::infer().await?,
        };
        let client = kube::Client::try_from(config)?;
        let identity = match args.identity {
            Some(identity) => identity,
            None => std::env::var("HOSTNAME").context("--identity (or HOSTNAME) is required")?,
        };
        let mut settings = Settings::new(LeaseSettings {
            name: args.lease_name,
            namespace: args.lease_namespace,
            identity,
            duration: Duration::from_secs(args.lease_duration),
            retry: Duration::from_millis(args.lease_retry_ms),
        });
        settings.debounce = Duration::from_millis(args.debounce_ms);
        let metrics = Arc::new(Metrics::new());
        let readiness = Arc::new(Readiness::default());
        let metrics_server =
            health::serve(args.metrics_addr, health::metrics_router(metrics.clone()));
        let health_server =
            health::serve(args.health_addr, health::health_router(readiness.clone()));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let controller = tokio::spawn(controller::run(
            client, settings, metrics, readiness, stop_rx,
        ));
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = metrics_server => result.context("metrics server")?,
            result = health_server => result.context("health server")?,
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down"),
        }
        stop_tx.send_replace(true);
        controller.await?;
        Ok(())
    })
}

fn compile(dir: &std::path::Path, node: Option<&str>) -> Result<()> {
    let set = palisade_manifests::read_dir(dir)?;
    let cluster = set.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut compiled = palisade_policy::compile::compile(&cluster);
    if let Some(node) = node {
        let tables = compiled
            .nodes
            .remove(node)
            .with_context(|| format!("no node named {node:?} in {}", dir.display()))?;
        compiled.nodes = [(node.to_string(), tables)].into_iter().collect();
    }
    let out = serde_json::json!({
        "manifest_hash": set.hash,
        "compiled": compiled,
    });
    let text = serde_json::to_string_pretty(&out)?;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}") {
        // A closed pipe (`| head`) is the reader's choice, not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
