//! The rows of a run, in order: the ceilings, the AMQP path alone, the pipeline's rows through
//! one worker and two, the slow vendor's and the scale-out's, then the ceilings again.

use crate::ceiling::{self, Route};
use crate::report::Row;
use crate::workers::{self, start_worker, start_worker_with, through};
use crate::workload::Workload;
use crate::{Args, drain, echo, scale};
use aic_tests::harness::TestEnv;
use std::time::Duration;

/// Executions of a paced run at `rate`: ~`seconds` of it, within `n` and no fewer than
/// `floor` (nor than `n` allows).
fn paced_n(rate: f64, seconds: f64, floor: usize, n: usize) -> usize {
    ((rate * seconds) as usize).clamp(floor.min(n), n)
}

/// A paced run through `worker`: `(kind, rate, n)` — "paced at" or "light load at", per
/// second, executions.
async fn paced(
    env: &TestEnv,
    workload: &Workload,
    worker: &workers::Worker,
    (kind, rate, n): (&str, f64, usize),
) -> Row {
    let label = format!("  same, {kind} {rate:.0}/s");
    through(env, workload, n, &[worker], Some(rate), &label).await
}

/// Executions that warm a worker up before paced rows when no full row ran before them.
const WARM_UP: usize = 200;

/// The scenario of the AMQP path alone (`echo`).
const PATH_ROW: &str = "AMQP path alone (echo consumer)";
const CEILING_ROW: &str = "ceiling (broker only)";
const CEILING_AGAIN_ROW: &str = "ceiling (broker only), again";
const ROUTED_ROW: &str = "ceiling, the contract's routing";
const ROUTED_AGAIN_ROW: &str = "ceiling, the contract's routing, again";
/// The pipeline measured as the ceiling is (`drain`).
const DRAIN_ROW: &str = "queue drained, fast vendor, 1 worker";

