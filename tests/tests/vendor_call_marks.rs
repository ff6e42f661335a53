//! The vendor-call mark of the execution ledger (`vendor_call_started_at`), which tells a later
//! delivery that a create may have reached the vendor: set by the statement that begins a first
//! delivery, taken back while the delivery waits for a slot of its connection, set again
//! before the call leaves.

use aic_tests::harness::TestEnv;
use serde_json::{Value, json};
use std::time::Duration;

/// Whether the ledger's row of `execution` holds the vendor-call mark.
async fn marked(env: &TestEnv, execution: &str) -> bool {
    let id: uuid::Uuid = execution.parse().expect("execution id");
    env.pool
        .get()
        .await
        .expect("db")
        .query_one(
            "SELECT vendor_call_started_at IS NOT NULL FROM executions WHERE id = $1",
            &[&id],
        )
        .await
        .expect("the execution's row")
        .get(0)
}

/// Ledger statements of `kind` the worker has run (its `/metrics`).
async fn statements(env: &TestEnv, kind: &str) -> u64 {
    let metrics = env.metrics().await;
    let prefix = format!("aic_ledger_batch_executions_sum{{statement=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// A request's first delivery is marked by the statement that begins it, and goes to the vendor
/// with no statement of its own for the mark when the connection has a slot free at once. The
/// first call on a connection asks the fleet for its share first: it waits with the mark taken
/// back, and a create is marked again before it leaves (an upsert is not: any delivery finding
/// it unfinished sends it again, mark or no mark).
#[tokio::test]
async fn a_first_delivery_is_marked_by_begin_and_needs_no_mark_statement_when_a_slot_is_free() {
    let env = TestEnv::start().await;
    let upsert = env.upserting_lead_automation().await;
    let plain = env.lead_automation().await;
    let succeeded = |done: &Value| {
        assert_eq!(done["status"], "succeeded", "{done}");
        done["id"].as_str().expect("id").to_string()
    };
    // The first call on each connection (each automation has its own).
    let first = succeeded(
        &env.run(&plain, json!({"LastName": "First", "Company": "Acme"}))
            .await,
    );
    assert_eq!(statements(&env, "mark").await, 2, "taken back, then set");
    assert!(marked(&env, &first).await);
    let first_upsert = succeeded(
        &env.run(&upsert, json!({"LastName": "First up", "Company": "Acme"}))
            .await,
    );
    assert_eq!(statements(&env, "mark").await, 3, "taken back only");
    assert!(!marked(&env, &first_upsert).await);
    // Slots free at once: begin's mark stands, and no mark statement runs.
    let created = succeeded(
        &env.run(&plain, json!({"LastName": "Created", "Company": "Acme"}))
            .await,
    );
    let upserted = succeeded(
        &env.run(&upsert, json!({"LastName": "Upserted", "Company": "Acme"}))
            .await,
    );
    assert_eq!(statements(&env, "mark").await, 3, "no mark statement");
    assert_eq!(statements(&env, "begin").await, 4);
    for id in [&created, &upserted] {
        assert!(marked(&env, id).await, "{id}");
    }
    assert_eq!(env.sandbox.lead_upserts(&upserted), 1);
    env.stop().await;
}

/// A first delivery that has to wait for a slot of the connection (its cap of one is taken by
/// a slow call) waits with the mark taken back: a crash then leaves it to be sent, not reported
/// in doubt. It is marked again before its own call.
#[tokio::test]
async fn a_first_delivery_waiting_for_a_slot_waits_unmarked() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    env.cap_connections(1).await;
    env.sandbox.set_latency(Duration::from_millis(1500));
    let holder = env
        .enqueue(&lead, json!({"LastName": "Holder", "Company": "Acme"}))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while env.sandbox.requests_to("/sobjects/Lead/").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first call did not start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let waiter = env
        .enqueue(&lead, json!({"LastName": "Waiter", "Company": "Acme"}))
        .await;
    let id: uuid::Uuid = waiter.parse().expect("id");
    let client = env.pool.get().await.expect("db");
    let mut waited_unmarked = false;
    while env.sandbox.requests_to("/sobjects/Lead/").len() == 1 {
        let row = client
            .query_opt(
                "SELECT status, vendor_call_started_at IS NOT NULL FROM executions WHERE id = $1",
                &[&id],
            )
            .await
            .expect("the waiter's row");
        if let Some(row) = row
            && row.get::<_, String>(0) == "running"
            && !row.get::<_, bool>(1)
        {
            waited_unmarked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        waited_unmarked,
        "the waiter was marked while the other call held the slot"
    );
    for id in [&holder, &waiter] {
        let done = env.wait_final(id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert!(marked(&env, id).await, "marked before its call: {done}");
    }
    assert_eq!(env.sandbox.requests_to("/sobjects/Lead/").len(), 2);
    env.stop().await;
}
