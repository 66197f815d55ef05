//! The command line of `palisadectl check`, and its reading into one [`Mode`]: a single
//! flow, a probes file, or the reachability matrix.

use super::endpoint::EndpointArg;
use super::protocol::{IpProtocol, Service, ServiceError};
use clap::error::ErrorKind;
use clap::{ArgGroup, Args, ValueEnum};
use palisade_policy::evaluate::IpFamily;
use std::path::PathBuf;

pub const AFTER_HELP: &str = "\
Examples:
  palisadectl check --manifests DIR --from shop/frontend --to shop/db --port 5432
  palisadectl check --manifests DIR --from shop/runner --to ip:203.0.113.7 --port 443 --output json
  palisadectl check --manifests DIR --probes probes.jsonl
  palisadectl check --manifests DIR --matrix --port 80 --protocol UDP

A probes file holds one JSON object per line, {\"from\": \"ns/pod\"|\"ip:ADDR\", \"to\": ..., \
\"port\": N, \"protocol\": \"TCP\"} (protocol defaults to TCP; an optional \"dst_ip\" is the \
destination address to use; other fields are ignored); the output is one JSON line per probe, in \
order.

Exit status: 0 whatever the verdicts, 1 for bad input (manifests, probes, unknown pods), 2 for \
bad usage.";

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("mode").required(true).args(["from", "probes", "matrix"])))]
pub struct CheckArgs {
    /// Directory of Kubernetes manifests, as `palisade-agent standalone` reads it.
    #[arg(long, value_name = "DIR")]
    pub manifests: PathBuf,

    /// Where the flow starts: a pod (NS/POD) or an address (ip:ADDR; a pod's address
    /// stands for that pod).
    #[arg(long, value_name = "NS/POD|ip:ADDR", requires = "to", value_parser = parse_endpoint)]
    pub from: Option<EndpointArg>,

    /// Where the flow goes: a pod (NS/POD) or an address (ip:ADDR).
    #[arg(long, value_name = "NS/POD|ip:ADDR", requires = "from", value_parser = parse_endpoint)]
    pub to: Option<EndpointArg>,

    /// Destination port (TCP, UDP and SCTP; other protocols have none).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,

    /// TCP, UDP, SCTP, ICMP, ICMPv6 or an IP protocol number; case-insensitive.
    #[arg(long, value_name = "P", default_value = "TCP", value_parser = parse_protocol)]
    pub protocol: IpProtocol,

    /// Check every probe of FILE (JSON lines; `-` reads standard input).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["from", "to", "port", "protocol", "matrix"])]
    pub probes: Option<PathBuf>,

    /// Print the pod x pod reachability matrix for --port and --protocol.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub matrix: bool,

    /// Address family of the flows: pods use their first address of it (default: the
    /// family of an ip: end, else the source pod's first address).
    #[arg(long, value_name = "4|6", value_parser = parse_family)]
    pub family: Option<IpFamily>,

    /// Output format [default: human; json lines for --probes].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Readable text: the verdict, then one paragraph per side.
    Human,
    /// One JSON object per flow, on one line.
    Json,
}

/// One flow as the command line names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowArgs {
    pub from: EndpointArg,
    pub to: EndpointArg,
    pub service: Service,
}

/// What `check` is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Single(FlowArgs),
    Probes(PathBuf),
    Matrix(Service),
}

/// A usage mistake clap cannot see (it depends on two flags together); reported the
/// way clap reports its own, with status 2.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    pub kind: ErrorKind,
    pub message: String,
}

impl CheckArgs {
    /// The mode the flags ask for. Clap has already checked that exactly one of
    /// --from/--to, --probes and --matrix is given.
    pub fn mode(&self) -> Result<Mode, UsageError> {
        if let Some(path) = &self.probes {
            return Ok(Mode::Probes(path.clone()));
        }
        let service =
            Service::new(self.protocol, self.port.map(u64::from)).map_err(|e| match e {
                ServiceError::MissingPort(protocol) => UsageError {
                    kind: ErrorKind::MissingRequiredArgument,
                    message: format!(
                        "--port is required for {protocol} (--protocol chooses another \
                         protocol; ICMP and ICMPv6 have no ports)"
                    ),
                },
                other => UsageError {
                    kind: ErrorKind::ArgumentConflict,
                    message: other.to_string(),
                },
            })?;
        if self.matrix {
            return Ok(Mode::Matrix(service));
        }
        match (&self.from, &self.to) {
            (Some(from), Some(to)) => Ok(Mode::Single(FlowArgs {
                from: from.clone(),
                to: to.clone(),
                service,
            })),
            _ => Err(UsageError {
                kind: ErrorKind::MissingRequiredArgument,
                message: "give --from and --to, --probes FILE or --matrix".into(),
            }),
        }
    }

    /// The output format: as asked, else human for a single flow and the matrix and
    /// JSON lines for probes.
    pub fn output_format(&self) -> OutputFormat {
        self.output.unwrap_or(if self.probes.is_some() {
            OutputFormat::Json
        } else {
            OutputFormat::Human
        })
    }
}

fn parse_endpoint(text: &str) -> Result<EndpointArg, String> {
    EndpointArg::parse(text).map_err(|e| e.to_string())
}

fn parse_protocol(text: &str) -> Result<IpProtocol, String> {
    text.parse()
        .map_err(|e: super::protocol::ProtocolError| e.to_string())
}

