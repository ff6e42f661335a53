//! The audit trail: every change of a connection, an automation or a token leaves one event
//! naming who did it, what it was done to and what changed — never a secret's value; a change
//! refused or changing nothing leaves none; admins read it newest first, filtered and paged,
//! and nothing rewrites it (its retention: `audit_retention.rs`).

use aic_control_plane::auth::Role;
use aic_tests::harness::{Options, TestEnv};
use reqwest::Method;
use serde_json::{Value, json};

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

/// A connection and an automation through their whole lives, Eve (an editor) doing some of it
/// and the admin the rest, with an edit that changes nothing and a refused create on the way:
/// the connection's id and Eve's token id.
async fn change_everything(env: &TestEnv) -> (String, String) {
    let editor = env.issued(Role::Editor, "Eve").await;
    let eve = editor.token.as_str();
    let conn = env
        .salesforce_connection("Org", "s3cret-A", "s3cret-A")
        .await;
    let id = conn["id"].as_str().expect("id").to_string();
    env.test_connection(&id).await;
    let c = format!("/v1/connections/{id}");
    let edit = json!({"name": "Org EU", "max_concurrency": 4});
    ok(env, eve, Method::PATCH, &c, Some(edit)).await;
    // Changing nothing records nothing.
    ok(env, eve, Method::PATCH, &c, Some(json!({"name": "Org EU"}))).await;
    let a = automation_life(env, eve, &id).await;
    let reauthorise = json!({"secrets": {"client_secret": "s3cret-B"}});
    let steps = [
        (Method::PATCH, c.clone(), Some(reauthorise)),
        (Method::DELETE, a, None),
        (Method::DELETE, c, None),
    ];
    for (method, path, body) in steps {
        ok(env, &env.admin_token, method, &path, body).await;
    }
    (id, editor.token_id.to_string())
}

/// An automation on connection `id` created by `eve` (once refused: its name is taken), tested,
/// published, paused and edited, published again, its versions renamed, restored and deleted, duplicated
/// and the copy deleted: its path.
async fn automation_life(env: &TestEnv, eve: &str, id: &str) -> String {
    let admin = env.admin_token.as_str();
    let body = json!({"template": "salesforce.create_lead", "connection_id": id, "name": "Lead"});
    let lead = ok(
        env,
        eve,
        Method::POST,
        "/v1/automations",
        Some(body.clone()),
    )
    .await;
    let (status, _) = env
        .call_as(eve, Method::POST, "/v1/automations", Some(body))
        .await;
    assert_eq!(status, 409);
    let a = format!("/v1/automations/{}", lead["id"].as_str().expect("id"));
    let run = json!({"parameters": {"LastName": "Lovelace", "Company": "Engines"}});
    // Its draft changed too, so that the second publish has something to publish.
    let pause =
        json!({"status": "paused", "description": "EU leads", "retry": {"on_throttle": "fail"}});
    let steps = [
        (admin, Method::POST, format!("{a}/test"), Some(run)),
        (admin, Method::POST, format!("{a}/publish"), None),
        (eve, Method::PATCH, a.clone(), Some(pause)),
        (
            admin,
            Method::POST,
            format!("{a}/publish"),
            Some(json!({"version_name": "V2"})),
        ),
        (
            admin,
            Method::PATCH,
            format!("{a}/versions/2"),
            Some(json!({"name": "Renamed"})),
        ),
        (admin, Method::POST, format!("{a}/versions/1/restore"), None),
        (
            admin,
            Method::POST,
            format!("{a}/versions/delete"),
            Some(json!({"numbers": [2]})),
        ),
    ];
    for (token, method, path, body) in steps {
        ok(env, token, method, &path, body).await;
    }
    let copy = ok(env, admin, Method::POST, &format!("{a}/duplicate"), None).await;
    let copy = format!("/v1/automations/{}", copy["id"].as_str().expect("id"));
    ok(env, admin, Method::DELETE, &copy, None).await;
    a
}

