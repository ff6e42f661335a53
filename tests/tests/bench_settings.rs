//! `aic-bench` refuses bad settings before anything runs (exit 2, the flag named): a run of
//! minutes must not start only to fail, or be lost, at its end.

use std::process::Command;

#[test]
fn bad_settings_are_refused_before_anything_runs() {
    for (args, expected) in [
        (
            &["--only", "full,scael"][..],
            "invalid value 'scael' for '--only",
        ),
        (
            &["--slow-latency-ms", "0"][..],
            "invalid value '0' for '--slow-latency-ms",
        ),
        (
            &["--scale-in-flight", "0"][..],
            "invalid value '0' for '--scale-in-flight",
        ),
        (&["--n", "0"][..], "invalid value '0' for '--n"),
        (
            &["--vendor", "hubspot"][..],
            "invalid value 'hubspot' for '--vendor",
        ),
        // Upserts on an external id field are Salesforce's Create Lead's.
        (
            &["--vendor", "jira", "--upsert"][..],
            "--upsert upserts Salesforce leads on an external id field; --vendor jira has no such automation here",
        ),
        // A rate of 0, below 0 or not a number once panicked working out when to publish; one
        // below 1/s would run for hours.
        (
            &["--light-rate", "0"][..],
            "invalid value '0' for '--light-rate",
        ),
        (
            &["--light-rate", "0.01"][..],
            "invalid value '0.01' for '--light-rate",
        ),
        (
            &["--paced-rate=-5"][..],
            "invalid value '-5' for '--paced-rate",
        ),
        (
            &["--paced-rate", "NaN"][..],
            "invalid value 'NaN' for '--paced-rate",
        ),
        // Found only when the run of minutes was over, and the run was lost.
        (
            &["--json", "/nonexistent-aic-bench/run.json"][..],
            "cannot write the report to --json /nonexistent-aic-bench/run.json",
        ),
        (&["--json", "/tmp"][..], "--json /tmp: it is a folder"),
        (
            &[
                "--json",
                "/tmp/aic-bench-worker-check.json",
                "--worker",
                "/nonexistent-aic-bench/aic-worker",
            ][..],
            "--worker: cannot run /nonexistent-aic-bench/aic-worker",
        ),
        // A binary that runs but is not a worker: its figures would be another program's.
        (
            &[
                "--json",
                "/tmp/aic-bench-worker-check.json",
                "--worker",
                "/bin/true",
            ][..],
            "--worker: /bin/true is not an aic-worker binary",
        ),
        (
            &[
                "--json",
                "/tmp/aic-bench-latencies-check.json",
                "--latencies",
                "/proc/aic-bench",
            ][..],
            "cannot write latencies into --latencies /proc/aic-bench",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_aic-bench"))
            .args(args)
            .output()
            .expect("aic-bench runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
