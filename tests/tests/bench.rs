//! `aic-bench`, the benchmark the README and BENCHMARKS.md name, run end to end on a few
//! hundred executions: every scenario runs, nothing is lost or fails, and the JSON it writes
//! for comparing runs holds every row with the figures the table prints. Its figures are not
//! checked here — tests run in parallel on the same cores — only that it still measures them.

mod bench_run;

use bench_run::run;
use serde_json::Value;
use std::process::Command;

#[test]
fn the_benchmark_runs_every_scenario_and_writes_its_table_as_json() {
    let dir = std::env::temp_dir().join(format!("aic-bench-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let json = dir.join("bench.json");
    let latencies = dir.join("latencies");
    let (report, stdout) = run(
        &[
            "--n",
            "300",
            "--slow-in-flight",
            "100",
            "--slow-latency-ms",
            "50",
            "--scale-in-flight",
            "50",
            "--latencies",
            latencies.to_str().expect("a UTF-8 path"),
        ],
        &json,
    );
    compares_with_a_later_run(&dir, &report);
    every_execution_of_a_row_is_in_its_latencies_file(&report);
    let _ = std::fs::remove_dir_all(&dir);

    // The report names the worker build it measured, as the binary itself does.
    let worker = report["worker"]["binary"]
        .as_str()
        .expect("the worker's path");
    let version = Command::new(worker)
        .arg("--version")
        .output()
        .expect("the worker answers --version");
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    assert!(version.ends_with(" build)"), "{version}");
    assert_eq!(report["worker"]["version"], version.as_str());
    assert!(stdout.contains(&format!("{version}, {worker}")), "{stdout}");

    let rows = report["rows"].as_array().expect("rows");
    let scenarios: Vec<&str> = rows.iter().filter_map(|r| r["scenario"].as_str()).collect();
    for expected in [
        "ceiling (broker only)",
        "AMQP path alone (echo consumer)",
        "queue drained, fast vendor, 1 worker",
        "full pipeline, fast vendor, 1 worker",
        "  same, paced at",
        "  same, light load at 100/s",
        "full pipeline, fast vendor, 2 workers",
        "AMQP path alone, paced at",
        "AMQP path alone, light load at 100/s",
        "ceiling (broker only), again",
        "ceiling, the contract's routing",
        "ceiling, the contract's routing, again",
        "slow vendor (50 ms), 1 worker",
        "slow vendor over HTTP/2 (50 ms), 1 worker",
        "scale-out: 50 ms, 50 each, 1 worker",
        "scale-out: 50 ms, 50 each, 2 workers",
    ] {
        assert!(
            scenarios.iter().any(|s| s.starts_with(expected)),
            "no row {expected:?} in {scenarios:?}"
        );
        assert!(stdout.contains(expected), "the table lacks {expected:?}");
    }
    for row in rows {
        let name = row["scenario"].as_str().unwrap_or_default();
        assert_eq!(row["lost"], 0, "{name}");
        assert_eq!(row["failed"], 0, "{name}");
        assert!(
            row["per_second"].as_f64().is_some_and(|r| r > 0.0),
            "{name}"
        );
        assert!(row["machine_busy_pct"].is_number(), "{name}");
        assert!(row["machine_steal_pct"].is_number(), "{name}");
        let through_workers = !name.starts_with("ceiling") && !name.starts_with("AMQP path");
        assert_eq!(
            row["worker_cpu_us_per_execution"].is_number(),
            through_workers,
            "{name}"
        );
        // Rows through worker processes say where the time went inside them.
        let stages = &row["stages"];
        if through_workers {
            assert!(
                stages["in_worker_ms"].as_f64().is_some_and(|ms| ms > 0.0),
                "{name}: {stages}"
            );
            assert!(stages["vendor_call_ms"].is_number(), "{name}: {stages}");
            assert!(
                stages["publish_ms"].as_f64().is_some_and(|ms| ms > 0.0),
                "{name}: {stages}"
            );
            let statements: Vec<&str> = stages["ledger"]
                .as_array()
                .map(|l| l.iter().filter_map(|b| b["statement"].as_str()).collect())
                .unwrap_or_default();
            // Begin (which marks a first delivery) and finish; the mark on its own only for
            // calls that waited (a worker's first, while it asks the fleet for its share).
            assert!(
                statements.first() == Some(&"begin")
                    && statements.last() == Some(&"finish")
                    && statements
                        .iter()
                        .all(|s| ["begin", "mark", "finish"].contains(s)),
                "{name}: {statements:?}"
            );
            // Every execution writes its ledger row: the server's WAL grew by some per execution.
            assert!(
                row["wal_bytes_per_execution"]
                    .as_f64()
                    .is_some_and(|b| b > 0.0),
                "{name}: {row}"
            );
        } else {
            assert!(stages.is_null(), "{name}: {stages}");
            assert!(row["wal_bytes_per_execution"].is_null(), "{name}");
        }
    }
    // The broker alone ran before and after the rows measured against it, both ways of routing
    // the results; each ratio is to the better of its ceiling's two runs.
    for (ceiling, field) in [
        ("ceiling (broker only)", "ratio"),
        ("ceiling, the contract's routing", "routed_ratio"),
    ] {
        let runs: Vec<f64> = rows
            .iter()
            .filter(|r| {
                r["scenario"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(ceiling))
            })
            .filter_map(|r| r["per_second"].as_f64())
            .collect();
        assert_eq!(runs.len(), 2, "{ceiling}: {runs:?}");
        let best = runs[0].max(runs[1]);
        for row in rows {
            let name = row["scenario"].as_str().unwrap_or_default();
            if name.starts_with("ceiling") {
                assert!(row[field].is_null(), "{name}: {field}");
            } else if !name.starts_with("slow") && !name.starts_with("scale-out") {
                let expected = row["per_second"].as_f64().unwrap_or_default() / best;
                let ratio = row[field].as_f64().unwrap_or(f64::NAN);
                assert!(
                    (ratio - expected).abs() < 1e-9,
                    "{name}: {field} {ratio} against {expected}"
                );
            }
        }
    }
    scale_out_is_told_against_one_worker(rows, &stdout);
    the_vendor_stand_in_is_told_apart(rows, &stdout);
    assert!(report["machine"]["cores"].as_u64().is_some_and(|c| c > 0));
    assert_eq!(report["settings"]["n"], 300);
    assert_eq!(report["settings"]["light_rate"], 100.0);
}

/// The machine's split by whom gives the sandbox's thread (the vendor's stand-in) apart from
/// the benchmark's client: part of its process's time, spent only where a worker called it.
fn the_vendor_stand_in_is_told_apart(rows: &[Value], stdout: &str) {
    let (mut called, mut idle) = (0.0, 0.0);
    for row in rows {
        let name = row["scenario"].as_str().unwrap_or_default();
        let by = &row["machine_cpu_us_by_process"];
        let stand_in = by["vendor_stand_in"].as_f64().expect("the stand-in's µs");
        let process = by["bench_client_and_sandbox"]
            .as_f64()
            .expect("the process's µs");
        assert!(
            (0.0..=process + 1e-9).contains(&stand_in),
            "{name}: {stand_in} of {process}"
        );
        let total = stand_in * row["executions"].as_f64().unwrap_or_default();
        if row["worker_cpu_us_per_execution"].is_number() {
            called += total;
        } else if name.starts_with("ceiling") {
            idle += total;
        }
    }
    assert!(called > 0.0, "the stand-in answered every row's calls");
    assert!(
        idle < called,
        "{idle} µs in the ceilings, {called} in the pipeline"
    );
    assert!(stdout.contains("stand-in"), "{stdout}");
}

/// `--latencies`: every row through the pipeline names its CSV, which holds a line per
/// execution, in publish order, each with its latency and outcome.
fn every_execution_of_a_row_is_in_its_latencies_file(report: &Value) {
    let rows = report["rows"].as_array().expect("rows");
    let mut files = 0;
    for row in rows {
        let name = row["scenario"].as_str().unwrap_or_default();
        let Some(file) = row["latencies_csv"].as_str() else {
            // The broker alone runs without the pipeline's publisher and reader, and the
            // drained queue was filled before its worker started: no latency to tell.
            assert!(
                name.starts_with("ceiling") || name.starts_with("queue drained"),
                "{name} names no latencies file"
            );
            assert!(row["latency_p50_ms"].is_null(), "{name}");
            continue;
        };
        files += 1;
        let text = std::fs::read_to_string(file).expect("the latencies file is written");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("sent_ms,latency_ms,outcome"), "{file}");
        let mut sent = Vec::new();
        for line in lines {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 3, "{file}: {line}");
            sent.push(fields[0].parse::<f64>().expect("sent_ms"));
            assert!(
                fields[1].parse::<f64>().is_ok_and(|ms| ms > 0.0),
                "{file}: {line}"
            );
            assert_eq!(fields[2], "succeeded", "{file}: {line}");
        }
        assert_eq!(
            Some(sent.len() as u64),
            row["executions"].as_u64(),
            "{file}"
        );
        assert!(
            sent.windows(2).all(|w| w[0] <= w[1]),
            "{file}: not in publish order"
        );
    }
    assert_eq!(
        files,
        rows.len() - 5,
        "every row but the four ceiling runs and the drained queue has its file"
    );
}

