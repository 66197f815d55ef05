//! `ping`: one ICMP (IPv4) or ICMPv6 echo request through an unprivileged ping socket
//! (`socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)`), the way a workload refused raw
//! sockets can still send ICMP. Ping sockets are off by default
//! (`net.ipv4.ping_group_range` = `1 0`, which also governs ICMPv6 ping sockets); the
//! probe opens them to every group in its own network namespace (the pod's, which the
//! lab created) when the first `socket()` fails with EACCES.
//!
//! Prints `{"op": "ping", "result": "ok" | "eperm" | "timeout" | "error", "errno": N}`:
//! `ok` once the echo reply arrived, `eperm` when the send was refused, `timeout` when
//! no reply came in `--timeout-ms`.

use super::args::PingArgs;
use super::sockets::{errno, open, send_to};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::Instant;

const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;
const PING_GROUP_RANGE: &str = "/proc/sys/net/ipv4/ping_group_range";
const PAYLOAD: &[u8] = b"palisade-netprobe";

pub(super) fn ping(args: &PingArgs) -> ExitCode {
    let line = match echo(args) {
        Ok(result) => serde_json::json!({"op": "ping", "result": result, "errno": 0}),
        Err(e) if e == libc::EPERM => {
            serde_json::json!({"op": "ping", "result": "eperm", "errno": e})
        }
        Err(e) => serde_json::json!({"op": "ping", "result": "error", "errno": e,
                                      "error": std::io::Error::from_raw_os_error(e).to_string()}),
    };
    println!("{line}");
    ExitCode::SUCCESS
}

/// `Ok("ok")` on an echo reply, `Ok("timeout")` without one, `Err(errno)` when a call
/// failed.
fn echo(args: &PingArgs) -> Result<&'static str, i32> {
    let (family, protocol, request, reply) = match args.addr {
        IpAddr::V4(_) => (
            libc::AF_INET,
            libc::IPPROTO_ICMP,
            ICMP_ECHO_REQUEST,
            ICMP_ECHO_REPLY,
        ),
        IpAddr::V6(_) => (
            libc::AF_INET6,
            libc::IPPROTO_ICMPV6,
            ICMPV6_ECHO_REQUEST,
            ICMPV6_ECHO_REPLY,
        ),
    };
    let fd = match open(family, libc::SOCK_DGRAM, protocol) {
        Err(libc::EACCES) => {
            std::fs::write(PING_GROUP_RANGE, "0 2147483647")
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EACCES))?;
            open(family, libc::SOCK_DGRAM, protocol)?
        }
        other => other?,
    };
    // Type, code, checksum and identifier are the kernel's to fill in for a ping
    // socket (it sets the identifier to the socket's port); the sequence is ours.
    let mut message = vec![request, 0, 0, 0, 0, 0, 0, 1];
    message.extend_from_slice(PAYLOAD);
    send_to(&fd, &message, SocketAddr::new(args.addr, 0))?;
    let deadline = Instant::now() + args.timeout;
    let mut buf = [0u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok("timeout");
        }
        set_receive_timeout(&fd, left)?;
        // SAFETY: valid buffer for the call's duration.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = errno();
            if e == libc::EAGAIN || e == libc::EWOULDBLOCK {
                return Ok("timeout");
            }
            return Err(e);
        }
        // A ping socket delivers only ICMP messages for its identifier, without the
        // IP header.
        let n = n as usize;
        if n >= 8 && buf[0] == reply && buf[6..8] == message[6..8] {
            return Ok("ok");
        }
    }
}

fn set_receive_timeout(fd: &OwnedFd, timeout: std::time::Duration) -> Result<(), i32> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros().max(1)),
    };
    // SAFETY: `tv` is a valid timeval for the call's duration.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(errno()) }
}
