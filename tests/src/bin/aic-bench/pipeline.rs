//! A row's traffic as a client sees it: requests published as `proto/AMQP.md` says (persistent,
//! confirmed, a bounded window of unconfirmed ones), flat out or paced, and every result read
//! and timed from its request's publish.

use crate::latency::{Sample, percentile};
use crate::machine::{CpuWindow, proc_peak_rss_mib};
use crate::report::Row;
use aic_proto::topology::{EXECUTE_ROUTING_KEY, EXECUTION_REQUEST_TYPE};
use aic_tests::harness::TestEnv;
use lapin::PublisherConfirm;
use lapin::options::BasicPublishOptions;
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

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

/// What the results reader takes from an `ExecutionResultV1`.
#[derive(serde::Deserialize)]
pub struct Outcome<'a> {
    pub execution_id: Option<&'a str>,
    pub status: &'a str,
}

/// The `i`th request of a run of the lead automation: its execution id and body.
fn lead(env: &TestEnv, automation: &str, i: usize) -> (String, Vec<u8>) {
    env.request(
        automation,
        json!({"LastName": format!("B{i}"), "Company": "Bench"}),
    )
}

/// Publishes a request as `proto/AMQP.md` says; its confirm is to be awaited.
async fn publish(publisher: &lapin::Channel, env: &TestEnv, body: &[u8]) -> PublisherConfirm {
    publisher
        .basic_publish(
            env.names.executions_exchange.as_str().into(),
            EXECUTE_ROUTING_KEY.into(),
            BasicPublishOptions::default(),
            body,
            aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE),
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
pub async fn enqueue(env: &TestEnv, automation: &str, n: usize) -> Vec<String> {
    let publisher = aic_core::amqp::confirm_channel(&env.amqp)
        .await
        .expect("channel");
    let mut window = Window::default();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let (id, body) = lead(env, automation, i);
        ids.push(id);
        window.push(publish(&publisher, env, &body).await).await;
    }
    window.settle().await;
    ids
}

/// Enqueues `n` executions as the AMQP contract says — as fast as confirms allow, or paced at
/// `rate` per second — and waits for every result, timing each from its publish to its result.
pub async fn run(
    env: &TestEnv,
    automation: &str,
    n: usize,
    workers: &[u32],
    rate: Option<f64>,
    label: &str,
) -> Row {
    let mut results = env.listen(&env.names.results_exchange, "#").await;
    let publisher = aic_core::amqp::confirm_channel(&env.amqp)
        .await
        .expect("channel");
    // Results are read as they arrive, while publishing goes on.
    let reader = tokio::spawn(async move {
        let mut arrived: HashMap<String, (Instant, bool)> = HashMap::with_capacity(n);
        while arrived.len() < n {
            let Some(d) = results.next(Duration::from_secs(60)).await else {
                break;
            };
            let at = Instant::now();
            // Only the two fields the table needs, borrowed from the body: the client's own
            // CPU is taken from the cores the pipeline runs on.
            if let Ok(Outcome {
                execution_id: Some(id),
                status,
            }) = serde_json::from_slice(&d.data)
            {
                arrived.insert(id.to_string(), (at, status == "succeeded"));
            }
        }
        arrived
    });
    let cpu = CpuWindow::start(workers);
    let mut sent_at: HashMap<String, Instant> = HashMap::with_capacity(n);
    let started = Instant::now();
    let mut window = Window::default();
    for i in 0..n {
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let (id, body) = lead(env, automation, i);
        sent_at.insert(id, Instant::now());
        window.push(publish(&publisher, env, &body).await).await;
    }
    window.settle().await;
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
