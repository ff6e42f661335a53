//! A request the API recorded but whose publish it never saw confirmed — the control plane
//! stopped in between — is published again by a control plane (`aic_control_plane::resend`)
//! and runs; one a worker already began, or one still within its grace, is left alone. The
//! stopped control plane is played by writing what it leaves behind: the execution `queued`
//! and its outbox row, and no message.

use aic_proto::topology::Names;
use aic_tests::harness::TestEnv;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

/// Records an execution of `automation` as an enqueue does, `status`, its outbox row written
/// `age` ago, and publishes nothing; its id.
async fn left_behind(env: &TestEnv, automation: &str, status: &str, age: &str) -> String {
    let id = Uuid::now_v7();
    let automation: Uuid = automation.parse().expect("uuid");
    let parameters = json!({"LastName": "Orphan", "Company": "Crashed Control Plane"});
    env.pool
        .get()
        .await
        .expect("db")
        .execute(
            &format!(
                "WITH e AS (INSERT INTO executions (id, tenant_id, automation_id, status, parameters, source) \
                 VALUES ($1, $2, $3, $4, $5, 'flow:checkout') RETURNING id) \
                 INSERT INTO execution_outbox (execution_id, since) SELECT id, now() - interval '{age}' FROM e"
            ),
            &[&id, &env.tenant.0, &automation, &status, &parameters],
        )
        .await
        .expect("left behind");
    id.to_string()
}

async fn outbox(env: &TestEnv) -> i64 {
    env.query_one("SELECT count(*) FROM execution_outbox", &[])
        .await
        .get(0)
}

#[tokio::test]
async fn a_request_recorded_but_never_published_is_published_again_and_runs() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;

    // The normal path leaves no outbox row once the broker confirmed.
    let done = env
        .run(
            &automation,
            json!({"LastName": "Normal", "Company": "Path"}),
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(outbox(&env).await, 0);

    let orphan = left_behind(&env, &automation, "queued", "1 minute").await;
    let begun = left_behind(&env, &automation, "running", "1 minute").await;
    let recent = left_behind(&env, &automation, "queued", "1 second").await;
    let names = Names::new(&env.amqp().amqp_namespace);
    let broker = aic_core::amqp::Broker::connect(&env.amqp().amqp_url, "test-resend", &names)
        .await
        .expect("broker");
    let sent = aic_control_plane::resend::once(&env.pool, &broker, &names, Duration::from_secs(30))
        .await
        .expect("a round");
    assert_eq!(sent, 1, "the orphan alone");
    let result = env.wait_final(&orphan).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["source"], "flow:checkout", "{result}");

    // The begun one is the worker's (its row dropped, not published); the recent one may still
    // be confirmed by its own control plane.
    let left: Vec<String> = env
        .pool
        .get()
        .await
        .expect("db")
        .query("SELECT execution_id::text FROM execution_outbox", &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, std::slice::from_ref(&recent));
    let (_, still) = env
        .call(Method::GET, &format!("/v1/executions/{begun}"), None)
        .await;
    assert_eq!(still["status"], "running", "{still}");
    let (_, waiting) = env
        .call(Method::GET, &format!("/v1/executions/{recent}"), None)
        .await;
    assert_eq!(waiting["status"], "queued", "{waiting}");
    broker.close().await;
    env.stop().await;
}
