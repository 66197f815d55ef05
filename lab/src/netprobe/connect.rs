//! `connect`: one connection attempt whose outcome is printed as a report
//! line. TCP connects, sends the payload and expects it echoed back; UDP
//! sends the payload as a datagram and expects it echoed back, from a connected
//! socket or (`--unconnected`) with `sendto`/`recvfrom`. With `--identify`, the
//! answer of a `serve --name` server is expected, and the report says who answered,
//! whom it saw, and the peer address the socket reports (which a Service
//! translation at the socket must show as the Service address).

use super::args::ConnectArgs;
use super::classify::classify;
use crate::probe::Proto;
use crate::report::{AnswerReport, ProbeReport, ReportOutcome};
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
    let result = match (args.proto, args.unconnected) {
        (Proto::Tcp, _) => tcp_echo(target, payload, deadline, args.identify),
        (Proto::Udp, false) => udp_echo(target, payload, deadline, args.identify),
        (Proto::Udp, true) => udp_unconnected_echo(target, payload, deadline, args.identify),
    };
    let (result, answer) = match result {
        Ok(echoed) => (Ok(echoed.detail), echoed.answer),
        Err(failure) => (Err(failure), None),
    };
    let mut report = report(result, started);
    report.answer = answer;
    // Nobody is left to tell if stdout is gone.
    let _ = print_report(&report);
    ExitCode::SUCCESS
}

/// A successful attempt.
struct Echoed {
    detail: String,
    /// Who answered (`--identify` only).
    answer: Option<AnswerReport>,
}

/// Splits a named server's answer into who answered and the echo: `NAME CLIENT\n`
/// then the echo. `peer` is what the socket says about the other end.
fn identified(answer: &[u8], peer: SocketAddr) -> Result<(AnswerReport, &[u8]), Failure> {
    let malformed = || {
        Failure::other(format!(
            "expected a named server's answer, got {:?}",
            String::from_utf8_lossy(answer)
        ))
    };
    let end = answer
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(malformed)?;
    let line = std::str::from_utf8(&answer[..end]).map_err(|_| malformed())?;
    let (server, seen_as) = line.split_once(' ').ok_or_else(malformed)?;
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let report = AnswerReport {
        server: server.to_owned(),
        seen_as: seen_as.to_owned(),
        peer: peer.to_string(),
    };
    Ok((report, &answer[end + 1..]))
}

/// Checks an answer: the echo alone, or with `identify` a named server's line first.
fn check_answer(
    payload: &[u8],
    answer: &[u8],
    identify: bool,
    peer: impl FnOnce() -> Result<SocketAddr, Failure>,
) -> Result<Echoed, Failure> {
    if !identify {
        return check_echo(payload, answer).map(|detail| Echoed {
            detail,
            answer: None,
        });
    }
    let (who, echoed) = identified(answer, peer()?)?;
    let detail = check_echo(payload, echoed)?;
    Ok(Echoed {
        detail: format!("{detail} by {}", who.server),
        answer: Some(who),
    })
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
        answer: None,
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

fn tcp_echo(
    target: SocketAddr,
    payload: &[u8],
    deadline: Instant,
    identify: bool,
) -> Result<Echoed, Failure> {
    let mut stream = tcp_connect(target, deadline)?;
    stream
        .set_write_timeout(Some(remaining(deadline, "send")?))
        .and_then(|()| stream.write_all(payload))
        .map_err(|error| Failure::io("send", &error))?;
    // The echo, after a named server's line.
    let complete = |answer: &[u8]| {
        let echo_start = if identify {
            match answer.iter().position(|&b| b == b'\n') {
                Some(end) => end + 1,
                None => return false,
            }
        } else {
            0
        };
        answer.len() >= echo_start + payload.len()
    };
    let mut answer = Vec::new();
    while !complete(&answer) {
        stream
            .set_read_timeout(Some(remaining(deadline, "receive echo")?))
            .map_err(|error| Failure::io("receive echo", &error))?;
        let mut buffer = [0u8; 512];
        match stream.read(&mut buffer) {
            Ok(0) => {
                return Err(Failure::other(format!(
                    "connection closed after {} bytes of the answer",
                    answer.len()
                )));
            }
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(Failure::io("receive echo", &error)),
        }
    }
    check_answer(payload, &answer, identify, || {
        stream
            .peer_addr()
            .map_err(|error| Failure::io("getpeername", &error))
    })
}

/// A UDP socket of `target`'s family on an ephemeral port.
fn udp_socket_for(target: SocketAddr) -> Result<UdpSocket, Failure> {
    let local: IpAddr = match target {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    UdpSocket::bind((local, 0)).map_err(|error| Failure::io("bind", &error))
}

fn udp_echo(
    target: SocketAddr,
    payload: &[u8],
    deadline: Instant,
    identify: bool,
) -> Result<Echoed, Failure> {
    let socket = udp_socket_for(target)?;
    socket
        .connect(target)
        .map_err(|error| Failure::io("connect", &error))?;
    socket
        .send(payload)
        .map_err(|error| Failure::io("send", &error))?;
    // Connected, so only datagrams from the target arrive; an ICMP port
    // unreachable surfaces here as ECONNREFUSED.
    let mut answer = vec![0u8; 65536];
    loop {
        socket
            .set_read_timeout(Some(remaining(deadline, "receive echo")?))
            .map_err(|error| Failure::io("receive echo", &error))?;
        match socket.recv(&mut answer) {
            Ok(read) => {
                return check_answer(payload, &answer[..read], identify, || {
                    socket
                        .peer_addr()
                        .map_err(|error| Failure::io("getpeername", &error))
                });
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(Failure::io("receive echo", &error)),
        }
    }
}

/// Like [`udp_echo`] on an unconnected socket: the first datagram that arrives is
/// the answer, and its source (as `recvfrom` reports it) the peer.
fn udp_unconnected_echo(
    target: SocketAddr,
    payload: &[u8],
    deadline: Instant,
    identify: bool,
) -> Result<Echoed, Failure> {
    let socket = udp_socket_for(target)?;
    socket
        .send_to(payload, target)
        .map_err(|error| Failure::io("sendto", &error))?;
    let mut answer = vec![0u8; 65536];
    loop {
        socket
            .set_read_timeout(Some(remaining(deadline, "receive echo")?))
            .map_err(|error| Failure::io("receive echo", &error))?;
        match socket.recv_from(&mut answer) {
            Ok((read, source)) => {
                return check_answer(payload, &answer[..read], identify, || Ok(source));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_answers_split_into_who_and_echo() {
        let peer: SocketAddr = "[::ffff:10.96.0.10]:80".parse().expect("address");
        let (who, echo) = identified(b"web-1 10.90.0.10:40000\nhello", peer)
            .unwrap_or_else(|f| panic!("{}", f.detail));
        assert_eq!(who.server, "web-1");
        assert_eq!(who.seen_as, "10.90.0.10:40000");
        assert_eq!(who.peer, "10.96.0.10:80");
        assert_eq!(echo, b"hello");
        assert!(identified(b"hello", peer).is_err());
    }
}
