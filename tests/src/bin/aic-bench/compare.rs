//! `aic-bench compare OLD.json NEW.json…`: the JSON of earlier runs side by side, each row's
//! figures with the change from the first run to the last, and a warning wherever the runs are
//! not comparable (another machine, other settings, another build of the worker, a disturbed
//! run, uncommitted changes).
//!
//! It reads the reports as loose JSON, not as [`crate::report::Row`]s, so that reports written
//! before a column existed still compare (the missing figure prints as `-`).

use serde_json::Value;
use std::fmt::Write as _;

/// A figure of a row: its label, where it sits in the row, its decimals.
struct Figure {
    label: &'static str,
    pointer: &'static str,
    decimals: usize,
    /// A share of the cores' time, in percent: its change is told in points.
    points: bool,
}

const fn figure(label: &'static str, pointer: &'static str, decimals: usize) -> Figure {
    Figure {
        label,
        pointer,
        decimals,
        points: false,
    }
}

const fn share(label: &'static str, pointer: &'static str) -> Figure {
    Figure {
        label,
        pointer,
        decimals: 0,
        points: true,
    }
}

/// The figures compared, in the order the table prints them.
const FIGURES: &[Figure] = &[
    figure("exec/s", "/per_second", 0),
    figure("ratio", "/ratio", 2),
    figure("of the contract's ceiling", "/routed_ratio", 2),
    figure("of the AMQP path alone", "/path_ratio", 2),
    figure("x one worker", "/vs_one_worker", 2),
    figure("steady exec/s", "/steady_per_second", 0),
    figure("worker cpu µs", "/worker_cpu_us_per_execution", 1),
    figure("machine cpu µs", "/machine_cpu_us_per_execution", 1),
    figure("  RabbitMQ", "/machine_cpu_us_by_process/rabbitmq", 1),
    figure("  PostgreSQL", "/machine_cpu_us_by_process/postgres", 1),
    figure("  worker(s)", "/machine_cpu_us_by_process/workers", 1),
    figure(
        "  client+sandbox",
        "/machine_cpu_us_by_process/bench_client_and_sandbox",
        1,
    ),
    figure(
        "    of which the stand-in",
        "/machine_cpu_us_by_process/vendor_stand_in",
        1,
    ),
    share("busy%", "/machine_busy_pct"),
    share("steal%", "/machine_steal_pct"),
    figure("RSS MiB", "/worker_peak_rss_mib", 1),
    figure("faults/exec", "/worker_page_faults_per_execution", 2),
    figure("p50 ms", "/latency_p50_ms", 1),
    figure("p99 ms", "/latency_p99_ms", 1),
    figure("in worker ms", "/stages/in_worker_ms", 2),
    figure("vendor call ms", "/stages/vendor_call_ms", 2),
    figure("publish ms", "/stages/publish_ms", 2),
    figure("WAL B/exec", "/wal_bytes_per_execution", 0),
    figure("lost", "/lost", 0),
    figure("failed", "/failed", 0),
];

/// A row's steal above this share of the cores' time makes it a disturbed run.
const DISTURBED_STEAL_PCT: f64 = 10.0;

/// The settings that must match for rows to compare.
const SETTINGS: &[&str] = &[
    "n",
    "prefetch",
    "slow_in_flight",
    "slow_latency_ms",
    "reply_to",
    "upsert",
    "vendor",
    "database_sslmode",
];

/// A setting as `report` has it. Reports from before `--reply-to`, `--upsert`, `--vendor` and
/// `--database-sslmode` existed have none of them: their requests named no reply queue, their
/// automation created Salesforce leads, their database connections were plain.
fn setting(report: &Value, key: &str) -> Value {
    match &report["settings"][key] {
        Value::Null if ["reply_to", "upsert"].contains(&key) => Value::Bool(false),
        Value::Null if key == "vendor" => Value::from("salesforce"),
        Value::Null if key == "database_sslmode" => Value::from("disable"),
        v => v.clone(),
    }
}

/// One report: the file it came from, and its JSON.
pub struct Report {
    path: String,
    json: Value,
}

