//! Service tokens limited to some automations (`"automations"` on `POST /v1/tokens`): they run
//! those, read their executions and register their deployables alone; a scope is a service
//! token's, names automations of the tenant, and shrinks as they are deleted.

use aic_tests::harness::{Options, TestEnv};
use reqwest::Method;
use serde_json::json;

/// A service token limited to some automations runs those, reads their executions and
/// registers their deployables — and is refused the others, which an unlimited token reaches.
/// A scope is for service tokens only, names at least one automation of the tenant, is shown in
/// the list and the audit trail, and shrinks when an automation is deleted.
#[tokio::test]
async fn a_service_token_limited_to_some_automations_reaches_those_alone() {
    let env = TestEnv::start().await;
    let bot_lead = env.lead_automation().await;
    let conn = env
        .salesforce_connection("Second org", "s3cret-value", "s3cret-value")
        .await;
    let conn = conn["id"].as_str().expect("id");
    let other = env
        .published_automation("salesforce.create_lead", conn, "Other lead", None)
        .await;
    let body = json!({"name": "bot", "role": "service", "automations": [bot_lead, bot_lead]});
    let (status, issued) = env.call(Method::POST, "/v1/tokens", Some(body)).await;
    assert_eq!(status, 201, "{issued}");
    assert_eq!(issued["automations"], json!([bot_lead]), "{issued}");
    let bot = issued["token"].as_str().expect("token");
    let envr = &env;
    let run = |automation: &str| {
        let path = format!("/v1/automations/{automation}/executions");
        let body = json!({"parameters": {"LastName": "Scoped", "Company": "Least Privilege"}});
        async move { envr.call_as(bot, Method::POST, &path, Some(body)).await }
    };

    let (status, queued) = run(&bot_lead).await;
    assert_eq!(status, 202, "{queued}");
    let mine = queued["execution_id"].as_str().expect("id").to_string();
    env.wait_final(&mine).await;
    let (status, read) = env
        .call_as(bot, Method::GET, &format!("/v1/executions/{mine}"), None)
        .await;
    assert_eq!(
        (status.as_u16(), read["status"].as_str()),
        (200, Some("succeeded"))
    );

    let (status, refused) = run(&other).await;
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains(&other),
        "{refused}"
    );
    let theirs = env
        .enqueue(
            &other,
            json!({"LastName": "Admin", "Company": "Everything"}),
        )
        .await;
    let (status, _) = env
        .call_as(bot, Method::GET, &format!("/v1/executions/{theirs}"), None)
        .await;
    assert_eq!(status, 403, "another automation's execution");

    let item = |automation: &str, id: &str| {
        json!({"automation_id": automation, "kind": "bot_step", "system": "ActionBot",
               "external_id": id, "name": id, "link": "https://example.com/bot"})
    };
    let (status, mine_item) = env
        .call_as(
            bot,
            Method::POST,
            "/v1/deployables",
            Some(item(&bot_lead, "mine")),
        )
        .await;
    assert_eq!(status, 201, "{mine_item}");
    let (status, _) = env
        .call_as(
            bot,
            Method::POST,
            "/v1/deployables",
            Some(item(&other, "not-mine")),
        )
        .await;
    assert_eq!(status, 403);
    let (status, theirs) = env
        .call(
            Method::POST,
            "/v1/deployables",
            Some(item(&other, "theirs")),
        )
        .await;
    assert_eq!(status, 201, "{theirs}");
    let (_, seen) = env.call_as(bot, Method::GET, "/v1/deployables", None).await;
    let seen: Vec<&str> = seen
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|d| d["external_id"].as_str())
        .collect();
    assert_eq!(seen, ["mine"]);
    let theirs = format!("/v1/deployables/{}", theirs["id"].as_str().expect("id"));
    let (status, _) = env.call_as(bot, Method::DELETE, &theirs, None).await;
    assert_eq!(status, 404, "not the bot's to remove");
    let mine_item = format!("/v1/deployables/{}", mine_item["id"].as_str().expect("id"));
    let (status, _) = env.call_as(bot, Method::DELETE, &mine_item, None).await;
    assert_eq!(status, 204, "the bot's own");

    let (_, trail) = env
        .call(Method::GET, "/v1/audit-events?action=token.issued", None)
        .await;
    assert_eq!(
        trail["events"][0]["detail"]["automations"],
        json!([bot_lead]),
        "{trail}"
    );

    // Its automation deleted, the token reaches none — not every one.
    let (status, _) = env
        .call(Method::DELETE, &format!("/v1/automations/{bot_lead}"), None)
        .await;
    assert_eq!(status, 204);
    let listed = env.listed_token(issued["id"].as_str().expect("id")).await;
    assert_eq!(listed["automations"], json!([]), "{listed}");
    assert_eq!(run(&other).await.0, 403);
    env.stop().await;
}

