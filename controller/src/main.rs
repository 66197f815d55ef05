//! `palisade-controller`: the cluster brain. It compiles namespaces, pods, nodes and
//! policies into identities, the IP-to-identity cache and per-node policy tables with
//! the same library the agent and `palisadectl` use.
//!
//! `compile` runs that compilation offline on a manifests directory and prints what
//! would be published, for review and for diffing in CI. (The Kubernetes watch loop,
//! publication and status reporting build on it.)

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

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

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Compile { manifests, node } => compile(&manifests, node.as_deref()),
    }
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
