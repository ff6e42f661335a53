//! Vendor faults meet the retry policy: transient failures retry (honouring Retry-After,
//! measured), permanent ones do not, and a connection broken after the request was sent is an
//! unknown outcome that is never re-sent.

use aic_tests::harness::{Options, TestEnv};
use aic_tests::sandbox::faults::Fault;
use serde_json::json;
use std::time::{Duration, Instant};

async fn slack_env() -> (TestEnv, String) {
    slack_env_with(Options::default()).await
}

async fn slack_env_with(opts: Options) -> (TestEnv, String) {
    let env = TestEnv::start_with(opts).await;
    let send = env.slack_automation("Notify", "xoxb-fault").await;
    (env, send)
}

#[tokio::test]
async fn a_transient_5xx_is_retried_and_counted() {
    let (env, send) = slack_env().await;
    env.sandbox
        .state
        .faults
        .push([Fault::ServerError(503), Fault::ServerError(502)]);
    let done = env
        .run(&send, json!({"channel": "#general", "text": "hi"}))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["attempts"], 3);
    assert_eq!(env.sandbox.state.slack.messages().len(), 1);
    let metrics = env.metrics().await;
    assert!(
        metrics.contains(r#"aic_execution_retries_total{app="slack"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"aic_vendor_requests_total{app="slack",status_class="5xx"} 2"#),
        "{metrics}"
    );
    env.stop().await;
}

#[tokio::test]
async fn retry_after_is_honoured() {
    // A 2 s cap: Retry-After is honoured up to it (a test below shows the 200 ms default cap).
    let (env, send) = slack_env_with(Options {
        retry_cap_ms: 2_000,
        ..Options::default()
    })
    .await;
    env.sandbox
        .state
        .faults
        .push([Fault::RateLimited { retry_after: 1 }]);
    let started = Instant::now();
    let done = env
        .run(&send, json!({"channel": "#general", "text": "hi"}))
        .await;
    let elapsed = started.elapsed();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["attempts"], 2);
    // The worker's own first backoff is 10-20 ms: only Retry-After explains a full second.
    assert!(
        elapsed >= Duration::from_millis(950),
        "waited only {elapsed:?}"
    );
    println!("retry-after 1 s honoured: execution took {elapsed:?}");
    env.stop().await;
}

#[tokio::test]
async fn a_reset_after_the_request_is_an_unknown_outcome_and_is_not_re_sent() {
    let (env, send) = slack_env().await;
    env.sandbox.state.faults.push([Fault::ResetAfterRequest]);
    let done = env
        .run(&send, json!({"channel": "#general", "text": "maybe"}))
        .await;
    assert_eq!(done["status"], "unknown_outcome", "{done}");
    assert_eq!(done["result"]["error"]["code"], "unknown_outcome");
    assert_eq!(
        env.sandbox.requests_to("/api/chat.postMessage").len(),
        1,
        "never re-sent"
    );
    env.stop().await;
}

#[tokio::test]
async fn a_vendor_that_keeps_failing_exhausts_the_attempts_then_fails() {
    let (env, send) = slack_env().await;
    env.sandbox.state.faults.set_error_rate(1.0);
    let done = env
        .run(&send, json!({"channel": "#general", "text": "hi"}))
        .await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["result"]["error"]["code"], "vendor_unavailable");
    assert_eq!(
        done["result"]["attempts"], 3,
        "the test policy allows three calls"
    );
    env.stop().await;
}

/// An automation's own retry policy wins over the worker's, is copied into the published
/// version, and out-of-range values are refused naming the field.
#[tokio::test]
async fn an_automation_can_set_its_own_retry_policy() {
    let (env, default_policy) = slack_env().await;
    let conn = env
        .call(reqwest::Method::GET, "/v1/connections", None)
        .await
        .1[0]["id"]
        .as_str()
        .expect("connection id")
        .to_string();
    let create = |name: &str, retry| json!({"template": "slack.send_message", "connection_id": conn, "name": name, "retry": retry});
    let (status, body) = env
        .call(
            reqwest::Method::POST,
            "/v1/automations",
            Some(create("Bad", json!({"max_attempts": 0}))),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "retry.max_attempts", "{body}");
    let (status, body) = env
        .call(
            reqwest::Method::POST,
            "/v1/automations",
            Some(create("Bad cap", json!({"base_ms": 500, "cap_ms": 100}))),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "retry.cap_ms", "{body}");

    let (status, created) = env
        .call(
            reqwest::Method::POST,
            "/v1/automations",
            Some(create(
                "Patient",
                json!({"max_attempts": 5, "base_ms": 10, "cap_ms": 20}),
            )),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["retry"]["max_attempts"], 5);
    let patient = created["id"].as_str().expect("id").to_string();
    let (status, _) = env
        .call(
            reqwest::Method::POST,
            &format!("/v1/automations/{patient}/publish"),
            None,
        )
        .await;
    assert_eq!(status, 201);

    env.sandbox.state.faults.set_error_rate(1.0);
    let text = json!({"channel": "#general", "text": "hi"});
    let patient_run = env.run(&patient, text.clone()).await;
    let default_run = env.run(&default_policy, text).await;
    println!(
        "always-503 vendor: automation policy {} calls, worker default {} calls",
        patient_run["result"]["attempts"], default_run["result"]["attempts"]
    );
    assert_eq!(patient_run["status"], "failed");
    assert_eq!(patient_run["result"]["attempts"], 5, "{patient_run}");
    assert_eq!(default_run["result"]["attempts"], 3, "{default_run}");
    env.stop().await;
}

