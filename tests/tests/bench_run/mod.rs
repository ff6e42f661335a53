//! Runs `aic-bench` for the benchmark's end-to-end tests (`bench.rs`, `bench_workloads.rs`).

use serde_json::Value;
use std::process::Command;

/// Runs `aic-bench` with `args`, its JSON written to `json`; fails the test unless it exits 0.
/// Returns the report and what it printed.
pub fn run(args: &[&str], json: &std::path::Path) -> (Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_aic-bench"))
        .args(args)
        .arg("--json")
        .arg(json)
        .output()
        .expect("aic-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "aic-bench failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_str(&std::fs::read_to_string(json).expect("the JSON is written"))
        .expect("the JSON parses");
    (report, stdout)
}
