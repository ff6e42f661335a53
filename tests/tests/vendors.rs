//! Each seed vendor end to end: control plane → RabbitMQ → worker → sandbox → result, with the
//! vendor's own auth flow, request shape and refusals. Salesforce's auth flows are in
//! `salesforce_auth.rs`.

use aic_tests::harness::TestEnv;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn jira_issues_get_an_adf_description_and_comments_land_on_them() {
    let env = TestEnv::start().await;
    let conn_id = &env.jira_connection("jira-api-token").await;
    let test = env.test_connection(conn_id).await;
    assert_eq!(test["ok"], true, "{test}");
    let create = env
        .published_automation("jira.create_issue", conn_id, "Open ticket", None)
        .await;
    let comment = env
        .published_automation("jira.add_comment", conn_id, "Comment", None)
        .await;

    let done = env
        .run(&create, json!({"project": "ENG", "issue_type": "Bug", "summary": "Checkout fails", "description": "Steps:\nclick pay", "priority": "High", "labels": "checkout, p1"}))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let key = done["result"]["output"]["key"]
        .as_str()
        .expect("key")
        .to_string();
    assert_eq!(key, "ENG-1");
    let sent = env
        .sandbox
        .requests_to("/rest/api/3/issue")
        .into_iter()
        .find(|r| r.method == "POST")
        .expect("create sent");
    assert!(sent.headers["authorization"].starts_with("Basic "));
    assert_eq!(
        sent.json(),
        json!({"fields": {
        "project": {"key": "ENG"}, "issuetype": {"name": "Bug"}, "summary": "Checkout fails",
        "description": {"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "Steps:"}]},
            {"type": "paragraph", "content": [{"type": "text", "text": "click pay"}]}]},
        "priority": {"name": "High"}, "labels": ["checkout", "p1"]}})
    );

    let done = env
        .run(
            &comment,
            json!({"issue": key, "comment": "Fixed in build 42"}),
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        env.sandbox
            .requests_to("/rest/api/3/issue/ENG-1/comment")
            .len(),
        1
    );

    let refused = env
        .run(
            &create,
            json!({"project": "NOPE", "issue_type": "Task", "summary": "x"}),
        )
        .await;
    assert_eq!(refused["status"], "failed");
    let err = &refused["result"]["error"];
    assert_eq!(
        (err["code"].as_str(), err["vendor"]["http_status"].as_u64()),
        (Some("vendor_rejected"), Some(400))
    );
    assert_eq!(err["vendor"]["fields"], json!(["project"]));
    assert!(
        err["message"]
            .as_str()
            .unwrap_or("")
            .contains("project: valid project is required"),
        "{err}"
    );
    let missing = env
        .run(&comment, json!({"issue": "ENG-999", "comment": "x"}))
        .await;
    assert_eq!(missing["result"]["error"]["vendor"]["http_status"], 404);
    env.stop().await;
}

