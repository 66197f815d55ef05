//! Parsing netprobe's command line (by hand: the tool must start fast and its
//! syntax is tiny).

use crate::probe::Proto;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// The usage text printed with argument errors.
pub const USAGE: &str = "\
usage: palisade-netprobe serve [--tcp PORT]... [--udp PORT]... [--bind IP]
       palisade-netprobe connect --proto tcp|udp --addr IP --port N [--timeout-ms MS] [--payload TEXT]
       palisade-netprobe hold --proto tcp --addr IP --port N [--timeout-ms MS] [--interval-ms MS]";

const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);
const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
const DEFAULT_PAYLOAD: &str = "palisade-netprobe";

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetprobeCommand {
    Serve(ServeArgs),
    Connect(ConnectArgs),
    Hold(HoldArgs),
}

/// `serve`: echo servers on these ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeArgs {
    pub tcp_ports: Vec<u16>,
    pub udp_ports: Vec<u16>,
    /// The one address to listen on; `None` listens on every address (IPv4
    /// and IPv6). A server in a namespace with several addresses binds one so
    /// that its UDP replies come from the address the client asked.
    pub bind: Option<IpAddr>,
}

/// `connect`: one probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectArgs {
    pub proto: Proto,
    pub addr: IpAddr,
    pub port: u16,
    pub timeout: Duration,
    pub payload: String,
}

/// `hold`: a TCP connection kept open with periodic round trips.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldArgs {
    pub addr: IpAddr,
    pub port: u16,
    /// Bound on connecting and on each round trip.
    pub timeout: Duration,
    /// Pause between round trips.
    pub interval: Duration,
}

/// Parses the arguments after the program name.
pub fn parse_args(args: &[String]) -> Result<NetprobeCommand, String> {
    let (subcommand, rest) = args.split_first().ok_or("missing subcommand")?;
    let options = Options::parse(rest)?;
    match subcommand.as_str() {
        "serve" => {
            options.only(&["--tcp", "--udp", "--bind"])?;
            let tcp_ports = options.all("--tcp")?;
            let udp_ports = options.all("--udp")?;
            if tcp_ports.is_empty() && udp_ports.is_empty() {
                return Err("serve needs at least one --tcp or --udp port".into());
            }
            Ok(NetprobeCommand::Serve(ServeArgs {
                tcp_ports,
                udp_ports,
                bind: options.last("--bind")?,
            }))
        }
        "connect" => {
            options.only(&["--proto", "--addr", "--port", "--timeout-ms", "--payload"])?;
            let payload = options
                .last::<String>("--payload")?
                .unwrap_or_else(|| DEFAULT_PAYLOAD.into());
            if payload.is_empty() {
                return Err("--payload must not be empty".into());
            }
            Ok(NetprobeCommand::Connect(ConnectArgs {
                proto: options.required("--proto")?,
                addr: options.required("--addr")?,
                port: options.required("--port")?,
                timeout: options.duration_ms("--timeout-ms", DEFAULT_TIMEOUT)?,
                payload,
            }))
        }
        "hold" => {
            options.only(&[
                "--proto",
                "--addr",
                "--port",
                "--timeout-ms",
                "--interval-ms",
            ])?;
            let proto: Proto = options.required("--proto")?;
            if proto != Proto::Tcp {
                return Err("hold supports only --proto tcp".into());
            }
            Ok(NetprobeCommand::Hold(HoldArgs {
                addr: options.required("--addr")?,
                port: options.required("--port")?,
                timeout: options.duration_ms("--timeout-ms", DEFAULT_TIMEOUT)?,
                interval: options.duration_ms("--interval-ms", DEFAULT_INTERVAL)?,
            }))
        }
        other => Err(format!("unknown subcommand {other:?}")),
    }
}

