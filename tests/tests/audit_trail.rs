//! The audit trail: every change of a connection, an automation or a token leaves one event
//! naming who did it, what it was done to and what changed — never a secret's value; a change
//! refused or changing nothing leaves none; admins read it newest first, filtered and paged,
//! and nothing rewrites it.

use aic_control_plane::auth::Role;
use aic_tests::harness::{Options, TestEnv};
use reqwest::Method;
use serde_json::{Value, json};

fn api_only() -> Options {
    Options {
        worker: false,
        ..Default::default()
    }
}

/// The trail as the admin reads it with `query`: its events.
async fn events(env: &TestEnv, query: &str) -> Vec<Value> {
    let (status, page) = env
        .call(Method::GET, &format!("/v1/audit-events{query}"), None)
        .await;
    assert_eq!(status, 200, "{query}: {page}");
    page["events"].as_array().expect("events").clone()
}

fn actions(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect()
}

/// Calls as `token` and checks the status.
async fn ok(env: &TestEnv, token: &str, method: Method, path: &str, body: Option<Value>) -> Value {
    let shown = format!("{method} {path}");
    let (status, answer) = env.call_as(token, method, path, body).await;
    assert!(status.is_success(), "{shown}: {status} {answer}");
    answer
}

#[tokio::test]
async fn every_change_leaves_one_event_naming_who_what_and_how() {
    let env = TestEnv::start_with(api_only()).await;
    let admin = env.admin_token.clone();
    let editor = aic_control_plane::tenants::issue(&env.pool, env.tenant, Role::Editor, "Eve")
        .await
        .expect("editor");
    let eve = editor.token.as_str();
    let conn = env
        .salesforce_connection("Org", "s3cret-A", "s3cret-A")
        .await;
    let c = format!("/v1/connections/{}", conn["id"].as_str().expect("id"));
    env.test_connection(conn["id"].as_str().expect("id")).await;
    ok(
        &env,
        eve,
        Method::PATCH,
        &c,
        Some(json!({"name": "Org EU", "max_concurrency": 4})),
    )
    .await;
    // Changing nothing records nothing.
    ok(
        &env,
        eve,
        Method::PATCH,
        &c,
        Some(json!({"name": "Org EU"})),
    )
    .await;
    let body =
        json!({"template": "salesforce.create_lead", "connection_id": conn["id"], "name": "Lead"});
    let lead = ok(
        &env,
        eve,
        Method::POST,
        "/v1/automations",
        Some(body.clone()),
    )
    .await;
    // Refused: no event.
    let (status, _) = env
        .call_as(eve, Method::POST, "/v1/automations", Some(body))
        .await;
    assert_eq!(status, 409);
    let a = format!("/v1/automations/{}", lead["id"].as_str().expect("id"));
    let run = json!({"parameters": {"LastName": "Lovelace", "Company": "Engines"}});
    let tested = ok(&env, &admin, Method::POST, &format!("{a}/test"), Some(run)).await;
    assert_eq!(tested["ok"], true, "{tested}");
    ok(&env, &admin, Method::POST, &format!("{a}/publish"), None).await;
    ok(
        &env,
        eve,
        Method::PATCH,
        &a,
        Some(json!({"status": "paused", "description": "EU leads"})),
    )
    .await;
    let second = Some(json!({"version_name": "Second"}));
    ok(&env, &admin, Method::POST, &format!("{a}/publish"), second).await;
    ok(
        &env,
        &admin,
        Method::PATCH,
        &format!("{a}/versions/2"),
        Some(json!({"name": "Renamed"})),
    )
    .await;
    ok(
        &env,
        &admin,
        Method::POST,
        &format!("{a}/versions/1/restore"),
        None,
    )
    .await;
    ok(
        &env,
        &admin,
        Method::POST,
        &format!("{a}/versions/delete"),
        Some(json!({"numbers": [2]})),
    )
    .await;
    let copy = ok(&env, &admin, Method::POST, &format!("{a}/duplicate"), None).await;
    let copy_path = format!("/v1/automations/{}", copy["id"].as_str().expect("id"));
    ok(&env, &admin, Method::DELETE, &copy_path, None).await;
    let secrets = json!({"secrets": {"client_secret": "s3cret-B"}});
    ok(&env, &admin, Method::PATCH, &c, Some(secrets)).await;
    ok(&env, &admin, Method::DELETE, &a, None).await;
    ok(&env, &admin, Method::DELETE, &c, None).await;

    let trail = events(&env, "?limit=200").await;
    let mut expected = vec![
        "connection.created",
        "connection.tested",
        "connection.updated",
        "automation.created",
        "automation.tested",
        "automation.published",
        "automation.updated",
        "automation.published",
        "automation.version_renamed",
        "automation.version_restored",
        "automation.versions_deleted",
        "automation.duplicated",
        "automation.deleted",
        "connection.reauthorised",
        "automation.deleted",
        "connection.deleted",
    ];
    expected.reverse();
    assert_eq!(actions(&trail), expected, "newest first");
    let text = Value::Array(trail.clone()).to_string();
    for secret in ["s3cret-A", "s3cret-B", eve, admin.as_str()] {
        assert!(!text.contains(secret), "a secret in the trail: {text}");
    }
    let find = |action: &str| trail.iter().find(|e| e["action"] == action).expect(action);
    let created = find("connection.created");
    assert_eq!(created["target_name"], "Org");
    assert_eq!(created["actor_name"], "initial admin");
    assert_eq!(
        created["detail"]["secret_fields"],
        json!(["client_id", "client_secret"])
    );
    let updated = find("connection.updated");
    assert_eq!(
        (
            updated["actor_name"].as_str(),
            updated["actor_role"].as_str()
        ),
        (Some("Eve"), Some("editor"))
    );
    assert_eq!(
        updated["detail"],
        json!({"name": "Org EU", "max_concurrency": 4})
    );
    assert_eq!(
        find("connection.reauthorised")["detail"],
        json!({"secret_fields": ["client_secret"]})
    );
    assert_eq!(
        find("connection.tested")["detail"],
        json!({"ok": true, "status": "connected"})
    );
    assert_eq!(
        find("automation.updated")["detail"],
        json!({"description": "EU leads", "status": "paused"})
    );
    assert_eq!(
        find("automation.versions_deleted")["detail"],
        json!({"versions": [2]})
    );
    assert_eq!(find("automation.duplicated")["target_name"], "Lead (copy)");
    assert_eq!(
        trail[0]["target_name"], "Org EU",
        "named as it was when deleted"
    );

    // Filters: one record, one action, one actor.
    let on_connection = events(
        &env,
        &format!("?target_id={}", conn["id"].as_str().expect("id")),
    )
    .await;
    assert_eq!(on_connection.len(), 5, "{on_connection:?}");
    assert_eq!(events(&env, "?action=automation.published").await.len(), 2);
    assert_eq!(events(&env, "?target_kind=connection").await.len(), 5);
    let by_eve = events(&env, &format!("?actor_id={}", editor.token_id)).await;
    assert_eq!(
        actions(&by_eve),
        [
            "automation.updated",
            "automation.created",
            "connection.updated"
        ]
    );
    env.stop().await;
}

