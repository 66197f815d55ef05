//! `cargo xtask`: the single entry point for developers and CI.
//!
//! - `setup`: installs what the eBPF build and the chart tests need (idempotent);
//! - `build`: kernel programs, then the binaries that embed them;
//! - `test`: setup, build, lints and the whole test suite (kernel tests included);
//! - `demo`: emulated pods, the quickstart policies, a reachability matrix before/after;
//! - `bench`: the benchmarks, results under `bench/results/`;
//! - `crds`: the CustomResourceDefinitions, generated from the Rust types into the chart.

mod bench;
mod build;
mod crds;
mod demo;
mod helm;
mod paths;
mod run;
mod setup;
mod test;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install the eBPF toolchain (Debian packages, bpf-linker) and helm into .tools/.
    Setup,
    /// Build the kernel programs and the release binaries.
    Build,
    /// Set up, build, lint and run every test (needs root for the kernel tests).
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true)]
        cargo_args: Vec<String>,
    },
    /// Set up, build, and show the quickstart policies on emulated pods (needs root).
    Demo,
    /// Build and run the benchmarks (needs root); results go to bench/results/.
    Bench,
    /// Write the CRDs of palisade's own kinds, generated from the Rust types, into
    /// charts/palisade/crds/.
    Crds {
        /// Only compare: fail if the checked-in files differ from the types.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::run(),
        Command::Build => build::run(),
        Command::Test { cargo_args } => test::run(&cargo_args),
        Command::Demo => demo::run(),
        Command::Bench => bench::run(),
        Command::Crds { check } => crds::run(check),
    }
}
