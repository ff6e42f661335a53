//! Request bodies. The operations whose body may be left out (publish, duplicate, re-run): no
//! body at all takes the defaults, and a body sent is read as every other one is — JSON only
//! (whitespace alone is none), its content type, and a NUL character refused naming its field
//! rather than failing the database with a 500. A body over the limit is a 413 saying so.

use aic_tests::harness::{Options, TestEnv};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// POSTs `body` as sent, with `content_type` (none: no header): the status and the answer.
async fn post(env: &TestEnv, path: &str, content_type: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", env.api))
        .bearer_auth(&env.admin_token)
        .body(body.to_string());
    if let Some(content_type) = content_type {
        req = req.header("content-type", content_type);
    }
    let resp = req.send().await.expect("answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_body_left_out_takes_the_defaults_and_one_sent_is_read_as_any_other() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let automation = env.lead_automation().await;
    let duplicate = format!("/v1/automations/{automation}/duplicate");
    let json = Some("application/json");

    // None at all, with or without a content type: the defaults.
    for content_type in [None, json] {
        let (status, copy) = post(&env, &duplicate, content_type, "").await;
        assert_eq!(status, StatusCode::CREATED.as_u16(), "{copy}");
        assert!(
            copy["name"].as_str().is_some_and(|n| n.contains("(copy")),
            "{copy}"
        );
    }
    let (status, copy) = post(&env, &duplicate, json, r#"{"name": "Named copy"}"#).await;
    assert_eq!((status, &copy["name"]), (201, &Value::from("Named copy")));
    // As PowerShell's and .NET's UTF-8 writers send it: a byte order mark first.
    let marked = "\u{feff}{\"name\": \"Marked copy\"}";
    let (status, copy) = post(&env, &duplicate, json, marked).await;
    assert_eq!((status, &copy["name"]), (201, &Value::from("Marked copy")));

    let publish = format!("/v1/automations/{automation}/publish");
    let rerun = format!("/v1/executions/{}/rerun", uuid::Uuid::now_v7());
    let refused = [
        (&duplicate, json, "\r\n", 422, None),
        // Read by position into the body's fields, an array renamed the copy.
        (&duplicate, json, r#"["By position"]"#, 422, None),
        (&duplicate, json, " null", 422, None),
        (&duplicate, json, r#"{"name": "#, 422, None),
        (
            &duplicate,
            Some("text/plain"),
            r#"{"name": "Plain"}"#,
            415,
            None,
        ),
        (
            &duplicate,
            json,
            r#"{"name": "a\u0000b"}"#,
            422,
            Some("name"),
        ),
        (
            &publish,
            json,
            r#"{"version_name": "v\u0000"}"#,
            422,
            Some("version_name"),
        ),
        (&rerun, json, r#"{"allow": "\u0000"}"#, 422, Some("allow")),
        (&rerun, json, " ", 422, None),
    ];
    for (path, content_type, body, expected, field) in refused {
        let (status, err) = post(&env, path, content_type, body).await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (expected, Some("invalid_body")),
            "{path} {body:?}: {err}"
        );
        assert_eq!(
            err["error"]["field"].as_str(),
            field,
            "{path} {body:?}: {err}"
        );
    }
    let (_, err) = post(&env, &duplicate, json, r#"["By position"]"#).await;
    assert_eq!(
        err["error"]["message"],
        "the body must be a JSON object ({…}), not an array"
    );
    // Nothing refused was made: the two copies and the two named ones, and no version.
    let (_, list) = env
        .call(reqwest::Method::GET, "/v1/automations", None)
        .await;
    let names: Vec<&str> = list["automations"]
        .as_array()
        .or(list.as_array())
        .expect("a list")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
    env.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_as_too_large() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let automation = env.lead_automation().await;
    let long = format!(r#"{{"name": "{}"}}"#, "n".repeat(3 << 20));
    let just_under = format!(r#"{{"name": "{}"}}"#, "n".repeat((2 << 20) - 20));
    let duplicate = format!("/v1/automations/{automation}/duplicate");
    for path in ["/v1/connections", duplicate.as_str()] {
        let (status, err) = post(&env, path, Some("application/json"), &long).await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (413, Some("body_too_large")),
            "{path}: {err}"
        );
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("over the 2 MiB"), "{message}");
        // Within the limit, the body is read: here refused for what it says, not its size.
        let (status, err) = post(&env, path, Some("application/json"), &just_under).await;
        assert_eq!(status, 422, "{path}: {err}");
    }
    env.stop().await;
}

#[tokio::test]
async fn an_executions_source_is_a_label_not_a_payload() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let automation = env.lead_automation().await;
    let path = format!("/v1/automations/{automation}/executions");
    let with = |source: String| {
        json!({"parameters": {"LastName": "A", "Company": "B"}, "source": source}).to_string()
    };
    let (status, answer) = post(
        &env,
        &path,
        Some("application/json"),
        &with("f".repeat(200)),
    )
    .await;
    assert_eq!(status, 202, "200 characters are a label: {answer}");
    for (source, says) in [
        (
            "f".repeat(500_000),
            "source is 500000 characters long; at most 200",
        ),
        ("flow:a\nflow:b".to_string(), "control characters (U+000A)"),
    ] {
        let (status, err) = post(&env, &path, Some("application/json"), &with(source)).await;
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (422, Some("source")),
            "{err}"
        );
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{message}");
    }
    env.stop().await;
}
