//! `connect`: one connection attempt whose outcome is printed as a report
//! line. TCP connects, sends the payload and expects it echoed back; UDP
//! sends the payload as a datagram and expects it echoed back.

use super::args::ConnectArgs;
use super::classify::classify;
use crate::probe::Proto;
use crate::report::{ProbeReport, ReportOutcome};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Why an attempt did not succeed.
pub(super) struct Failure {
    pub outcome: ReportOutcome,
    pub detail: String,
}

impl Failure {
    /// A failure from a socket error, classified by its errno.
    pub fn io(step: &str, error: &io::Error) -> Self {
        Failure {
            outcome: classify(error),
            detail: format!("{step}: {error}"),
        }
    }

    /// A failure that is not a socket error.
    pub fn other(detail: String) -> Self {
        Failure {
            outcome: ReportOutcome::Error,
            detail,
        }
    }

    fn timed_out(step: &str) -> Self {
        Failure {
            outcome: ReportOutcome::Timeout,
            detail: format!("{step}: out of time"),
        }
    }
}

/// Runs the attempt and prints its report; always exits 0.
pub(super) fn connect(args: &ConnectArgs) -> ExitCode {
    let started = Instant::now();
    let deadline = started + args.timeout;
    let target = SocketAddr::new(args.addr, args.port);
    let payload = args.payload.as_bytes();
    let result = match args.proto {
        Proto::Tcp => tcp_echo(target, payload, deadline),
        Proto::Udp => udp_echo(target, payload, deadline),
    };
    // Nobody is left to tell if stdout is gone.
    let _ = print_report(&report(result, started));
    ExitCode::SUCCESS
}

/// Prints a report line on stdout (flushed: the lab reads it at once).
pub(super) fn print_report(report: &ProbeReport) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{}", report.to_json_line())?;
    stdout.flush()
}

/// A report of `result`, timed from `started`.
pub(super) fn report(result: Result<String, Failure>, started: Instant) -> ProbeReport {
    let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let (outcome, detail) = match result {
        Ok(detail) => (ReportOutcome::Connected, detail),
        Err(failure) => (failure.outcome, failure.detail),
    };
    ProbeReport {
        outcome,
        detail,
        elapsed_us,
    }
}

/// Time left until `deadline`, or a timeout failure of `step` if none is.
pub(super) fn remaining(deadline: Instant, step: &str) -> Result<Duration, Failure> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Failure::timed_out(step));
    }
    Ok(left)
}

/// Connects to `target` within the deadline.
pub(super) fn tcp_connect(target: SocketAddr, deadline: Instant) -> Result<TcpStream, Failure> {
    let stream = TcpStream::connect_timeout(&target, remaining(deadline, "connect")?)
        .map_err(|error| Failure::io("connect", &error))?;
    // Round trips are small; don't let Nagle hold them back.
    stream
        .set_nodelay(true)
        .map_err(|error| Failure::io("setting TCP_NODELAY", &error))?;
    Ok(stream)
}

fn tcp_echo(target: SocketAddr, payload: &[u8], deadline: Instant) -> Result<String, Failure> {
    let mut stream = tcp_connect(target, deadline)?;
    stream
        .set_write_timeout(Some(remaining(deadline, "send")?))
        .and_then(|()| stream.write_all(payload))
        .map_err(|error| Failure::io("send", &error))?;
    let mut echoed = vec![0u8; payload.len()];
    let mut received = 0;
    while received < echoed.len() {
        stream
            .set_read_timeout(Some(remaining(deadline, "receive echo")?))
            .map_err(|error| Failure::io("receive echo", &error))?;
        match stream.read(&mut echoed[received..]) {
            Ok(0) => {
                return Err(Failure::other(format!(
                    "connection closed after {received} of {} echo bytes",
                    payload.len()
                )));
            }
            Ok(read) => received += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(Failure::io("receive echo", &error)),
        }
    }
    check_echo(payload, &echoed)
}

fn udp_echo(target: SocketAddr, payload: &[u8], deadline: Instant) -> Result<String, Failure> {
    let local: IpAddr = match target {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind((local, 0)).map_err(|error| Failure::io("bind", &error))?;
    socket
        .connect(target)
        .map_err(|error| Failure::io("connect", &error))?;
    socket
        .send(payload)
        .map_err(|error| Failure::io("send", &error))?;
    // Connected, so only datagrams from the target arrive; an ICMP port
    // unreachable surfaces here as ECONNREFUSED.
    let mut echoed = vec![0u8; payload.len() + 1];
    loop {
        socket
            .set_read_timeout(Some(remaining(deadline, "receive echo")?))
            .map_err(|error| Failure::io("receive echo", &error))?;
        match socket.recv(&mut echoed) {
            Ok(read) => return check_echo(payload, &echoed[..read]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(Failure::io("receive echo", &error)),
        }
    }
}

fn check_echo(payload: &[u8], echoed: &[u8]) -> Result<String, Failure> {
    if echoed == payload {
        Ok(format!("echoed {} bytes", payload.len()))
    } else {
        Err(Failure::other(format!(
            "echo mismatch: sent {:?}, got {:?}",
            String::from_utf8_lossy(payload),
            String::from_utf8_lossy(echoed)
        )))
    }
}
