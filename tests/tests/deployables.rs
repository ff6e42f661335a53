//! Deployables: the flows, bot steps and launchers that run an automation, registered by the
//! platform that deploys them, counted on the automation's and the connection's tiles, listed
//! with their links, and keeping their automation from being deleted under them.

use aic_control_plane::auth::Role;
use aic_tests::harness::{Options, TestEnv};
use reqwest::Method;
use serde_json::{Value, json};

fn item(automation: &str, external_id: &str, kind: &str, system: &str, name: &str) -> Value {
    json!({"automation_id": automation, "external_id": external_id, "kind": kind,
        "system": system, "name": name, "link": format!("https://walkme.example/items/{external_id}")})
}

/// The names of the items `GET /v1/deployables{query}` lists.
async fn listed(env: &TestEnv, token: &str, query: &str) -> Vec<String> {
    let (status, list) = env
        .call_as(token, Method::GET, &format!("/v1/deployables{query}"), None)
        .await;
    assert_eq!(status, 200, "{query}: {list}");
    list.as_array()
        .expect("list")
        .iter()
        .map(|d| d["name"].as_str().expect("name").to_string())
        .collect()
}

/// Registers `body` with `token`.
async fn register(env: &TestEnv, token: &str, body: &Value) -> (u16, Value) {
    let (status, answer) = env
        .call_as(token, Method::POST, "/v1/deployables", Some(body.clone()))
        .await;
    (status.as_u16(), answer)
}

/// A published lead automation run by a flow and a bot step, registered by the platform's
/// service token: the automation, its connection and the token.
async fn two_items(env: &TestEnv) -> (String, String, String) {
    let automation = env.lead_automation().await;
    let (_, view) = env
        .call(Method::GET, &format!("/v1/automations/{automation}"), None)
        .await;
    assert_eq!(view["deployables"], 0, "{view}");
    let connection = view["connection_id"]
        .as_str()
        .expect("connection")
        .to_string();
    let platform = env.token(Role::Service).await;
    for body in [
        item(
            &automation,
            "flow-1",
            "flow",
            "Salesforce Lightning",
            "Onboarding",
        ),
        item(
            &automation,
            "step-7",
            "bot_step",
            "ActionBot",
            "Book a demo",
        ),
    ] {
        let (status, registered) = register(env, &platform, &body).await;
        assert_eq!(status, 201, "{registered}");
    }
    (automation, connection, platform)
}

#[tokio::test]
async fn an_item_registered_again_is_updated_not_doubled() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let (automation, _, platform) = two_items(&env).await;
    let flow = item(
        &automation,
        "flow-1",
        "flow",
        "Salesforce Lightning",
        "Onboarding",
    );
    let (status, again) = register(&env, &platform, &flow).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (
            again["automation_name"].as_str(),
            again["registered_by"].as_str()
        ),
        (Some("Create lead"), Some("test")),
        "{again}"
    );
    assert_eq!(again["link"], "https://walkme.example/items/flow-1");
    let mut renamed = flow;
    renamed["name"] = json!("Onboarding: first lead");
    let (status, updated) = register(&env, &platform, &renamed).await;
    assert_eq!((status, &updated["id"]), (200, &again["id"]), "{updated}");
    assert_eq!(updated["name"], "Onboarding: first lead");
    let (_, trail) = env
        .call(Method::GET, "/v1/audit-events?target_kind=deployable", None)
        .await;
    let actions: Vec<(&str, &str)> = trail["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().expect("action"),
                e["actor_role"].as_str().expect("role"),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("deployable.updated", "service"),
            ("deployable.registered", "service"),
            ("deployable.registered", "service"),
        ],
        "registering the same item unchanged records nothing"
    );
    env.stop().await;
}

#[tokio::test]
async fn the_tiles_count_the_items_and_the_list_filters_them() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let (automation, connection, _) = two_items(&env).await;
    let (_, view) = env
        .call(Method::GET, &format!("/v1/automations/{automation}"), None)
        .await;
    assert_eq!(view["deployables"], 2, "{view}");
    let (_, conn) = env
        .call(Method::GET, &format!("/v1/connections/{connection}"), None)
        .await;
    assert_eq!(conn["deployables"], 2, "{conn}");
    let viewer = env.token(Role::Viewer).await;
    for (query, names) in [
        (
            format!("?connection_id={connection}"),
            vec!["Book a demo", "Onboarding"],
        ),
        ("?system=ActionBot".to_string(), vec!["Book a demo"]),
        ("?kind=flow".to_string(), vec!["Onboarding"]),
        ("?q=ONBOARDING".to_string(), vec!["Onboarding"]),
        (format!("?automation_id={}", uuid::Uuid::now_v7()), vec![]),
    ] {
        assert_eq!(listed(&env, &viewer, &query).await, names, "{query}");
    }
    env.stop().await;
}