/// Each two-worker row says how many times its one-worker row's steady rate it reached, and
/// the scale-out rows' ratios are to Little's law for all their workers' calls in flight.
fn scale_out_is_told_against_one_worker(rows: &[Value], stdout: &str) {
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["scenario"] == name)
            .unwrap_or_else(|| panic!("no row {name:?}"))
    };
    let rate = |r: &Value| r["steady_per_second"].as_f64().expect("a steady rate");
    for (two, one) in [
        (
            "full pipeline, fast vendor, 2 workers",
            "full pipeline, fast vendor, 1 worker",
        ),
        (
            "scale-out: 50 ms, 50 each, 2 workers",
            "scale-out: 50 ms, 50 each, 1 worker",
        ),
    ] {
        let expected = rate(row(two)) / rate(row(one));
        let told = row(two)["vs_one_worker"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (told - expected).abs() < 1e-9,
            "{two}: {told} against {expected}"
        );
        assert!(
            stdout.contains(&format!("{two}: {told:.2}x one worker")),
            "{stdout}"
        );
        assert!(row(one)["vs_one_worker"].is_null(), "{one}");
    }
    for (name, workers) in [
        ("scale-out: 50 ms, 50 each, 1 worker", 1.0),
        ("scale-out: 50 ms, 50 each, 2 workers", 2.0),
    ] {
        // 50 calls in flight per worker, answered after 50 ms: 1,000/s per worker.
        let expected = row(name)["per_second"].as_f64().unwrap_or_default() / (workers * 1000.0);
        let ratio = row(name)["ratio"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (ratio - expected).abs() < 1e-9,
            "{name}: {ratio} against {expected}"
        );
    }
}

