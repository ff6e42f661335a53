//! The execution ledger against a real PostgreSQL: what a row holds after begin, what a second
//! delivery finishing the same execution is answered with, and a result PostgreSQL could not
//! store as it came.

use aic_proto::{ExecutionRequestV1, ExecutionResultV1, ExecutionStatus};
use aic_tests::harness::TestEnv;
use aic_worker::ledger::{Begin, Ledger, Mark};
use serde_json::{Value, json};

/// A ledger on the environment's database, and a request with these parameters (JSON text)
/// begun in it.
async fn begun(env: &TestEnv, parameters: &str) -> (Ledger, ExecutionRequestV1) {
    let automation = env.lead_automation().await;
    let ledger = Ledger::new(
        env.pool.clone(),
        env.ledger_pool(),
        &aic_worker::metrics::Metrics::new(),
    );
    let req: ExecutionRequestV1 = serde_json::from_str(&format!(
        r#"{{"version": 1, "execution_id": "{}", "tenant_id": "{}", "automation_id": "{automation}", "parameters": {parameters}}}"#,
        uuid::Uuid::now_v7(),
        env.tenant,
    ))
    .expect("request");
    let begin = ledger.begin(&req, 0, false).await.expect("begin");
    // The request's first delivery: begin set the vendor-call mark.
    assert!(
        matches!(begin, Begin::Run(Ok(_), Mark::SetByBegin)),
        "{begin:?}"
    );
    (ledger, req)
}

/// A result of `req` whose vendor output is `{"id": id}`.
fn result(req: &ExecutionRequestV1, status: ExecutionStatus, id: &str) -> ExecutionResultV1 {
    let mut output = serde_json::Map::new();
    output.insert("id".into(), json!(id));
    ExecutionResultV1 {
        version: 1,
        execution_id: Some(req.execution_id),
        tenant_id: Some(req.tenant_id),
        automation_id: Some(req.automation_id),
        automation_version_id: None,
        status,
        output: Some(output),
        error: None,
        attempts: 1,
        deduplicated: false,
        finished_at: chrono::Utc::now(),
    }
}

/// Finishes `result` and parses the JSON that would be published.
async fn finish(ledger: &Ledger, result: &ExecutionResultV1) -> Value {
    let published = ledger.finish(result).await.expect("finish answers");
    serde_json::from_str(&published).expect("JSON")
}

/// The ledger row of `req`, with `columns`.
async fn row(env: &TestEnv, req: &ExecutionRequestV1, columns: &str) -> tokio_postgres::Row {
    env.pool
        .get()
        .await
        .expect("postgres")
        .query_one(
            &format!("SELECT {columns} FROM executions WHERE id = $1"),
            &[&req.execution_id.0],
        )
        .await
        .expect("row")
}

#[tokio::test]
async fn the_row_keeps_the_parameters_as_sent_and_a_second_finish_gets_the_first_result() {
    let env = TestEnv::start().await;
    let (ledger, req) = begun(
        &env,
        r#"{"LastName": "Ada \"A\" Byron", "Company": "B", "Score": 0.9999999999999999, "Tags": ["x", 10587.436593658975]}"#,
    )
    .await;
    // PostgreSQL's jsonb keeps numbers as decimals: its text shows the digits it was given.
    let stored: String = row(&env, &req, "parameters::text").await.get(0);
    assert_eq!(
        stored,
        r#"{"Tags": ["x", 10587.436593658975], "Score": 0.9999999999999999, "Company": "B", "LastName": "Ada \"A\" Byron"}"#
    );

    let first = finish(&ledger, &result(&req, ExecutionStatus::Succeeded, "00Q1")).await;
    assert_eq!(first["status"], "succeeded");
    assert_eq!(first["output"]["id"], "00Q1");
    // A second delivery of the same execution finishing later, differently: it publishes the
    // outcome already recorded, not its own.
    let second = finish(&ledger, &result(&req, ExecutionStatus::Failed, "00Q2")).await;
    assert_eq!(second["status"], "succeeded");
    assert_eq!(second["output"]["id"], "00Q1");
    let stored = row(&env, &req, "status, result").await;
    assert_eq!(stored.get::<_, String>(0), "succeeded");
    assert_eq!(stored.get::<_, Value>(1)["output"]["id"], "00Q1");
    env.stop().await;
}

#[tokio::test]
async fn a_vendor_answer_with_a_nul_character_is_stored_and_published_with_it_replaced() {
    let env = TestEnv::start().await;
    let (ledger, req) = begun(&env, r#"{"LastName": "A", "Company": "B"}"#).await;
    let published = finish(
        &ledger,
        &result(&req, ExecutionStatus::Succeeded, "00Q\u{0}X"),
    )
    .await;
    assert_eq!(published["output"]["id"], "00Q\u{FFFD}X");
    let stored = row(&env, &req, "status, result").await;
    assert_eq!(stored.get::<_, String>(0), "succeeded");
    assert_eq!(stored.get::<_, Value>(1)["output"]["id"], "00Q\u{FFFD}X");
    env.stop().await;
}
