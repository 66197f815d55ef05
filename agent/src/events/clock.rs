//! Wall-clock time of a kernel event: the programs stamp events with
//! `bpf_ktime_get_ns()` (CLOCK_MONOTONIC); people want UTC, RFC 3339.

use std::time::{Duration, SystemTime};

/// The wall-clock time of a CLOCK_MONOTONIC instant in the recent past.
pub fn wall_time(monotonic_ns: u64) -> SystemTime {
    let now = SystemTime::now();
    let age = monotonic_now_ns().saturating_sub(monotonic_ns);
    now.checked_sub(Duration::from_nanos(age)).unwrap_or(now)
}

/// RFC 3339 in UTC with nanoseconds, e.g. `2025-01-01T12:00:00.123456789Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn monotonic_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_nanoseconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000005Z");
    }

    #[test]
    fn a_recent_instant_is_in_the_recent_past() {
        let before = SystemTime::now();
        let t = wall_time(monotonic_now_ns() - 1_000_000_000);
        let age = before.duration_since(t).unwrap_or_default();
        assert!(age >= Duration::from_millis(900) && age < Duration::from_secs(60));
    }
}