/// `--name value` pairs, in order.
struct Options<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Options<'a> {
    fn parse(args: &'a [String]) -> Result<Self, String> {
        let mut pairs = Vec::new();
        let mut args = args.iter();
        while let Some(name) = args.next() {
            if !name.starts_with("--") {
                return Err(format!("unexpected argument {name:?}"));
            }
            let value = args.next().ok_or_else(|| format!("{name} needs a value"))?;
            pairs.push((name.as_str(), value.as_str()));
        }
        Ok(Options(pairs))
    }

    fn only(&self, allowed: &[&str]) -> Result<(), String> {
        match self.0.iter().find(|(name, _)| !allowed.contains(name)) {
            Some((name, _)) => Err(format!("unknown option {name}")),
            None => Ok(()),
        }
    }

    fn all<T: FromStr>(&self, name: &str) -> Result<Vec<T>, String>
    where
        T::Err: std::fmt::Display,
    {
        self.0
            .iter()
            .filter(|(option, _)| *option == name)
            .map(|(_, value)| parse_value(name, value))
            .collect()
    }

    fn last<T: FromStr>(&self, name: &str) -> Result<Option<T>, String>
    where
        T::Err: std::fmt::Display,
    {
        Ok(self.all(name)?.pop())
    }

    fn required<T: FromStr>(&self, name: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        self.last(name)?.ok_or_else(|| format!("missing {name}"))
    }

    fn duration_ms(&self, name: &str, default: Duration) -> Result<Duration, String> {
        match self.last::<u64>(name)? {
            Some(0) => Err(format!("{name} must be at least 1")),
            Some(ms) => Ok(Duration::from_millis(ms)),
            None => Ok(default),
        }
    }
}

fn parse_value<T: FromStr>(name: &str, value: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|error| format!("invalid {name} {value:?}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<NetprobeCommand, String> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        parse_args(&args)
    }

    #[test]
    fn parses_serve_with_repeated_ports() {
        assert_eq!(
            parse("serve --tcp 80 --udp 53 --tcp 8080"),
            Ok(NetprobeCommand::Serve(ServeArgs {
                tcp_ports: vec![80, 8080],
                udp_ports: vec![53],
                bind: None,
            }))
        );
    }

    #[test]
    fn parses_serve_bound_to_one_address() {
        assert_eq!(
            parse("serve --tcp 80 --udp 53 --bind 172.18.0.3"),
            Ok(NetprobeCommand::Serve(ServeArgs {
                tcp_ports: vec![80],
                udp_ports: vec![53],
                bind: Some("172.18.0.3".parse().expect("address")),
            }))
        );
    }

    #[test]
    fn parses_connect_with_defaults() {
        assert_eq!(
            parse("connect --proto udp --addr fd00:90::3 --port 53"),
            Ok(NetprobeCommand::Connect(ConnectArgs {
                proto: Proto::Udp,
                addr: "fd00:90::3".parse().expect("address"),
                port: 53,
                timeout: DEFAULT_TIMEOUT,
                payload: DEFAULT_PAYLOAD.into(),
            }))
        );
    }

    #[test]
    fn parses_hold() {
        let parsed = parse("hold --proto tcp --addr 10.90.0.3 --port 80 --interval-ms 50");
        assert_eq!(
            parsed,
            Ok(NetprobeCommand::Hold(HoldArgs {
                addr: "10.90.0.3".parse().expect("address"),
                port: 80,
                timeout: DEFAULT_TIMEOUT,
                interval: Duration::from_millis(50),
            }))
        );
    }

    #[test]
    fn rejects_bad_arguments() {
        for line in [
            "",
            "ping",
            "serve",
            "serve --tcp",
            "serve --tcp 70000",
            "serve --sctp 1",
            "serve --tcp 80 --bind somewhere",
            "connect --proto tcp --addr 10.0.0.1",
            "connect --proto icmp --addr 10.0.0.1 --port 1",
            "connect --proto tcp --addr nowhere --port 1",
            "connect --proto tcp --addr 10.0.0.1 --port 1 --timeout-ms 0",
            "connect --proto tcp --addr 10.0.0.1 --port 1 stray",
            "hold --proto udp --addr 10.0.0.1 --port 1",
        ] {
            assert!(parse(line).is_err(), "{line:?} was accepted");
        }
    }
}
