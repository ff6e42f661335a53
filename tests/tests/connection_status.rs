//! A connection's status as executions prove it: a connection test that fails marks it
//! `failing`, and the next execution that succeeds on it marks it `connected` again — each time,
//! not only the first time a worker process sees it fail. A call made on credentials an admin
//! has since replaced says nothing of the new ones.

use aic_tests::harness::TestEnv;
use reqwest::Method;
use serde_json::json;
use std::sync::atomic::Ordering;

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

#[tokio::test]
async fn a_refusal_of_replaced_credentials_does_not_fail_the_new_ones() {
    let env = TestEnv::start().await;
    let site = &env.sandbox.state.jira;
    let conn = revoked_grant(&env).await;
    let id = conn.as_str();
    let issue = env
        .published_automation("jira.create_issue", id, "Issue", None)
        .await;
    let params = json!({"project": "ENG", "issue_type": "Task", "summary": "x"});

    // The refusal takes 2 s to come; meanwhile the admin saves the token of a new grant.
    site.refresh_latency_ms.store(2_000, Ordering::SeqCst);
    let first = env.enqueue(&issue, params.clone()).await;
    granted_again_while_refreshing(&env, id).await;
    let done = env.wait_final(&first).await;
    assert_eq!(
        done["result"]["error"]["code"], "connection_needs_reauthorization",
        "{done}"
    );
    assert_eq!(
        status(&env, id).await,
        "untested",
        "the former credentials' refusal was held against the new ones"
    );

    site.refresh_latency_ms.store(0, Ordering::SeqCst);
    let done = env.run(&issue, params).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(status(&env, id).await, "connected");
    env.stop().await;
}

#[tokio::test]
async fn a_test_of_replaced_credentials_is_not_recorded_on_the_new_ones() {
    let env = TestEnv::start_with(aic_tests::harness::Options::api_only()).await;
    let site = &env.sandbox.state.jira;
    let id = revoked_grant(&env).await;
    site.refresh_latency_ms.store(2_000, Ordering::SeqCst);
    let path = format!("/v1/connections/{id}/test");
    let (tested, ()) = tokio::join!(
        env.call(Method::POST, &path, None),
        granted_again_while_refreshing(&env, &id)
    );
    assert_eq!(
        (tested.0.as_u16(), tested.1["error"]["code"].as_str()),
        (409, Some("connection_reauthorised")),
        "{}",
        tested.1
    );
    assert_eq!(status(&env, &id).await, "untested");
    site.refresh_latency_ms.store(0, Ordering::SeqCst);
    let test = env.test_connection(&id).await;
    assert_eq!(test["ok"], true, "{test}");
    assert_eq!(status(&env, &id).await, "connected");
    env.stop().await;
}

/// A Jira connection (OAuth 2.0 3LO) saved with a refresh token the user has since revoked;
/// the sandbox knows the app and the token of a new grant, `rt-granted-again`.
async fn revoked_grant(env: &TestEnv) -> String {
    let site = &env.sandbox.state.jira;
    site.add_oauth_app("atl-client", "atl-secret", "rt-granted-again");
    let conn = env
        .connection("Jira OAuth", "jira", "oauth2_3lo", json!({"client_id": "atl-client", "client_secret": "atl-secret", "refresh_token": "rt-revoked", "cloud_id": "11223344-aaaa-bbbb-cccc-556677889901"}))
        .await;
    conn["id"].as_str().expect("id").to_string()
}

/// Once a refresh of connection `id` is under way at the sandbox, saves the new grant's token.
async fn granted_again_while_refreshing(env: &TestEnv, id: &str) {
    let site = &env.sandbox.state.jira;
    site.until_refreshes(1).await;
    let body = json!({"secrets": {"refresh_token": "rt-granted-again"}});
    let (code, saved) = env
        .call(Method::PATCH, &format!("/v1/connections/{id}"), Some(body))
        .await;
    assert_eq!(code, 200, "{saved}");
    assert_eq!(saved["status"], "untested", "{saved}");
}
