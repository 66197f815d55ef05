//! Turning socket errors into report outcomes.

use crate::report::ReportOutcome;
use std::io;

/// The outcome a socket error stands for.
pub(super) fn classify(error: &io::Error) -> ReportOutcome {
    if let Some(errno) = error.raw_os_error() {
        match errno {
            libc::ECONNREFUSED => return ReportOutcome::Refused,
            libc::EPERM | libc::EACCES => return ReportOutcome::Eperm,
            libc::ETIMEDOUT | libc::EAGAIN => return ReportOutcome::Timeout,
            libc::ENETUNREACH | libc::EHOSTUNREACH => return ReportOutcome::Unreachable,
            _ => {}
        }
    }
    match error.kind() {
        io::ErrorKind::ConnectionRefused => ReportOutcome::Refused,
        io::ErrorKind::PermissionDenied => ReportOutcome::Eperm,
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ReportOutcome::Timeout,
        io::ErrorKind::NetworkUnreachable | io::ErrorKind::HostUnreachable => {
            ReportOutcome::Unreachable
        }
        _ => ReportOutcome::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_errnos_to_outcomes() {
        let cases = [
            (libc::ECONNREFUSED, ReportOutcome::Refused),
            (libc::EPERM, ReportOutcome::Eperm),
            (libc::EACCES, ReportOutcome::Eperm),
            (libc::ETIMEDOUT, ReportOutcome::Timeout),
            (libc::EWOULDBLOCK, ReportOutcome::Timeout),
            (libc::ENETUNREACH, ReportOutcome::Unreachable),
            (libc::EHOSTUNREACH, ReportOutcome::Unreachable),
            (libc::ECONNRESET, ReportOutcome::Error),
        ];
        for (errno, outcome) in cases {
            assert_eq!(
                classify(&io::Error::from_raw_os_error(errno)),
                outcome,
                "errno {errno}"
            );
        }
    }

    #[test]
    fn maps_timeouts_without_errno() {
        let error = io::Error::new(io::ErrorKind::TimedOut, "connection timed out");
        assert_eq!(classify(&error), ReportOutcome::Timeout);
    }
}
