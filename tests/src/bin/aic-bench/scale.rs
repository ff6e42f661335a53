//! Scale-out where the cores leave room: a slow vendor, and each worker holding a modest number
//! of calls in flight, so that one worker is bound by its own in-flight window (Little's law),
//! not by the machine. Two workers should then double it; at full load on the fast vendor
//! (the `two` row) one worker already keeps both cores busy, and a second cannot add much.

use crate::report::Row;
use crate::workers::{start_worker, through};
use crate::workload::Workload;
use aic_tests::harness::TestEnv;
use std::time::Duration;

/// One worker, then two, each with `in_flight` calls at most (its prefetch) against a vendor
/// answering after `latency_ms`: each row's ratio is to Little's law for its workers' calls in
/// flight, and the two-worker row says how many times one worker's steady rate it reached.
pub async fn scale_out(
    env: &TestEnv,
    workload: &Workload,
    n: usize,
    in_flight: u16,
    latency_ms: u64,
) -> [Row; 2] {
    env.sandbox.set_latency(Duration::from_millis(latency_ms));
    let label = |workers: usize| {
        format!(
            "scale-out: {latency_ms} ms, {in_flight} each, {workers} worker{}",
            if workers == 1 { "" } else { "s" }
        )
    };
    let one = start_worker(env, in_flight).await;
    let mut single = through(env, workload, n, &[&one], None, &label(1)).await;
    let two = start_worker(env, in_flight).await;
    let mut double = through(env, workload, n, &[&one, &two], None, &label(2)).await;
    two.stop().await;
    one.stop().await;
    for (row, workers) in [(&mut single, 1), (&mut double, 2)] {
        against_littles_law(row, workers * usize::from(in_flight), latency_ms);
    }
    double.vs_one_worker = Some(vs_one(&double, &single));
    [single, double]
}

/// How many times the `one`-worker row's rate `more` reached: their steady rates (between the
/// first result and the last) where both have one, so that neither carries its first call's
/// wait, which weighs twice as much on the shorter two-worker run.
pub fn vs_one(more: &Row, one: &Row) -> f64 {
    match (more.steady_per_second, one.steady_per_second) {
        (Some(m), Some(o)) if o > 0.0 => m / o,
        _ => more.per_second / one.per_second.max(1e-9),
    }
}

/// Sets a slow-vendor row's ratios (from the first publish, and at its steady rate) to Little's
/// law: `in_flight` calls held at once against a vendor answering after `latency_ms`.
pub fn against_littles_law(row: &mut Row, in_flight: usize, latency_ms: u64) {
    let littles_law = in_flight as f64 * 1000.0 / latency_ms as f64;
    row.ratio = Some(row.per_second / littles_law);
    row.steady_ratio = row.steady_per_second.map(|r| r / littles_law);
}
