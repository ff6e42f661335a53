//! A connection's status as executions prove it: a connection test that fails marks it
//! `failing`, and the next execution that succeeds on it marks it `connected` again — each time,
//! not only the first time a worker process sees it fail.

use aic_tests::harness::TestEnv;
use reqwest::Method;
use serde_json::json;

async fn status(env: &TestEnv, id: &str) -> String {
    let (_, read) = env
        .call(Method::GET, &format!("/v1/connections/{id}"), None)
        .await;
    read["status"].as_str().expect("status").to_string()
}

#[tokio::test]
async fn each_success_after_a_failed_test_marks_the_connection_connected_again() {
    let env = TestEnv::start().await;
    let org = &env.sandbox.state.salesforce;
    let conn = env.salesforce_connection("Org", "s3cret", "s3cret").await;
    let id = conn["id"].as_str().expect("id");
    let lead = env
        .published_automation("salesforce.create_lead", id, "Lead", None)
        .await;
    let run = env
        .run(&lead, json!({"LastName": "A", "Company": "B"}))
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(status(&env, id).await, "connected");
    let client_id = conn_client_id(&env, id).await;
    for round in 1..=2 {
        // The vendor refuses a new token (the worker's cached one still works): the test fails.
        org.remove_run_as_user(&client_id);
        let test = env.test_connection(id).await;
        assert_eq!(test["ok"], false, "round {round}: {test}");
        assert_eq!(status(&env, id).await, "failing", "round {round}");
        let run = env
            .run(&lead, json!({"LastName": "A", "Company": "B"}))
            .await;
        assert_eq!(run["status"], "succeeded", "round {round}: {run}");
        assert_eq!(
            status(&env, id).await,
            "connected",
            "round {round}: a success proves the connection again"
        );
    }
    env.stop().await;
}

/// The connected app's consumer key the connection was saved with (the harness made it up).
async fn conn_client_id(env: &TestEnv, _id: &str) -> String {
    env.sandbox
        .requests_to("/services/oauth2/token")
        .first()
        .and_then(|r| {
            r.body
                .split('&')
                .find_map(|kv| kv.strip_prefix("client_id="))
                .map(str::to_string)
        })
        .expect("a token request named its client")
}
