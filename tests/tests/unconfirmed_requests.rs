//! A request the API recorded but whose publish it never saw confirmed — the control plane
//! stopped in between — is published again by a control plane (`aic_control_plane::resend`)
//! and runs; one a worker already began, or one still within its grace, is left alone. The
//! stopped control plane is played by writing what it leaves behind: the execution `queued`
//! and its outbox row, and no message.

use aic_proto::topology::Names;
use aic_tests::harness::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

/// The trace context of the caller whose request was left behind.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Records an execution of `automation` as an enqueue does (with its caller's trace), `status`, its outbox row written
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
                 INSERT INTO execution_outbox (execution_id, since, traceparent) \
                 SELECT id, now() - interval '{age}', $6 FROM e"
            ),
            &[&id, &env.tenant.0, &automation, &status, &parameters, &TRACEPARENT],
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
    let mut copies = env.listen(&names.executions_exchange, "execute").await;
    let sent = aic_control_plane::resend::once(&env.pool, &broker, &names, Duration::from_secs(30))
        .await
        .expect("a round");
    assert_eq!(sent, 1, "the orphan alone");
    // Published again with its caller's trace, so the run still shows in the caller's trace.
    let copy = copies
        .next(Duration::from_secs(10))
        .await
        .expect("the request");
    let headers = copy.properties.headers().clone().unwrap_or_default();
    let parent = match headers.inner().get("traceparent") {
        Some(lapin::types::AMQPValue::LongString(p)) => p.as_bytes().to_vec(),
        _ => Vec::new(),
    };
    assert_eq!(parent, TRACEPARENT.as_bytes(), "{headers:?}");
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

/// A publish the broker refuses (here: the executions exchange deleted) undoes the enqueue —
/// 503, nothing recorded, the same id free to retry — unless the request was taken over
/// meanwhile (here: a trigger drops its outbox row, as a control plane publishing it again
/// would), when it is answered as queued rather than "nothing was enqueued".
#[tokio::test]
async fn an_unconfirmed_enqueue_is_undone_unless_it_was_taken_over() {
    use lapin::options::ExchangeDeleteOptions;
    let env = TestEnv::start_with(aic_tests::harness::Options::api_only()).await;
    let automation = env.lead_automation().await;
    let names = Names::new(&env.amqp().amqp_namespace);
    let conn = aic_core::amqp::connect(&env.amqp().amqp_url, "test-refusing-broker")
        .await
        .expect("amqp");
    let channel = conn.create_channel().await.expect("channel");
    // The control plane declares its topology again when it reopens a channel after a failure:
    // deleted again once it has.
    let refuse = || async {
        channel
            .exchange_delete(
                names.executions_exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await
            .expect("the exchange deleted");
    };
    // Enqueues as a flow whose trace is TRACEPARENT.
    let http = reqwest::Client::new();
    let enqueue = |id: Uuid| {
        let url = format!("{}/v1/automations/{automation}/executions", env.api);
        let body =
            json!({"execution_id": id, "parameters": {"LastName": "Lost", "Company": "Confirm"}});
        let call = http
            .post(url)
            .bearer_auth(&env.admin_token)
            .header("traceparent", TRACEPARENT)
            .json(&body);
        async move {
            let answer = call.send().await.expect("control plane answers");
            let status = answer.status();
            (status, answer.json::<Value>().await.expect("json"))
        }
    };

    let undone = Uuid::now_v7();
    refuse().await;
    let (status, body) = enqueue(undone).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.to_string().contains("nothing was enqueued"), "{body}");
    let (status, _) = env
        .call(Method::GET, &format!("/v1/executions/{undone}"), None)
        .await;
    assert_eq!(status, 404, "undone");
    assert_eq!(outbox(&env).await, 0);
    // The control plane's next publish reopens its channel and declares the exchange again.
    let (status, body) = enqueue(Uuid::now_v7()).await;
    assert_eq!(status, 202, "{body}");

    // A bulk re-run unconfirmed likewise: the failure it would have run again is not linked to
    // the undone re-run, so the next call takes it.
    let failed = Uuid::now_v7();
    let automation_id: Uuid = automation.parse().expect("uuid");
    env.query_one(
        "INSERT INTO executions (id, tenant_id, automation_id, status, parameters, finished_at) \
         VALUES ($1, $2, $3, 'failed', '{\"LastName\": \"Lost\", \"Company\": \"Confirm\"}', now()) \
         RETURNING 1",
        &[&failed, &env.tenant.0, &automation_id],
    )
    .await;
    let bulk = json!({"since": "2026-01-01T00:00:00Z"});
    refuse().await;
    let (status, body) = env
        .call(Method::POST, "/v1/executions/rerun", Some(bulk.clone()))
        .await;
    assert_eq!(status, 503, "{body}");
    let (_, first) = env
        .call(Method::GET, &format!("/v1/executions/{failed}"), None)
        .await;
    assert_eq!(first["rerun_id"], Value::Null, "{first}");
    let audited = || env.audit_events("?action=automation.execution_rerun");
    assert_eq!(
        audited().await,
        Vec::<Value>::new(),
        "no trail of what was undone"
    );
    let (status, body) = env
        .call(Method::POST, "/v1/executions/rerun", Some(bulk))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["reruns"][0]["execution_id"],
        failed.to_string(),
        "{body}"
    );
    let rerun = &body["reruns"][0]["rerun_id"];
    assert!(rerun.is_string(), "{body}");
    let trail: Vec<Value> = audited()
        .await
        .into_iter()
        .map(|e| e["detail"].clone())
        .collect();
    assert_eq!(trail, [json!({"execution_id": failed, "rerun_id": rerun})]);

    env.pool
        .get()
        .await
        .expect("db")
        .batch_execute(
            "CREATE TABLE seen (traceparent text); \
             CREATE FUNCTION taken_over() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               INSERT INTO seen VALUES (NEW.traceparent); \
               DELETE FROM execution_outbox WHERE execution_id = NEW.execution_id; RETURN NULL; \
             END $$; \
             CREATE TRIGGER taken_over AFTER INSERT ON execution_outbox \
               FOR EACH ROW EXECUTE FUNCTION taken_over()",
        )
        .await
        .expect("the trigger");
    let kept = Uuid::now_v7();
    refuse().await;
    let (status, body) = enqueue(kept).await;
    let kept_trace: Option<String> = env
        .query_one("SELECT traceparent FROM seen", &[])
        .await
        .get(0);
    assert_eq!(
        kept_trace.as_deref(),
        Some(TRACEPARENT),
        "the caller's trace, kept for a publish again"
    );
    assert_eq!(
        (status.as_u16(), body["status"].as_str()),
        (202, Some("queued")),
        "{body}"
    );
    let (status, row) = env
        .call(Method::GET, &format!("/v1/executions/{kept}"), None)
        .await;
    assert_eq!(
        (status.as_u16(), row["status"].as_str()),
        (200, Some("queued")),
        "{row}"
    );
    let _ = conn.close(0, "done".into()).await;
    env.stop().await;
}
