//! Watches the conntrack table: its size (requested with `--conntrack-max`, or that
//! of the pinned table adopted), its live entries, and the evictions the kernel's LRU
//! made when it was full (derived: entries created - removed - live), for `/status`.
//!
//! Counting live entries walks the table's keys, so it is done at most every
//! [`MIN_INTERVAL`], and less often when the walk is long (a large, busy table).

use crate::datapath::ConntrackMap;
use crate::status::ConntrackStatus;
use anyhow::{Context, Result};
use aya::maps::IterableMap;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Shortest pause between two counts of the live entries.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The walk may take at most 1/WALK_SHARE of the time.
const WALK_SHARE: u32 = 20;

pub struct ConntrackWatch {
    map: ConntrackMap,
    requested: u32,
    effective: u32,
    next: Instant,
}

impl ConntrackWatch {
    /// `requested` is `--conntrack-max`; the table's own size is read from the kernel.
    pub fn new(map: ConntrackMap, requested: u32) -> Result<Self> {
        let effective = map
            .map()
            .info()
            .context("reading the conntrack table's size (PALISADE_CT)")?
            .max_entries();
        if effective != requested {
            tracing::warn!(
                pinned = effective,
                requested,
                "the pinned conntrack table PALISADE_CT has {effective} entries, not the \
                 {requested} --conntrack-max asks for: it is kept, so that established \
                 flows survive the restart. `palisade-agent cleanup` (which stops \
                 enforcement until the next start) lets the next start create it anew"
            );
        }
        Ok(Self {
            map,
            requested,
            effective,
            next: Instant::now(),
        })
    }

    /// A fresh status if one is due, from the kernel counters (`packets`, by reason
    /// name, read just before) and a count of the live entries.
    pub fn sample(&mut self, packets: &BTreeMap<&'static str, u64>) -> Option<ConntrackStatus> {
        let now = Instant::now();
        if now < self.next {
            return None;
        }
        let live = self
            .map
            .keys()
            .take(self.effective as usize)
            .filter(Result::is_ok)
            .count() as u64;
        let took = now.elapsed();
        self.next = Instant::now() + MIN_INTERVAL.max(took * WALK_SHARE);
        Some(status(packets, live, self.requested, self.effective))
    }
}

/// The status for these counters and live entries. Pure.
pub fn status(
    packets: &BTreeMap<&'static str, u64>,
    live: u64,
    requested: u32,
    effective: u32,
) -> ConntrackStatus {
    let counter = |name: &str| packets.get(name).copied().unwrap_or(0);
    let created = counter("conntrack_created");
    let removed = counter("conntrack_removed");
    ConntrackStatus {
        max_entries: effective,
        requested_max_entries: requested,
        entries: live,
        created,
        removed,
        evicted: created.saturating_sub(removed).saturating_sub(live),
        insert_failed: counter("conntrack_insert_failed"),
        miss_established: counter("conntrack_miss_established"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evictions_are_what_left_without_being_removed() {
        let packets: BTreeMap<&'static str, u64> = [
            ("conntrack_created", 200),
            ("conntrack_removed", 10),
            ("conntrack_miss_established", 7),
        ]
        .into_iter()
        .collect();
        let s = status(&packets, 64, 64, 64);
        assert_eq!(s.evicted, 126);
        assert_eq!(s.miss_established, 7);
        // Counters read before a burst of inserts never make evictions negative.
        assert_eq!(status(&packets, 500, 64, 1024).evicted, 0);
    }
}
