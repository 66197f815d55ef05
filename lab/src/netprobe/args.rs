//! Parsing netprobe's command line (by hand: the tool must start fast and its
//! syntax is tiny).

use crate::probe::Proto;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;

/// The usage text printed with argument errors.
pub const USAGE: &str = "\
usage: palisade-netprobe serve [--tcp PORT]... [--udp PORT]... [--bind IP] [--name NAME]
       palisade-netprobe connect --proto tcp|udp --addr IP --port N [--timeout-ms MS] [--payload TEXT]
                                 [--identify] [--unconnected]
       palisade-netprobe hold --proto tcp --addr IP --port N [--timeout-ms MS] [--interval-ms MS]
       palisade-netprobe socket --kind raw4|raw6|packet
       palisade-netprobe bind --proto tcp|udp --addr IP --port N
       palisade-netprobe fragment --src IPV4 --dst IPV4 [--whole]
       palisade-netprobe ping --addr IP [--timeout-ms MS]";

const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);
const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
const DEFAULT_PAYLOAD: &str = "palisade-netprobe";

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetprobeCommand {
    Serve(ServeArgs),
    Connect(ConnectArgs),
    Hold(HoldArgs),
    Socket(SocketArgs),
    Bind(BindArgs),
    Fragment(FragmentArgs),
    Ping(PingArgs),
}

/// `ping`: one ICMP or ICMPv6 echo request through an unprivileged ping socket
/// (`SOCK_DGRAM`, `IPPROTO_ICMP`/`IPPROTO_ICMPV6`), so that a pod refused raw sockets
/// can still try ICMP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PingArgs {
    pub addr: IpAddr,
    /// Bound on waiting for the echo reply.
    pub timeout: Duration,
}

/// `socket`: create one socket of this kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketArgs {
    pub kind: SocketKind,
}

/// What `socket` opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketKind {
    /// `socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)`.
    Raw4,
    /// `socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6)`.
    Raw6,
    /// `socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL))`.
    Packet,
}

impl FromStr for SocketKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "raw4" => Ok(Self::Raw4),
            "raw6" => Ok(Self::Raw6),
            "packet" => Ok(Self::Packet),
            other => Err(format!("{other:?} is not raw4, raw6 or packet")),
        }
    }
}

/// `bind`: bind a TCP or UDP socket to this local address and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindArgs {
    pub proto: Proto,
    pub addr: IpAddr,
    pub port: u16,
}

/// `fragment`: send one hand-made IPv4 UDP packet from `src` to `dst` through a raw
/// socket: a non-first fragment, or with `whole` an unfragmented datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FragmentArgs {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub whole: bool,
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
    /// Identify every answer: a TCP connection starts with the line
    /// `NAME CLIENT-ADDRESS:PORT`, a UDP reply with that line before the echo. For
    /// `connect --identify`; other clients would see the line as a wrong echo.
    pub name: Option<String>,
}

