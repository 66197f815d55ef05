//! The agent's Prometheus metrics (prometheus-client), served at `/metrics` on
//! `--metrics-addr`. Names (prefix `palisade_agent_`):
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `packets_total` | counter | `reason`, `verdict` | packets (and socket calls) decided by the kernel programs, by `palisade_abi::reason` name; `verdict` is `allowed`, `denied`, `audit` or `other` |
//! | `map_entries` | gauge | `map` | entries of each kernel table in the active slot (conntrack: live entries) |
//! | `map_capacity` | gauge | `map` | capacity of each table per slot |
//! | `apply_seconds` | histogram | | time to write one new state into the kernel (inactive slot, then flip) |
//! | `applies_total` | counter | | kernel publications |
//! | `applied_generation` | gauge | | NodePolicy `spec.generation` in the kernel (-1 before the first) |
//! | `kernel_generation` | gauge | | the tables' generation word |
//! | `event_drops_total` | counter | `cause` | flow events lost: `ring_buffer_full`, `rate_limited`, `stream_lagged` |
//! | `enforcement_enabled` | gauge | | 1 while the node enforces, 0 while the off switch is set |
//! | `enforcement_off` | gauge | `source` | 1 while switched off by `command` or `node_label` |
//! | `endpoints` | gauge | | pods with an endpoint entry |
//! | `pending_pods` | gauge | | NodePolicy endpoints without a pod or cgroup yet |
//! | `api_connected` | gauge | | 1 while every watch is healthy |
//! | `ready` | gauge | | 1 while `/readyz` says ready |

