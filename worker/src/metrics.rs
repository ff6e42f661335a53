//! Every metric the worker exports, declared in one place. Labels are bounded: app, action,
//! outcome, status class, reason, queue role — never tenant ids, URLs or error strings.
//!
//! Every series an alert or the dashboard (`deploy/`) reads exists from start-up at zero
//! ([`Metrics::zero`]): `increase()` over a series that appears with its first event sees no
//! increase, so the first dead letter or unknown outcome of a worker's life would not alert.

use aic_core::catalog::Catalog;
use aic_core::metrics::{LATENCY_BUCKETS, gauges, histogram, register, render};
use prometheus::{
    Histogram, HistogramOpts, HistogramTimer, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// Outcomes of `aic_executions_total` (besides `replayed`, counted under app `unknown`).
pub const OUTCOMES: [&str; 3] = ["succeeded", "failed", "unknown_outcome"];
/// Status classes of `aic_vendor_requests_total`.
pub const STATUS_CLASSES: [&str; 5] = ["2xx", "3xx", "4xx", "5xx", "transport"];
/// Outcomes of `aic_vendor_token_requests_total`.
pub const TOKEN_OUTCOMES: [&str; 3] = ["ok", "refused", "error"];
/// Statements of the ledger (`crate::ledger`), each group-committed in batches.
pub const LEDGER_STATEMENTS: [&str; 3] = ["begin", "mark", "finish"];
/// Buckets of `aic_ledger_batch_executions`: up to the largest batch (256).
const BATCH_SIZE_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// Reasons of `aic_dead_letters_total`: a request too large to read, the decoder's, an
/// execution id owned by another tenant or sent before with another request, a request the
/// execution ledger refuses to record, and one whose processing panicked.
pub const DEAD_LETTER_REASONS: [&str; 9] = [
    "request_too_large",
    "invalid_json",
    "missing_version",
    "unknown_version",
    "invalid_message",
    "execution_id_conflict",
    "execution_id_reused",
    "ledger_refused",
    "worker_panicked",
];

/// An infrastructure step the worker retries in place (`crate::retry::in_place`, or a whole
/// delivery from its start) while PostgreSQL or RabbitMQ fails it: its label in
/// `aic_infrastructure_retries_total` and what the warning logged with each retry says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A delivery retried from its start: the ledger or the broker failed before its vendor
    /// call.
    Delivery,
    /// Recording a finished execution's result in the ledger.
    RecordResult,
    /// Publishing an execution's result (until the broker confirms it).
    PublishResult,
    /// Parking a copy of the request in a delay queue for a retry due later.
    HandOff,
    /// Recording that hand-off in the ledger.
    RecordHandOff,
    /// Parking a copy of a request another copy is running, to wait for its outcome.
    StepBack,
    /// Copying a request to the dead-letter exchange.
    DeadLetter,
}

impl Step {
    /// Every step, in the order of their labels.
    pub const ALL: [Step; 7] = [
        Step::Delivery,
        Step::RecordResult,
        Step::PublishResult,
        Step::HandOff,
        Step::RecordHandOff,
        Step::StepBack,
        Step::DeadLetter,
    ];

