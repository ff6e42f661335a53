//! Prometheus plumbing both services share: registering a metric and writing the text
//! exposition. Which metrics exist is each service's own (`worker/src/metrics.rs`,
//! `control-plane/src/metrics.rs`).

use prometheus::core::Collector;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// Buckets of a time that runs from a millisecond to a synchronous wait's 30 s.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Registers the metric `made` as `name` in `registry` and hands it back. Metric definitions
/// are constants of the code, so a bad one is a programming error: it stops start-up, naming
/// the metric.
pub fn register<C: Collector + Clone + 'static>(
    registry: &Registry,
    name: &str,
    made: prometheus::Result<C>,
) -> C {
    let metric = made.unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(metric.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    metric
}

/// Registers a histogram `name` with `buckets`, one series per value of `labels`.
pub fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    register(
        registry,
        name,
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        ),
    )
}

/// Registers a gauge `name`, one series per value of `label`; each of `values` is there from
/// the start, at 0, so that a dashboard or an alert sees a zero rather than no series.
pub fn gauges(
    registry: &Registry,
    name: &str,
    help: &str,
    label: &str,
    values: &[&str],
) -> IntGaugeVec {
    let gauges = register(
        registry,
        name,
        IntGaugeVec::new(Opts::new(name, help), &[label]),
    );
    for value in values {
        gauges.with_label_values(&[value]).set(0);
    }
    gauges
}

/// The Prometheus text exposition of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    // Encoding into a Vec cannot fail for well-formed metrics.
    let _ = TextEncoder::new().encode(&registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}
