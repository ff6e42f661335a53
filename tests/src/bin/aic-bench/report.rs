//! The table `aic-bench` prints, and the row it writes as JSON.

use crate::machine::ByProcess;
use serde::Serialize;
use serde_json::Value;

/// One scenario's figures.
#[derive(Serialize, Debug, Default)]
pub struct Row {
    pub scenario: String,
    pub executions: usize,
    pub per_second: f64,
    /// Results per second between the first result and the last: the rate once the pipeline is
    /// full. `per_second` runs from the first publish, so it also carries the first execution's
    /// own latency — 0.2 s of a slow-vendor run that lasts 1.2 s even at Little's law.
    pub steady_per_second: Option<f64>,
    pub ratio: Option<f64>,
    /// `per_second` against the ceiling through the contract's routing (`ceiling-routed`, the
    /// better of its two runs): results through a topic exchange, which costs the broker more
    /// per message than the default exchange the plain ceiling publishes to. For the drained
    /// row, the broker's work per execution is then that ceiling's.
    pub routed_ratio: Option<f64>,
    /// `steady_per_second` against Little's law, for the slow row.
    pub steady_ratio: Option<f64>,
    /// `per_second` against the AMQP path alone (an echo consumer instead of a worker), for the
    /// full pipeline at full load: the share of the broker-bound rate the worker's own work
    /// (ledger, credentials, vendor call, a second process) leaves.
    pub path_ratio: Option<f64>,
    /// For a row through two workers: how many times the same scenario's one-worker rate it
    /// reached (their steady rates).
    pub vs_one_worker: Option<f64>,
    pub worker_cpu_us_per_execution: Option<f64>,
    pub worker_peak_rss_mib: Option<f64>,
    /// The workers' minor page faults per execution (memory the allocator handed back to the
    /// kernel and touched again).
    pub worker_page_faults_per_execution: Option<f64>,
    /// Busy CPU of the whole machine per execution (all processes).
    pub machine_cpu_us_per_execution: Option<f64>,
    /// How busy the machine's cores were while the scenario ran, %.
    pub machine_busy_pct: Option<f64>,
    /// How much of the cores' time the hypervisor took for other guests (part of
    /// `machine_busy_pct`), %.
    pub machine_steal_pct: Option<f64>,
    /// The machine's busy CPU per execution by whom: RabbitMQ, PostgreSQL, the workers, this
    /// benchmark's client and sandbox, the rest (the kernel's threads), µs.
    pub machine_cpu_us_by_process: Option<ByProcess>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    pub lost: usize,
    pub failed: usize,
    /// Where the time went inside the workers (their own metrics), for rows through workers.
    pub stages: Option<crate::stages::Stages>,
    /// PostgreSQL's write-ahead log written per execution (the whole server's), for rows
    /// through workers.
    pub wal_bytes_per_execution: Option<f64>,
    /// Where `--latencies` wrote this row's executions, one per line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latencies_csv: Option<String>,
    /// Each execution's publish time and latency (`--latencies` writes them; not in the JSON).
    #[serde(skip)]
    pub samples: Vec<crate::latency::Sample>,
}

/// Refuses a `--json` path the report could not be written to — a folder, a missing folder, a
/// file that cannot be opened for writing — before a run of minutes rather than after it. An
/// existing file is left as it is; a probe file is removed again.
pub fn check_writable(path: impl AsRef<std::path::Path>) -> Result<(), String> {
    let path = path.as_ref();
    if path.is_dir() {
        return Err("it is a folder".into());
    }
    if path.exists() {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|e| e.to_string());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    std::fs::remove_file(path).map_err(|e| e.to_string())
}

/// Writes the report as pretty JSON.
pub fn write(path: &str, report: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| e.to_string())
}

