//! `hold`: connect once, then make a round trip every interval on the same
//! connection, printing a report line for each, until killed or the
//! connection breaks.

use super::args::HoldArgs;
use super::connect::{Failure, print_report, remaining, report, tcp_connect};
use crate::report::ReportOutcome;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::Instant;

/// Holds the connection; exits 0 when it breaks or stdout is closed.
pub(super) fn hold(args: &HoldArgs) -> ExitCode {
    let started = Instant::now();
    let target = SocketAddr::new(args.addr, args.port);
    let mut stream = match tcp_connect(target, started + args.timeout) {
        Ok(stream) => stream,
        Err(failure) => {
            let _ = print_report(&report(Err(failure), started));
            return ExitCode::SUCCESS;
        }
    };
    let mut unread = Vec::new();
    for round in 0u64.. {
        let round_started = Instant::now();
        let result = round_trip(
            &mut stream,
            &mut unread,
            round,
            round_started + args.timeout,
        );
        // A timeout or a dropped packet may pass; a reset or close does not.
        let broken = matches!(
            &result,
            Err(Failure {
                outcome: ReportOutcome::Error | ReportOutcome::Refused,
                ..
            })
        );
        if print_report(&report(result, round_started)).is_err() || broken {
            break;
        }
        thread::sleep(args.interval);
    }
    ExitCode::SUCCESS
}

/// Sends the line `hold <round>` and waits for its echo. Echoes of earlier
/// rounds that arrive late are skipped; `unread` keeps a partial line
/// between rounds.
fn round_trip(
    stream: &mut TcpStream,
    unread: &mut Vec<u8>,
    round: u64,
    deadline: Instant,
) -> Result<String, Failure> {
    let line = format!("hold {round}\n");
    stream
        .set_write_timeout(Some(remaining(deadline, "send")?))
        .and_then(|()| stream.write_all(line.as_bytes()))
        .map_err(|error| Failure::io("send", &error))?;
    loop {
        while let Some(end) = unread.iter().position(|&byte| byte == b'\n') {
            let echoed: Vec<u8> = unread.drain(..=end).collect();
            if echoed == line.as_bytes() {
                return Ok(format!("round trip {round} echoed"));
            }
        }
        stream
            .set_read_timeout(Some(remaining(deadline, "receive echo")?))
            .map_err(|error| Failure::io("receive echo", &error))?;
        let mut buffer = [0u8; 512];
        match stream.read(&mut buffer) {
            Ok(0) => return Err(Failure::other("connection closed by the peer".into())),
            Ok(read) => unread.extend_from_slice(&buffer[..read]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(Failure::io("receive echo", &error)),
        }
    }
}
