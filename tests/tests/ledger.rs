//! The execution ledger against a real PostgreSQL: what a row holds after begin, and what a
//! second delivery finishing the same execution is answered with.

use aic_proto::{ExecutionRequestV1, ExecutionResultV1, ExecutionStatus};
use aic_tests::harness::TestEnv;
use serde_json::{Value, json};

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

#[tokio::test]
async fn the_row_keeps_the_parameters_as_sent_and_a_second_finish_gets_the_first_result() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let ledger = aic_worker::ledger::Ledger::new(
        env.pool.clone(),
        env.ledger_pool(),
        &aic_worker::metrics::Metrics::new(),
    );
    let parameters = r#"{"LastName": "Ada \"A\" Byron", "Company": "B", "Score": 0.9999999999999999, "Tags": ["x", 10587.436593658975]}"#;
    let req: ExecutionRequestV1 = serde_json::from_str(&format!(
        r#"{{"version": 1, "execution_id": "{}", "tenant_id": "{}", "automation_id": "{automation}", "parameters": {parameters}}}"#,
        uuid::Uuid::now_v7(),
        env.tenant,
    ))
    .expect("request");
    let begun = ledger.begin(&req, 0).await.expect("begin");
    assert!(
        matches!(begun, aic_worker::ledger::Begin::Run(Ok(_))),
        "{begun:?}"
    );
    let db = env.pool.get().await.expect("postgres");
    // PostgreSQL's jsonb keeps numbers as decimals: its text shows the digits it was given.
    let stored = db
        .query_one(
            "SELECT parameters::text FROM executions WHERE id = $1",
            &[&req.execution_id.0],
        )
        .await
        .expect("row")
        .get::<_, String>(0);
    assert_eq!(
        stored,
        r#"{"Tags": ["x", 10587.436593658975], "Score": 0.9999999999999999, "Company": "B", "LastName": "Ada \"A\" Byron"}"#
    );

    let first = ledger
        .finish(&result(&req, ExecutionStatus::Succeeded, "00Q1"))
        .await
        .expect("the first result is recorded");
    let first: Value = serde_json::from_str(first.get()).expect("JSON");
    assert_eq!(first["status"], "succeeded");
    assert_eq!(first["output"]["id"], "00Q1");
    // A second delivery of the same execution finishing later, differently: it publishes the
    // outcome already recorded, not its own.
    let second = ledger
        .finish(&result(&req, ExecutionStatus::Failed, "00Q2"))
        .await
        .expect("the second finish answers");
    let second: Value = serde_json::from_str(second.get()).expect("JSON");
    assert_eq!(second["status"], "succeeded");
    assert_eq!(second["output"]["id"], "00Q1");
    let row = db
        .query_one(
            "SELECT status, result FROM executions WHERE id = $1",
            &[&req.execution_id.0],
        )
        .await
        .expect("row");
    assert_eq!(row.get::<_, String>(0), "succeeded");
    assert_eq!(row.get::<_, Value>(1)["output"]["id"], "00Q1");
    drop(db);
    env.stop().await;
}
