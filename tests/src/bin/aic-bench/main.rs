//! The benchmark of the whole pipeline, on this machine, against the local RabbitMQ and
//! PostgreSQL and the sandbox in its fast mode. Prints a table, writes it as JSON, and exits
//! non-zero if any execution was lost or failed. See BENCHMARKS.md.

mod ceiling;
mod compare;
mod drain;
mod echo;
mod latency;
mod machine;
mod pipeline;
mod report;
mod scale;
mod stages;
mod workers;
mod workload;

use aic_tests::harness::{Options, TestEnv};
use ceiling::Route;
use clap::{Parser, ValueEnum};
use report::Row;
use serde_json::json;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;
use workers::{start_worker, start_worker_with, through};
use workload::{Vendor, Workload};

/// aic-bench: throughput, CPU and latency of the execution pipeline.
#[derive(Parser, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Executions per scenario.
    #[arg(long, default_value_t = 50_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    n: usize,
    /// Worker prefetch for the fast scenarios.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..))]
    prefetch: u16,
    /// Executions in flight (and prefetch) for the slow-vendor scenario.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u16).range(1..))]
    slow_in_flight: u16,
    /// Vendor latency of the slow scenarios, in milliseconds.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    slow_latency_ms: u64,
    /// Executions in flight (and prefetch) of each worker in the scale-out scenario: few
    /// enough that one worker is bound by them, not by the cores.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(1..))]
    scale_in_flight: u16,
    /// Rate of the paced latency run, per second (default: half of the measured peak).
    #[arg(long, value_parser = rate)]
    paced_rate: Option<f64>,
    /// Rate of the light-load latency run, per second: low enough that the cores are mostly
    /// idle, so that its latency is the pipeline's own, not time spent waiting for a core.
    #[arg(long, default_value_t = 100.0, value_parser = rate)]
    light_rate: f64,
    /// Requests name a reply queue (`reply_to`), as a chat bot waiting for its answer publishes
    /// them, and the rows that time results read them there; a durable quorum queue bound to
    /// the results exchange takes the exchange's copies meanwhile, as a listener there would.
    /// The drained row, which reads no result until the end, does not run.
    #[arg(long)]
    reply_to: bool,
    /// The vendor whose automation the pipeline rows run, against the sandbox's fast mode for
    /// it: Salesforce's Create Lead, ServiceNow's Create Incident, Jira's Create Issue or
    /// Slack's Send Message.
    #[arg(long, value_enum, default_value_t = Vendor::Salesforce)]
    vendor: Vendor,
    /// The lead automation upserts on an external id field keyed by the execution id (the
    /// dedupe Salesforce offers) instead of creating: a delivery finding one unfinished sends it
    /// again, and a call that waited for the connection goes without the ledger's vendor-call
    /// mark. Salesforce only.
    #[arg(long)]
    upsert: bool,
    /// The `aic-worker` binary to measure (default: the one built beside this benchmark), such
    /// as the profile-guided build of `deploy/local/pgo.sh`, `target/pgo/aic-worker`.
    #[arg(long)]
    worker: Option<std::path::PathBuf>,
    /// Where to write the JSON.
    #[arg(long, default_value = "target/bench.json")]
    json: String,
    /// Also write, into this folder (made if missing), a CSV per row of every execution's
    /// publish time and enqueue-to-result latency, to see what makes a row's tail.
    #[arg(long)]
    latencies: Option<std::path::PathBuf>,
    /// Scenarios to run, comma-separated (ceiling, ceiling-routed, path, drain, full, paced,
    /// light, two, slow, slow-h2, scale);
    /// all by default. Ratios to the ceiling need `ceiling` (to the contract's routing,
    /// `ceiling-routed`); `paced` needs `full` unless `--paced-rate` is given; with `path`,
    /// `paced` and `light` also pace the AMQP path alone.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ceiling,ceiling-routed,path,drain,full,paced,light,two,slow,slow-h2,scale",
        value_parser = ["ceiling", "ceiling-routed", "path", "drain", "full", "paced", "light", "two", "slow", "slow-h2", "scale"]
    )]
    only: Vec<String>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Compare the JSON of earlier runs (`--json`): each row's figures side by side, the change
    /// from the first run to the last, and a warning where runs are not comparable.
    Compare {
        /// Two or more reports, the oldest first.
        #[arg(required = true, num_args = 2..)]
        reports: Vec<String>,
    },
}

