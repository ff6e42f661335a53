//! Synchronous callers (`wait_ms`): what they hold while they wait, and a retried call's wait.

use aic_tests::harness::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// More callers wait for their results than the control plane has pooled database connections
/// (8 in tests), on a vendor that takes 4 s: every other call is still answered at once.
#[tokio::test]
async fn callers_waiting_for_results_leave_the_database_to_other_calls() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    env.sandbox.set_latency(Duration::from_millis(4000));
    let path = format!("/v1/automations/{lead}/executions");
    let waiting = futures_util::future::join_all((0..12).map(|i| {
        let body = json!({"parameters": {"LastName": format!("Wait {i}"), "Company": "Pool"}, "wait_ms": 20000});
        env.call(Method::POST, &path, Some(body))
    }));
    let meanwhile = async {
        // The waiting calls are published and waiting by now; their vendor calls are not back.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let started = Instant::now();
        let automation = env
            .call(Method::GET, &format!("/v1/automations/{lead}"), None)
            .await;
        let ready = reqwest::get(format!("{}/readyz", env.api))
            .await
            .expect("readyz")
            .status();
        (automation, ready, started.elapsed())
    };
    let (answers, ((status, automation), ready, took)) = tokio::join!(waiting, meanwhile);
    assert_eq!(status, 200, "{automation}");
    assert_eq!(ready, 200, "/readyz while callers wait");
    // Behaviour, not speed: queued behind the waiting callers' connections, these would have
    // waited for the vendor's 4 s (or the pool's 5 s timeout).
    assert!(
        took < Duration::from_millis(2000),
        "other calls waited {took:?} behind the waiting callers"
    );
    for (status, done) in answers {
        assert_eq!(
            (status.as_u16(), done["status"].as_str()),
            (200, Some("succeeded")),
            "{done}"
        );
    }
    env.stop().await;
}

/// A call retried with the same execution id or idempotency key, while the execution it
/// started still runs, waits out its own `wait_ms` for the result as the first call would have.
#[tokio::test]
async fn a_retried_call_waits_for_its_running_execution() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    env.sandbox.set_latency(Duration::from_millis(1500));
    let path = format!("/v1/automations/{lead}/executions");
    let id = uuid::Uuid::new_v4().to_string();
    let call = |wait_ms: u64| {
        let body = json!({"parameters": {"LastName": "Retried", "Company": "Again"}, "execution_id": id, "wait_ms": wait_ms});
        env.call(Method::POST, &path, Some(body))
    };
    // The first call gives up early, as a bot's HTTP client with a short timeout would.
    let (status, first) = call(100).await;
    assert_eq!(
        (status.as_u16(), first["status"].as_str()),
        (202, Some("queued")),
        "{first}"
    );
    // Retried without a wait: the execution as it stands, at once.
    let (status, again) = call(0).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["execution_id"], id.as_str());
    assert!(again.get("result").is_none(), "{again}");

    // Retried with a wait: the result once it finished, the one the ledger keeps.
    let started = Instant::now();
    let (status, done) = call(10_000).await;
    assert_eq!(
        (status.as_u16(), done["status"].as_str()),
        (200, Some("succeeded")),
        "{done}"
    );
    assert_eq!(done["result"]["execution_id"], id.as_str(), "{done}");
    let recorded = env.wait_final(&id).await;
    assert_eq!(done["result"], recorded["result"]);
    assert!(
        started.elapsed() < Duration::from_millis(5000),
        "{:?}",
        started.elapsed()
    );
    let (_, history) = env
        .call(
            Method::GET,
            &format!("/v1/automations/{lead}/executions"),
            None,
        )
        .await;
    assert_eq!(executions(&history), 1, "run once: {history}");

    // By idempotency key, and a wait that runs out: 202 with the status it has then.
    env.sandbox.set_latency(Duration::from_millis(3000));
    let keyed = |wait_ms: u64| {
        let body = json!({"parameters": {"LastName": "Keyed", "Company": "Again"}, "idempotency_key": "bot-turn-7", "wait_ms": wait_ms});
        env.call(Method::POST, &path, Some(body))
    };
    let (status, first) = keyed(0).await;
    assert_eq!(status, 202, "{first}");
    let started = Instant::now();
    let (status, again) = keyed(400).await;
    let waited = started.elapsed();
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["execution_id"], first["execution_id"]);
    assert!(
        matches!(again["status"].as_str(), Some("queued" | "running")),
        "{again}"
    );
    assert!(again.get("result").is_none(), "{again}");
    assert!(
        waited >= Duration::from_millis(400),
        "the wait was kept: {waited:?}"
    );
    let (status, done) = keyed(10_000).await;
    assert_eq!(
        (status.as_u16(), done["status"].as_str()),
        (200, Some("succeeded")),
        "{done}"
    );
    assert_eq!(done["execution_id"], first["execution_id"]);
    env.stop().await;
}

/// How many executions a page of the run history holds.
fn executions(history: &Value) -> usize {
    history["executions"].as_array().map_or(0, Vec::len)
}
