//! What a connection probe is (from where, to what) and what it found.

use crate::pod::PodHandle;
use crate::report::{ProbeReport, ReportOutcome};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Transport protocol of a probe or server port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// The lowercase name netprobe's `--proto` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Proto {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            _ => Err(format!("unknown protocol {text:?} (expected tcp or udp)")),
        }
    }
}

/// How a connection attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered and echoed the payload back.
    Connected,
    /// Actively refused (TCP reset, or ICMP port unreachable for UDP).
    Refused,
    /// No answer within the timeout.
    TimedOut,
    /// The local stack refused to send (`EPERM`/`EACCES`), as a cgroup egress
    /// BPF program that drops a packet causes.
    PermissionDenied,
    /// No route to the network or host.
    Unreachable,
    /// Any other failure, with netprobe's description of it.
    OtherError(String),
}

/// The result of one probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeResult {
    pub outcome: Outcome,
    /// How long the attempt took, as measured inside the pod.
    pub elapsed: Duration,
}

impl ProbeResult {
    /// Whether the connection went through (the echo came back).
    pub fn allowed(&self) -> bool {
        self.outcome == Outcome::Connected
    }
}

impl From<ProbeReport> for ProbeResult {
    fn from(report: ProbeReport) -> Self {
        let outcome = match report.outcome {
            ReportOutcome::Connected => Outcome::Connected,
            ReportOutcome::Refused => Outcome::Refused,
            ReportOutcome::Timeout => Outcome::TimedOut,
            ReportOutcome::Eperm => Outcome::PermissionDenied,
            ReportOutcome::Unreachable => Outcome::Unreachable,
            ReportOutcome::Error => Outcome::OtherError(report.detail),
        };
        ProbeResult {
            outcome,
            elapsed: Duration::from_micros(report.elapsed_us),
        }
    }
}

/// A probe run until its result agreed with what was expected, or twice (see
/// [`Lab::probe_all_rechecking`](crate::Lab::probe_all_rechecking)).
#[derive(Clone, Debug)]
pub struct RecheckedProbe {
    /// The last attempt.
    pub result: ProbeResult,
    /// The first attempt, when it disagreed with what was expected and the probe was
    /// run again with a longer timeout.
    pub first_attempt: Option<ProbeResult>,
}

impl RecheckedProbe {
    pub fn allowed(&self) -> bool {
        self.result.allowed()
    }
}

/// Where a probe runs from.
#[derive(Clone, Debug)]
pub enum ProbeOrigin {
    /// The pod's network namespace and its container cgroup.
    Pod(PodHandle),
    /// The pod's network namespace and the given cgroup (e.g. one made with
    /// [`Lab::add_child_cgroup`](crate::Lab::add_child_cgroup)).
    PodCgroup(PodHandle, PathBuf),
    /// The node network namespace, in the caller's own cgroup.
    Node,
}

/// One probe of a batch (see [`Lab::probe_all`](crate::Lab::probe_all)).
#[derive(Clone, Debug)]
pub struct ProbeSpec {
    pub origin: ProbeOrigin,
    pub to: IpAddr,
    pub proto: Proto,
    pub port: u16,
    pub timeout: Duration,
}

impl ProbeSpec {
    /// Timeout used by [`ProbeSpec::new`].
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

    /// A probe from the pod's container cgroup, with the default timeout.
    pub fn new(from: &PodHandle, to: IpAddr, proto: Proto, port: u16) -> Self {
        ProbeSpec {
            origin: ProbeOrigin::Pod(from.clone()),
            to,
            proto,
            port,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// The same probe with another origin.
    pub fn from_origin(mut self, origin: ProbeOrigin) -> Self {
        self.origin = origin;
        self
    }

    /// The same probe with another timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl fmt::Display for ProbeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            ProbeOrigin::Pod(pod) => write!(f, "pod {}", pod.name())?,
            ProbeOrigin::PodCgroup(pod, cgroup) => {
                write!(f, "pod {} (cgroup {})", pod.name(), cgroup.display())?
            }
            ProbeOrigin::Node => f.write_str("node")?,
        }
        let to = std::net::SocketAddr::new(self.to, self.port);
        write!(f, " -> {} {to}", self.proto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_map_to_outcomes() {
        let report = |outcome, detail: &str| ProbeReport {
            outcome,
            detail: detail.into(),
            elapsed_us: 1500,
            answer: None,
        };
        let connected = ProbeResult::from(report(ReportOutcome::Connected, "echoed"));
        assert!(connected.allowed());
        assert_eq!(connected.elapsed, Duration::from_micros(1500));
        assert_eq!(
            ProbeResult::from(report(ReportOutcome::Eperm, "")).outcome,
            Outcome::PermissionDenied
        );
        assert_eq!(
            ProbeResult::from(report(ReportOutcome::Timeout, "")).outcome,
            Outcome::TimedOut
        );
        assert_eq!(
            ProbeResult::from(report(ReportOutcome::Error, "boom")).outcome,
            Outcome::OtherError("boom".into())
        );
        assert!(!ProbeResult::from(report(ReportOutcome::Refused, "")).allowed());
    }

    #[test]
    fn proto_round_trips_through_its_name() {
        for proto in [Proto::Tcp, Proto::Udp] {
            assert_eq!(proto.as_str().parse::<Proto>(), Ok(proto));
        }
        assert!("sctp".parse::<Proto>().is_err());
    }
}
