//! The control plane's API fuzzed from its own OpenAPI document with schemathesis (from PyPI,
//! pinned and installed by `deploy/local/test.sh`; its settings: `tests/fuzz/schemathesis.toml`):
//! thousands of generated requests to every operation — values of every shape the schema allows
//! and many it does not (NUL characters, huge numbers, odd Unicode, missing and unknown fields),
//! and sequences that create records and then use them — none may get a server error the API
//! does not mean, nor an answer its document does not describe. The seed is fixed, so a run
//! repeats; `AIC_FUZZ_SEED=N` explores another.

use aic_tests::harness::{Options, TestEnv};

#[tokio::test]
async fn no_generated_request_gets_a_server_error_or_an_undocumented_answer() {
    let env = TestEnv::start_with(Options::api_only()).await;
    // Records to reach: the operations on an id find one and get past their 404s.
    env.lead_automation().await;
    let seed = std::env::var("AIC_FUZZ_SEED").unwrap_or_else(|_| "20261206".into());
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/schemathesis.toml");
    let out = tokio::process::Command::new("python3")
        .args(["-m", "schemathesis.cli"])
        .args(["--config-file", config, "--no-color", "run"])
        .arg(format!("{}/openapi.json", env.api))
        .args(["--url", &env.api, "--seed", &seed, "--workers", "1"])
        .arg("--header")
        .arg(format!("Authorization: Bearer {}", env.admin_token))
        .kill_on_drop(true)
        .output()
        .await
        .expect("schemathesis runs (deploy/local/test.sh installs it: pip install schemathesis)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Its report shows each failing request as a curl command: never with the token in it.
    assert!(
        !report.contains(&env.admin_token),
        "the token appeared in the fuzzer's report"
    );
    assert!(out.status.success(), "seed {seed}:\n{report}");
    let generated = report
        .lines()
        .find(|l| {
            l.trim_start().starts_with(|c: char| c.is_ascii_digit()) && l.contains("generated")
        })
        .unwrap_or_default();
    eprintln!("schemathesis, seed {seed}: {}", generated.trim());
    env.stop().await;
}
