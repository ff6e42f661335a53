//! An automation's life after its creation, through the API: pause and resume, draft edits that
//! wait for a publish, duplicates and deletion — each checked by what the worker then does. Its
//! version history: `automation_versions.rs`.

use aic_control_plane::auth::Role;
use aic_tests::harness::{Options, TestEnv, assert_failed_with};
use reqwest::Method;
use serde_json::{Value, json};

/// The JSON body of every Lead the sandbox received.
fn leads(env: &TestEnv) -> Vec<Value> {
    env.sandbox
        .requests_to("/sobjects/Lead/")
        .iter()
        .map(|r| serde_json::from_str(&r.body).expect("a JSON body"))
        .collect()
}

#[tokio::test]
async fn a_paused_automation_refuses_its_executions_until_resumed() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let path = format!("/v1/automations/{automation}");
    let (status, paused) = env
        .call(Method::PATCH, &path, Some(json!({"status": "paused"})))
        .await;
    assert_eq!(
        (status.as_u16(), paused["status"].as_str()),
        (200, Some("paused")),
        "{paused}"
    );

    let run = json!({"parameters": {"LastName": "A", "Company": "B"}});
    let (status, refused) = env
        .call(Method::POST, &format!("{path}/executions"), Some(run))
        .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "automation_paused", "{refused}");
    // A request sent straight over AMQP reaches the worker, which reads the same status.
    let mut replies = env.listen("", "").await;
    let (_, body) = env.request(&automation, json!({"LastName": "A", "Company": "B"}));
    let result = env.ask(&mut replies, &body).await;
    assert_failed_with(Some(result), "automation_paused", &["paused"]);
    assert!(leads(&env).is_empty());

    let (status, resumed) = env
        .call(Method::PATCH, &path, Some(json!({"status": "running"})))
        .await;
    assert_eq!(
        (status.as_u16(), resumed["status"].as_str()),
        (200, Some("running"))
    );
    let done = env
        .run(&automation, json!({"LastName": "A", "Company": "B"}))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(leads(&env).len(), 1);
    env.stop().await;
}

#[tokio::test]
async fn draft_edits_run_only_once_published() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let path = format!("/v1/automations/{automation}");
    let params = env
        .parameters_renamed(&automation, "Title", "JobTitle")
        .await;
    let (status, edited) = env
        .call(
            Method::PATCH,
            &path,
            Some(json!({"parameters": params, "description": "Leads from the web"})),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["description"], "Leads from the web");
    assert_eq!(edited["published_version"]["number"], 1, "{edited}");

    let with_job_title = json!({"LastName": "A", "Company": "B", "JobTitle": "CTO"});
    // The live version still knows no JobTitle: the API checks a request against it.
    let (status, before) = env
        .call(
            Method::POST,
            &format!("{path}/executions"),
            Some(json!({"parameters": with_job_title})),
        )
        .await;
    assert_eq!(status, 422, "{before}");
    assert_eq!(before["error"]["field"], "parameters.JobTitle", "{before}");

    let (status, v2) = env
        .call(Method::POST, &format!("{path}/publish"), None)
        .await;
    assert_eq!(status, 201, "{v2}");
    let after = env.run(&automation, with_job_title).await;
    assert_eq!(after["status"], "succeeded", "{after}");
    assert_eq!(after["version_id"], v2["id"], "{after}");
    assert_eq!(leads(&env)[0]["Title"], "CTO");
    env.stop().await;
}

