//! Conformance with the vendors' published specifications: every Jira request the worker sends
//! validates against the `createIssue` / `addComment` request schemas of Atlassian's OpenAPI
//! document, and every Slack reply the sandbox sends validates against the `chat.postMessage`
//! response schemas of Slack's Web API spec.

use aic_tests::harness::TestEnv;
use aic_tests::sandbox::Sandbox;
use serde_json::{Value, json};

fn spec(file: &str) -> Value {
    let path = format!("{}/vendor-specs/{file}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("spec file")).expect("spec parses")
}

/// A validator for the schema at `pointer` inside `document` (refs resolve within it).
fn validator(document: &Value, pointer: &str, draft: jsonschema::Draft) -> jsonschema::Validator {
    let mut root = document.clone();
    root["$ref"] = json!(format!("#{pointer}"));
    jsonschema::options()
        .with_draft(draft)
        .build(&root)
        .expect("the schema compiles")
}

fn assert_valid(v: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = v
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match the vendor's schema: {errors:?}\n{instance}"
    );
}

#[tokio::test]
async fn every_jira_request_the_worker_sends_matches_atlassians_schemas() {
    let jira = spec("jira-cloud-platform-v3.openapi.json");
    let create = validator(
        &jira,
        "/paths/~1rest~1api~13~1issue/post/requestBody/content/application~1json/schema",
        jsonschema::Draft::Draft4,
    );
    let comment = validator(
        &jira,
        "/paths/~1rest~1api~13~1issue~1%7BissueIdOrKey%7D~1comment/post/requestBody/content/application~1json/schema",
        jsonschema::Draft::Draft4,
    );

    // The validators can fail: a malformed request is rejected.
    assert!(!create.is_valid(&json!({"fields": "not an object"})));
    assert!(!comment.is_valid(&json!({"body": {"type": "doc"}, "visibility": "everyone"})));

    let env = TestEnv::start().await;
    let conn_id = &env.jira_connection("t").await;
    let issue = env
        .published_automation("jira.create_issue", conn_id, "Issue", None)
        .await;
    let note = env
        .published_automation("jira.add_comment", conn_id, "Comment", None)
        .await;
    let runs = [
        json!({"project": "ENG", "issue_type": "Task", "summary": "Minimal"}),
        json!({"project": "OPS", "issue_type": "Bug", "summary": "Full", "description": "a\nb\n\nc", "priority": "Low", "labels": ["x", "y"], "assignee": "5b10a2844c20165700ede21g"}),
        json!({"project": "ENG", "issue_type": "Story", "summary": "Unicode ✓ é", "description": "première ligne"}),
    ];
    for params in runs {
        assert_eq!(env.run(&issue, params).await["status"], "succeeded");
    }
    assert_eq!(
        env.run(&note, json!({"issue": "ENG-1", "comment": "one\ntwo"}))
            .await["status"],
        "succeeded"
    );

    let sent = env.sandbox.requests();
    let creates: Vec<_> = sent
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/rest/api/3/issue")
        .collect();
    let comments: Vec<_> = sent
        .iter()
        .filter(|r| r.path.ends_with("/comment"))
        .collect();
    assert_eq!((creates.len(), comments.len()), (3, 1));
    for r in creates {
        assert_valid(&create, &r.json(), "a createIssue request");
    }
    for r in comments {
        assert_valid(&comment, &r.json(), "an addComment request");
    }
    env.stop().await;
}

#[tokio::test]
async fn every_slack_reply_the_sandbox_sends_matches_slacks_published_schema() {
    let slack = spec("slack-web-api.openapi-v2.json");
    let ok = validator(
        &slack,
        "/paths/~1chat.postMessage/post/responses/200/schema",
        jsonschema::Draft::Draft4,
    );
    // The published error schema predates these live codes and `response_metadata`: exactly
    // these additions are allowed, nothing else.
    let mut live = slack.clone();
    let error_schema = live
        .pointer_mut("/paths/~1chat.postMessage/post/responses/default/schema")
        .expect("error schema");
    for code in [
        "ratelimited",
        "invalid_blocks",
        "token_revoked",
        "thread_not_found",
        "invalid_json",
    ] {
        error_schema["properties"]["error"]["enum"]
            .as_array_mut()
            .expect("enum")
            .push(json!(code));
    }
    error_schema["properties"]["response_metadata"] = json!({"type": "object", "properties": {"messages": {"type": "array", "items": {"type": "string"}}}});
    let err = validator(
        &live,
        "/paths/~1chat.postMessage/post/responses/default/schema",
        jsonschema::Draft::Draft4,
    );

    // The validators can fail: replies missing required fields are rejected.
    assert!(!ok.is_valid(&json!({"ok": true})));
    assert!(!err.is_valid(&json!({"ok": false, "error": "made_up_code"})));

    let s = Sandbox::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sandbox");
    s.state.slack.add_token("xoxb-ok");
    s.state.slack.add_token("xoxb-revoked");
    s.state.slack.revoke("xoxb-revoked");
    let http = reqwest::Client::new();
    let post = |token: &'static str, body: Value| {
        let req = http
            .post(format!("{}/api/chat.postMessage", s.url()))
            .bearer_auth(token)
            .json(&body);
        async move {
            let r = req.send().await.expect("answers");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };
    let mut replies = vec![
        post("xoxb-ok", json!({"channel": "#general", "text": "hello"})).await,
        post("xoxb-ok", json!({"channel": "C0GENERAL1", "text": "with blocks", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]})).await,
    ];
    let ts = replies[0].1["ts"].as_str().expect("ts").to_string();
    replies.push(
        post(
            "xoxb-ok",
            json!({"channel": "#general", "text": "in thread", "thread_ts": ts}),
        )
        .await,
    );
    for body in [
        json!({"channel": "#nowhere", "text": "x"}),
        json!({"channel": "#leadership", "text": "x"}),
        json!({"channel": "#old-project", "text": "x"}),
        json!({"channel": "#general"}),
        json!({"channel": "#general", "text": "x".repeat(40_001)}),
        json!({"channel": "#general", "text": "x", "blocks": [{"type": "bogus"}]}),
        json!({"channel": "#general", "text": "x", "thread_ts": "nope"}),
    ] {
        replies.push(post("xoxb-ok", body).await);
    }
    replies.push(post("xoxb-unknown", json!({"channel": "#general", "text": "x"})).await);
    replies.push(post("xoxb-revoked", json!({"channel": "#general", "text": "x"})).await);
    // Past the burst, the channel is rate limited (HTTP 429).
    for _ in 0..6 {
        replies.push(post("xoxb-ok", json!({"channel": "#alerts", "text": "burst"})).await);
    }
    assert!(
        replies
            .iter()
            .any(|(status, b)| *status == 429 && b["error"] == "ratelimited"),
        "the rate limit answers"
    );
    let (mut oks, mut errs) = (0, 0);
    for (status, body) in &replies {
        if body["ok"] == true {
            oks += 1;
            assert_eq!(*status, 200);
            assert_valid(&ok, body, "a chat.postMessage success");
        } else {
            errs += 1;
            assert_valid(&err, body, "a chat.postMessage error");
        }
    }
    assert!(
        oks >= 5 && errs >= 9,
        "{oks} successes, {errs} errors checked"
    );
}