/// Prints the machine, the worker measured, the table, and where the machine's CPU went.
pub fn print(
    rows: &[Row],
    machine: &Value,
    worker: &crate::workers::Build,
    template: &str,
    slow_in_flight: u16,
    slow_latency_ms: u64,
) {
    println!(
        "{} ({} cores, {} MiB), commit {}",
        machine["cpu_model"].as_str().unwrap_or("unknown CPU"),
        machine["cores"],
        machine["memory_mib"],
        machine["commit"].as_str().unwrap_or("unknown")
    );
    println!(
        "{}, {}; pipeline rows run {template}",
        worker.version,
        worker.binary.display()
    );
    print_table(rows);
    print_legend(slow_in_flight, slow_latency_ms);
    print_ratios(rows);
    print_breakdown(rows);
    print_stages(rows);
}

/// The table: one line per row.
fn print_table(rows: &[Row]) {
    println!(
        "{:<42} {:>8} {:>10} {:>8} {:>9} {:>9} {:>6} {:>6} {:>8} {:>7} {:>8} {:>8} {:>8} {:>5} {:>6}",
        "scenario",
        "n",
        "exec/s",
        "ratio",
        "cpu µs",
        "mach µs",
        "busy%",
        "steal%",
        "RSS MiB",
        "flt/ex",
        "p50 ms",
        "p99 ms",
        "max ms",
        "lost",
        "failed"
    );
    let f = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into());
    for r in rows {
        println!(
            "{:<42} {:>8} {:>10.0} {:>8} {:>9} {:>9} {:>6} {:>6} {:>8} {:>7} {:>8} {:>8} {:>8} {:>5} {:>6}",
            r.scenario,
            r.executions,
            r.per_second,
            r.ratio
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "-".into()),
            f(r.worker_cpu_us_per_execution),
            f(r.machine_cpu_us_per_execution),
            r.machine_busy_pct
                .map(|x| format!("{x:.0}"))
                .unwrap_or_else(|| "-".into()),
            r.machine_steal_pct
                .map(|x| format!("{x:.0}"))
                .unwrap_or_else(|| "-".into()),
            f(r.worker_peak_rss_mib),
            r.worker_page_faults_per_execution
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "-".into()),
            f(r.latency_p50_ms),
            f(r.latency_p99_ms),
            f(r.latency_max_ms),
            r.lost,
            r.failed
        );
    }
}

/// What the table's columns and rows mean.
fn print_legend(slow_in_flight: u16, slow_latency_ms: u64) {
    println!(
        "ratio: to the ceiling for the fast rows (the better of its two runs, before and after them); \
         to Little's law for the slow rows (calls in flight / the vendor's latency: {} / {} ms for the slow \
         vendor; for scale-out, the window each worker holds, in its label, times its workers)\n\
         cpu µs: the worker's own CPU per execution; mach µs: the whole machine's busy CPU per execution; \
         busy%: how busy the machine's cores were; \
         steal%: the share of busy% the hypervisor gave to other guests (a disturbed run); \
         flt/ex: the worker's minor page faults per execution\n\
         queue drained: the requests queued before the worker starts, its results left in a quorum queue \
         until it is done — the broker's operations per execution as in the ceiling; its results go through \
         the contract's topic exchange, which costs the broker more per message than the ceiling's default \
         exchange: the ceiling through the contract's routing, when run, does the row's broker work alone; \
         in the full rows the client also publishes the requests and reads the results while the worker runs",
        slow_in_flight, slow_latency_ms
    );
}

/// Each row's ratios beyond the table's: its steady rate, its share of the routed ceiling and
/// of the AMQP path alone, and two workers against one.
fn print_ratios(rows: &[Row]) {
    for r in rows.iter().filter(|r| r.steady_ratio.is_some()) {
        println!(
            "{}: {:.0}/s between its first and last result, {:.2} of Little's law",
            r.scenario.trim(),
            r.steady_per_second.unwrap_or_default(),
            r.steady_ratio.unwrap_or_default()
        );
    }
    // At full load only: a paced row's share of a ceiling says nothing (the JSON has it).
    let at_full_load =
        |r: &&Row| !r.scenario.contains("paced at") && !r.scenario.contains("light load at");
    for r in rows
        .iter()
        .filter(|r| r.routed_ratio.is_some())
        .filter(at_full_load)
    {
        println!(
            "{}: {:.2} of the ceiling through the contract's routing",
            r.scenario.trim(),
            r.routed_ratio.unwrap_or_default()
        );
    }
    for r in rows.iter().filter(|r| r.path_ratio.is_some()) {
        println!(
            "{}: {:.2} of the AMQP path alone",
            r.scenario.trim(),
            r.path_ratio.unwrap_or_default()
        );
    }
    for r in rows.iter().filter(|r| r.vs_one_worker.is_some()) {
        println!(
            "{}: {:.2}x one worker",
            r.scenario.trim(),
            r.vs_one_worker.unwrap_or_default()
        );
    }
}

