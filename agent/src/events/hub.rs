//! Fan-out of resolved flow events to the clients of the event stream: a broadcast
//! channel for live events, plus the most recent ones for clients that ask to replay
//! (`last=N`). A client that reads too slowly loses events, never slows the reader
//! of the kernel ring buffer; what it lost is counted and told to it.

use super::record::FlowRecord;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Events a subscriber may fall behind by before it loses some.
const SUBSCRIBER_BUFFER: usize = 4096;
/// Most recent events kept for replay (`last=N`).
pub const RECENT: usize = 4096;

/// One event as published: the record (for filtering) and its JSON line.
#[derive(Debug)]
pub struct Published {
    /// Position in the stream (1, 2, ...), to splice replay and live events.
    pub seq: u64,
    pub record: FlowRecord,
    /// The record as one line of JSON, newline included.
    pub line: String,
}

pub struct EventHub {
    sender: broadcast::Sender<Arc<Published>>,
    recent: Mutex<VecDeque<Arc<Published>>>,
    received: AtomicU64,
    lagged: AtomicU64,
    subscribers: AtomicU64,
}

impl Default for EventHub {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(SUBSCRIBER_BUFFER).0,
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            received: AtomicU64::new(0),
            lagged: AtomicU64::new(0),
            subscribers: AtomicU64::new(0),
        }
    }
}

/// A client of the stream; counted while it exists.
pub struct Subscription {
    hub: Arc<EventHub>,
    pub receiver: broadcast::Receiver<Arc<Published>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Subscription {
    /// Counts `n` events this subscriber lost.
    pub fn lost(&self, n: u64) {
        self.hub.lagged.fetch_add(n, Ordering::Relaxed);
    }
}

impl EventHub {
    pub fn publish(&self, record: FlowRecord) {
        let seq = self.received.fetch_add(1, Ordering::Relaxed) + 1;
        let mut line = serde_json::to_string(&record).expect("plain data serializes");
        line.push('\n');
        let event = Arc::new(Published { seq, record, line });
        {
            let mut recent = self.recent.lock().expect("recent events lock");
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(Arc::clone(&event));
        }
        // No subscriber is not an error.
        let _ = self.sender.send(event);
    }

    /// A new subscriber, and the most recent `last` events `keep` accepts, oldest
    /// first. Live events with a `seq` at or below the last replayed one are
    /// duplicates of the replay: skip them.
    pub fn subscribe(
        self: &Arc<Self>,
        last: usize,
        keep: impl Fn(&FlowRecord) -> bool,
    ) -> (Subscription, Vec<Arc<Published>>) {
        // Subscribe first, then snapshot: nothing falls between the two.
        let receiver = self.sender.subscribe();
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        let subscription = Subscription {
            hub: Arc::clone(self),
            receiver,
        };
        let mut replay: Vec<Arc<Published>> = if last == 0 {
            Vec::new()
        } else {
            let recent = self.recent.lock().expect("recent events lock");
            recent
                .iter()
                .rev()
                .filter(|e| keep(&e.record))
                .take(last)
                .cloned()
                .collect()
        };
        replay.reverse();
        (subscription, replay)
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    pub fn lagged(&self) -> u64 {
        self.lagged.load(Ordering::Relaxed)
    }

    pub fn subscribers(&self) -> u64 {
        self.subscribers.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::record::{LocalEnd, PeerEnd};

    fn record(port: u16) -> FlowRecord {
        FlowRecord {
            kind: "flow".into(),
            time: "t".into(),
            verdict: "deny".into(),
            direction: "egress".into(),
            protocol: "TCP".into(),
            port,
            local: LocalEnd {
                namespace: None,
                pod: None,
                identity: 0,
                cgroup_id: 1,
                address: None,
                port: 0,
            },
            peer: PeerEnd {
                namespace: None,
                pod: None,
                identity: 2,
                address: "192.0.2.1".parse().unwrap(),
                port,
            },
            decided_by: vec![],
            generation: 1,
            socket: None,
        }
    }

    #[tokio::test]
    async fn replay_then_live_without_gaps_or_duplicates() {
        let hub = Arc::new(EventHub::default());
        for port in 1..=5 {
            hub.publish(record(port));
        }
        let (mut sub, replay) = hub.subscribe(2, |r| r.port != 5);
        assert_eq!(
            replay.iter().map(|e| e.record.port).collect::<Vec<_>>(),
            [3, 4]
        );
        assert_eq!(hub.subscribers(), 1);
        hub.publish(record(6));
        let live = sub.receiver.recv().await.unwrap();
        assert_eq!(live.record.port, 6);
        assert!(live.line.ends_with('\n'));
        drop(sub);
        assert_eq!(hub.subscribers(), 0);
        assert_eq!(hub.received(), 6);
    }
}
