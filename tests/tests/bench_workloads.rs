//! `aic-bench`'s workloads beyond the default run, end to end on a few hundred executions:
//! answers on reply queues with upserts, and each vendor's automation. As in `bench.rs`, only
//! that they run and lose or fail nothing, not their figures.

mod bench_run;

use bench_run::run;

/// `--reply-to --upsert`, the settings the default run leaves off: every request names a reply
/// queue and the rows time its result there — had the worker not answered on it, every
/// execution would count as lost —, and the lead automation upserts on the execution id. The
/// drained row, which reads no result until the end, is left out even when asked for.
#[test]
fn the_benchmark_answers_on_reply_queues_and_upserts() {
    let dir = std::env::temp_dir().join(format!("aic-bench-reply-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let json = dir.join("bench.json");
    let (report, stdout) = run(
        &[
            "--n",
            "200",
            "--reply-to",
            "--upsert",
            "--only",
            "drain,full,light",
        ],
        &json,
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(report["settings"]["reply_to"], true);
    assert_eq!(report["settings"]["upsert"], true);
    let rows = report["rows"].as_array().expect("rows");
    let scenarios: Vec<&str> = rows.iter().filter_map(|r| r["scenario"].as_str()).collect();
    assert_eq!(
        scenarios,
        [
            "full pipeline, fast vendor, 1 worker",
            "  same, light load at 100/s"
        ],
        "{stdout}"
    );
    for row in rows {
        let name = row["scenario"].as_str().unwrap_or_default();
        assert_eq!(row["executions"], 200, "{name}");
        assert_eq!(row["lost"], 0, "{name}");
        assert_eq!(row["failed"], 0, "{name}");
        assert!(
            row["latency_p50_ms"].as_f64().is_some_and(|ms| ms > 0.0),
            "{name}: {row}"
        );
        let statements: Vec<&str> = row["stages"]["ledger"]
            .as_array()
            .map(|l| l.iter().filter_map(|b| b["statement"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            statements.first() == Some(&"begin") && statements.last() == Some(&"finish"),
            "{name}: {statements:?}"
        );
    }
}

/// `--vendor`: the pipeline rows run another vendor's automation against the sandbox's fast
/// mode for it, and a result counts as succeeded only with the output that automation maps
/// (a Salesforce lead's result would not carry a Jira issue's key).
#[test]
fn the_benchmark_runs_each_vendors_automation() {
    let dir = std::env::temp_dir().join(format!("aic-bench-vendor-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    for (vendor, template) in [
        ("servicenow", "servicenow.create_incident"),
        ("jira", "jira.create_issue"),
        ("slack", "slack.send_message"),
    ] {
        let json = dir.join(format!("{vendor}.json"));
        let (report, stdout) = run(
            &["--vendor", vendor, "--n", "150", "--only", "drain,full"],
            &json,
        );
        assert_eq!(report["settings"]["vendor"], vendor);
        assert!(
            stdout.contains(&format!("pipeline rows run {template}")),
            "{stdout}"
        );
        let rows = report["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 2, "{stdout}");
        for row in rows {
            let name = row["scenario"].as_str().unwrap_or_default();
            assert_eq!(row["executions"], 150, "{vendor}: {name}");
            assert_eq!(row["lost"], 0, "{vendor}: {name}");
            assert_eq!(row["failed"], 0, "{vendor}: {name}");
            // The worker's own metrics timed its calls to the vendor.
            assert!(
                row["stages"]["vendor_call_ms"]
                    .as_f64()
                    .is_some_and(|ms| ms > 0.0),
                "{vendor}: {row}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