impl Report {
    /// Reads an `aic-bench` report, with an error that names the file and what is wrong.
    pub fn read(path: &str) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{path} is not JSON ({e}): not an aic-bench report"))?;
        let rows = json["rows"].as_array().ok_or_else(|| {
            format!("{path} has no `rows` array: not an aic-bench report (`--json` writes one)")
        })?;
        if let Some(i) = rows.iter().position(|r| r["scenario"].as_str().is_none()) {
            return Err(format!("{path}: rows[{i}] has no `scenario`"));
        }
        Ok(Self {
            path: path.to_string(),
            json,
        })
    }

    fn rows(&self) -> &[Value] {
        self.json["rows"].as_array().map_or(&[], Vec::as_slice)
    }

    /// How the measured worker was compiled (`standard build`, `profile-guided build`), from
    /// what it answered to `--version`. Reports from before `--worker` existed measured the
    /// standard build, the only one there was.
    fn worker_build(&self) -> String {
        let version = self.json["worker"]["version"]
            .as_str()
            .unwrap_or("aic-worker (standard build)");
        version
            .rsplit_once('(')
            .and_then(|(_, build)| build.strip_suffix(')'))
            .unwrap_or(version)
            .to_string()
    }

    fn machine(&self) -> String {
        let m = &self.json["machine"];
        format!(
            "{} ({} cores)",
            m["cpu_model"].as_str().unwrap_or("unknown CPU"),
            m["cores"].as_u64().map_or("?".into(), |c| c.to_string())
        )
    }
}

/// What a row measures, whatever rate or latency its label carries: the paced rows' labels
/// hold the rate of their run, the slow row's the vendor's latency. A label not known here is
/// its own kind, matched only by the same label — so the light-load rows, whose rate is a
/// setting (`--light-rate`), pair up only at the same rate.
pub fn scenario_kind(scenario: &str) -> String {
    let s = scenario.trim();
    KINDS
        .iter()
        .find(|(prefix, _)| s.starts_with(prefix))
        .map_or(s, |(_, kind)| kind)
        .to_string()
}

/// A label's beginning and the kind of row it names; the first that matches counts.
const KINDS: &[(&str, &str)] = &[
    ("ceiling (broker only), again", "ceiling, again"),
    (
        "ceiling, the contract's routing, again",
        "routed ceiling, again",
    ),
    ("ceiling, the contract's routing", "routed ceiling"),
    ("ceiling", "ceiling"),
    ("AMQP path alone, paced", "path, paced"),
    ("AMQP path alone (echo consumer)", "path"),
    ("same, paced", "full, paced"),
    ("full pipeline, fast vendor, 2 workers", "two workers"),
    ("full pipeline", "full"),
    ("slow vendor over HTTP/2", "slow, HTTP/2"),
    ("slow vendor", "slow"),
];

/// The kind of a report's row (its `scenario`, checked when the report was read).
fn row_kind(row: &Value) -> String {
    scenario_kind(row["scenario"].as_str().unwrap_or_default())
}

/// Runs' letters: A for the first file, B for the second… (numbers past Z).
fn letter(i: usize) -> String {
    u8::try_from(i)
        .ok()
        .filter(|i| *i < 26)
        .map_or_else(|| (i + 1).to_string(), |i| char::from(b'A' + i).to_string())
}

/// "A: x, B: y" when the runs' values are not all the same.
fn differing<T: PartialEq + std::fmt::Display>(values: &[T]) -> Option<String> {
    values.iter().any(|v| *v != values[0]).then(|| {
        let list: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{}: {v}", letter(i)))
            .collect();
        list.join(", ")
    })
}

/// Why the runs may not compare, one line each.
pub fn warnings(reports: &[Report]) -> Vec<String> {
    let mut out = Vec::new();
    let machines: Vec<String> = reports.iter().map(Report::machine).collect();
    if let Some(list) = differing(&machines) {
        out.push(format!(
            "the runs are from different machines ({list}): compare rows of one machine only"
        ));
    }
    let builds: Vec<String> = reports.iter().map(Report::worker_build).collect();
    if let Some(list) = differing(&builds) {
        out.push(format!(
            "the runs measured differently compiled workers ({list}): a change between them is the build's too"
        ));
    }
    for key in SETTINGS {
        let values: Vec<Value> = reports.iter().map(|r| setting(&r.json, key)).collect();
        if let Some(list) = differing(&values) {
            out.push(format!("setting `{key}` differs ({list})"));
        }
    }
    for (i, r) in reports.iter().enumerate() {
        run_warnings(&mut out, i, r);
    }
    // Since 01aa858 the ceiling runs twice and the ratios are to the better run; a report from
    // before has one ceiling run, and its ratios are not on the same footing.
    let twice: Vec<bool> = reports
        .iter()
        .map(|r| r.rows().iter().any(|row| row_kind(row) == "ceiling, again"))
        .collect();
    if twice.iter().any(|t| *t) && twice.iter().any(|t| !*t) {
        let once: Vec<String> = (0..reports.len())
            .filter(|i| !twice[*i])
            .map(letter)
            .collect();
        out.push(format!(
            "the ratios of run(s) {} are to a single ceiling run, the others' to the better of two",
            once.join(", ")
        ));
    }
    out
}

