//! A row's traffic as a client sees it: requests published as `proto/AMQP.md` says (persistent,
//! confirmed, a bounded window of unconfirmed ones), flat out or paced, and every result read
//! and timed from its request's publish.

use crate::latency::{Sample, percentile};
use crate::machine::{CpuWindow, proc_peak_rss_mib};
use crate::report::Row;
use crate::workload::{Outcome, Workload};
use aic_proto::topology::{EXECUTE_ROUTING_KEY, EXECUTION_REQUEST_TYPE};
use aic_tests::harness::{Listener, TestEnv};
use lapin::options::{BasicPublishOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, PublisherConfirm};
use std::collections::{HashMap, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// With `--reply-to`, the queue bound to the results exchange for the whole run.
static SINK: OnceLock<String> = OnceLock::new();

/// Results a sink for `--reply-to` holds at most: the oldest go first, as nobody reads them.
const SINK_LENGTH: i64 = 10_000;

/// From now on the rows that time results ask for them on a reply queue (`reply_to`), as a
/// chat bot waiting for its answer does, and read them there (see [`run`]); a durable quorum
/// queue bound to the results exchange meanwhile takes the exchange's copies, as a listener
/// there would. It lasts the whole run (the environment's clean-up deletes it), so that no queue a worker
/// publishes into is deleted between rows: with one per row, a trial build of the worker (both
/// copies of a result in flight at once) lost every execution of the row after a deletion in 3
/// runs of 28, its connection silent and nothing in either log; the worker as kept lost none in
/// 27, and the trial build none in 16 with one queue for the run (BENCHMARKS.md).
pub async fn answer_on_reply_queues(env: &TestEnv) {
    let ch = env.amqp.create_channel().await.expect("channel");
    let mut arguments = aic_core::amqp::quorum_queue_arguments();
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(SINK_LENGTH));
    let _ = SINK.set(results_sink(env, &ch, arguments).await);
}

/// A queue the rows declare beside the contract's topology, by its role: the ceiling's
/// (`in`, `out`) and the results sink (`results`, [`results_sink`]).
pub fn bench_queue(env: &TestEnv, role: &str) -> String {
    format!("{}.bench-{role}", env.names.executions_queue)
}

/// The exchange the ceiling through the contract's routing publishes its results to.
pub fn bench_exchange(env: &TestEnv) -> String {
    format!("{}.bench-results", env.names.results_exchange)
}

/// Declares a durable queue with `arguments` (a quorum queue's at least), bound to the results
/// exchange and taking every result as a listener there would (read, if at all, after the
/// rows); its name. Delete it when done.
pub async fn results_sink(env: &TestEnv, ch: &Channel, arguments: FieldTable) -> String {
    // One at a time: the drained row's (deleted after it), or `--reply-to`'s for the whole run.
    let results = bench_queue(env, "results");
    env.owns_queue(&results);
    ch.queue_declare(
        results.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        arguments,
    )
    .await
    .expect("results queue");
    ch.queue_bind(
        results.as_str().into(),
        env.names.results_exchange.as_str().into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind the results queue");
    results
}

/// Requests published and not yet confirmed, at most (`proto/AMQP.md`'s publisher).
const UNCONFIRMED: usize = 1000;

/// Waits for a request's publisher confirm; a nack is a benchmark failure.
async fn confirmed(confirm: PublisherConfirm) {
    let confirmation = confirm.await.expect("confirm");
    assert!(
        confirmation.is_ack(),
        "the broker refused a request: {confirmation:?}"
    );
}

/// Publishes a request as `proto/AMQP.md` says, answered on `reply_to` if given; its confirm
/// is to be awaited.
async fn publish(
    publisher: &Channel,
    env: &TestEnv,
    body: &[u8],
    reply_to: Option<&str>,
) -> PublisherConfirm {
    let mut properties = aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE);
    if let Some(queue) = reply_to {
        properties = properties.with_reply_to(queue.into());
    }
    publisher
        .basic_publish(
            env.names.executions_exchange.as_str().into(),
            EXECUTE_ROUTING_KEY.into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .expect("publish")
}

/// The confirms of published requests, at most [`UNCONFIRMED`] outstanding, as a real publisher
/// bounds them. They come back in publishing order: the oldest is awaited when it is full.
#[derive(Default)]
pub struct Window(VecDeque<PublisherConfirm>);

impl Window {
    pub async fn push(&mut self, confirm: PublisherConfirm) {
        self.0.push_back(confirm);
        if self.0.len() >= UNCONFIRMED
            && let Some(oldest) = self.0.pop_front()
        {
            confirmed(oldest).await;
        }
    }

    pub async fn settle(&mut self) {
        while let Some(confirm) = self.0.pop_front() {
            confirmed(confirm).await;
        }
    }
}

/// Enqueues `n` executions as fast as confirms allow, every one confirmed on return: their ids.
pub async fn enqueue(env: &TestEnv, workload: &Workload, n: usize) -> Vec<String> {
    let publisher = aic_core::amqp::confirm_channel(&env.amqp)
        .await
        .expect("channel");
    let mut window = Window::default();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let (id, body) = workload.request(env, i);
        ids.push(id);
        window
            .push(publish(&publisher, env, &body, None).await)
            .await;
    }
    window.settle().await;
    ids
}