/// A rate of executions per second, at least one: a publish is due every 1/rate s, and a paced
/// run holds at least a few hundred executions (at 0.01/s the light row would run for 5.5 hours).
fn rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 1.0 => Ok(r),
        Ok(_) => Err("a rate must be a number of executions per second, at least 1".into()),
        Err(e) => Err(e.to_string()),
    }
}

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

/// jemalloc, with the worker's settings (`.cargo/config.toml`): under glibc's malloc this
/// process (client and sandbox) spent ~14% of its CPU in malloc, free and consolidation —
/// CPU taken from the two cores the pipeline it measures runs on.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The scenario of the AMQP path alone (`echo`).
const PATH_ROW: &str = "AMQP path alone (echo consumer)";
const CEILING_ROW: &str = "ceiling (broker only)";
const CEILING_AGAIN_ROW: &str = "ceiling (broker only), again";
const ROUTED_ROW: &str = "ceiling, the contract's routing";
const ROUTED_AGAIN_ROW: &str = "ceiling, the contract's routing, again";
/// The pipeline measured as the ceiling is (`drain`).
const DRAIN_ROW: &str = "queue drained, fast vendor, 1 worker";

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Compare { reports }) = &args.command {
        return match reports
            .iter()
            .map(|p| compare::Report::read(p))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(reports) => {
                print!("{}", compare::render(&reports));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("aic-bench compare: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.upsert && args.vendor != Vendor::Salesforce {
        eprintln!(
            "aic-bench: --upsert upserts Salesforce leads on an external id field; --vendor {} has no such automation here",
            args.vendor
                .to_possible_value()
                .map(|v| v.get_name().to_string())
                .unwrap_or_default()
        );
        return ExitCode::from(2);
    }
    if let Err(e) = report::check_writable(&args.json) {
        eprintln!(
            "aic-bench: cannot write the report to --json {}: {e}",
            args.json
        );
        return ExitCode::from(2);
    }
    let worker = match workers::identify(args.worker.as_deref()) {
        Ok(worker) => worker,
        Err(e) => {
            eprintln!("aic-bench: --worker: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(folder) = &args.latencies
        && let Err(e) = latency::check_folder(folder)
    {
        eprintln!(
            "aic-bench: cannot write latencies into --latencies {}: {e}",
            folder.display()
        );
        return ExitCode::from(2);
    }
    let started_at = chrono::Utc::now().to_rfc3339();
    // Read now, not after the run: the binaries were built from the checkout as it is at the
    // start, and an edit made while the rows run must not mark their figures `-dirty`.
    let machine = machine::describe();
    // The sandbox stands in for the vendor, whose cost is not the pipeline's: it runs on a
    // runtime of its own, not on this process's multi-threaded one beside the client.
    let env = TestEnv::start_with(Options {
        worker: false,
        sandbox_own_thread: true,
        worker_binary: Some(worker.binary.clone()),
        // A worker's warnings (a step retried in place, a delivery left for redelivery) say why
        // a row lost time or saw a result twice.
        worker_warnings: true,
        ..Options::default()
    })
    .await;
    let workload = Workload::set_up(&env, args.vendor, args.upsert).await;
    if args.reply_to {
        pipeline::answer_on_reply_queues(&env).await;
    }
    env.sandbox.state.fast.store(true, Ordering::SeqCst);
    // The bench org's API allowance must outlast the run (a default org allows 100,000 calls a
    // day, and the sandbox answers REQUEST_LIMIT_EXCEEDED past it, as Salesforce does).
    env.sandbox
        .state
        .salesforce
        .daily_limit
        .store(u64::MAX / 2, Ordering::SeqCst);
    // And its connection's fleet-wide cap must allow the slow scenario's calls in flight.
    env.cap_connections(10000).await;
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
            let row = ceiling::ceiling(&env, args.n, args.prefetch, route, label).await;
            first_ceilings.push((route, again, row.per_second));
            rows.push(row);
        }
    }
    if run("path") {
        rows.push(echo::path(&env, &workload, args.n, args.prefetch, None, PATH_ROW).await);
    }
    // The paced rows' kinds, rates and sizes, for the AMQP path alone at the same rates.
    let mut paced_at = Vec::new();

    if ["drain", "full", "paced", "light", "two"]
        .into_iter()
        .any(run)
    {
        // The worker that drained the queue stays on for the rows after it, warmed up.
        let (one, warmed) = if run("drain") {
            let (row, worker) =
                drain::drain(&env, &workload, args.n, args.prefetch, DRAIN_ROW).await;
            rows.push(row);
            (worker, true)
        } else {
            (start_worker(&env, args.prefetch).await, false)
        };
        let mut full = None;
        if run("full") {
            let row = through(
                &env,
                &workload,
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
            let warm = through(
                &env,
                &workload,
                WARM_UP.min(args.n),
                &[&one],
                None,
                "warm-up",
            )
            .await;
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
            rows.push(paced(&env, &workload, &one, at).await);
        }
        // Latency where the cores leave room: at half of peak they stay nearly as busy as at
        // full load (smaller batches cost more per execution).
        if run("light") {
            let light_n = paced_n(args.light_rate, 10.0, 200, args.n);
            let at = ("light load at", args.light_rate, light_n);
            paced_at.push(at);
            rows.push(paced(&env, &workload, &one, at).await);
        }
        if run("two") {
            let two = start_worker(&env, args.prefetch).await;
            let mut row = through(
                &env,
                &workload,
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
        rows.push(echo::path(&env, &workload, n, args.prefetch, Some(rate), &label).await);
    }
    // The broker alone again, after the rows measured against it: one run of it can fall in a
    // slow spell of the machine (the ceiling moved 1.57x between runs in the thirteenth
    // session, more than any row measured against it). The ratios are to the better of the two,
    // the broker's best in this run.
    for (route, label, first) in first_ceilings {
        let again = ceiling::ceiling(&env, args.n, args.prefetch, route, label).await;
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
        let slow = start_worker_with(&env, args.slow_in_flight, extra).await;
        // As many as the fast rows (the "the same"): over a fifth of them, the first
        // call's wait and the ramp to 2,000 in flight weighed on exec/s (a pipeline at exactly
        // Little's rate would have read 0.83). At least four windows of calls in flight.
        let slow_n = args.n.max(args.slow_in_flight as usize * 4);
        let mut row = through(
            &env,
            &workload,
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
                &env,
                &workload,
                scale_n,
                args.scale_in_flight,
                args.slow_latency_ms,
            )
            .await,
        );
    }

    report::print(
        &rows,
        &machine,
        &worker,
        args.vendor.template(),
        args.slow_in_flight,
        args.slow_latency_ms,
    );
    let latencies_written = match &args.latencies {
        Some(folder) => latency::write_all(folder, &mut rows).map_err(|e| {
            eprintln!("could not write the latencies: {e}");
        }),
        None => Ok(()),
    };
    let report = json!({
        "started_at": started_at,
        "machine": machine,
        "worker": {
            "binary": worker.binary,
            "version": worker.version,
        },
        "settings": {
            "n": args.n,
            "prefetch": args.prefetch,
            "slow_in_flight": args.slow_in_flight,
            "slow_latency_ms": args.slow_latency_ms,
            "scale_in_flight": args.scale_in_flight,
            "paced_rate": args.paced_rate,
            "light_rate": args.light_rate,
            "reply_to": args.reply_to,
            "vendor": args.vendor,
            "upsert": args.upsert,
            "only": args.only,
        },
        "rows": rows,
    });
    let written = report::write(&args.json, &report);
    pipeline::close_sink(&env).await;
    env.stop().await;
    if let Err(e) = &written {
        eprintln!("could not write {}: {e}", args.json);
    }
    if written.is_err()
        || latencies_written.is_err()
        || rows.iter().any(|r| r.lost > 0 || r.failed > 0)
    {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
