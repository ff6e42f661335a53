//! The full pipeline measured as the ceiling is: the requests queued first, then a worker
//! started on them, timed while it drains the queue into a durable quorum queue of results that
//! nobody reads until it is done. Per execution the broker then does what it does in the
//! ceiling row — a persistent message consumed and acked, a persistent result published with a
//! confirm into a quorum queue — so this row's ratio to the ceiling is the worker's own, like
//! for like. In the full row the client's publishing and reading run at the same time, and
//! the broker does about twice the ceiling's work per execution.

use crate::machine::{CpuSpent, CpuWindow, proc_peak_rss_mib};
use crate::pipeline::{enqueue, results_sink};
use crate::report::Row;
use crate::stages;
use crate::workers::{Worker, start_worker_noting};
use crate::workload::{Outcome, Workload};
use aic_tests::harness::TestEnv;
use futures_util::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How often the results queue's depth is read while the worker drains: the row's clock.
const POLL: Duration = Duration::from_millis(5);
/// How long the results queue may stay the same before the executions not in it count as lost.
const STALL: Duration = Duration::from_secs(60);

/// What the poller saw: from the first result in the queue to the last.
struct Drained {
    /// When the first results were seen, and how many there were then.
    first: Option<(Instant, usize)>,
    /// When the queue last grew, and to how many.
    last: (Instant, usize),
    /// The last poll that found the queue empty.
    quiet: Instant,
    /// The CPU spent from the first result seen to the last, if they were not all seen at once.
    spent: Option<CpuSpent>,
}

/// Queues `n` executions, starts a worker with `prefetch` on them and times it draining them.
/// Returns the row and the worker, warmed up, for the rows after it.
pub async fn drain(
    env: &TestEnv,
    workload: &Workload,
    n: usize,
    prefetch: u16,
    label: &str,
) -> (Row, Worker) {
    let ch = env.amqp.create_channel().await.expect("channel");
    let results = results_sink(env, &ch, aic_core::amqp::quorum_queue_arguments()).await;
    let ids = enqueue(env, workload, n).await;
    let wal_before = stages::wal_position(&env.pool).await;
    let pid = Arc::new(AtomicU32::new(0));
    let poller = tokio::spawn(watch(
        env.amqp.create_channel().await.expect("channel"),
        results.clone(),
        n,
        pid.clone(),
    ));
    let worker = start_worker_noting(env, prefetch, &pid).await;
    let drained = poller.await.expect("the poller");
    let wal_after = stages::wal_position(&env.pool).await;
    // A fresh process: its metrics count from nothing.
    let inside = stages::snapshot(&[worker.admin])
        .await
        .map(|a| stages::between(&stages::Snapshot::default(), &a));
    let read = read_results(&ch, &results, workload, &ids).await;
    read.warn(label, inside.as_ref(), drained.last.1);
    let _ = ch
        .queue_delete(results.as_str().into(), QueueDeleteOptions::default())
        .await;
    let (end, total) = drained.last;
    let (start, timed) = match drained.first {
        Some((at, seen_then)) if total > seen_then => (at, total - seen_then),
        // Every result arrived between two polls (a few executions): timed from the poll before.
        _ => (drained.quiet, total),
    };
    let spent = drained.spent;
    let row = Row {
        scenario: label.into(),
        executions: n,
        per_second: timed as f64 / (end - start).as_secs_f64().max(1e-9),
        worker_cpu_us_per_execution: spent.as_ref().map(|s| s.workers_us),
        worker_page_faults_per_execution: spent.as_ref().map(|s| s.workers_faults),
        machine_cpu_us_per_execution: spent.as_ref().and_then(|s| s.machine_us),
        machine_busy_pct: spent.as_ref().and_then(|s| s.machine_busy_pct),
        machine_steal_pct: spent.as_ref().and_then(|s| s.machine_steal_pct),
        machine_cpu_us_by_process: spent.and_then(|s| s.by_process_us),
        worker_peak_rss_mib: proc_peak_rss_mib(worker.process.id()),
        lost: n - read.seen,
        failed: read.failed,
        stages: inside,
        wal_bytes_per_execution: stages::wal_per_execution(wal_before, wal_after, read.seen),
        ..Row::default()
    };
    (row, worker)
}

/// Reads the results queue's depth every [`POLL`] until it holds `n` results or has not grown
/// for [`STALL`]; the worker's and the machine's CPU are measured from the first result seen,
/// when the worker (its id in `pid`) is at work, to the last.
async fn watch(ch: lapin::Channel, queue: String, n: usize, pid: Arc<AtomicU32>) -> Drained {
    let mut first = None;
    let mut cpu = None;
    let mut last = (Instant::now(), 0);
    let mut quiet = last.0;
    while last.1 < n && last.0.elapsed() < STALL {
        tokio::time::sleep(POLL).await;
        let depth = ch
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("the results queue's depth")
            .message_count() as usize;
        if depth == 0 {
            quiet = Instant::now();
        }
        if depth > last.1 {
            let now = Instant::now();
            if first.is_none() {
                first = Some((now, depth));
                cpu = Some(CpuWindow::start(&[pid.load(Ordering::SeqCst)]));
            }
            last = (now, depth);
        }
    }
    let timed = last.1 - first.map_or(last.1, |(_, d)| d);
    Drained {
        first,
        last,
        quiet,
        spent: cpu.filter(|_| timed > 0).map(|c| c.end(timed)),
    }
}