/// Why run `i` may not compare with the others: built with uncommitted changes, or rows the
/// hypervisor disturbed.
fn run_warnings(out: &mut Vec<String>, i: usize, r: &Report) {
    if r.json["machine"]["commit"]
        .as_str()
        .is_some_and(|c| c.ends_with("-dirty"))
    {
        out.push(format!(
            "run {} ({}) was built with uncommitted changes",
            letter(i),
            r.path
        ));
    }
    for row in r.rows() {
        if let Some(steal) = row["machine_steal_pct"]
            .as_f64()
            .filter(|s| *s > DISTURBED_STEAL_PCT)
        {
            out.push(format!(
                "run {}: `{}` ran with {steal:.0}% of the cores taken by other guests (a disturbed run)",
                letter(i),
                row["scenario"].as_str().unwrap_or_default().trim()
            ));
        }
    }
}

/// The comparison as text: the runs, the warnings, then one block per scenario.
pub fn render(reports: &[Report]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "aic-bench compare: {} runs", reports.len());
    for (i, r) in reports.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {}  {}: commit {} ({}), {}, started {}",
            letter(i),
            r.path,
            r.json["machine"]["commit"].as_str().unwrap_or("unknown"),
            r.worker_build(),
            r.machine(),
            r.json["started_at"].as_str().unwrap_or("unknown"),
        );
    }
    for w in warnings(reports) {
        let _ = writeln!(out, "warning: {w}");
    }
    for kind in &scenarios(reports) {
        block(&mut out, reports, kind);
    }
    let _ = writeln!(
        out,
        "\nchange: the last run against the first. Throughput moves ~±15% from run to run on one \
         machine and paced latency several-fold (BENCHMARKS.md): alternate the builds and read \
         ranges. WAL B/exec is a count the machine's speed does not move."
    );
    out
}

