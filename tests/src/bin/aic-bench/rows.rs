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
    let run = Run {
        args,
        env,
        workload,
    };
    let mut rows = Vec::new();
    let first_ceilings = run.ceilings(&mut rows).await;
    if run.selected("path") {
        rows.push(echo::path(env, workload, args.n, args.prefetch, None, PATH_ROW).await);
    }
    let paced_at = if ["drain", "full", "paced", "light", "two"]
        .into_iter()
        .any(|name| run.selected(name))
    {
        run.one_worker(&mut rows).await
    } else {
        Vec::new()
    };
    // The broker's own share of that latency: the AMQP path alone at the same rates.
    for (kind, rate, n) in paced_at.into_iter().filter(|_| run.selected("path")) {
        let label = format!("AMQP path alone, {kind} {rate:.0}/s");
        rows.push(echo::path(env, workload, n, args.prefetch, Some(rate), &label).await);
    }
    run.ceilings_again(first_ceilings, &mut rows).await;
    path_ratios(&mut rows);
    run.slow(&mut rows).await;
    if run.selected("scale") {
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

/// A paced run's kind ("paced at", "light load at"), rate per second and executions.
type PacedAt = (&'static str, f64, usize);

/// What every row of a run is measured with.
struct Run<'a> {
    args: &'a Args,
    env: &'a TestEnv,
    workload: &'a Workload,
}

impl Run<'_> {
    /// Whether the row `name` runs. The drained row reads no result until the end, so no
    /// reply queue: with `--reply-to` it would only carry a second results queue the ceiling
    /// it is measured against does not.
    fn selected(&self, name: &str) -> bool {
        self.args.only.iter().any(|o| o == name) && !(self.args.reply_to && name == "drain")
    }

    /// The ceilings' first runs, plain and through the contract's routing: each one's route,
    /// label for its second run, and rate.
    async fn ceilings(&self, rows: &mut Vec<Row>) -> Vec<(Route, &'static str, f64)> {
        let mut first = Vec::new();
        for (name, route, label, again) in [
            ("ceiling", Route::Queue, CEILING_ROW, CEILING_AGAIN_ROW),
            (
                "ceiling-routed",
                Route::Contract,
                ROUTED_ROW,
                ROUTED_AGAIN_ROW,
            ),
        ] {
            if self.selected(name) {
                let (n, prefetch) = (self.args.n, self.args.prefetch);
                let row = ceiling::ceiling(self.env, n, prefetch, route, label).await;
                first.push((route, again, row.per_second));
                rows.push(row);
            }
        }
        first
    }

    /// The rows through one worker (drained, full, paced, light load) and two; the paced rows'
    /// rates, for the AMQP path alone at the same rates.
    async fn one_worker(&self, rows: &mut Vec<Row>) -> Vec<PacedAt> {
        let (env, workload, n) = (self.env, self.workload, self.args.n);
        // The worker that drained the queue stays on for the rows after it, warmed up.
        let (one, warmed) = if self.selected("drain") {
            let (row, worker) = drain::drain(env, workload, n, self.args.prefetch, DRAIN_ROW).await;
            rows.push(row);
            (worker, true)
        } else {
            (start_worker(env, self.args.prefetch).await, false)
        };
        let mut full = None;
        if self.selected("full") {
            let label = "full pipeline, fast vendor, 1 worker";
            let row = through(env, workload, n, &[&one], None, label).await;
            full = Some(rows.len());
            rows.push(row);
        }
        // Without the drain or full row before them, the paced rows would also time the worker's
        // first calls (its vendor token, connections, prepared statements): warm it up first.
        if !warmed && full.is_none() && (self.selected("paced") || self.selected("light")) {
            let warm = through(env, workload, WARM_UP.min(n), &[&one], None, "warm-up").await;
            if warm.lost > 0 || warm.failed > 0 {
                rows.push(warm);
            }
        }
        let paced_at = self
            .latency(&one, full.map(|i| rows[i].per_second), rows)
            .await;
        if self.selected("two") {
            let two = start_worker(env, self.args.prefetch).await;
            let label = "full pipeline, fast vendor, 2 workers";
            let mut row = through(env, workload, n, &[&one, &two], None, label).await;
            row.vs_one_worker = full.map(|i| scale::vs_one(&row, &rows[i]));
            rows.push(row);
            two.stop().await;
        }
        one.stop().await;
        paced_at
    }

    /// The paced rows through `one`: at half of `peak` (or `--paced-rate`), the latency with
    /// headroom, and at the light rate, where the cores leave room (at half of peak they stay
    /// nearly as busy as at full load: smaller batches cost more per execution).
    async fn latency(
        &self,
        one: &workers::Worker,
        peak: Option<f64>,
        rows: &mut Vec<Row>,
    ) -> Vec<PacedAt> {
        let (args, mut paced_at) = (self.args, Vec::new());
        if let Some(half_rate) = args
            .paced_rate
            .or(peak.map(|p| p / 2.0))
            .filter(|_| self.selected("paced"))
        {
            paced_at.push(("paced at", half_rate, paced_n(half_rate, 15.0, 500, args.n)));
        }
        if self.selected("light") {
            let light_n = paced_n(args.light_rate, 10.0, 200, args.n);
            paced_at.push(("light load at", args.light_rate, light_n));
        }
        for at in &paced_at {
            rows.push(paced(self.env, self.workload, one, *at).await);
        }
        paced_at
    }

    /// The broker alone again, after the rows measured against it: one run of it can fall in
    /// a slow spell of the machine (the ceiling moved 1.57x between runs in the thirteenth
    /// session, more than any row measured against it). The ratios are to the better of the
    /// two, the broker's best in this run.
    async fn ceilings_again(&self, first: Vec<(Route, &'static str, f64)>, rows: &mut Vec<Row>) {
        for (route, label, first) in first {
            let (n, prefetch) = (self.args.n, self.args.prefetch);
            let again = ceiling::ceiling(self.env, n, prefetch, route, label).await;
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
    }

    /// The slow vendor over HTTP/1.1 (the sandbox's default), then over HTTP/2, as vendors
    /// answer over TLS: cleartext HTTP/2 here (the worker told to speak it), whose server holds
    /// calls past 200 streams per connection waiting.
    async fn slow(&self, rows: &mut Vec<Row>) {
        let args = self.args;
        for (name, protocol, extra) in [
            ("slow", "", &[][..]),
            (
                "slow-h2",
                " over HTTP/2",
                &[("AIC_WORKER_VENDOR_HTTP2_PRIOR_KNOWLEDGE", "true")][..],
            ),
        ] {
            if !self.selected(name) {
                continue;
            }
            self.env
                .sandbox
                .set_latency(Duration::from_millis(args.slow_latency_ms));
            let slow = start_worker_with(self.env, args.slow_in_flight, extra).await;
            // As many as the fast rows (the "the same"): over a fifth of them, the
            // first call's wait and the ramp to 2,000 in flight weighed on exec/s (a pipeline
            // at exactly Little's rate would have read 0.83). At least four windows of calls in
            // flight.
            let slow_n = args.n.max(args.slow_in_flight as usize * 4);
            let label = format!(
                "slow vendor{protocol} ({} ms), 1 worker",
                args.slow_latency_ms
            );
            let mut row = through(self.env, self.workload, slow_n, &[&slow], None, &label).await;
            scale::against_littles_law(
                &mut row,
                usize::from(args.slow_in_flight),
                args.slow_latency_ms,
            );
            slow.stop().await;
            rows.push(row);
        }
    }
}

/// Each full-load pipeline row's rate as a share of the AMQP path alone's, when it ran.
fn path_ratios(rows: &mut [Row]) {
    let Some(path_rate) = rows
        .iter()
        .find(|r| r.scenario == PATH_ROW)
        .map(|r| r.per_second)
    else {
        return;
    };
    for r in rows
        .iter_mut()
        .filter(|r| r.scenario.starts_with("full pipeline"))
    {
        r.path_ratio = Some(r.per_second / path_rate);
    }
}