#[tokio::test]
async fn an_automation_is_not_deleted_under_the_items_that_run_it() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let (automation, _, platform) = two_items(&env).await;
    let path = format!("/v1/automations/{automation}");
    let err = env
        .assert_refused(
            Method::DELETE,
            &path,
            None,
            (409, "automation_in_use", None),
        )
        .await;
    let message = err["error"]["message"].as_str().expect("message");
    assert!(message.contains("'Book a demo (ActionBot)'"), "{message}");
    let (_, list) = env.call(Method::GET, "/v1/deployables", None).await;
    for d in list.as_array().expect("list") {
        let item = format!("/v1/deployables/{}", d["id"].as_str().expect("id"));
        let (status, _) = env.call_as(&platform, Method::DELETE, &item, None).await;
        assert_eq!(status, 204);
    }
    let (status, _) = env.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "nothing runs it any more");
    let (_, trail) = env
        .call(
            Method::GET,
            "/v1/audit-events?action=deployable.removed",
            None,
        )
        .await;
    assert_eq!(trail["events"].as_array().map(Vec::len), Some(2), "{trail}");
    env.stop().await;
}

#[tokio::test]
async fn a_registration_names_what_is_wrong_with_it() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let automation = env.lead_automation().await;
    let (_, view) = env
        .call(Method::GET, &format!("/v1/automations/{automation}"), None)
        .await;
    let (status, draft) = env
        .call(
            Method::POST,
            "/v1/automations",
            Some(json!({"template": "salesforce.create_contact",
            "connection_id": view["connection_id"], "name": "Draft only"})),
        )
        .await;
    assert_eq!(status, 201, "{draft}");
    let draft = draft["id"].as_str().expect("id");
    let good = item(&automation, "flow-1", "flow", "Web", "Tour");
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    for (body, field) in [
        (with("automation_id", json!(draft)), "automation_id"),
        (
            with("automation_id", json!(uuid::Uuid::now_v7())),
            "automation_id",
        ),
        (with("kind", json!("tour")), "kind"),
        (with("link", json!("ftp://walkme.example/x")), "link"),
        (with("link", json!("flows/1")), "link"),
        (
            with("link", json!("https://walkme.example@elsewhere.example/x")),
            "link",
        ),
        (
            with("link", json!("https://admin:s3cr3t-pw@walkme.example/x")),
            "link",
        ),
        (
            with(
                "link",
                json!(format!("https://x.example/{}", "a".repeat(2000))),
            ),
            "link",
        ),
        (with("name", json!("   ")), "name"),
        (with("system", json!("")), "system"),
        (with("external_id", json!("x".repeat(201))), "external_id"),
    ] {
        let shown = body.to_string();
        let err = env
            .assert_refused(
                Method::POST,
                "/v1/deployables",
                Some(body),
                (422, "validation_failed", Some(field)),
            )
            .await;
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
        if field == "automation_id" && shown.contains(draft) {
            assert!(err.to_string().contains("publish it first"), "{err}");
        }
    }
    let mut missing = good.clone();
    missing.as_object_mut().expect("object").remove("link");
    env.assert_refused(
        Method::POST,
        "/v1/deployables",
        Some(missing),
        (422, "invalid_body", Some("link")),
    )
    .await;
    env.stop().await;
}

#[tokio::test]
async fn an_item_is_its_tenants_and_registered_by_those_who_run_automations() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let automation = env.lead_automation().await;
    let good = item(&automation, "flow-1", "flow", "Web", "Tour");
    let viewer = env.token(Role::Viewer).await;
    let (status, _) = env
        .call_as(&viewer, Method::POST, "/v1/deployables", Some(good.clone()))
        .await;
    assert_eq!(status, 403);
    env.assert_refused(
        Method::GET,
        "/v1/deployables?kind=tour",
        None,
        (422, "validation_failed", Some("kind")),
    )
    .await;

    let (status, mine) = env
        .call(Method::POST, "/v1/deployables", Some(good.clone()))
        .await;
    assert_eq!(status, 201, "{mine}");
    let other = aic_control_plane::tenants::create_tenant(&env.pool, "globex")
        .await
        .expect("tenant");
    let (status, err) = env
        .call_as(&other.token, Method::POST, "/v1/deployables", Some(good))
        .await;
    assert_eq!(
        (status.as_u16(), err["error"]["field"].as_str()),
        (422, Some("automation_id")),
        "{err}"
    );
    assert!(listed(&env, &other.token, "").await.is_empty());
    let theirs = format!("/v1/deployables/{}", mine["id"].as_str().expect("id"));
    let (status, _) = env
        .call_as(&other.token, Method::DELETE, &theirs, None)
        .await;
    assert_eq!(status, 404, "another tenant's item is not found");
    let (status, _) = env
        .call(Method::DELETE, "/v1/deployables/garbage", None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(listed(&env, &env.admin_token, "").await, ["Tour"]);
    env.stop().await;
}