/// The runs' scenarios in the order they first appear.
fn scenarios(reports: &[Report]) -> Vec<String> {
    let mut kinds: Vec<String> = Vec::new();
    for r in reports {
        for row in r.rows() {
            let kind = row_kind(row);
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    kinds
}

/// One scenario's block: its title and the runs' letters, then a line per figure any run has,
/// with the change from the first run to the last.
fn block(out: &mut String, reports: &[Report], kind: &str) {
    let rows: Vec<Option<&Value>> = reports
        .iter()
        .map(|r| r.rows().iter().find(|row| row_kind(row) == kind))
        .collect();
    let title = rows
        .iter()
        .flatten()
        .last()
        .and_then(|row| row["scenario"].as_str())
        .unwrap_or(kind)
        .trim()
        .to_string();
    let _ = write!(out, "\n{title:<40}");
    for i in 0..reports.len() {
        let _ = write!(out, " {:>10}", letter(i));
    }
    let _ = writeln!(
        out,
        " {:>10}",
        format!("{} vs A", letter(reports.len() - 1))
    );
    for f in FIGURES {
        let values: Vec<Option<f64>> = rows
            .iter()
            .map(|row| {
                row.and_then(|r| r.pointer(f.pointer))
                    .and_then(Value::as_f64)
            })
            .collect();
        if values.iter().all(Option::is_none) {
            continue;
        }
        let _ = write!(out, "  {:<38}", f.label);
        for v in &values {
            let text = v.map_or_else(|| "-".into(), |x| format!("{x:.*}", f.decimals));
            let _ = write!(out, " {text:>10}");
        }
        let (first, last) = (values[0], values[values.len() - 1]);
        let change = if f.points {
            points(first, last)
        } else {
            change(first, last)
        };
        let _ = writeln!(out, " {change:>10}");
    }
}

/// The change from `a` to `b`, in percent.
fn change(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a == b => "=".into(),
        (Some(a), Some(b)) if a != 0.0 => format!("{:+.1}%", (b - a) / a * 100.0),
        _ => "-".into(),
    }
}

/// The change from `a` to `b`, in percentage points.
fn points(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:+.0} pt", b - a),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_are_relative_to_the_first_run() {
        assert_eq!(change(Some(200.0), Some(150.0)), "-25.0%");
        assert_eq!(change(Some(3.0), Some(3.0)), "=");
        assert_eq!(change(Some(0.0), Some(3.0)), "-");
        assert_eq!(change(None, Some(3.0)), "-");
        assert_eq!(points(Some(88.4), Some(91.0)), "+3 pt");
    }

    #[test]
    fn runs_answered_or_automated_differently_do_not_compare() {
        let report = |settings: Value| Report {
            path: "run.json".into(),
            json: json!({"machine": {"cpu": "x"}, "settings": settings, "rows": []}),
        };
        let before_the_options = report(json!({"n": 10}));
        let without =
            report(json!({"n": 10, "reply_to": false, "upsert": false, "vendor": "salesforce"}));
        assert!(warnings(&[before_the_options, without]).is_empty());
        let without = report(json!({"n": 10, "reply_to": false, "upsert": false}));
        let with = report(json!({"n": 10, "reply_to": true, "upsert": true, "vendor": "jira"}));
        assert_eq!(
            warnings(&[without, with]),
            [
                "setting `reply_to` differs (A: false, B: true)",
                "setting `upsert` differs (A: false, B: true)",
                "setting `vendor` differs (A: \"salesforce\", B: \"jira\")"
            ]
        );
    }

    #[test]
    fn runs_of_differently_compiled_workers_do_not_compare() {
        let report = |worker: Value| Report {
            path: "run.json".into(),
            json: json!({"machine": {"cpu": "x"}, "worker": worker, "settings": {}, "rows": []}),
        };
        let before_the_option = report(Value::Null);
        let standard = report(json!({"version": "aic-worker 0.1.0 (standard build)"}));
        assert_eq!(before_the_option.worker_build(), "standard build");
        assert!(warnings(&[before_the_option, standard]).is_empty());
        let standard = report(json!({"version": "aic-worker 0.1.0 (standard build)"}));
        let guided = report(json!({"version": "aic-worker 0.1.0 (profile-guided build)"}));
        assert_eq!(
            warnings(&[standard, guided]),
            [
                "the runs measured differently compiled workers (A: standard build, B: profile-guided build): a change between them is the build's too"
            ]
        );
    }

    #[test]
    fn runs_are_lettered_then_numbered() {
        assert_eq!(letter(0), "A");
        assert_eq!(letter(25), "Z");
        assert_eq!(letter(26), "27");
    }

    #[test]
    fn a_paced_row_matches_whatever_its_rate() {
        assert_eq!(scenario_kind("  same, paced at 1311/s"), "full, paced");
        assert_eq!(scenario_kind("  same, paced at 2624/s"), "full, paced");
        assert_eq!(
            scenario_kind("AMQP path alone, paced at 9/s"),
            "path, paced"
        );
        assert_eq!(scenario_kind("AMQP path alone (echo consumer)"), "path");
        // A light-load row is its own kind: its rate is a setting, not a figure of the run.
        for light in [
            "  same, light load at 100/s",
            "AMQP path alone, light load at 100/s",
        ] {
            assert_eq!(scenario_kind(light), light.trim());
        }
        assert_eq!(scenario_kind("ceiling (broker only)"), "ceiling");
        assert_eq!(
            scenario_kind("ceiling (broker only), again"),
            "ceiling, again"
        );
        // The ceiling through the contract's routing is its own row, not a third plain one.
        assert_eq!(
            scenario_kind("ceiling, the contract's routing"),
            "routed ceiling"
        );
        assert_eq!(
            scenario_kind("ceiling, the contract's routing, again"),
            "routed ceiling, again"
        );
        assert_eq!(scenario_kind("slow vendor (50 ms), 1 worker"), "slow");
        assert_eq!(
            scenario_kind("slow vendor over HTTP/2 (50 ms), 1 worker"),
            "slow, HTTP/2"
        );
        assert_eq!(
            scenario_kind("full pipeline, fast vendor, 2 workers"),
            "two workers"
        );
        assert_eq!(
            scenario_kind("full pipeline, fast vendor, 1 worker"),
            "full"
        );
    }
}