/// Each result's arrival and whether it succeeded, by execution id, read off `results` until
/// `n` have come or none came for 60 s.
async fn read_results(
    mut results: Listener,
    expected: Workload,
    n: usize,
) -> HashMap<String, (Instant, bool)> {
    let mut arrived: HashMap<String, (Instant, bool)> = HashMap::with_capacity(n);
    while arrived.len() < n {
        let Some(d) = results.next(Duration::from_secs(60)).await else {
            break;
        };
        let at = Instant::now();
        if let Ok(
            outcome @ Outcome {
                execution_id: Some(id),
                ..
            },
        ) = serde_json::from_slice(&d.data)
        {
            arrived.insert(id.to_string(), (at, expected.succeeded(&outcome)));
        }
    }
    arrived
}

/// Every execution sent, in the order sent: when (from `started`), its latency if its result
/// arrived, and whether it succeeded.
fn samples(
    sent_at: &HashMap<String, Instant>,
    arrived: &HashMap<String, (Instant, bool)>,
    started: Instant,
) -> Vec<Sample> {
    let mut samples: Vec<Sample> = sent_at
        .iter()
        .map(|(id, t)| {
            let result = arrived.get(id);
            Sample {
                sent_ms: (*t - started).as_secs_f64() * 1000.0,
                latency_ms: result.map(|(at, _)| (*at - *t).as_secs_f64() * 1000.0),
                succeeded: result.is_some_and(|(_, ok)| *ok),
            }
        })
        .collect();
    samples.sort_by(|a, b| a.sent_ms.total_cmp(&b.sent_ms));
    samples
}

/// Publishes `n` executions from `started`, as fast as confirms allow or paced at `rate` per
/// second, until every one is confirmed; returns when each was sent.
async fn send_all(
    env: &TestEnv,
    workload: &Workload,
    publisher: &Channel,
    n: usize,
    started: Instant,
    rate: Option<f64>,
    reply_queue: Option<&str>,
) -> HashMap<String, Instant> {
    let mut sent_at: HashMap<String, Instant> = HashMap::with_capacity(n);
    let mut window = Window::default();
    for i in 0..n {
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let (id, body) = workload.request(env, i);
        sent_at.insert(id, Instant::now());
        window
            .push(publish(publisher, env, &body, reply_queue).await)
            .await;
    }
    window.settle().await;
    sent_at
}

/// Enqueues `n` executions as the AMQP contract says — as fast as confirms allow, or paced at
/// `rate` per second — and waits for every result, timing each from its publish to its result.
/// Results are read from a queue bound to the results exchange, or with `--reply-to` from the
/// reply queue the requests name (see [`answer_on_reply_queues`]).
pub async fn run(
    env: &TestEnv,
    workload: &Workload,
    n: usize,
    workers: &[u32],
    rate: Option<f64>,
    label: &str,
) -> Row {
    let reply_to = SINK.get().is_some();
    let results = if reply_to {
        env.listen("", "").await
    } else {
        env.listen(&env.names.results_exchange, "#").await
    };
    let reply_queue = reply_to.then(|| results.queue.clone());
    let publisher = aic_core::amqp::confirm_channel(&env.amqp)
        .await
        .expect("channel");
    // Results are read as they arrive, while publishing goes on.
    let reader = tokio::spawn(read_results(results, workload.clone(), n));
    let cpu = CpuWindow::start(workers);
    let started = Instant::now();
    let sent_at = send_all(
        env,
        workload,
        &publisher,
        n,
        started,
        rate,
        reply_queue.as_deref(),
    )
    .await;
    let arrived = reader.await.expect("results reader");
    // The window closes with the last result, before the latencies are worked out below
    // (50,000 lookups and a sort, on the client's CPU).
    let seen = arrived.len();
    let spent = cpu.end(seen);
    let last = arrived.values().map(|(t, _)| *t).max().unwrap_or(started);
    let first = arrived.values().map(|(t, _)| *t).min().unwrap_or(started);
    let elapsed = (last - started).as_secs_f64();
    let steady = (arrived.len() > 1 && last > first)
        .then(|| (arrived.len() - 1) as f64 / (last - first).as_secs_f64());
    let samples = samples(&sent_at, &arrived, started);
    let mut latencies: Vec<f64> = samples.iter().filter_map(|s| s.latency_ms).collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    Row {
        scenario: label.into(),
        executions: n,
        per_second: seen as f64 / elapsed.max(1e-9),
        steady_per_second: steady,
        worker_cpu_us_per_execution: Some(spent.workers_us),
        worker_page_faults_per_execution: Some(spent.workers_faults),
        machine_cpu_us_per_execution: spent.machine_us,
        machine_busy_pct: spent.machine_busy_pct,
        machine_steal_pct: spent.machine_steal_pct,
        machine_cpu_us_by_process: spent.by_process_us,
        worker_peak_rss_mib: workers
            .iter()
            .filter_map(|p| proc_peak_rss_mib(*p))
            .reduce(f64::max),
        latency_p50_ms: percentile(&latencies, 0.5),
        latency_p99_ms: percentile(&latencies, 0.99),
        latency_max_ms: latencies.last().copied(),
        lost: n - seen,
        failed: arrived.values().filter(|(_, ok)| !ok).count(),
        samples,
        ..Row::default()
    }
}
