//! Short unique ids for labs, so labs created by parallel tests (in one
//! process or several) never share a network namespace or cgroup name.

use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static LABS_CREATED: AtomicU32 = AtomicU32::new(0);

/// A new id: this process's pid, a per-process counter and 16 random bits, in
/// hex. At most 14 characters, so names built from it stay short.
pub(crate) fn new_lab_id() -> String {
    let pid = std::process::id();
    let sequence = LABS_CREATED.fetch_add(1, Ordering::Relaxed);
    format!("{pid:x}{sequence:x}{:04x}", random_u16())
}

/// 16 bits from `/dev/urandom`, or from the clock if it can't be read: the
/// bits only guard against ids of processes that died without cleaning up.
fn random_u16() -> u16 {
    let mut bytes = [0u8; 2];
    match File::open("/dev/urandom").and_then(|mut urandom| urandom.read_exact(&mut bytes)) {
        Ok(()) => u16::from_ne_bytes(bytes),
        Err(_) => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since_epoch| since_epoch.subsec_nanos());
            (nanos ^ (nanos >> 16)) as u16
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_and_distinct() {
        let first = new_lab_id();
        let second = new_lab_id();
        assert_ne!(first, second);
        assert!(first.len() <= 14, "{first} is too long");
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()), "{first}");
    }
}