/// `connect`: one probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectArgs {
    pub proto: Proto,
    pub addr: IpAddr,
    pub port: u16,
    pub timeout: Duration,
    pub payload: String,
    /// Expect the answer of a `serve --name` server and report who answered, as whom
    /// it saw the probe, and the peer address the probe's socket reports.
    pub identify: bool,
    /// UDP only: send with `sendto()` and receive with `recvfrom()` on an unconnected
    /// socket (the default connects the socket first).
    pub unconnected: bool,
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
            options.only(&["--tcp", "--udp", "--bind", "--name"])?;
            let tcp_ports = options.all("--tcp")?;
            let udp_ports = options.all("--udp")?;
            if tcp_ports.is_empty() && udp_ports.is_empty() {
                return Err("serve needs at least one --tcp or --udp port".into());
            }
            Ok(NetprobeCommand::Serve(ServeArgs {
                tcp_ports,
                udp_ports,
                bind: options.last("--bind")?,
                name: server_name(options.last("--name")?)?,
            }))
        }
        "connect" => {
            options.only(&[
                "--proto",
                "--addr",
                "--port",
                "--timeout-ms",
                "--payload",
                "--identify",
                "--unconnected",
            ])?;
            let proto: Proto = options.required("--proto")?;
            let unconnected = options.flag("--unconnected");
            if unconnected && proto != Proto::Udp {
                return Err("--unconnected needs --proto udp".into());
            }
            let payload = options
                .last::<String>("--payload")?
                .unwrap_or_else(|| DEFAULT_PAYLOAD.into());
            if payload.is_empty() {
                return Err("--payload must not be empty".into());
            }
            Ok(NetprobeCommand::Connect(ConnectArgs {
                proto,
                addr: options.required("--addr")?,
                port: options.required("--port")?,
                timeout: options.duration_ms("--timeout-ms", DEFAULT_TIMEOUT)?,
                payload,
                identify: options.flag("--identify"),
                unconnected,
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
        "socket" => {
            options.only(&["--kind"])?;
            Ok(NetprobeCommand::Socket(SocketArgs {
                kind: options.required("--kind")?,
            }))
        }
        "bind" => {
            options.only(&["--proto", "--addr", "--port"])?;
            Ok(NetprobeCommand::Bind(BindArgs {
                proto: options.required("--proto")?,
                addr: options.required("--addr")?,
                port: options.required("--port")?,
            }))
        }
        "fragment" => {
            options.only(&["--src", "--dst", "--whole"])?;
            Ok(NetprobeCommand::Fragment(FragmentArgs {
                src: options.required("--src")?,
                dst: options.required("--dst")?,
                whole: options.flag("--whole"),
            }))
        }
        "ping" => {
            options.only(&["--addr", "--timeout-ms"])?;
            Ok(NetprobeCommand::Ping(PingArgs {
                addr: options.required("--addr")?,
                timeout: options.duration_ms("--timeout-ms", DEFAULT_TIMEOUT)?,
            }))
        }
        other => Err(format!("unknown subcommand {other:?}")),
    }
}

/// A server name for `serve --name`: one word, so that it ends where the answer's
/// line says.
fn server_name(name: Option<String>) -> Result<Option<String>, String> {
    match name {
        Some(name) if name.is_empty() || name.chars().any(char::is_whitespace) => Err(format!(
            "invalid --name {name:?}: one word without spaces needed"
        )),
        other => Ok(other),
    }
}

/// Options that take no value.
const FLAGS: [&str; 3] = ["--identify", "--unconnected", "--whole"];

/// `--name value` pairs, in order; a flag's value is empty.
struct Options<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Options<'a> {
    fn parse(args: &'a [String]) -> Result<Self, String> {
        let mut pairs = Vec::new();
        let mut args = args.iter();
        while let Some(name) = args.next() {
            if !name.starts_with("--") {
                return Err(format!("unexpected argument {name:?}"));
            }
            if FLAGS.contains(&name.as_str()) {
                pairs.push((name.as_str(), ""));
                continue;
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

    fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|(option, _)| *option == name)
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
                name: None,
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
                name: None,
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
                identify: false,
                unconnected: false,
            }))
        );
    }

    #[test]
    fn server_names_are_one_word() {
        assert!(server_name(Some("two words".into())).is_err());
        assert!(server_name(Some(String::new())).is_err());
        assert_eq!(server_name(Some("web-1".into())), Ok(Some("web-1".into())));
    }

    #[test]
    fn parses_identifying_servers_and_probes() {
        match parse("serve --udp 53 --name web-1") {
            Ok(NetprobeCommand::Serve(args)) => assert_eq!(args.name.as_deref(), Some("web-1")),
            other => panic!("{other:?}"),
        }
        match parse("connect --proto udp --addr 10.96.0.10 --port 53 --identify --unconnected") {
            Ok(NetprobeCommand::Connect(args)) => assert!(args.identify && args.unconnected),
            other => panic!("{other:?}"),
        }
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
    fn parses_socket_probes() {
        assert_eq!(
            parse("socket --kind packet"),
            Ok(NetprobeCommand::Socket(SocketArgs {
                kind: SocketKind::Packet
            }))
        );
        assert_eq!(
            parse("bind --proto udp --addr 10.0.0.1 --port 8080"),
            Ok(NetprobeCommand::Bind(BindArgs {
                proto: Proto::Udp,
                addr: "10.0.0.1".parse().expect("address"),
                port: 8080,
            }))
        );
        match parse("fragment --src 10.0.0.1 --dst 10.0.0.2 --whole") {
            Ok(NetprobeCommand::Fragment(args)) => assert!(args.whole),
            other => panic!("{other:?}"),
        }
        assert!(parse("socket --kind tcp").is_err());
        assert!(parse("fragment --src fd00::1 --dst 10.0.0.2").is_err());
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
            "serve --tcp 80 --name",
            "connect --proto tcp --addr 10.0.0.1 --port 1 --unconnected",
        ] {
            assert!(parse(line).is_err(), "{line:?} was accepted");
        }
    }
}