/// `aic-bench compare` on the report just written and a later run made from it (another
/// machine, twice the full row's rate, a disturbed row): every scenario of the real report is
/// matched across the two, whatever rate its label carries, with the change and the warnings.
fn compares_with_a_later_run(dir: &std::path::Path, report: &Value) {
    let mut later = report.clone();
    // The earlier report as one written before the ceiling ran twice.
    let mut report = report.clone();
    report["rows"]
        .as_array_mut()
        .expect("rows")
        .retain(|r| r["scenario"] != "ceiling (broker only), again");
    later["machine"]["cpu_model"] = "Another CPU".into();
    later["machine"]["commit"] = "0123456789ab-dirty".into();
    for row in later["rows"].as_array_mut().expect("rows") {
        let name = row["scenario"].as_str().unwrap_or_default().to_string();
        if name == "full pipeline, fast vendor, 1 worker" {
            let rate = row["per_second"].as_f64().expect("rate");
            row["per_second"] = (rate * 2.0).into();
            row["machine_steal_pct"] = 25.0.into();
        }
        // The paced rows' labels carry their rate, which differs from run to run.
        if name.contains("paced at") {
            row["scenario"] = name.replace("paced at", "paced at 1").into();
        }
    }
    let (a, b) = (dir.join("a.json"), dir.join("b.json"));
    std::fs::write(&a, report.to_string()).expect("write a");
    std::fs::write(&b, later.to_string()).expect("write b");
    let out = compare(&[&a, &b]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One block per scenario, each with a figure in both columns.
    let blocks: Vec<&str> = text.split("\n\n").skip(1).collect();
    let rows = later["rows"].as_array().expect("rows");
    assert_eq!(blocks.len(), rows.len() + 1, "{text}"); // and the closing note
    for block in &blocks[..rows.len()] {
        let exec = block
            .lines()
            .find(|l| l.trim_start().starts_with("exec/s"))
            .unwrap_or_else(|| panic!("no exec/s in {block}"));
        let columns: Vec<&str> = exec.split_whitespace().collect();
        assert_eq!(columns.len(), 4, "{exec}");
        // The earlier report has no second ceiling run: that row's figure is in B only.
        let earlier = if block.starts_with("ceiling (broker only), again") {
            columns[1] == "-"
        } else {
            columns[1].parse::<f64>().is_ok()
        };
        assert!(earlier && columns[2].parse::<f64>().is_ok(), "{exec}");
    }
    let full = blocks
        .iter()
        .find(|b| b.starts_with("full pipeline, fast vendor, 1 worker"))
        .expect("the full row");
    assert!(
        full.lines()
            .any(|l| l.contains("exec/s") && l.ends_with("+100.0%")),
        "{full}"
    );
    for warning in [
        "warning: the runs are from different machines",
        "Another CPU",
        "warning: run B (",
        "uncommitted changes",
        "the ratios of run(s) A are to a single ceiling run",
        "`full pipeline, fast vendor, 1 worker` ran with 25% of the cores taken by other guests",
    ] {
        assert!(text.contains(warning), "no {warning:?} in:\n{text}");
    }
}

#[test]
fn compare_names_the_file_it_cannot_use() {
    let dir = std::env::temp_dir().join(format!("aic-bench-compare-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let (text, rowless) = (dir.join("notes.txt"), dir.join("other.json"));
    std::fs::write(&text, "not json").expect("write");
    std::fs::write(&rowless, r#"{"machine": {}}"#).expect("write");
    let missing = dir.join("missing.json");
    for (file, expected) in [
        (&text, "is not JSON"),
        (&rowless, "has no `rows` array"),
        (&missing, "cannot read"),
    ] {
        let out = compare(&[file, file]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}", file.display());
        assert!(
            stderr.contains(&file.display().to_string()) && stderr.contains(expected),
            "{stderr}"
        );
    }
    // One report alone is a usage error, not an empty comparison.
    let out = compare(&[std::path::Path::new("only.json")]);
    assert!(!out.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `aic-bench compare` on these reports.
fn compare(reports: &[&std::path::Path]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_aic-bench"))
        .arg("compare")
        .args(reports)
        .output()
        .expect("aic-bench compare runs")
}