fn parse_family(text: &str) -> Result<IpFamily, String> {
    match text.to_ascii_lowercase().as_str() {
        "4" | "ipv4" | "inet" => Ok(IpFamily::V4),
        "6" | "ipv6" | "inet6" => Ok(IpFamily::V6),
        _ => Err(format!("expected 4 or 6, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::endpoint::EndpointSpec;
    use clap::Parser;
    use palisade_policy::model::ObjectRef;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        check: CheckArgs,
    }

    fn parse(args: &[&str]) -> Result<CheckArgs, clap::Error> {
        let argv = ["check", "--manifests", "dir"].iter().chain(args);
        TestCli::try_parse_from(argv).map(|cli| cli.check)
    }

    fn mode(args: &[&str]) -> Mode {
        parse(args)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .mode()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn pod(namespace: &str, name: &str) -> EndpointSpec {
        EndpointSpec::Pod(ObjectRef {
            namespace: namespace.into(),
            name: name.into(),
        })
    }

    #[test]
    fn a_single_flow_with_defaults() {
        let args = parse(&["--from", "x/a", "--to", "ip:10.0.0.9", "--port", "80"]).unwrap();
        assert_eq!(args.output_format(), OutputFormat::Human);
        assert_eq!(args.family, None);
        let Mode::Single(flow) = args.mode().unwrap() else {
            panic!("not a single flow")
        };
        assert_eq!(flow.from.spec, pod("x", "a"));
        assert_eq!(
            flow.to.spec,
            EndpointSpec::Address("10.0.0.9".parse().unwrap())
        );
        assert_eq!(
            (flow.from.text.as_str(), flow.to.text.as_str()),
            ("x/a", "ip:10.0.0.9")
        );
        assert_eq!(flow.service.protocol, IpProtocol::TCP);
        assert_eq!(flow.service.port, 80);
    }

    #[test]
    fn protocol_family_and_output_are_read() {
        let args = parse(&[
            "--from",
            "x/a",
            "--to",
            "y/b",
            "--port",
            "53",
            "--protocol",
            "udp",
            "--family",
            "6",
            "--output",
            "json",
        ])
        .unwrap();
        assert_eq!(args.protocol, IpProtocol::UDP);
        assert_eq!(args.family, Some(IpFamily::V6));
        assert_eq!(args.output_format(), OutputFormat::Json);
        let Mode::Single(flow) = mode(&["--from", "x/a", "--to", "y/b", "--protocol", "ICMPv6"])
        else {
            panic!("not a single flow")
        };
        assert_eq!(flow.service.protocol, IpProtocol::ICMPV6);
        assert_eq!(flow.service.port, 0);
    }

    #[test]
    fn probes_default_to_json_lines() {
        let args = parse(&["--probes", "p.jsonl"]).unwrap();
        assert_eq!(args.output_format(), OutputFormat::Json);
        assert_eq!(args.mode().unwrap(), Mode::Probes("p.jsonl".into()));
        let args = parse(&["--probes", "-", "--output", "human"]).unwrap();
        assert_eq!(args.output_format(), OutputFormat::Human);
    }

    #[test]
    fn matrix_takes_port_and_protocol() {
        assert_eq!(
            mode(&["--matrix", "--port", "81"]),
            Mode::Matrix(Service {
                protocol: IpProtocol::TCP,
                port: 81
            })
        );
        assert_eq!(
            mode(&["--matrix", "--port", "80", "--protocol", "SCTP"]),
            Mode::Matrix(Service {
                protocol: IpProtocol::SCTP,
                port: 80
            })
        );
    }

    #[test]
    fn clap_refuses_bad_combinations_and_values() {
        for args in [
            &["--from", "x/a", "--port", "80"][..],
            &["--to", "x/a", "--port", "80"],
            &["--port", "80"],
            &["--probes", "p", "--from", "x/a", "--to", "x/b"],
            &["--probes", "p", "--port", "80"],
            &["--probes", "p", "--protocol", "UDP"],
            &["--matrix", "--from", "x/a", "--to", "x/b", "--port", "80"],
            &["--probes", "p", "--matrix"],
            &["--from", "x/a", "--to", "x/b", "--port", "0"],
            &["--from", "x/a", "--to", "x/b", "--port", "65536"],
            &[
                "--from",
                "x/a",
                "--to",
                "x/b",
                "--port",
                "80",
                "--protocol",
                "gre?",
            ],
            &["--from", "x", "--to", "x/b", "--port", "80"],
            &["--from", "x/a", "--to", "ip:10.0.0.300", "--port", "80"],
            &[
                "--from", "x/a", "--to", "x/b", "--port", "80", "--family", "5",
            ],
            &[
                "--from", "x/a", "--to", "x/b", "--port", "80", "--output", "xml",
            ],
        ] {
            assert!(parse(args).is_err(), "{args:?} was accepted");
        }
    }

    #[test]
    fn port_must_fit_the_protocol() {
        let missing = parse(&["--from", "x/a", "--to", "x/b"]).unwrap().mode();
        let error = missing.unwrap_err();
        assert_eq!(error.kind, ErrorKind::MissingRequiredArgument);
        assert!(error.message.contains("--port"), "{error}");
        let icmp_port = parse(&["--matrix", "--protocol", "icmp", "--port", "80"])
            .unwrap()
            .mode();
        assert!(icmp_port.unwrap_err().message.contains("ICMP has no ports"));
    }
}
