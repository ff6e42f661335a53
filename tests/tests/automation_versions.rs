//! An automation's version history through the API: listed with who published what on which
//! connection, renamed, restored (and run), and deleted one by one or several at once — never
//! the live one, and a number is never given twice; an unchanged draft makes no new one.

use aic_tests::harness::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// A published lead automation with a second version, "Job titles", whose parameter table
/// renames `Title` to `JobTitle`: its id, path and the two versions' ids (1, 2).
async fn two_versions(env: &TestEnv) -> (String, String, Value, Value) {
    let automation = env.lead_automation().await;
    let path = format!("/v1/automations/{automation}");
    let (_, current) = env.call(Method::GET, &path, None).await;
    let params = env
        .parameters_renamed(&automation, "Title", "JobTitle")
        .await;
    let (status, edited) = env
        .call(Method::PATCH, &path, Some(json!({"parameters": params})))
        .await;
    assert_eq!(status, 200, "{edited}");
    let (status, v2) = env
        .call(
            Method::POST,
            &format!("{path}/publish"),
            Some(json!({"version_name": "Job titles"})),
        )
        .await;
    assert_eq!(status, 201, "{v2}");
    let v1 = current["published_version"]["id"].clone();
    (automation, path, v1, v2["id"].clone())
}

/// The history's (number, name, live) entries, newest first.
async fn history(env: &TestEnv, path: &str) -> Vec<(i64, String, bool)> {
    let (status, list) = env
        .call(Method::GET, &format!("{path}/versions"), None)
        .await;
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .expect("entries")
        .iter()
        .map(|v| {
            let name = v["name"].as_str().expect("name").to_string();
            (
                v["number"].as_i64().expect("number"),
                name,
                v["live"] == true,
            )
        })
        .collect()
}

#[tokio::test]
async fn the_history_lists_each_version_and_renames_it() {
    let env = TestEnv::start().await;
    let (_, path, _, _) = two_versions(&env).await;
    assert_eq!(
        history(&env, &path).await,
        [
            (2, "Job titles".into(), true),
            (1, "Version 1".into(), false)
        ]
    );
    let (_, list) = env
        .call(Method::GET, &format!("{path}/versions"), None)
        .await;
    assert_eq!(list[0]["published_by"], "initial admin", "{list}");
    assert_eq!(list[1]["connection"]["name"], "Sales org", "{list}");
    assert_eq!(list[1]["connection"]["status"], "untested", "{list}");

    let v1 = format!("{path}/versions/1");
    let (status, renamed) = env
        .call(Method::PATCH, &v1, Some(json!({"name": "Original"})))
        .await;
    assert_eq!(
        (status.as_u16(), renamed["name"].as_str()),
        (200, Some("Original"))
    );
    let (status, err) = env
        .call(Method::PATCH, &v1, Some(json!({"name": " "})))
        .await;
    assert_eq!(
        (status.as_u16(), err["error"]["field"].as_str()),
        (422, Some("name"))
    );
    let long = "x".repeat(201);
    let (status, err) = env
        .call(Method::PATCH, &v1, Some(json!({"name": long})))
        .await;
    assert_eq!(
        (status.as_u16(), err["error"]["field"].as_str()),
        (422, Some("name"))
    );
    let missing = env
        .call(
            Method::PATCH,
            &format!("{path}/versions/9"),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(missing.0, 404, "{}", missing.1);
    assert_eq!(history(&env, &path).await[1].1, "Original");
    env.stop().await;
}

#[tokio::test]
async fn a_restored_version_runs_again_and_is_announced() {
    let env = TestEnv::start().await;
    let (automation, path, v1, _) = two_versions(&env).await;
    let mut events = env
        .listen(&env.names.definitions_exchange, "definition.published")
        .await;
    let (status, restored) = env
        .call(Method::POST, &format!("{path}/versions/1/restore"), None)
        .await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["published_version"]["number"], 1, "{restored}");
    let draft = restored["parameters"].as_array().expect("draft");
    assert!(
        draft.iter().any(|p| p["name"] == "Title"),
        "the draft is version 1's"
    );
    let event = events
        .next_json(Duration::from_secs(10))
        .await
        .expect("a definition event");
    assert_eq!(
        (
            event["version_id"].clone(),
            event["version_number"].as_i64()
        ),
        (v1.clone(), Some(1))
    );

    let done = env
        .run(
            &automation,
            json!({"LastName": "A", "Company": "B", "Title": "CTO"}),
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["version_id"], v1, "the restored version ran");
    assert_eq!(
        history(&env, &path).await,
        [
            (2, "Job titles".into(), false),
            (1, "Version 1".into(), true)
        ]
    );
    let missing = env
        .call(Method::POST, &format!("{path}/versions/7/restore"), None)
        .await;
    assert_eq!(missing.0, 404, "{}", missing.1);
    env.stop().await;
}

