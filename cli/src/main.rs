//! `palisadectl`: palisade's command-line tool.
//!
//! `palisadectl check` is the what-if simulator: it reads the same manifests directory
//! `palisade-agent standalone` reads, compiles it exactly as the agent does, and decides
//! flows from the compiled tables the way the kernel programs do, naming the policy
//! rules that decided them. Exit status: 0 whatever the verdicts, 1 for bad input
//! (manifests, probes, unknown pods), 2 for bad usage.
//!
//! `palisadectl observe` follows the flow events (denials, audit denials) of a node's
//! agent as they happen. Exit status: 0 after `--count` events, 1 when the agent cannot
//! be reached or ends the stream, 2 for bad usage.

mod check;
mod observe;

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
    /// Follow the flow events of a node's agent: what is denied (and audit-denied)
    /// now, by which policy.
    #[command(after_help = observe::args::AFTER_HELP)]
    Observe(observe::args::ObserveArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = match &cli.command {
        Command::Check(args) => check::run(args, &mut out),
        Command::Observe(args) => observe::run(args, &mut out),
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
        check
            .bin_name("palisadectl check")
            .error(usage.kind, &usage.message)
            .exit();
    }
    // A closed pipe (`palisadectl check ... | head`) is the reader's choice, not an error.
    if error
        .downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    {
        return ExitCode::SUCCESS;
    }
    eprintln!("palisadectl: error: {}", message(&error));
    ExitCode::FAILURE
}

/// The error and its causes, leaving out a cause whose text the message already holds
/// (many errors here spell out their source themselves).
fn message(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_is_a_subcommand() {
        let cli = Cli::try_parse_from([
            "palisadectl",
            "check",
            "--manifests",
            "dir",
            "--matrix",
            "--port",
            "80",
        ])
        .unwrap();
        let Command::Check(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert!(args.matrix);
        assert!(Cli::try_parse_from(["palisadectl", "check"]).is_err());
        assert!(Cli::try_parse_from(["palisadectl", "frobnicate"]).is_err());
        Cli::command().debug_assert();
    }

    #[test]
    fn observe_is_a_subcommand() {
        let cli = Cli::try_parse_from([
            "palisadectl",
            "observe",
            "--agent",
            "127.0.0.1:9877",
            "--verdict",
            "audit-deny",
            "--output",
            "json",
        ])
        .unwrap();
        let Command::Observe(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.verdict, [observe::args::VerdictArg::AuditDeny]);
        assert!(Cli::try_parse_from(["palisadectl", "observe"]).is_err());
        assert!(
            Cli::try_parse_from(["palisadectl", "observe", "--agent", "x:1", "--count", "0"])
                .is_err()
        );
    }

    #[test]
    fn messages_do_not_repeat_their_sources() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read x: {source}")]
        struct SpellsOut {
            source: std::io::Error,
        }
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let error = anyhow::Error::from(SpellsOut { source: io() });
        assert_eq!(message(&error), "cannot read x: gone");
        let error = anyhow::Error::from(io()).context("reading y");
        assert_eq!(message(&error), "reading y: gone");
    }
}