/// Where an execution's time went inside the workers, one line per scenario through workers.
fn print_stages(rows: &[Row]) {
    println!(
        "\n{:<42} {:>10} {:>10} {:>22} {:>22} {:>22} {:>8} {:>9} {:>8}",
        "inside the worker(s), means, ms",
        "in worker",
        "vendor",
        "begin: wait, batch (n)",
        "mark: wait, batch (n)",
        "finish: wait, batch (n)",
        "publish",
        "WAL B/ex",
        "conn/ex"
    );
    let f = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into());
    for r in rows {
        let Some(s) = &r.stages else { continue };
        let batch = |name: &str| {
            s.ledger
                .iter()
                .find(|b| b.statement == name)
                .map(|b| {
                    format!(
                        "{}, {:.2} ({:.1})",
                        f(b.wait_ms),
                        b.mean_ms,
                        b.mean_executions
                    )
                })
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "{:<42} {:>10} {:>10} {:>22} {:>22} {:>22} {:>8} {:>9} {:>8}",
            r.scenario,
            f(s.in_worker_ms),
            f(s.vendor_call_ms),
            batch("begin"),
            batch("mark"),
            batch("finish"),
            f(s.publish_ms),
            r.wal_bytes_per_execution
                .map(|x| format!("{x:.0}"))
                .unwrap_or_else(|| "-".into()),
            s.vendor_connections_opened
                .map(|n| format!("{:.3}", n / r.executions.max(1) as f64))
                .unwrap_or_else(|| "-".into())
        );
    }
    println!(
        "in worker: delivery to result confirmed; a ledger column: an execution's wait for the \
         statement (behind the batch in flight, then in its own, or several when a burst came at \
         once), then one group commit, and in brackets the executions that shared it; publish: a result's publish until the broker confirmed it; WAL B/ex: PostgreSQL's write-ahead log per execution, the whole \
         server's (a count, unmoved by the machine's speed); conn/ex: connections the worker(s) \
         opened to the vendor per execution (over HTTP/1.1 one per call beyond the idle ones kept)"
    );
    for r in rows {
        if let Some(line) = r.stages.as_ref().and_then(|s| s.redone()) {
            println!("{}: {line}", r.scenario.trim());
        }
    }
}

/// The machine's CPU per execution by whom, one line per scenario.
fn print_breakdown(rows: &[Row]) {
    println!(
        "\n{:<42} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11}",
        "machine CPU µs per execution, by whom",
        "RabbitMQ",
        "PostgreSQL",
        "worker(s)",
        "client",
        "stand-in",
        "other"
    );
    for r in rows {
        if let Some(by) = &r.machine_cpu_us_by_process {
            println!(
                "{:<42} {:>11.1} {:>11.1} {:>11.1} {:>11.1} {:>11.1} {:>11.1}",
                r.scenario,
                by.rabbitmq,
                by.postgres,
                by.workers,
                by.bench_client_and_sandbox - by.vendor_stand_in,
                by.vendor_stand_in,
                by.other
            );
        }
    }
    println!(
        "client: the benchmark publishing requests and reading results (and the ceilings' and the \
         AMQP path's consumers); stand-in: the sandbox answering as the vendor, on its own thread \
         of the benchmark's process — a real vendor's cost, on its own machines"
    );
}
