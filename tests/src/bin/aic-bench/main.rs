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
mod rows;
mod scale;
mod stages;
mod workers;
mod workload;

use aic_tests::harness::{Options, TestEnv};
use clap::{Parser, ValueEnum};
use serde_json::json;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
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
    /// TLS between the pipeline and PostgreSQL, as libpq's `sslmode` (a `sslmode` in
    /// `AIC_TEST_DATABASE_URL` wins). Off by default, as every run before the services spoke
    /// TLS to PostgreSQL: on loopback it costs the worker and PostgreSQL each about 5-10%
    /// more CPU per execution at full load (BENCHMARKS.md, forty-fifth session).
    #[arg(long, default_value = "disable", value_parser = ["disable", "prefer", "require"])]
    database_sslmode: String,
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

/// jemalloc, with the worker's settings (`.cargo/config.toml`): under glibc's malloc this
/// process (client and sandbox) spent ~14% of its CPU in malloc, free and consolidation —
/// CPU taken from the two cores the pipeline it measures runs on.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Compare { reports }) = &args.command {
        return compare(reports);
    }
    let worker = match checked(&args) {
        Ok(worker) => worker,
        Err(e) => {
            eprintln!("aic-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let started_at = chrono::Utc::now().to_rfc3339();
    // Read now, not after the run: the binaries were built from the checkout as it is at the
    // start, and an edit made while the rows run must not mark their figures `-dirty`.
    let machine = machine::describe();
    let (env, workload) = set_up(&args, &worker).await;
    let mut rows = match measured(&args, &env, &workload).await {
        Ok(rows) => rows,
        Err(why) => {
            let (said, code) = match &why {
                None => ("interrupted".to_string(), ExitCode::from(130)),
                Some(why) => (
                    format!("RabbitMQ closed the benchmark's own connection{why}; run it again"),
                    ExitCode::FAILURE,
                ),
            };
            eprintln!(
                "aic-bench: {said}: no report written; its workers were stopped, and its database and queues are removed"
            );
            env.stop().await;
            return code;
        }
    };
    let written = write_reports(&args, &mut rows, &machine, &worker, started_at);
    env.stop().await;
    if !written || rows.iter().any(|r| r.lost > 0 || r.failed > 0) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The rows, measured; or why not: stopped by a signal (`Err(None)`: SIGTERM, Ctrl-C), or
/// RabbitMQ closed the benchmark's own connection (a broker fault), which the rows cannot go on
/// without (`Err(Some(why))`). Either way the rows are dropped — their workers are killed with
/// them — for the caller to remove what the run set up, which a process killed by the signal
/// itself would leave.
async fn measured(
    args: &Args,
    env: &TestEnv,
    workload: &Workload,
) -> Result<Vec<report::Row>, Option<String>> {
    // A row meeting the closed connection first fails (a panic of its own task): said only
    // while the connection is open, a defect's then, not the broker's.
    let client = env.amqp.status().clone();
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |panic| {
        if client.connected() {
            report(panic)
        }
    }));
    let rows = std::panic::AssertUnwindSafe(rows::measure(args, env, workload));
    tokio::select! {
        biased;
        () = aic_core::shutdown::signal() => {
            quiet();
            Err(None)
        }
        why = client_lost(&env.amqp) => {
            quiet();
            Err(Some(why))
        }
        rows = futures_util::FutureExt::catch_unwind(rows) => match rows {
            Ok(rows) => Ok(rows),
            Err(_) if !env.amqp.status().connected() => {
                quiet();
                Err(Some(String::new()))
            }
            Err(panic) => std::panic::resume_unwind(panic),
        },
    }
}

/// Before a run's rows are dropped midway: their tasks, left to end with the process, may fail
/// loudly as their queues go. This teardown is deliberate, and says so once.
fn quiet() {
    std::panic::set_hook(Box::new(|_| {}));
}

/// Resolves when the benchmark client's connection fails, with why (` (…)`).
async fn client_lost(conn: &lapin::Connection) -> String {
    use futures_util::StreamExt;
    let mut events = std::pin::pin!(conn.events_listener());
    while let Some(event) = events.next().await {
        if let lapin::Event::Error(e) = event {
            return format!(" ({e})");
        }
    }
    std::future::pending().await
}

/// Prints the table and writes it as JSON (and the latencies, if asked); says whether every
/// file was written.
fn write_reports(
    args: &Args,
    rows: &mut [report::Row],
    machine: &serde_json::Value,
    worker: &workers::Build,
    started_at: String,
) -> bool {
    report::print(
        rows,
        machine,
        worker,
        args.vendor.template(),
        args.slow_in_flight,
        args.slow_latency_ms,
    );
    let latencies_written = match &args.latencies {
        Some(folder) => latency::write_all(folder, rows).map_err(|e| {
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
        "settings": settings(args),
        "rows": rows,
    });
    let written = report::write(&args.json, &report);
    if let Err(e) = &written {
        eprintln!("could not write {}: {e}", args.json);
    }
    written.is_ok() && latencies_written.is_ok()
}

/// `aic-bench compare`: the saved reports side by side.
fn compare(reports: &[String]) -> ExitCode {
    match reports
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
    }
}

/// Refuses settings that cannot run, before anything runs; the worker build to measure.
fn checked(args: &Args) -> Result<workers::Build, String> {
    if args.upsert && args.vendor != Vendor::Salesforce {
        return Err(format!(
            "--upsert upserts Salesforce leads on an external id field; --vendor {} has no such automation here",
            args.vendor
                .to_possible_value()
                .map(|v| v.get_name().to_string())
                .unwrap_or_default()
        ));
    }
    report::check_writable(&args.json)
        .map_err(|e| format!("cannot write the report to --json {}: {e}", args.json))?;
    let worker = workers::identify(args.worker.as_deref()).map_err(|e| format!("--worker: {e}"))?;
    if let Some(folder) = &args.latencies {
        latency::check_folder(folder).map_err(|e| {
            format!(
                "cannot write latencies into --latencies {}: {e}",
                folder.display()
            )
        })?;
    }
    Ok(worker)
}

/// The run's environment (no worker of its own: the rows start theirs) and the workload it
/// runs, with the vendor's stand-in in its fast mode and allowances that outlast the run.
async fn set_up(args: &Args, worker: &workers::Build) -> (TestEnv, Workload) {
    // The sandbox stands in for the vendor, whose cost is not the pipeline's: it runs on a
    // runtime of its own, not on this process's multi-threaded one beside the client.
    let env = TestEnv::start_with(Options {
        worker: false,
        sandbox_own_thread: true,
        pg_admin_url: Some(database_url(args)),
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
    // Where the run keeps its state, should a run killed outright leave any of it behind.
    eprintln!(
        "aic-bench: running in database {} and on queues {}.*",
        env.database(),
        env.names.executions_queue.trim_end_matches(".executions")
    );
    (env, workload)
}

/// The database server's URL (`AIC_TEST_DATABASE_URL` or the local one), with
/// `--database-sslmode` unless the URL says its own.
fn database_url(args: &Args) -> String {
    let url = aic_tests::harness::pg_admin_url();
    match database_sslmode(&url) {
        Some(_) => url,
        None if url.contains('?') => format!("{url}&sslmode={}", args.database_sslmode),
        None => format!("{url}?sslmode={}", args.database_sslmode),
    }
}

/// The `sslmode` a database URL names.
fn database_sslmode(url: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "sslmode")
        .map(|(_, v)| v.into_owned())
}

/// The settings the report names, so that runs compare only with runs alike.
fn settings(args: &Args) -> serde_json::Value {
    json!({
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
        "database_sslmode": database_sslmode(&database_url(args)),
        "only": args.only,
    })
}