#[tokio::test]
async fn versions_are_deleted_but_never_the_live_one_nor_a_number_twice() {
    let env = TestEnv::start().await;
    let (automation, path, _, v2) = two_versions(&env).await;
    let done = env
        .run(
            &automation,
            json!({"LastName": "A", "Company": "B", "JobTitle": "CTO"}),
        )
        .await;
    assert_eq!(done["version_id"], v2, "{done}");
    let (status, err) = env
        .call(Method::DELETE, &format!("{path}/versions/2"), None)
        .await;
    assert_eq!(
        (status.as_u16(), err["error"]["code"].as_str()),
        (409, Some("version_live"))
    );
    env.call(Method::POST, &format!("{path}/versions/1/restore"), None)
        .await;
    let deleted = env
        .call(Method::DELETE, &format!("{path}/versions/2"), None)
        .await;
    assert_eq!(deleted.0, 204, "{}", deleted.1);
    // Version 2's table again, after its version was deleted: a new version.
    let params = env
        .parameters_renamed(&automation, "Title", "JobTitle")
        .await;
    env.call(Method::PATCH, &path, Some(json!({"parameters": params})))
        .await;
    let (_, v3) = env
        .call(Method::POST, &format!("{path}/publish"), None)
        .await;
    assert_eq!(
        v3["number"], 3,
        "a deleted version's number is not given again: {v3}"
    );

    let bulk = format!("{path}/versions/delete");
    let refusals = [
        (json!({"numbers": [1, 99]}), 422, "numbers[1]"),
        (json!({"numbers": [1, 3]}), 409, "version_live"),
        (json!({"numbers": []}), 422, "numbers"),
    ];
    for (body, status, what) in refusals {
        let (got, err) = env.call(Method::POST, &bulk, Some(body.clone())).await;
        assert_eq!(got.as_u16(), status, "{body}: {err}");
        let said = [&err["error"]["field"], &err["error"]["code"]];
        assert!(said.iter().any(|s| *s == what), "{body}: {err}");
    }
    assert_eq!(
        history(&env, &path).await.len(),
        2,
        "a refused bulk delete deletes nothing"
    );
    let (status, deleted) = env
        .call(Method::POST, &bulk, Some(json!({"numbers": [1]})))
        .await;
    assert_eq!(
        (status.as_u16(), &deleted["deleted"]),
        (200, &json!([1])),
        "{deleted}"
    );
    assert_eq!(history(&env, &path).await, [(3, "Version 3".into(), true)]);
    // The execution that ran version 2 still names it.
    let id = done["id"].as_str().expect("id");
    let (_, kept) = env
        .call(Method::GET, &format!("/v1/executions/{id}"), None)
        .await;
    assert_eq!(kept["version_id"], v2, "{kept}");
    env.stop().await;
}

/// Publishing a draft unchanged since the live version makes no identical version: answered
/// 200 with the live version, nothing announced or audited; naming it otherwise is refused
/// (409 `draft_unchanged`, pointing at a rename). A change — even back to an older version's
/// table — is a new version.
#[tokio::test]
async fn an_unchanged_draft_publishes_no_new_version() {
    let env = TestEnv::start().await;
    let (automation, path, _, v2) = two_versions(&env).await;
    let publishing = format!("{path}/publish");
    let publish = |body: Value| env.call(Method::POST, &publishing, Some(body));
    let mut events = env
        .listen(&env.names.definitions_exchange, "definition.published")
        .await;
    let audited = env.audit_events("?action=automation.published").await.len();

    for body in [json!({}), json!({"version_name": "Job titles"})] {
        let (status, again) = publish(body).await;
        assert_eq!(
            (status.as_u16(), &again["id"], again["number"].as_i64()),
            (200, &v2, Some(2)),
            "{again}"
        );
    }
    let (status, named) = publish(json!({"version_name": "Renamed"})).await;
    assert_eq!(
        (status.as_u16(), named["error"]["code"].as_str()),
        (409, Some("draft_unchanged")),
        "{named}"
    );
    let message = named["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("version 2") && message.contains("rename"),
        "{named}"
    );
    assert_eq!(history(&env, &path).await.len(), 2, "no identical version");
    assert!(
        events.next(Duration::from_millis(500)).await.is_none(),
        "nothing announced"
    );
    let now = env.audit_events("?action=automation.published").await;
    assert_eq!(now.len(), audited, "nothing audited");

    let params = env
        .parameters_renamed(&automation, "JobTitle", "Title")
        .await;
    let (status, edited) = env
        .call(Method::PATCH, &path, Some(json!({"parameters": params})))
        .await;
    assert_eq!(status, 200, "{edited}");
    let (status, v3) = publish(json!({})).await;
    assert_eq!(
        (status.as_u16(), v3["number"].as_i64()),
        (201, Some(3)),
        "{v3}"
    );
    assert!(events.next(Duration::from_secs(10)).await.is_some());
    env.stop().await;
}
