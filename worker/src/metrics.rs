//! Every metric the worker exports, declared in one place. Labels are bounded: app, action,
//! outcome, status class, reason — never tenant ids, URLs or error strings.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The worker's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// Executions finished, by app, action and outcome (`succeeded`, `failed`,
    /// `unknown_outcome`, `replayed` for a redelivery answered from the ledger).
    pub executions: IntCounterVec,
    /// Time from delivery to result published, by app and outcome.
    pub execution_duration: HistogramVec,
    /// Vendor HTTP calls, by app and status class (`2xx`, `4xx`, `5xx`, `transport`).
    pub vendor_requests: IntCounterVec,
    /// Token requests, by app and outcome (`ok`, `refused`, `error`).
    pub token_requests: IntCounterVec,
    /// Retries scheduled, by app.
    pub retries: IntCounterVec,
    /// Messages dead-lettered, by reason.
    pub dead_letters: IntCounterVec,
    /// Retries handed to a delay queue (due later than the worker waits in-process), by app.
    pub deferred: IntCounterVec,
    /// Deliveries being processed now.
    pub in_flight: IntGauge,
}

impl Metrics {
    /// Registers everything in a fresh registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| panic!("metric {name}: {e}"));
            registry
                .register(Box::new(c.clone()))
                .unwrap_or_else(|e| panic!("metric {name}: {e}"));
            c
        };
        let executions = counter(
            "aic_executions_total",
            "Executions finished, by outcome.",
            &["app", "action", "outcome"],
        );
        let vendor_requests = counter(
            "aic_vendor_requests_total",
            "Vendor HTTP calls, by status class.",
            &["app", "status_class"],
        );
        let token_requests = counter(
            "aic_vendor_token_requests_total",
            "Vendor token requests, by outcome.",
            &["app", "outcome"],
        );
        let retries = counter(
            "aic_execution_retries_total",
            "Vendor call retries scheduled.",
            &["app"],
        );
        let deferred = counter(
            "aic_execution_retries_deferred_total",
            "Retries handed to a delay queue.",
            &["app"],
        );
        let dead_letters = counter(
            "aic_dead_letters_total",
            "Messages dead-lettered, by reason.",
            &["reason"],
        );
        let execution_duration = HistogramVec::new(
            HistogramOpts::new(
                "aic_execution_duration_seconds",
                "Delivery to result published.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["app", "outcome"],
        )
        .unwrap_or_else(|e| panic!("metric aic_execution_duration_seconds: {e}"));
        registry
            .register(Box::new(execution_duration.clone()))
            .unwrap_or_else(|e| panic!("metric aic_execution_duration_seconds: {e}"));
        let in_flight = IntGauge::new("aic_executions_in_flight", "Deliveries being processed.")
            .unwrap_or_else(|e| panic!("metric aic_executions_in_flight: {e}"));
        registry
            .register(Box::new(in_flight.clone()))
            .unwrap_or_else(|e| panic!("metric aic_executions_in_flight: {e}"));
        Self {
            registry,
            executions,
            execution_duration,
            vendor_requests,
            token_requests,
            retries,
            dead_letters,
            deferred,
            in_flight,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Status class label of an HTTP status.
pub fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