/// What the results queue held for the row's executions.
struct Read {
    /// Executions with a result.
    seen: usize,
    /// Of those, the ones whose result did not succeed.
    failed: usize,
    /// Results of an execution already seen.
    twice: usize,
    /// Results of executions this row did not queue (an earlier row's requests, still queued
    /// or given back, run by this row's worker).
    foreign: usize,
}

impl Read {
    /// Warns of results that came twice or belong to executions the row did not queue: the
    /// queue's depth (`depth` when the window closed) counted them too, so the window may
    /// have closed early.
    fn warn(&self, label: &str, inside: Option<&stages::Stages>, depth: usize) {
        if self.twice > 0 {
            // The contract delivers at least once: a redelivered execution's result is
            // published again.
            let why = inside
                .and_then(|s| s.redone())
                .unwrap_or_else(|| "the worker reported neither replays nor retries".into());
            eprintln!(
                "aic-bench: {label}: {} results came twice (a redelivery's result published \
                 again); the window closed when the queue held {depth} results, these among \
                 them; {why}",
                self.twice
            );
        }
        if self.foreign > 0 {
            eprintln!(
                "aic-bench: {label}: {} results of executions this row did not queue (an earlier \
                 row's requests, still queued or given back) came with its own; the window \
                 closed when the queue held {depth} results, these among them",
                self.foreign
            );
        }
    }
}

/// Takes the results off the queue until every one of `ids` has one, or none came for 10 s: an
/// execution counts as lost only then, not for a result that came after a duplicate of another
/// one (the queue's depth, which ended the row, counts both).
async fn read_results(
    ch: &lapin::Channel,
    queue: &str,
    workload: &Workload,
    ids: &[String],
) -> Read {
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "bench-drain".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume the results");
    let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut seen = HashSet::with_capacity(ids.len());
    let (mut failed, mut twice, mut foreign) = (0, 0, 0);
    while seen.len() < wanted.len() {
        let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_secs(10), consumer.next()).await
        else {
            break;
        };
        let Ok(
            outcome @ Outcome {
                execution_id: Some(id),
                ..
            },
        ) = serde_json::from_slice(&d.data)
        else {
            continue;
        };
        if !wanted.contains(id) {
            foreign += 1;
            continue;
        }
        if !seen.insert(id.to_string()) {
            twice += 1;
        } else if !workload.succeeded(&outcome) {
            failed += 1;
        }
    }
    // Cancelled before the queue is deleted: RabbitMQ 3.10 closes the whole connection
    // (`case_clause, {error, noproc}` in `rabbit_channel`) when a quorum queue is deleted on
    // the channel that still consumes from it.
    ch.basic_cancel("bench-drain".into(), BasicCancelOptions::default())
        .await
        .expect("cancel the results consumer");
    Read {
        seen: seen.len(),
        failed,
        twice,
        foreign,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Vendor;
    use aic_tests::harness::Options;

    #[tokio::test]
    async fn results_are_read_until_each_has_one_and_repeats_and_strangers_are_told_apart() {
        let env = TestEnv::start_with(Options {
            worker: false,
            ..Options::default()
        })
        .await;
        let workload = Workload::set_up(&env, Vendor::Salesforce, false).await;
        let ch = env.amqp.create_channel().await.expect("channel");
        let results = results_sink(&env, &ch, aic_core::amqp::quorum_queue_arguments()).await;
        let publisher = aic_core::amqp::confirm_channel(&env.amqp)
            .await
            .expect("a confirm channel");
        // Row a's twice, a stranger's among them, b failed, c succeeded.
        for (id, status) in [
            ("a", "succeeded"),
            ("x", "succeeded"),
            ("a", "succeeded"),
            ("b", "failed"),
            ("c", "succeeded"),
        ] {
            let body =
                serde_json::json!({"execution_id": id, "status": status, "output": {"id": "00Q1"}});
            aic_core::amqp::publish_confirmed(
                &publisher,
                &env.names.results_exchange,
                "t.succeeded",
                body.to_string().as_bytes(),
                lapin::BasicProperties::default(),
                false,
            )
            .await
            .expect("published");
        }
        let ids = ["a", "b", "c"].map(String::from);
        let read = read_results(&ch, &results, &workload, &ids).await;
        assert_eq!(
            (read.seen, read.failed, read.twice, read.foreign),
            (3, 1, 1, 1)
        );
        env.stop().await;
    }
}