/// Runs the rows `args` asks for on `env`, each ratio filled in against the rows it is a share of.
pub async fn measure(args: &Args, env: &TestEnv, workload: &Workload) -> Vec<Row> {
    // The drained row reads no result until the end, so no reply queue: with `--reply-to` it
    // would only carry a second results queue the ceiling it is measured against does not.
    let run =
        |name: &str| args.only.iter().any(|o| o == name) && !(args.reply_to && name == "drain");
    let mut rows = Vec::new();
    let mut first_ceilings = Vec::new();
    for (name, route, label, again) in [
        ("ceiling", Route::Queue, CEILING_ROW, CEILING_AGAIN_ROW),
        (
            "ceiling-routed",
            Route::Contract,
            ROUTED_ROW,
            ROUTED_AGAIN_ROW,
        ),
    ] {
        if run(name) {
            let row = ceiling::ceiling(env, args.n, args.prefetch, route, label).await;
            first_ceilings.push((route, again, row.per_second));
            rows.push(row);
        }
    }
    if run("path") {
        rows.push(echo::path(env, workload, args.n, args.prefetch, None, PATH_ROW).await);
    }
    // The paced rows' kinds, rates and sizes, for the AMQP path alone at the same rates.
    let mut paced_at = Vec::new();

    if ["drain", "full", "paced", "light", "two"]
        .into_iter()
        .any(run)
    {
        // The worker that drained the queue stays on for the rows after it, warmed up.
        let (one, warmed) = if run("drain") {
            let (row, worker) = drain::drain(env, workload, args.n, args.prefetch, DRAIN_ROW).await;
            rows.push(row);
            (worker, true)
        } else {
            (start_worker(env, args.prefetch).await, false)
        };
        let mut full = None;
        if run("full") {
            let row = through(
                env,
                workload,
                args.n,
                &[&one],
                None,
                "full pipeline, fast vendor, 1 worker",
            )
            .await;
            full = Some(rows.len());
            rows.push(row);
        }
        // Without the drain or full row before them, the paced rows would also time the worker's
        // first calls (its vendor token, connections, prepared statements): warm it up first.
        if !warmed && full.is_none() && (run("paced") || run("light")) {
            let warm = through(env, workload, WARM_UP.min(args.n), &[&one], None, "warm-up").await;
            if warm.lost > 0 || warm.failed > 0 {
                rows.push(warm);
            }
        }
        let peak = full.map(|i| rows[i].per_second);
        // Latency with headroom: the same worker, fed at half the rate it just sustained.
        if let Some(half_rate) = args
            .paced_rate
            .or(peak.map(|p| p / 2.0))
            .filter(|_| run("paced"))
        {
            let half_n = paced_n(half_rate, 15.0, 500, args.n);
            let at = ("paced at", half_rate, half_n);
            paced_at.push(at);
            rows.push(paced(env, workload, &one, at).await);
        }
        // Latency where the cores leave room: at half of peak they stay nearly as busy as at
        // full load (smaller batches cost more per execution).
        if run("light") {
            let light_n = paced_n(args.light_rate, 10.0, 200, args.n);
            let at = ("light load at", args.light_rate, light_n);
            paced_at.push(at);
            rows.push(paced(env, workload, &one, at).await);
        }
        if run("two") {
            let two = start_worker(env, args.prefetch).await;
            let mut row = through(
                env,
                workload,
                args.n,
                &[&one, &two],
                None,
                "full pipeline, fast vendor, 2 workers",
            )
            .await;
            row.vs_one_worker = full.map(|i| scale::vs_one(&row, &rows[i]));
            rows.push(row);
            two.stop().await;
        }
        one.stop().await;
    }
    // The broker's own share of that latency: the AMQP path alone at the same rates.
    for (kind, rate, n) in paced_at.into_iter().filter(|_| run("path")) {
        let label = format!("AMQP path alone, {kind} {rate:.0}/s");
        rows.push(echo::path(env, workload, n, args.prefetch, Some(rate), &label).await);
    }
    // The broker alone again, after the rows measured against it: one run of it can fall in a
    // slow spell of the machine (the ceiling moved 1.57x between runs in the thirteenth
    // session, more than any row measured against it). The ratios are to the better of the two,
    // the broker's best in this run.
    for (route, label, first) in first_ceilings {
        let again = ceiling::ceiling(env, args.n, args.prefetch, route, label).await;
        let best = first.max(again.per_second);
        rows.push(again);
        for r in rows
            .iter_mut()
            .filter(|r| !r.scenario.starts_with("ceiling"))
        {
            let ratio = Some(r.per_second / best);
            match route {
                Route::Queue => r.ratio = ratio,
                Route::Contract => r.routed_ratio = ratio,
            }
        }
    }
    if let Some(path_rate) = rows
        .iter()
        .find(|r| r.scenario == PATH_ROW)
        .map(|r| r.per_second)
    {
        for r in rows
            .iter_mut()
            .filter(|r| r.scenario.starts_with("full pipeline"))
        {
            r.path_ratio = Some(r.per_second / path_rate);
        }
    }

    // The slow vendor over HTTP/1.1 (the sandbox's default), then over HTTP/2, as vendors
    // answer over TLS: cleartext HTTP/2 here (the worker told to speak it), whose server holds
    // calls past 200 streams per connection waiting.
    for (name, protocol, extra) in [
        ("slow", "", &[][..]),
        (
            "slow-h2",
            " over HTTP/2",
            &[("AIC_WORKER_VENDOR_HTTP2_PRIOR_KNOWLEDGE", "true")][..],
        ),
    ] {
        if !run(name) {
            continue;
        }
        env.sandbox
            .set_latency(Duration::from_millis(args.slow_latency_ms));
        let slow = start_worker_with(env, args.slow_in_flight, extra).await;
        // As many as the fast rows (the "the same"): over a fifth of them, the first
        // call's wait and the ramp to 2,000 in flight weighed on exec/s (a pipeline at exactly
        // Little's rate would have read 0.83). At least four windows of calls in flight.
        let slow_n = args.n.max(args.slow_in_flight as usize * 4);
        let mut row = through(
            env,
            workload,
            slow_n,
            &[&slow],
            None,
            &format!(
                "slow vendor{protocol} ({} ms), 1 worker",
                args.slow_latency_ms
            ),
        )
        .await;
        scale::against_littles_law(
            &mut row,
            usize::from(args.slow_in_flight),
            args.slow_latency_ms,
        );
        slow.stop().await;
        rows.push(row);
    }
    if run("scale") {
        // 40 windows of calls in flight (8 s for one worker at Little's law by default), or
        // fewer for a small --n, but at least four.
        let window = args.scale_in_flight as usize;
        let scale_n = (window * 40).min(args.n.max(window * 4));
        rows.extend(
            scale::scale_out(
                env,
                workload,
                scale_n,
                args.scale_in_flight,
                args.slow_latency_ms,
            )
            .await,
        );
    }

    rows
}