#[tokio::test]
async fn a_salesforce_503_is_retried_but_a_validation_error_is_not() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    env.sandbox.state.faults.push([Fault::ServerError(503)]);
    let done = env
        .run(&automation, json!({"LastName": "A", "Company": "B"}))
        .await;
    assert_eq!(
        (done["status"].as_str(), done["result"]["attempts"].as_u64()),
        (Some("succeeded"), Some(2))
    );
    let done = env
        .run(&automation, json!({"LastName": "A", "Company": ""}))
        .await;
    assert_eq!(done["result"]["attempts"], 1);
    env.stop().await;
}

#[tokio::test]
async fn a_vendor_that_hangs_past_the_timeout_is_an_unknown_outcome_not_a_retry() {
    let (env, send) = slack_env_with(Options {
        vendor_timeout_secs: 1,
        ..Options::default()
    })
    .await;
    env.sandbox
        .state
        .faults
        .push([Fault::Hang(Duration::from_secs(3))]);
    let started = Instant::now();
    let done = env
        .run(&send, json!({"channel": "#general", "text": "slow"}))
        .await;
    assert_eq!(done["status"], "unknown_outcome", "{done}");
    assert!(
        done["result"]["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("did not answer in time"),
        "{done}"
    );
    assert_eq!(
        env.sandbox.requests_to("/api/chat.postMessage").len(),
        1,
        "a post that may have landed is not re-sent"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the worker gave up at its timeout"
    );
    env.stop().await;
}

#[tokio::test]
async fn jira_and_servicenow_rate_limits_are_retried() {
    let env = TestEnv::start_with(Options {
        retry_cap_ms: 2_000,
        ..Options::default()
    })
    .await;
    let jira = env.jira_connection("t").await;
    let issue = env
        .published_automation("jira.create_issue", &jira, "Issue", None)
        .await;
    let incident = env.incident_automation().await;
    env.sandbox
        .state
        .faults
        .push([Fault::RateLimited { retry_after: 1 }]);
    let done = env
        .run(
            &issue,
            json!({"project": "ENG", "issue_type": "Task", "summary": "x"}),
        )
        .await;
    assert_eq!(
        (done["status"].as_str(), done["result"]["attempts"].as_u64()),
        (Some("succeeded"), Some(2)),
        "{done}"
    );
    env.sandbox.state.faults.push([
        Fault::RateLimited { retry_after: 1 },
        Fault::ServerError(502),
    ]);
    let done = env.run(&incident, json!({"short_description": "x"})).await;
    assert_eq!(
        (done["status"].as_str(), done["result"]["attempts"].as_u64()),
        (Some("succeeded"), Some(3)),
        "{done}"
    );
    env.stop().await;
}

#[tokio::test]
async fn under_mixed_vendor_faults_every_execution_ends_in_the_right_state() {
    let env = TestEnv::start_with(Options {
        retry_cap_ms: 2_000,
        vendor_timeout_secs: 1,
        prefetch: 16,
        ..Options::default()
    })
    .await;
    let jira = env.jira_connection("t").await;
    let issue = env
        .published_automation("jira.create_issue", &jira, "Issue", None)
        .await;
    let faults = &env.sandbox.state.faults;
    faults.push([
        Fault::RateLimited { retry_after: 1 },
        Fault::RateLimited { retry_after: 1 },
        Fault::RateLimited { retry_after: 1 },
        Fault::ResetAfterRequest,
        Fault::ResetAfterRequest,
        Fault::Hang(Duration::from_secs(3)),
        Fault::Hang(Duration::from_secs(3)),
    ]);
    faults.set_error_rate(0.3);
    const N: usize = 200;
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(
            env.enqueue(
                &issue,
                json!({"project": "ENG", "issue_type": "Task", "summary": format!("fault {i}")}),
            )
            .await,
        );
    }
    let (mut succeeded, mut unavailable, mut unknown, mut calls) = (0, 0, 0, 0u64);
    for id in &ids {
        let done = env.wait_final(id).await;
        let r = &done["result"];
        calls += r["attempts"].as_u64().unwrap_or(0);
        match (done["status"].as_str(), r["error"]["code"].as_str()) {
            (Some("succeeded"), _) => succeeded += 1,
            (Some("failed"), Some("vendor_unavailable")) => {
                assert_eq!(
                    r["attempts"], 3,
                    "failed only after the whole budget: {done}"
                );
                unavailable += 1;
            }
            (Some("unknown_outcome"), _) => unknown += 1,
            _ => panic!("unexpected final state: {done}"),
        }
    }
    let received = env.sandbox.requests_to("/rest/api/3/issue").len() as u64;
    let created = env.sandbox.state.jira.issues().len();
    let injected = faults.injected.load(std::sync::atomic::Ordering::SeqCst);
    let metrics = env.metrics().await;
    let retries: u64 = metrics
        .lines()
        .find(|l| l.starts_with("aic_execution_retries_total{app=\"jira\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    println!(
        "{N} executions under faults: succeeded {succeeded}, failed after retries {unavailable}, unknown_outcome {unknown}; vendor calls {calls} (sandbox received {received}), faults injected {injected}, retries {retries}, issues created {created}"
    );
    assert_eq!(
        succeeded + unavailable + unknown,
        N,
        "every execution is final"
    );
    assert_eq!(
        unknown, 4,
        "exactly the two resets and two hangs are in doubt"
    );
    assert_eq!(
        calls, received,
        "every attempt counted is an attempt the vendor saw"
    );
    assert_eq!(
        created, succeeded,
        "one issue per success, none for failures or doubts"
    );
    assert_eq!(
        retries,
        calls - N as u64,
        "every call beyond the first of each execution is a counted retry"
    );
    env.stop().await;
}