    /// The `step` label.
    pub fn label(self) -> &'static str {
        match self {
            Step::Delivery => "delivery",
            Step::RecordResult => "record_result",
            Step::PublishResult => "publish_result",
            Step::HandOff => "hand_off",
            Step::RecordHandOff => "record_hand_off",
            Step::StepBack => "step_back",
            Step::DeadLetter => "dead_letter",
        }
    }

    /// What the step does, for the warning logged with each retry ("could not …").
    pub fn what(self) -> &'static str {
        match self {
            Step::Delivery => "process the delivery",
            Step::RecordResult => "record the result",
            Step::PublishResult => "publish the result",
            Step::HandOff => "hand the retry to a delay queue",
            Step::RecordHandOff => "record the hand-off",
            Step::StepBack => "step back for the copy running",
            Step::DeadLetter => "dead-letter the request",
        }
    }
}

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
    /// Time of one vendor HTTP call (not its retries' waits), by app, whatever its answer.
    pub vendor_request_duration: HistogramVec,
    /// Time of one group-committed ledger statement, by statement: waiting for a pooled
    /// connection, the round-trip and the commit. Every execution waits on three of them.
    ledger_batch_duration: HistogramVec,
    /// Executions in one ledger statement, by statement: how much group commit is saving.
    ledger_batch_executions: HistogramVec,
    /// Time one execution waited for a ledger statement, by statement: behind the batch in
    /// flight, then in its own, until its answer reached it (what group commit costs it).
    ledger_wait: HistogramVec,
    /// Time from an execution's result handed to the broker to its publish confirmed (retries
    /// in place included): the last step before the ack, and the broker's share of
    /// `aic_execution_duration_seconds`.
    pub result_publish_duration: Histogram,
    /// Token requests, by app and outcome (`ok`, `refused`, `error`).
    pub token_requests: IntCounterVec,
    /// Retries scheduled, by app.
    pub retries: IntCounterVec,
    /// Messages dead-lettered, by reason.
    pub dead_letters: IntCounterVec,
    /// Retries handed to a delay queue (due later than the worker waits in-process), by app.
    pub deferred: IntCounterVec,
    /// Copies of a request that found another copy running it (its client published it twice)
    /// and stepped back to wait for that one's outcome.
    pub duplicate_copies: IntCounter,
    /// Deliveries the broker flagged as redelivered: given back by a worker that stopped,
    /// crashed or lost its connection (each is answered from the ledger, or run again if its
    /// first delivery had not reached the vendor).
    pub redelivered: IntCounter,
    /// Connections opened to vendor hosts: over HTTP/1.1, one per call beyond the idle
    /// connections kept (`AIC_WORKER_VENDOR_IDLE_CONNECTIONS`).
    pub vendor_connections_opened: IntCounter,
    /// Infrastructure steps retried in place, by [`Step`]: each a failure of PostgreSQL or
    /// RabbitMQ that an execution waited out in the worker instead of failing.
    infrastructure_retries: IntCounterVec,
    /// Deliveries being processed now.
    pub in_flight: IntGauge,
    /// Messages in the broker's queues by role (`executions` waiting to run, `delayed` retries
    /// parked in the delay queues, `dead_letters`), read from RabbitMQ at each scrape: every
    /// worker reports the same queues, so dashboards take the `max`, not the `sum`.
    pub queue_messages: IntGaugeVec,
    /// Consumers attached to the executions queue (the workers RabbitMQ sees), read with
    /// [`Self::queue_messages`].
    pub queue_consumers: IntGauge,
    /// 1 while RabbitMQ blocks the worker's publishing (a memory or disk alarm), read at each
    /// scrape.
    pub broker_blocked: IntGauge,
}

