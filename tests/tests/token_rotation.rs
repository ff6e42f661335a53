//! Refresh tokens that rotate on every use (Atlassian 3LO) are spent exactly once: refreshes of
//! one connection are serialised across workers through Postgres, and the rotated token is
//! stored before anyone else may refresh.

use aic_tests::harness::{Options, TestEnv};
use reqwest::Method;
use serde_json::json;
use std::sync::atomic::Ordering;

#[tokio::test]
async fn two_workers_refreshing_one_connection_never_spend_the_same_refresh_token() {
    let env = TestEnv::start_with(Options {
        workers: 2,
        prefetch: 16,
        ..Options::default()
    })
    .await;
    let site = &env.sandbox.state.jira;
    site.add_oauth_app("atl-client", "atl-secret", "rt-initial");
    let conn = env
        .connection("Jira OAuth", "jira", "oauth2_3lo", json!({"client_id": "atl-client", "client_secret": "atl-secret", "refresh_token": "rt-initial", "cloud_id": "11223344-aaaa-bbbb-cccc-556677889900"}))
        .await;
    let conn_id = conn["id"].as_str().expect("id");

    // Testing a saved connection rotates through the same lock and keeps the new token.
    let test = env.test_connection(conn_id).await;
    assert_eq!(test["ok"], true, "{test}");
    let issue = env
        .published_automation("jira.create_issue", conn_id, "Issue", None)
        .await;
    assert_eq!(
        env.run(
            &issue,
            json!({"project": "ENG", "issue_type": "Task", "summary": "first"})
        )
        .await["status"],
        "succeeded"
    );
    let through_gateway = env
        .sandbox
        .requests_to("/ex/jira/11223344-aaaa-bbbb-cccc-556677889900/rest/api/3/issue");
    assert_eq!(
        through_gateway.len(),
        1,
        "3LO calls go through Atlassian's gateway path"
    );
    assert!(through_gateway[0].headers["authorization"].starts_with("Bearer "));

    // Every worker's access token expires at once; a burst follows.
    site.expire_tokens();
    let before = site.refreshes.load(Ordering::SeqCst);
    let mut ids = Vec::new();
    for i in 0..24 {
        ids.push(
            env.enqueue(
                &issue,
                json!({"project": "ENG", "issue_type": "Task", "summary": format!("burst {i}")}),
            )
            .await,
        );
    }
    for id in &ids {
        let done = env.wait_final(id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let refreshes = site.refreshes.load(Ordering::SeqCst) - before;
    println!(
        "24 executions on 2 workers after expiry: {refreshes} refresh(es), {} refused",
        site.refused_refreshes.load(Ordering::SeqCst)
    );
    assert_eq!(
        site.refused_refreshes.load(Ordering::SeqCst),
        0,
        "a spent refresh token was presented"
    );
    assert!(
        (1..=2).contains(&refreshes),
        "one refresh per worker at most, got {refreshes}"
    );
    let (_, saved) = env
        .call(Method::GET, &format!("/v1/connections/{conn_id}"), None)
        .await;
    assert_ne!(saved["status"], "needs_reauthorization");

    // Testing before saving would spend the token with nowhere to keep the next one.
    let (status, err) = env
        .call(Method::POST, "/v1/connection-tests", Some(json!({"name": "x", "app": "jira", "domain": env.sandbox.url(), "auth_type": "oauth2_3lo",
            "secrets": {"client_id": "atl-client", "client_secret": "atl-secret", "refresh_token": "whatever", "cloud_id": "11223344-aaaa-bbbb-cccc-556677889902"}})))
        .await;
    assert_eq!(
        (status.as_u16(), err["error"]["field"].as_str()),
        (422, Some("auth_type")),
        "{err}"
    );
    env.stop().await;
}

#[tokio::test]
async fn a_spent_refresh_token_makes_the_connection_need_reauthorisation() {
    let env = TestEnv::start().await;
    let site = &env.sandbox.state.jira;
    site.add_oauth_app("atl-client", "atl-secret", "rt-only");
    let conn = env
        .connection("Jira OAuth", "jira", "oauth2_3lo", json!({"client_id": "atl-client", "client_secret": "atl-secret", "refresh_token": "rt-spent-elsewhere", "cloud_id": "11223344-aaaa-bbbb-cccc-556677889901"}))
        .await;
    let issue = env
        .published_automation(
            "jira.create_issue",
            conn["id"].as_str().expect("id"),
            "Issue",
            None,
        )
        .await;
    let done = env
        .run(
            &issue,
            json!({"project": "ENG", "issue_type": "Task", "summary": "x"}),
        )
        .await;
    assert_eq!(
        done["result"]["error"]["code"], "connection_needs_reauthorization",
        "{done}"
    );
    assert_eq!(done["result"]["error"]["vendor"]["code"], "invalid_grant");
    let (_, saved) = env
        .call(
            Method::GET,
            &format!("/v1/connections/{}", conn["id"].as_str().expect("id")),
            None,
        )
        .await;
    assert_eq!(saved["status"], "needs_reauthorization");
    env.stop().await;
}

#[tokio::test]
async fn a_reauthorisation_made_while_a_refresh_is_answered_is_kept() {
    let env = TestEnv::start().await;
    let site = &env.sandbox.state.jira;
    site.add_oauth_app("atl-client", "atl-secret", "rt-first-grant");
    site.add_oauth_app("atl-client", "atl-secret", "rt-granted-again");
    let conn = env
        .connection("Jira OAuth", "jira", "oauth2_3lo", json!({"client_id": "atl-client", "client_secret": "atl-secret", "refresh_token": "rt-first-grant", "cloud_id": "11223344-aaaa-bbbb-cccc-556677889901"}))
        .await;
    let conn_id = conn["id"].as_str().expect("id");
    let issue = env
        .published_automation("jira.create_issue", conn_id, "Issue", None)
        .await;
    let params =
        |summary: &str| json!({"project": "ENG", "issue_type": "Task", "summary": summary});

    // The first execution's refresh takes 2 s; meanwhile an admin grants the app again and
    // saves the new refresh token.
    site.refresh_latency_ms.store(2_000, Ordering::SeqCst);
    let first = env.enqueue(&issue, params("first")).await;
    site.until_refreshes(1).await;
    let path = format!("/v1/connections/{conn_id}");
    let body = json!({"secrets": {"refresh_token": "rt-granted-again"}});
    let (status, saved) = env.call(Method::PATCH, &path, Some(body)).await;
    assert_eq!(status, 200, "{saved}");
    let done = env.wait_final(&first).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let status = || async {
        let (_, read) = env.call(Method::GET, &path, None).await;
        read["status"].as_str().unwrap_or_default().to_string()
    };
    // A success on the former credentials proves nothing of the new ones.
    assert_eq!(status().await, "untested");
    site.refresh_latency_ms.store(0, Ordering::SeqCst);

    // The next refresh presents the token the admin saved, not the first grant's rotated one.
    let done = env.run(&issue, params("second")).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let refreshes = env.sandbox.requests_to("/oauth/token");
    let presented: Vec<String> = refreshes
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
            match body["refresh_token"].as_str() {
                Some(t @ ("rt-first-grant" | "rt-granted-again")) => t.to_string(),
                _ => "another (a rotated one)".to_string(),
            }
        })
        .collect();
    assert_eq!(
        presented,
        ["rt-first-grant", "rt-granted-again"],
        "the refresh tokens presented"
    );
    assert_eq!(site.refused_refreshes.load(Ordering::SeqCst), 0);
    assert_eq!(status().await, "connected");
    env.stop().await;
}
