//! Running a finished execution again (`POST /v1/executions/{id}/rerun`): with its values, as a
//! new execution linked to the first, on the automation's live version; an in-doubt or
//! succeeded one only when asked by its status; never one still queued or running.

use aic_tests::harness::{Options, TestEnv};
use aic_tests::sandbox::faults::Fault;
use reqwest::Method;
use serde_json::{Value, json};

/// Runs `execution` again with `body`; the answer's status and body.
async fn rerun(env: &TestEnv, execution: &str, body: Option<Value>) -> (u16, Value) {
    let (status, answer) = env
        .call(
            Method::POST,
            &format!("/v1/executions/{execution}/rerun"),
            body,
        )
        .await;
    (status.as_u16(), answer)
}

/// The parameter values and source the ledger holds for `execution`.
async fn recorded(env: &TestEnv, execution: &str) -> (Value, Option<String>) {
    let id: uuid::Uuid = execution.parse().expect("uuid");
    let row = env
        .query_one(
            "SELECT parameters, source FROM executions WHERE id = $1",
            &[&id],
        )
        .await;
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_finished_execution_runs_again_with_its_values() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    let values = json!({"LastName": "Lovelace", "Company": ""});
    let first = env.enqueue(&lead, values.clone()).await;
    assert_eq!(env.wait_final(&first).await["status"], "failed");

    let (status, again) = rerun(&env, &first, None).await;
    assert_eq!(status, 202, "{again}");
    let second = again["execution_id"].as_str().expect("id").to_string();
    assert_ne!(second, first);
    let done = env.wait_final(&second).await;
    assert_eq!(done["status"], "failed", "the same values, refused again");
    assert_eq!(
        done["result"]["error"]["vendor"]["fields"],
        json!(["Company"])
    );
    assert_eq!(
        recorded(&env, &second).await,
        (values, Some(format!("rerun:{first}")))
    );

    // The caller's own id makes a re-run idempotent: sent twice, it runs once.
    let mine = uuid::Uuid::now_v7().to_string();
    for _ in 0..2 {
        let (status, body) = rerun(&env, &first, Some(json!({"execution_id": mine}))).await;
        assert_eq!(
            (status, body["execution_id"].as_str()),
            (202, Some(mine.as_str()))
        );
    }
    env.wait_final(&mine).await;
    let runs = env
        .query_one(
            "SELECT count(*) FROM executions WHERE source = $1",
            &[&format!("rerun:{first}")],
        )
        .await;
    assert_eq!(runs.get::<_, i64>(0), 2, "the first re-run and this one");

    // The vendor applied the create but its answer was lost: in doubt, it runs again only
    // when asked by that status — and then does its action a second time.
    env.sandbox.state.faults.push([Fault::ResetAfterApply]);
    let doubtful = env
        .enqueue(&lead, json!({"LastName": "Hopper", "Company": "Navy"}))
        .await;
    assert_eq!(env.wait_final(&doubtful).await["status"], "unknown_outcome");
    let (status, refused) = rerun(&env, &doubtful, Some(json!({}))).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "execution_may_have_acted");
    let (status, again) = rerun(&env, &doubtful, Some(json!({"allow": "unknown_outcome"}))).await;
    assert_eq!(status, 202, "{again}");
    let done = env
        .wait_final(again["execution_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (status, refused) = rerun(&env, done["id"].as_str().expect("id"), None).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("execution_may_have_acted"))
    );
    env.stop().await;
}

#[tokio::test]
async fn an_unfinished_or_unreachable_execution_is_not_run_again() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let lead = env.lead_automation().await;
    // No worker: it stays queued.
    let queued = env
        .enqueue(&lead, json!({"LastName": "Ada", "Company": "Engines"}))
        .await;
    let (status, refused) = rerun(&env, &queued, None).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "execution_not_finished");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("is queued"), "{refused}");

    for (body, field) in [
        (json!({"allow": "yes"}), "allow"),
        (json!({"wait_ms": 40_000}), "wait_ms"),
    ] {
        env.assert_refused(
            Method::POST,
            &format!("/v1/executions/{queued}/rerun"),
            Some(body),
            (422, "validation_failed", Some(field)),
        )
        .await;
    }
    let unknown = format!("/v1/executions/{}/rerun", uuid::Uuid::now_v7());
    assert_eq!(env.call(Method::POST, &unknown, None).await.0, 404);

    // A token limited to another automation reaches neither the execution nor its re-run; a
    // viewer runs nothing.
    let (_, first) = env
        .call(Method::GET, &format!("/v1/automations/{lead}"), None)
        .await;
    let connection = first["connection_id"].as_str().expect("connection");
    let other = env
        .published_automation("salesforce.create_lead", connection, "Other", None)
        .await;
    let (status, limited) = env
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "bot", "role": "service", "automations": [other]})),
        )
        .await;
    assert_eq!(status, 201, "{limited}");
    let path = format!("/v1/executions/{queued}/rerun");
    let token = limited["token"].as_str().expect("token");
    let (status, body) = env.call_as(token, Method::POST, &path, None).await;
    assert_eq!(status, 403, "{body}");
    let viewer = env.token(aic_control_plane::auth::Role::Viewer).await;
    assert_eq!(env.call_as(&viewer, Method::POST, &path, None).await.0, 403);
    env.stop().await;
}