#[tokio::test]
async fn bad_edits_are_refused_naming_the_field() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let automation = env.lead_automation().await;
    let path = format!("/v1/automations/{automation}");
    let (_, first) = env.call(Method::GET, &path, None).await;
    let connection = first["connection_id"].as_str().expect("connection");
    let other = env
        .published_automation("salesforce.create_lead", connection, "Other lead", None)
        .await;
    let jira = env.jira_connection("t0k3n").await;
    let no_last_name: Vec<Value> = env
        .parameters_renamed(&automation, "Title", "JobTitle")
        .await
        .as_array()
        .expect("parameters")
        .iter()
        .filter(|p| p["name"] != "LastName")
        .cloned()
        .collect();
    // The draft's parameters with `extra` set on the one named, and that one's field path.
    let with = |name: &str, extra: Value, field: &str| {
        let mut params = first["parameters"].as_array().expect("parameters").clone();
        let i = params.iter().position(|p| p["name"] == name).expect(name);
        for (k, v) in extra.as_object().expect("an object") {
            params[i][k] = v.clone();
        }
        (
            json!({"parameters": params}),
            format!("parameters[{i}].{field}"),
        )
    };
    let limits = [
        // A key the table does not know (a typo) is refused, not dropped.
        (
            with("Title", json!({"max_lenght": 10}), "max_lenght"),
            "invalid_body",
        ),
        (
            with("NumberOfEmployees", json!({"maximum": 1.5}), "maximum"),
            "validation_failed",
        ),
        (
            with(
                "NumberOfEmployees",
                json!({"minimum": 10, "maximum": 5}),
                "maximum",
            ),
            "validation_failed",
        ),
        (
            with("Title", json!({"minimum": 1}), "minimum"),
            "validation_failed",
        ),
        (
            with(
                "NumberOfEmployees",
                json!({"allowed_values": ["1"]}),
                "allowed_values",
            ),
            "validation_failed",
        ),
        (
            with(
                "LeadSource",
                json!({"allowed_values": ["Web", "Web"]}),
                "allowed_values[1]",
            ),
            "validation_failed",
        ),
        (
            with(
                "Title",
                json!({"allowed_values": ["CTO", "x".repeat(129)]}),
                "allowed_values[1]",
            ),
            "validation_failed",
        ),
    ];
    // Text past what a reader takes in.
    // The draft's own table (its required fields kept) with custom fields to 501 rows.
    let mut many = first["parameters"].as_array().expect("parameters").clone();
    let more = 501 - many.len();
    many.extend((0..more).map(|i| {
        json!({"name": format!("p{i}"), "type": "string", "target": format!("F{i}__c"), "required": false})
    }));
    let limits = limits.into_iter().chain([
        (
            with(
                "Title",
                json!({"description": "d".repeat(1_001)}),
                "description",
            ),
            "validation_failed",
        ),
        (
            (
                json!({"description": "d".repeat(4_001)}),
                "description".into(),
            ),
            "validation_failed",
        ),
        (
            (json!({"parameters": many}), "parameters".into()),
            "validation_failed",
        ),
    ]);
    for ((body, field), code) in limits {
        env.assert_refused(Method::PATCH, &path, Some(body), (422, code, Some(&field)))
            .await;
    }
    let cases = [
        (
            json!({"name": "  "}),
            422,
            "validation_failed",
            Some("name"),
        ),
        (json!({"name": "Other lead"}), 409, "name_taken", None),
        // What cannot be cleared is not read as left out (a 200 that changed nothing).
        (json!({"name": null}), 422, "invalid_body", Some("name")),
        (json!({"status": null}), 422, "invalid_body", Some("status")),
        (
            json!({"parameters": null}),
            422,
            "invalid_body",
            Some("parameters"),
        ),
        (
            json!({"connection_id": null}),
            422,
            "invalid_body",
            Some("connection_id"),
        ),
        (
            json!({"name": "Lead\u{202e}daeL"}),
            422,
            "validation_failed",
            Some("name"),
        ),
        (
            json!({"status": "stopped"}),
            422,
            "invalid_body",
            Some("status"),
        ),
        (
            json!({"parameters": no_last_name}),
            422,
            "validation_failed",
            Some("parameters"),
        ),
        (
            json!({"connection_id": jira}),
            422,
            "validation_failed",
            Some("connection_id"),
        ),
        (
            json!({"retry": {"max_attempts": 0}}),
            422,
            "validation_failed",
            Some("retry.max_attempts"),
        ),
        (
            json!({"external_id_field": "Bad"}),
            422,
            "validation_failed",
            Some("external_id_field"),
        ),
        (
            json!({"colour": "red"}),
            422,
            "invalid_body",
            Some("colour"),
        ),
        // A field deep in the body is named by its path.
        (
            json!({"parameters": [{"name": "LastName", "type": "string", "target": "LastName", "max_length": "long"}]}),
            422,
            "invalid_body",
            Some("parameters[0].max_length"),
        ),
    ];
    for (body, status, code, field) in cases {
        env.assert_refused(Method::PATCH, &path, Some(body), (status, code, field))
            .await;
    }
    let (_, unchanged) = env.call(Method::GET, &path, None).await;
    assert_eq!(
        unchanged["name"], "Create lead",
        "nothing of a refused edit stays"
    );
    assert!(
        unchanged["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .any(|p| p["name"] == "Title"),
        "{unchanged}"
    );
    // A description's `null` empties it, as JSON Merge Patch reads it.
    let given = Some(json!({"description": "Web leads"}));
    let (status, described) = env.call(Method::PATCH, &path, given).await;
    assert_eq!(
        (status.as_u16(), &described["description"]),
        (200, &json!("Web leads"))
    );
    let given = Some(json!({"description": null}));
    let (status, emptied) = env.call(Method::PATCH, &path, given).await;
    assert_eq!(
        (status.as_u16(), &emptied["description"]),
        (200, &json!(""))
    );
    let viewer = env.token(Role::Viewer).await;
    let (status, _) = env
        .call_as(
            &viewer,
            Method::PATCH,
            &path,
            Some(json!({"status": "paused"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = env
        .call(Method::PATCH, "/v1/automations/not-an-id", Some(json!({})))
        .await;
    assert_eq!(status, 404);
    let (status, _) = env
        .call(
            Method::PATCH,
            &format!("/v1/automations/{other}"),
            Some(json!({"name": "Create lead (copy)"})),
        )
        .await;
    assert_eq!(status, 200, "a free name is taken");
    env.stop().await;
}

#[tokio::test]
async fn duplicates_are_unpublished_copies_under_free_names() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let automation = env.lead_automation().await;
    let path = format!("/v1/automations/{automation}");
    let (_, original) = env.call(Method::GET, &path, None).await;
    let (status, copy) = env
        .call(Method::POST, &format!("{path}/duplicate"), None)
        .await;
    assert_eq!(status, 201, "{copy}");
    assert_eq!(copy["name"], "Create lead (copy)");
    assert_ne!(copy["id"], original["id"]);
    assert!(copy["published_version"].is_null(), "{copy}");
    for field in [
        "template",
        "connection_id",
        "parameters",
        "description",
        "status",
    ] {
        assert_eq!(copy[field], original[field], "{field}");
    }
    let (_, second) = env
        .call(Method::POST, &format!("{path}/duplicate"), None)
        .await;
    assert_eq!(second["name"], "Create lead (copy 2)", "{second}");
    let (status, named) = env
        .call(
            Method::POST,
            &format!("{path}/duplicate"),
            Some(json!({"name": "Web leads"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), named["name"].as_str()),
        (201, Some("Web leads"))
    );
    let (status, taken) = env
        .call(
            Method::POST,
            &format!("{path}/duplicate"),
            Some(json!({"name": "Web leads"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), taken["error"]["code"].as_str()),
        (409, Some("name_taken"))
    );
    let (_, all) = env.call(Method::GET, "/v1/automations", None).await;
    assert_eq!(all.as_array().map(Vec::len), Some(4), "{all}");
    env.stop().await;
}

#[tokio::test]
async fn a_deleted_automation_keeps_its_executions_records() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let path = format!("/v1/automations/{automation}");
    let done = env
        .run(&automation, json!({"LastName": "A", "Company": "B"}))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (status, _) = env.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    assert_eq!(env.call(Method::GET, &path, None).await.0, 404);
    assert_eq!(env.call(Method::DELETE, &path, None).await.0, 404);
    let (status, kept) = env
        .call(
            Method::GET,
            &format!("/v1/executions/{}", done["id"].as_str().expect("id")),
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), &kept["status"]),
        (200, &json!("succeeded")),
        "{kept}"
    );
    let versions: i64 = env
        .query_one("SELECT count(*) FROM automation_versions", &[])
        .await
        .get(0);
    assert_eq!(versions, 0, "its versions went with it");
    let mut replies = env.listen("", "").await;
    let (_, body) = env.request(&automation, json!({"LastName": "A", "Company": "B"}));
    let result = env.ask(&mut replies, &body).await;
    assert_failed_with(Some(result), "unknown_automation", &["does not exist"]);
    assert_eq!(leads(&env).len(), 1);
    env.stop().await;
}
