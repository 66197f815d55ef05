//! `palisadectl observe`: follows the flow events of a node's agent (its
//! `--events-addr` stream), filtered by namespace, pod, verdict and policy on the
//! agent's side, and prints them as they arrive, in the spirit of `hubble observe`.
//!
//! Modules: `args` (command line and request), `client` (the HTTP stream),
//! `render` (readable lines).

pub mod args;
mod client;
mod render;

use anyhow::{Context, Result};
use args::{ObserveArgs, ObserveFormat};
use std::io::Write;

pub fn run(args: &ObserveArgs, out: &mut impl Write) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the I/O runtime")?;
    runtime.block_on(follow(args, out))
}

async fn follow(args: &ObserveArgs, out: &mut impl Write) -> Result<()> {
    let mut stream = client::open(&args.agent, &args.request_path()).await?;
    let mut printed = 0u64;
    loop {
        if args.count.is_some_and(|n| printed >= n) {
            return Ok(());
        }
        let line = stream.next_line().await?;
        if line.trim().is_empty() {
            continue;
        }
        match args.output {
            ObserveFormat::Json => writeln!(out, "{line}")?,
            ObserveFormat::Human => match render::human(&line) {
                Ok(text) => writeln!(out, "{text}")?,
                Err(why) => anyhow::bail!("unexpected line from the agent ({why}): {line}"),
            },
        }
        // Each event is shown as it arrives, also into a pipe.
        out.flush()?;
        if !line.contains("\"type\":\"lost\"") {
            printed += 1;
        }
    }
}