#[tokio::test]
async fn the_trail_pages_without_a_gap_and_is_the_admins_alone() {
    let env = TestEnv::start_with(api_only()).await;
    for i in 0..7 {
        let body = json!({"name": format!("bot {i}"), "role": "service"});
        let (status, _) = env.call(Method::POST, "/v1/tokens", Some(body)).await;
        assert_eq!(status, 201);
    }
    let whole = events(&env, "").await;
    assert_eq!(actions(&whole), ["token.issued"; 7]);
    assert_eq!(whole[0]["target_name"], "bot 6", "newest first");
    assert_eq!(whole[0]["detail"]["role"], "service");
    let mut paged = Vec::new();
    let mut query = "?limit=3".to_string();
    loop {
        let (status, page) = env
            .call(Method::GET, &format!("/v1/audit-events{query}"), None)
            .await;
        assert_eq!(status, 200, "{page}");
        paged.extend(
            page["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|e| e["id"].clone()),
        );
        match page["next"].as_str() {
            Some(next) => query = format!("?limit=3&after={next}"),
            None => break,
        }
    }
    let ids: Vec<Value> = whole.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(paged, ids, "three pages, in order, none twice");

    for (query, field) in [
        ("?action=token.stolen", Some("action")),
        ("?target_kind=user", Some("target_kind")),
        ("?limit=0", Some("limit")),
        ("?after=yesterday", Some("after")),
    ] {
        let (status, err) = env
            .call(Method::GET, &format!("/v1/audit-events{query}"), None)
            .await;
        assert_eq!(status, 422, "{query}: {err}");
        assert_eq!(err["error"]["field"].as_str(), field, "{query}: {err}");
    }
    for query in ["?target_id=nope", "?who=me"] {
        let (status, err) = env
            .call(Method::GET, &format!("/v1/audit-events{query}"), None)
            .await;
        assert_eq!(
            (status.as_u16(), err["error"]["code"].as_str()),
            (422, Some("invalid_query")),
            "{err}"
        );
    }
    for role in [Role::Editor, Role::Viewer, Role::Service] {
        let token = env.token(role).await;
        let (status, _) = env
            .call_as(&token, Method::GET, "/v1/audit-events", None)
            .await;
        assert_eq!(status, 403, "{role}");
    }
    let other = aic_control_plane::tenants::create_tenant(&env.pool, "globex")
        .await
        .expect("tenant");
    let (_, theirs) = env
        .call_as(&other.token, Method::GET, "/v1/audit-events", None)
        .await;
    assert_eq!(theirs["events"], json!([]), "{theirs}");

    let rewritten = env
        .pool
        .get()
        .await
        .expect("db")
        .execute("UPDATE audit_events SET actor_name = 'nobody'", &[])
        .await
        .expect_err("append-only");
    assert!(
        format!("{rewritten:?}").contains("append-only"),
        "{rewritten:?}"
    );
    env.stop().await;
}