impl Metrics {
    /// Registers everything in a fresh registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                name,
                IntCounterVec::new(Opts::new(name, help), labels),
            )
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
            "Retries handed to a delay queue (an execution parked behind a cool-down counts again each time it finds the cool-down still holding).",
            &["app"],
        );
        let infrastructure_retries = counter(
            "aic_infrastructure_retries_total",
            "Infrastructure steps (ledger writes, publishes) retried in place, by step.",
            &["step"],
        );
        let dead_letters = counter(
            "aic_dead_letters_total",
            "Messages dead-lettered, by reason.",
            &["reason"],
        );
        let execution_duration = histogram(
            &registry,
            "aic_execution_duration_seconds",
            "Delivery to result published.",
            &["app", "outcome"],
            &LATENCY_BUCKETS,
        );
        let vendor_request_duration = histogram(
            &registry,
            "aic_vendor_request_duration_seconds",
            "One vendor HTTP call, from send to answer (or failure).",
            &["app"],
            &LATENCY_BUCKETS,
        );
        let ledger_batch_duration = histogram(
            &registry,
            "aic_ledger_batch_duration_seconds",
            "One group-committed ledger statement, connection wait and commit included.",
            &["statement"],
            &LATENCY_BUCKETS,
        );
        let ledger_batch_executions = histogram(
            &registry,
            "aic_ledger_batch_executions",
            "Executions sharing one ledger statement.",
            &["statement"],
            &BATCH_SIZE_BUCKETS,
        );
        let ledger_wait = histogram(
            &registry,
            "aic_ledger_wait_seconds",
            "One execution's wait for a ledger statement: behind the batch in flight, then in its own, until its answer reached it.",
            &["statement"],
            &LATENCY_BUCKETS,
        );
        let name = "aic_result_publish_duration_seconds";
        let result_publish_duration = register(
            &registry,
            name,
            Histogram::with_opts(
                HistogramOpts::new(
                    name,
                    "One execution's result, from its publish to the broker's confirm.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            ),
        );
        let plain = |name: &str, help: &str| register(&registry, name, IntCounter::new(name, help));
        let duplicate_copies = plain(
            "aic_duplicate_copies_total",
            "Copies of a request found running elsewhere, waiting for its outcome.",
        );
        let redelivered = plain(
            "aic_deliveries_redelivered_total",
            "Deliveries the broker flagged as redelivered (given back by another consumer).",
        );
        let vendor_connections_opened = plain(
            "aic_vendor_connections_opened_total",
            "Connections opened to vendor hosts (connected, before TLS; not through a proxy).",
        );
        let gauge = |name: &str, help: &str| register(&registry, name, IntGauge::new(name, help));
        let in_flight = gauge("aic_executions_in_flight", "Deliveries being processed.");
        let queue_consumers = gauge(
            "aic_queue_consumers",
            "Consumers attached to the executions queue, as RabbitMQ reports them.",
        );
        let broker_blocked = gauge(
            "aic_broker_blocked",
            "1 while RabbitMQ blocks this worker's publishing (a memory or disk alarm): its results and retries wait.",
        );
        let queue_messages = gauges(
            &registry,
            "aic_queue_messages",
            "Messages in the broker's queues, by role, as RabbitMQ reports them.",
            "queue",
            &[],
        );
        Self {
            registry,
            executions,
            execution_duration,
            vendor_requests,
            vendor_request_duration,
            ledger_batch_duration,
            ledger_batch_executions,
            ledger_wait,
            result_publish_duration,
            token_requests,
            retries,
            dead_letters,
            deferred,
            duplicate_copies,
            redelivered,
            vendor_connections_opened,
            infrastructure_retries,
            in_flight,
            queue_messages,
            queue_consumers,
            broker_blocked,
        }
    }

    /// Creates, at zero, every series the catalogue's apps and actions can produce.
    pub fn zero(&self, catalog: &Catalog) {
        for (app, templates) in catalog.apps() {
            let app = app.id.as_str();
            for t in templates {
                for outcome in OUTCOMES {
                    self.executions
                        .with_label_values(&[app, &t.action, outcome]);
                }
            }
            for outcome in OUTCOMES {
                self.execution_duration.with_label_values(&[app, outcome]);
            }
            for class in STATUS_CLASSES {
                self.vendor_requests.with_label_values(&[app, class]);
            }
            self.vendor_request_duration.with_label_values(&[app]);
            for outcome in TOKEN_OUTCOMES {
                self.token_requests.with_label_values(&[app, outcome]);
            }
            self.retries.with_label_values(&[app]);
            self.deferred.with_label_values(&[app]);
        }
        self.executions
            .with_label_values(&["unknown", "unknown", "replayed"]);
        for reason in DEAD_LETTER_REASONS {
            self.dead_letters.with_label_values(&[reason]);
        }
        for statement in LEDGER_STATEMENTS {
            self.ledger_batch(statement);
            self.ledger_wait(statement);
        }
        for step in Step::ALL {
            self.infrastructure_retries
                .with_label_values(&[step.label()]);
        }
    }

    /// Counts one retry of `step` (looked up only then: a step that succeeds costs nothing).
    pub fn retried(&self, step: Step) {
        self.infrastructure_retries
            .with_label_values(&[step.label()])
            .inc();
    }

    /// The histograms of one ledger statement.
    pub fn ledger_batch(&self, statement: &str) -> BatchTimer {
        BatchTimer {
            seconds: self.ledger_batch_duration.with_label_values(&[statement]),
            executions: self.ledger_batch_executions.with_label_values(&[statement]),
        }
    }

    /// Where each execution's wait for one ledger statement is observed.
    pub fn ledger_wait(&self, statement: &str) -> Histogram {
        self.ledger_wait.with_label_values(&[statement])
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

/// Times the batches of one ledger statement.
#[derive(Clone, Debug)]
pub struct BatchTimer {
    seconds: Histogram,
    executions: Histogram,
}

impl BatchTimer {
    /// Counts a batch of `executions` and times it until the returned guard drops, on success
    /// or failure alike.
    pub fn start(&self, executions: usize) -> HistogramTimer {
        self.executions.observe(executions as f64);
        self.seconds.start_timer()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

mod actions;
#[cfg(test)]
mod tests;

pub use actions::ActionSeries;
