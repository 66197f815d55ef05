//! The `palisade-netprobe` tool that labs run inside pods: echo servers
//! (`serve`), one-shot connection probes (`connect`) and held connections
//! (`hold`). Public so that the binary is a thin shim; its command line and
//! its [`report`](crate::report) lines are its interface.
//!
//! ```text
//! palisade-netprobe serve [--tcp PORT]... [--udp PORT]... [--bind IP] [--name NAME]
//! palisade-netprobe connect --proto tcp|udp --addr IP --port N [--timeout-ms MS] [--payload TEXT]
//!                           [--identify] [--unconnected]
//! palisade-netprobe hold --proto tcp --addr IP --port N [--timeout-ms MS] [--interval-ms MS]
//! palisade-netprobe socket --kind raw4|raw6|packet
//! palisade-netprobe bind --proto tcp|udp --addr IP --port N
//! palisade-netprobe fragment --src IPV4 --dst IPV4 [--whole]
//! palisade-netprobe ping --addr IP [--timeout-ms MS]
//! ```
//!
//! `socket`, `bind` and `fragment` probe the socket controls (`sockets.rs`); `ping`
//! sends one ICMP echo without a raw socket (`ping.rs`).

mod args;
mod classify;
mod connect;
mod hold;
mod ping;
mod serve;
mod sockets;

use std::process::ExitCode;

pub use args::{
    BindArgs, ConnectArgs, FragmentArgs, HoldArgs, NetprobeCommand, PingArgs, ServeArgs,
    SocketArgs, SocketKind, USAGE, parse_args,
};

/// Runs the tool with its arguments (without the program name) and returns
/// its exit code: 0 once a result is printed, 2 for bad arguments, 1 if a
/// server could not start.
pub fn run(args: &[String]) -> ExitCode {
    let command = match parse_args(args) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("palisade-netprobe: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match command {
        NetprobeCommand::Serve(args) => match serve::serve(&args) {
            Ok(never) => match never {},
            Err(message) => {
                eprintln!("palisade-netprobe serve: {message}");
                ExitCode::FAILURE
            }
        },
        NetprobeCommand::Connect(args) => connect::connect(&args),
        NetprobeCommand::Hold(args) => hold::hold(&args),
        NetprobeCommand::Socket(args) => sockets::socket(&args),
        NetprobeCommand::Bind(args) => sockets::bind(&args),
        NetprobeCommand::Fragment(args) => sockets::fragment(&args),
        NetprobeCommand::Ping(args) => ping::ping(&args),
    }
}