#[tokio::test]
async fn a_scope_names_automations_of_the_tenant_for_a_service_token() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    for (body, why) in [
        (
            json!({"name": "x", "role": "editor", "automations": [unknown]}),
            "only a service token",
        ),
        (
            json!({"name": "x", "role": "service", "automations": []}),
            "name at least one",
        ),
        (
            json!({"name": "x", "role": "service", "automations": [unknown]}),
            "there is no automation",
        ),
        (
            json!({"name": "x", "role": "service", "automations": ["nope"]}),
            "automations[0]",
        ),
    ] {
        let (status, err) = env
            .call(Method::POST, "/v1/tokens", Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body}: {err}");
        // A wrong value names its field; a body that does not decode names it in the message.
        let named = err["error"]["field"]
            .as_str()
            .or(err["error"]["message"].as_str())
            .unwrap_or("");
        assert!(named.contains("automations"), "{err}");
        assert!(err.to_string().contains(why), "{body}: {err}");
    }
    let (_, list) = env.call(Method::GET, "/v1/tokens", None).await;
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(1),
        "nothing issued: {list}"
    );
    env.stop().await;
}

/// `aic-control-plane create-token` issues the same limited tokens, recorded in the tenant's
/// trail by the command, and refuses a limit it cannot honour, saying why.
#[tokio::test]
async fn the_command_line_issues_limited_tokens_too() {
    use secrecy::ExposeSecret;
    let env = TestEnv::start_with(Options::api_only()).await;
    let automation = env.lead_automation().await;
    let (db, _) = env.settings();
    let create = |args: &[&str]| {
        let out = std::process::Command::new(TestEnv::binary("aic-control-plane"))
            .args(["create-token", "--tenant", "acme", "--name", "nightly bot"])
            .args(args)
            .env("AIC_DATABASE_URL", db.database_url.expose_secret())
            .output()
            .expect("runs");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said)
    };
    let (ok, said) = create(&["--role", "service", "--automation", &automation]);
    assert!(ok, "{said}");
    let issued: serde_json::Value = serde_json::from_str(said.trim()).expect("json");
    let id = issued["token_id"].as_str().expect("id");
    assert_eq!(
        env.listed_token(id).await["automations"],
        json!([automation])
    );
    let (_, trail) = env
        .call(Method::GET, "/v1/audit-events?action=token.issued", None)
        .await;
    let event = &trail["events"][0];
    assert_eq!(
        (event["actor_name"].as_str(), event["target_id"].as_str()),
        (Some("create-token"), Some(id)),
        "{trail}"
    );
    assert_eq!(
        event["detail"]["automations"],
        json!([automation]),
        "{trail}"
    );
    // The tenant as its name reads, whatever its case.
    let upper = std::process::Command::new(TestEnv::binary("aic-control-plane"))
        .args([
            "create-token",
            "--tenant",
            "ACME",
            "--name",
            "ops",
            "--role",
            "viewer",
        ])
        .env("AIC_DATABASE_URL", db.database_url.expose_secret())
        .output()
        .expect("runs");
    assert!(
        upper.status.success(),
        "{}",
        String::from_utf8_lossy(&upper.stderr)
    );

    let unknown = uuid::Uuid::now_v7().to_string();
    for (args, why) in [
        (
            vec!["--role", "editor", "--automation", automation.as_str()],
            "limits a service token only",
        ),
        (
            vec!["--role", "service", "--automation", unknown.as_str()],
            "there is no automation",
        ),
        (
            vec!["--role", "service", "--automation", "nope"],
            "--automation",
        ),
    ] {
        let (ok, said) = create(&args);
        assert!(!ok && said.contains(why), "{args:?}: {said}");
    }
    env.stop().await;
}
