//! A lock held elsewhere on the database — a migration, a maintenance command, a session left
//! idle in its transaction — must not hold the API's calls, and their pooled connections, for
//! as long as it is held.

use aic_tests::harness::{Options, TestEnv};
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_call_waiting_for_a_lock_held_elsewhere_is_answered_and_others_go_on() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let lead = env.lead_automation().await;
    let path = format!("/v1/automations/{lead}/executions");
    let body = json!({"parameters": {"LastName": "Locked", "Company": "Out"}});
    // An operator's session holding the ledger, and left open.
    let mut operator = env.pool.get().await.expect("db");
    let held = operator.transaction().await.expect("transaction");
    held.batch_execute("LOCK TABLE executions IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("locked");

    let started = Instant::now();
    let blocked = env.call_retry_after(Method::POST, &path, Some(body.clone()));
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let other = Instant::now();
        let (status, listed) = env.call(Method::GET, "/v1/connections", None).await;
        (status, listed, other.elapsed())
    };
    let (answer, (status, listed, other)) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(30), blocked),
        meanwhile
    );
    assert_eq!(status, 200, "{listed}");
    assert!(
        other < Duration::from_secs(2),
        "a call not touching the ledger waited {other:?}"
    );
    // Behaviour, not speed: without a bound the call waits for as long as the lock is held.
    let (status, retry_after, refused) = answer.expect("answered while the lock is held");
    let took = started.elapsed();
    assert_eq!(
        (status.as_u16(), refused["error"]["code"].as_str()),
        (503, Some("database_busy")),
        "{refused}"
    );
    assert!(retry_after.is_some(), "Retry-After");
    assert!(
        took >= Duration::from_secs(9),
        "answered after {took:?}, before its lock wait"
    );

    held.rollback().await.expect("released");
    let (status, queued) = env.call(Method::POST, &path, Some(body)).await;
    assert_eq!(status, 202, "{queued}");
    let (_, history) = env.call(Method::GET, &path, None).await;
    let runs = history["executions"].as_array().map_or(0, Vec::len);
    assert_eq!(runs, 1, "the refused call recorded nothing: {history}");
    env.stop().await;
}