#[tokio::test]
async fn servicenow_incidents_and_records_on_a_chosen_table() {
    let env = TestEnv::start().await;
    let i = &env.sandbox.state.servicenow;
    i.add_user("aic.integration", "sn-password");
    let basic = env
        .connection(
            "SN basic",
            "servicenow",
            "basic",
            json!({"username": "aic.integration", "password": "sn-password"}),
        )
        .await;
    let incident = env
        .published_automation(
            "servicenow.create_incident",
            basic["id"].as_str().expect("id"),
            "Incident",
            None,
        )
        .await;
    let done = env.run(&incident, json!({"short_description": "VPN down", "urgency": "1", "impact": "2", "caller": "abel.tuter", "category": "network"})).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let out = &done["result"]["output"];
    assert!(
        out["number"].as_str().unwrap_or("").starts_with("INC"),
        "{out}"
    );
    assert_eq!(out["sys_id"].as_str().map(str::len), Some(32));
    let sent = &env.sandbox.requests_to("/api/now/table/incident")[0];
    assert!(sent.headers["accept"].contains("application/json"));
    assert_eq!(sent.json()["caller_id"], "abel.tuter");

    let oauth = env.servicenow_oauth_connection().await;
    let record = env
        .published_automation("servicenow.create_record", &oauth, "Record", None)
        .await;
    let done = env.run(&record, json!({"table": "sc_request", "fields": {"short_description": "New laptop", "priority": 3}})).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(
        done["result"]["output"]["number"]
            .as_str()
            .unwrap_or("")
            .starts_with("REQ")
    );
    assert_eq!(
        i.records()
            .last()
            .map(|(t, r)| (t.clone(), r["priority"].clone())),
        Some(("sc_request".into(), json!("3")))
    );

    // The grants the token endpoint has seen, each as its form's field names and grant type.
    let grants = || -> Vec<(String, Vec<String>)> {
        env.sandbox
            .requests_to("/oauth_token.do")
            .iter()
            .map(|r| {
                let form: Vec<(String, String)> = url::form_urlencoded::parse(r.body.as_bytes())
                    .into_owned()
                    .collect();
                let grant = form
                    .iter()
                    .find(|(k, _)| k == "grant_type")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                (grant, form.into_iter().map(|(k, _)| k).collect())
            })
            .collect()
    };
    assert_eq!(
        grants().last().map(|g| g.0.as_str()),
        Some("password"),
        "the first token comes from the password grant"
    );

    // An expired OAuth token is renewed once, transparently, with the refresh token the password
    // grant handed out: the password is not sent again.
    let before = grants().len();
    i.expire_tokens();
    let done = env
        .run(
            &record,
            json!({"table": "problem", "fields": {"short_description": "Disk"}}),
        )
        .await;
    assert_eq!(
        (done["status"].as_str(), done["result"]["attempts"].as_u64()),
        (Some("succeeded"), Some(2)),
        "{done}"
    );
    let renewed = grants().split_off(before);
    assert_eq!(
        renewed.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(),
        ["refresh_token"]
    );
    assert!(
        !renewed[0]
            .1
            .iter()
            .any(|k| k == "password" || k == "username"),
        "a refresh sends no password: {:?}",
        renewed[0].1
    );

    // A refresh token ServiceNow no longer accepts falls back to the password grant.
    let before = grants().len();
    i.expire_tokens();
    i.revoke_refresh_tokens();
    let done = env
        .run(
            &record,
            json!({"table": "problem", "fields": {"short_description": "Fan"}}),
        )
        .await;
    assert_eq!(
        (done["status"].as_str(), done["result"]["attempts"].as_u64()),
        (Some("succeeded"), Some(2)),
        "{done}"
    );
    assert_eq!(
        grants()
            .split_off(before)
            .iter()
            .map(|g| g.0.as_str())
            .collect::<Vec<_>>(),
        ["refresh_token", "password"]
    );

    let bad = env
        .run(&record, json!({"table": "x", "fields": {"a": 1}}))
        .await;
    assert_eq!(bad["result"]["error"]["vendor"]["code"], "Invalid table x");
    env.stop().await;
}

#[tokio::test]
async fn slack_messages_post_and_slack_refusals_at_http_200_fail_clearly() {
    let env = TestEnv::start().await;
    env.sandbox.state.slack.add_token("xoxb-test-token");
    let conn = env
        .connection(
            "Slack",
            "slack",
            "bot_token",
            json!({"bot_token": "xoxb-test-token"}),
        )
        .await;
    let conn_id = conn["id"].as_str().expect("id");
    let test = env.test_connection(conn_id).await;
    assert_eq!(test["ok"], true, "{test}");
    let send = env
        .published_automation("slack.send_message", conn_id, "Notify", None)
        .await;

    let done = env.run(&send, json!({"channel": "#general", "text": "Deploy finished", "blocks": [{"type": "divider"}]})).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let ts = done["result"]["output"]["ts"]
        .as_str()
        .expect("ts")
        .to_string();
    assert_eq!(done["result"]["output"]["channel"], "C0GENERAL1");
    let thread = env
        .run(
            &send,
            json!({"channel": "C0GENERAL1", "text": "details", "thread_ts": ts}),
        )
        .await;
    assert_eq!(thread["status"], "succeeded");
    let sent = env.sandbox.requests_to("/api/chat.postMessage");
    assert!(sent[0].headers["authorization"] == "Bearer xoxb-test-token");
    assert_eq!(sent[1].json()["thread_ts"], ts.as_str());

    for (params, code) in [
        (
            json!({"channel": "#nowhere", "text": "x"}),
            "channel_not_found",
        ),
        (
            json!({"channel": "#leadership", "text": "x"}),
            "not_in_channel",
        ),
        (
            json!({"channel": "#old-project", "text": "x"}),
            "is_archived",
        ),
        (
            json!({"channel": "#general", "text": "x", "blocks": [{"type": "nonsense"}]}),
            "invalid_blocks",
        ),
    ] {
        let done = env.run(&send, params).await;
        assert_eq!(done["status"], "failed");
        assert_eq!(done["result"]["error"]["vendor"]["code"], code);
        assert_eq!(done["result"]["attempts"], 1, "{code} is permanent");
    }

    env.sandbox.state.slack.revoke("xoxb-test-token");
    let revoked = env
        .run(&send, json!({"channel": "#general", "text": "x"}))
        .await;
    assert_eq!(revoked["result"]["error"]["code"], "vendor_auth_failed");
    let (_, saved) = env
        .call(Method::GET, &format!("/v1/connections/{conn_id}"), None)
        .await;
    assert_eq!(saved["status"], "failing");
    assert!(
        saved["status_detail"]
            .as_str()
            .unwrap_or("")
            .contains("token_revoked")
    );
    env.stop().await;
}
