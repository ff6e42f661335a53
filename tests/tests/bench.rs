//! `aic-bench`, the benchmark the README and BENCHMARKS.md name, run end to end on a few
//! hundred executions: every scenario runs, nothing is lost or fails, and the JSON it writes
//! for comparing runs holds every row with the figures the table prints. Its figures are not
//! checked here — tests run in parallel on the same cores — only that it still measures them.

use serde_json::Value;
use std::process::Command;

#[test]
fn the_benchmark_runs_every_scenario_and_writes_its_table_as_json() {
    let dir = std::env::temp_dir().join(format!("aic-bench-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let json = dir.join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_aic-bench"))
        .args([
            "--n",
            "300",
            "--slow-in-flight",
            "100",
            "--slow-latency-ms",
            "50",
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("aic-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "aic-bench failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON is written"))
            .expect("the JSON parses");
    let _ = std::fs::remove_dir_all(&dir);

    let rows = report["rows"].as_array().expect("rows");
    let scenarios: Vec<&str> = rows.iter().filter_map(|r| r["scenario"].as_str()).collect();
    for expected in [
        "ceiling (broker only)",
        "AMQP path alone (echo consumer)",
        "full pipeline, fast vendor, 1 worker",
        "  same, paced at",
        "full pipeline, fast vendor, 2 workers",
        "AMQP path alone, paced at",
        "slow vendor (50 ms), 1 worker",
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
            assert_eq!(statements, ["begin", "mark", "finish"], "{name}");
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
    assert!(report["machine"]["cores"].as_u64().is_some_and(|c| c > 0));
    assert_eq!(report["settings"]["n"], 300);
}