#[tokio::test]
async fn every_change_leaves_one_event_and_none_holds_a_secret() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let (connection, eve) = change_everything(&env).await;
    let trail = env.audit_events("?limit=200").await;
    let mut expected = vec![
        "token.issued",
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
    let text = Value::Array(trail).to_string();
    for secret in ["s3cret-A", "s3cret-B", env.admin_token.as_str()] {
        assert!(!text.contains(secret), "a secret in the trail: {text}");
    }

    // Filters: one record, one action, one kind, one actor.
    let on_connection = env.audit_events(&format!("?target_id={connection}")).await;
    assert_eq!(on_connection.len(), 5, "{on_connection:?}");
    assert_eq!(
        env.audit_events("?action=automation.published").await.len(),
        2
    );
    assert_eq!(env.audit_events("?target_kind=connection").await.len(), 5);
    let by_eve = env.audit_events(&format!("?actor_id={eve}")).await;
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
async fn an_event_names_who_did_what_and_how() {
    let env = TestEnv::start_with(Options::api_only()).await;
    change_everything(&env).await;
    let trail = env.audit_events("?limit=200").await;
    let find = |action: &str| trail.iter().find(|e| e["action"] == action).expect(action);
    let created = find("connection.created");
    assert_eq!(
        (
            created["target_name"].as_str(),
            created["actor_name"].as_str()
        ),
        (Some("Org"), Some("initial admin"))
    );
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
    for (action, detail) in [
        (
            "connection.updated",
            json!({"name": "Org EU", "max_concurrency": 4}),
        ),
        (
            "connection.reauthorised",
            json!({"secret_fields": ["client_secret"]}),
        ),
        (
            "connection.tested",
            json!({"ok": true, "status": "connected"}),
        ),
        (
            "automation.updated",
            json!({"description": "EU leads", "status": "paused", "retry": {"on_throttle": "fail"}}),
        ),
        ("automation.versions_deleted", json!({"versions": [2]})),
        (
            "automation.version_renamed",
            json!({"version": 2, "name": "Renamed"}),
        ),
    ] {
        assert_eq!(find(action)["detail"], detail, "{action}");
    }
    assert_eq!(find("automation.duplicated")["target_name"], "Lead (copy)");
    assert_eq!(
        trail[0]["target_name"], "Org EU",
        "named as it was when deleted"
    );
    env.stop().await;
}

#[tokio::test]
async fn the_trail_pages_without_a_gap_and_is_the_admins_alone() {
    let env = TestEnv::start_with(Options::api_only()).await;
    for i in 0..7 {
        let body = json!({"name": format!("bot {i}"), "role": "service"});
        let (status, _) = env.call(Method::POST, "/v1/tokens", Some(body)).await;
        assert_eq!(status, 201);
    }
    let whole = env.audit_events("").await;
    assert_eq!(actions(&whole), ["token.issued"; 8]);
    assert_eq!(whole[0]["target_name"], "bot 6", "newest first");
    assert_eq!(whole[0]["detail"]["role"], "service");
    // The trail starts with the tenant's first admin token, issued by `create-tenant`.
    let initial = (
        whole[7]["target_name"].as_str(),
        whole[7]["actor_name"].as_str(),
        whole[7]["detail"]["role"].as_str(),
    );
    assert_eq!(
        initial,
        (Some("initial admin"), Some("create-tenant"), Some("admin"))
    );
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

    env.stop().await;
}

#[tokio::test]
async fn the_trail_is_the_admins_alone_and_refuses_what_it_cannot_filter() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let body = json!({"name": "bot", "role": "service"});
    let (status, _) = env.call(Method::POST, "/v1/tokens", Some(body)).await;
    assert_eq!(status, 201);
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
    for (query, field) in [("?target_id=nope", "target_id"), ("?who=me", "who")] {
        let (status, err) = env
            .call(Method::GET, &format!("/v1/audit-events{query}"), None)
            .await;
        assert_eq!(
            (
                status.as_u16(),
                err["error"]["code"].as_str(),
                err["error"]["field"].as_str()
            ),
            (422, Some("invalid_query"), Some(field)),
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
    let theirs = theirs["events"].as_array().expect("events");
    let only = theirs
        .iter()
        .map(|e| e["target_id"].as_str())
        .collect::<Vec<_>>();
    let own = other.token_id.to_string();
    assert_eq!(only, [Some(own.as_str())], "their own first token alone");

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