use anyhow::{Context, Result};
use axum::{Router, extract::State, http::header, routing::get};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PacketLabels {
    pub reason: String,
    pub verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MapLabel {
    pub map: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabel {
    pub cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub packets: Family<PacketLabels, Counter>,
    pub map_entries: Family<MapLabel, Gauge>,
    pub map_capacity: Family<MapLabel, Gauge>,
    pub apply_seconds: Histogram,
    pub applies: Counter,
    pub applied_generation: Gauge,
    pub kernel_generation: Gauge,
    pub event_drops: Family<CauseLabel, Counter>,
    pub enforcement_enabled: Gauge,
    pub enforcement_off: Family<SourceLabel, Gauge>,
    pub endpoints: Gauge,
    pub pending_pods: Gauge,
    pub api_connected: Gauge,
    pub ready: Gauge,
    /// Last absolute value seen of each mirrored kernel counter.
    mirrored: Mutex<BTreeMap<String, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The `verdict` label of a reason name.
pub fn verdict_of(reason: &str) -> &'static str {
    if reason.starts_with("allowed") {
        "allowed"
    } else if reason.starts_with("denied") || reason == "unknown_endpoint" {
        "denied"
    } else if reason.starts_with("audit") {
        "audit"
    } else {
        "other"
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("palisade_agent");
        let m = Metrics {
            registry: Registry::default(),
            packets: Family::default(),
            map_entries: Family::default(),
            map_capacity: Family::default(),
            // 10 µs .. ~10 s.
            apply_seconds: Histogram::new(exponential_buckets(0.00001, 2.0, 21)),
            applies: Counter::default(),
            applied_generation: Gauge::default(),
            kernel_generation: Gauge::default(),
            event_drops: Family::default(),
            enforcement_enabled: Gauge::default(),
            enforcement_off: Family::default(),
            endpoints: Gauge::default(),
            pending_pods: Gauge::default(),
            api_connected: Gauge::default(),
            ready: Gauge::default(),
            mirrored: Mutex::default(),
        };
        m.applied_generation.set(-1);
        m.enforcement_enabled.set(1);
        registry.register(
            "packets",
            "Packets and socket calls decided by the kernel programs, by reason",
            m.packets.clone(),
        );
        registry.register(
            "map_entries",
            "Entries of each kernel table in the active slot (conntrack: live entries)",
            m.map_entries.clone(),
        );
        registry.register(
            "map_capacity",
            "Capacity of each kernel table (per slot for slotted tables)",
            m.map_capacity.clone(),
        );
        registry.register(
            "apply_seconds",
            "Time to publish one new state to the kernel (inactive slot written, generation flipped)",
            m.apply_seconds.clone(),
        );
        registry.register("applies", "Kernel publications", m.applies.clone());
        registry.register(
            "applied_generation",
            "NodePolicy spec.generation in the kernel (-1 before the first)",
            m.applied_generation.clone(),
        );
        registry.register(
            "kernel_generation",
            "Generation word of the kernel tables",
            m.kernel_generation.clone(),
        );
        registry.register(
            "event_drops",
            "Flow events lost, by cause",
            m.event_drops.clone(),
        );
        registry.register(
            "enforcement_enabled",
            "1 while the node enforces policy, 0 while the off switch is set",
            m.enforcement_enabled.clone(),
        );
        registry.register(
            "enforcement_off",
            "1 while enforcement is switched off by this source (command, node_label)",
            m.enforcement_off.clone(),
        );
        registry.register(
            "endpoints",
            "Pods with an endpoint entry in the kernel",
            m.endpoints.clone(),
        );
        registry.register(
            "pending_pods",
            "NodePolicy endpoints whose pod or cgroup is not known yet",
            m.pending_pods.clone(),
        );
        registry.register(
            "api_connected",
            "1 while every watch of the API server is healthy",
            m.api_connected.clone(),
        );
        registry.register("ready", "1 while /readyz says ready", m.ready.clone());
        Metrics { registry, ..m }
    }

    /// Mirrors a kernel counter (absolute, monotonic) into a Prometheus counter. A
    /// value lower than the last one (maps recreated) restarts the mirror.
    fn mirror(&self, key: String, value: u64, counter: &Counter) {
        let mut last = self.mirrored.lock().expect("metrics lock");
        let previous = last.insert(key, value).unwrap_or(0);
        counter.inc_by(value.saturating_sub(previous));
    }

    /// The kernel's per-reason counters.
    pub fn record_packets(&self, packets: &BTreeMap<&'static str, u64>) {
        for (reason, value) in packets {
            let labels = PacketLabels {
                reason: reason.to_string(),
                verdict: verdict_of(reason).to_string(),
            };
            self.mirror(
                format!("packets/{reason}"),
                *value,
                &self.packets.get_or_create(&labels),
            );
        }
    }

    /// Flow event losses (absolute counts).
    pub fn record_event_drops(&self, ring_buffer_full: u64, rate_limited: u64, stream_lagged: u64) {
        for (cause, value) in [
            ("ring_buffer_full", ring_buffer_full),
            ("rate_limited", rate_limited),
            ("stream_lagged", stream_lagged),
        ] {
            let counter = self.event_drops.get_or_create(&CauseLabel {
                cause: cause.into(),
            });
            self.mirror(format!("events/{cause}"), value, &counter);
        }
    }

    pub fn set_map(&self, map: &str, entries: usize, capacity: u32) {
        let label = MapLabel { map: map.into() };
        self.map_entries.get_or_create(&label).set(entries as i64);
        self.map_capacity
            .get_or_create(&label)
            .set(i64::from(capacity));
    }

    pub fn set_enforcement(&self, command_off: bool, node_label_off: bool) {
        self.enforcement_enabled
            .set(i64::from(!command_off && !node_label_off));
        for (source, off) in [("command", command_off), ("node_label", node_label_off)] {
            self.enforcement_off
                .get_or_create(&SourceLabel {
                    source: source.into(),
                })
                .set(i64::from(off));
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Serves `/metrics` on `addr`.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    m.encode(),
                )
            }),
        )
        .with_state(metrics);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding --metrics-addr {addr}"))?;
    tracing::info!(%addr, "metrics endpoint listening");
    axum::serve(listener, app).await.context("metrics server")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_metric_and_mirrors_kernel_counters() {
        let m = Metrics::new();
        m.record_packets(&BTreeMap::from([
            ("denied_policy", 5),
            ("allowed_policy", 2),
        ]));
        m.record_packets(&BTreeMap::from([
            ("denied_policy", 7),
            ("allowed_policy", 2),
        ]));
        m.record_event_drops(1, 2, 3);
        m.set_map("PALISADE_ENDPOINTS", 3, 16384);
        m.set_enforcement(true, false);
        m.apply_seconds.observe(0.001);
        let text = m.encode();
        for line in [
            "palisade_agent_packets_total{reason=\"denied_policy\",verdict=\"denied\"} 7",
            "palisade_agent_packets_total{reason=\"allowed_policy\",verdict=\"allowed\"} 2",
            "palisade_agent_event_drops_total{cause=\"rate_limited\"} 2",
            "palisade_agent_map_entries{map=\"PALISADE_ENDPOINTS\"} 3",
            "palisade_agent_map_capacity{map=\"PALISADE_ENDPOINTS\"} 16384",
            "palisade_agent_enforcement_enabled 0",
            "palisade_agent_enforcement_off{source=\"command\"} 1",
            "palisade_agent_applied_generation -1",
            "palisade_agent_apply_seconds_count 1",
            "palisade_agent_api_connected 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert_eq!(verdict_of("unknown_endpoint"), "denied");
        assert_eq!(verdict_of("audit_denied_socket"), "audit");
        assert_eq!(verdict_of("conntrack_created"), "other");
    }
}
