//! The controller's Prometheus metrics (prometheus-client), served at `/metrics`:
//! reconciles and their duration, compile time, objects written / unchanged / deleted /
//! over budget per kind, rejected objects, leadership, and the propagation latency from
//! an observed change to every affected object written.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// Every metric, registered in `registry`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub reconciles: Counter,
    pub reconcile_errors: Counter,
    pub reconcile_seconds: Histogram,
    pub compile_seconds: Histogram,
    pub propagation_seconds: Histogram,
    pub written: Family<KindLabel, Counter>,
    pub unchanged: Family<KindLabel, Counter>,
    pub deleted: Family<KindLabel, Counter>,
    pub over_budget: Family<KindLabel, Counter>,
    pub rejected_objects: Gauge,
    pub leader: Gauge,
}

fn seconds() -> Histogram {
    // 100 µs .. ~1.6 min.
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("palisade_controller");
        let metrics = Metrics {
            registry: Registry::default(),
            reconciles: Counter::default(),
            reconcile_errors: Counter::default(),
            reconcile_seconds: seconds(),
            compile_seconds: seconds(),
            propagation_seconds: seconds(),
            written: Family::default(),
            unchanged: Family::default(),
            deleted: Family::default(),
            over_budget: Family::default(),
            rejected_objects: Gauge::default(),
            leader: Gauge::default(),
        };
        registry.register("reconciles", "Reconciles run", metrics.reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles with a failed write (retried)",
            metrics.reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_seconds",
            "Time of one reconcile: compile, plan and writes",
            metrics.reconcile_seconds.clone(),
        );
        registry.register(
            "compile_seconds",
            "Time to compile the cluster model",
            metrics.compile_seconds.clone(),
        );
        registry.register(
            "propagation_seconds",
            "From the first observed change of a batch to every affected object written",
            metrics.propagation_seconds.clone(),
        );
        registry.register(
            "objects_written",
            "Publication objects written (content changed), by kind",
            metrics.written.clone(),
        );
        registry.register(
            "objects_unchanged",
            "Publication objects left alone because their content hash is unchanged, by kind",
            metrics.unchanged.clone(),
        );
        registry.register(
            "objects_deleted",
            "Publication objects deleted (node or shard gone), by kind",
            metrics.deleted.clone(),
        );
        registry.register(
            "objects_over_budget",
            "Publication objects not written because they exceed the 1 MiB budget, by kind",
            metrics.over_budget.clone(),
        );
        registry.register(
            "rejected_objects",
            "Watched objects whose current version does not parse",
            metrics.rejected_objects.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the lease",
            metrics.leader.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Objects of `kind` written so far.
    pub fn written_of(&self, kind: &str) -> u64 {
        self.written
            .get_or_create(&KindLabel {
                kind: kind.to_string(),
            })
            .get()
    }

    /// Objects of every kind written so far (publication objects, not statuses).
    pub fn written_total(&self) -> u64 {
        ["ClusterTable", "NodePolicy"]
            .iter()
            .map(|kind| self.written_of(kind))
            .sum()
    }

    pub fn count(family: &Family<KindLabel, Counter>, kind: &str, n: u64) {
        family
            .get_or_create(&KindLabel {
                kind: kind.to_string(),
            })
            .inc_by(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_metric() {
        let metrics = Metrics::new();
        Metrics::count(&metrics.written, "NodePolicy", 2);
        metrics.compile_seconds.observe(0.01);
        let text = metrics.encode();
        for name in [
            "palisade_controller_reconciles_total",
            "palisade_controller_objects_written_total{kind=\"NodePolicy\"} 2",
            "palisade_controller_compile_seconds_bucket",
            "palisade_controller_propagation_seconds_count",
            "palisade_controller_leader",
        ] {
            assert!(text.contains(name), "{name} in\n{text}");
        }
        assert_eq!(metrics.written_total(), 2);
    }
}
