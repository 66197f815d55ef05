//! `palisadectl`: palisade's command-line tool.
//!
//! `palisadectl check` is the what-if simulator: it reads the same manifests directory
//! `palisade-agent standalone` reads, compiles it exactly as the agent does, and decides
//! flows from the compiled tables the way the kernel programs do, naming the policy
//! rules that decided them. Exit status: 0 whatever the verdicts, 1 for bad input
//! (manifests, probes, unknown pods), 2 for bad usage.

mod check;

use clap::{CommandFactory, Parser, Subcommand};
use std::io::{self, Write};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "palisadectl", version, about = "palisade's command-line tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Would this traffic pass, and which policy rules decide it ("why is my traffic
    /// blocked").
    #[command(after_help = check::args::AFTER_HELP)]
    Check(check::args::CheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = match &cli.command {
        Command::Check(args) => check::run(args, &mut out),
    };
    let result = result.and_then(|()| out.flush().map_err(Into::into));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(error),
    }
}

/// Prints `error` and gives the exit status it calls for.
fn report(error: anyhow::Error) -> ExitCode {
    if let Some(usage) = error.downcast_ref::<check::args::UsageError>() {
        // Same format and status (2) as the usage errors clap finds itself.
        let mut command = Cli::command();
        let check = command
            .find_subcommand_mut("check")
            .expect("check is a subcommand")
            .clone();
        check.bin_name("palisadectl check").error(usage.kind, &usage.message).exit();
    }
    // A closed pipe (`palisadectl check ... | head`) is the reader's choice, not an error.
    if error
        .downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    {
        return ExitCode::SUCCESS;
    }
    eprintln!("palisadectl: error: {error:#}");
    ExitCode::FAILURE
}
