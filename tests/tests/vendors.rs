//! Each seed vendor end to end: control plane → RabbitMQ → worker → sandbox → result, with the
//! vendor's own auth flow, request shape and refusals.

use aic_tests::harness::TestEnv;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn jira_issues_get_an_adf_description_and_comments_land_on_them() {
    let env = TestEnv::start().await;
    env.sandbox
        .state
        .jira
        .add_user("bot@acme.example", "jira-api-token");
    let conn = env
        .connection(
            "Jira",
            "jira",
            "basic",
            json!({"email": "bot@acme.example", "api_token": "jira-api-token"}),
        )
        .await;
    let conn_id = conn["id"].as_str().expect("id");
    let (_, test) = env
        .call(
            Method::POST,
            &format!("/v1/connections/{conn_id}/test"),
            None,
        )
        .await;
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
    i.add_client("sn-client", "sn-client-secret");
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

    let oauth = env
        .connection("SN oauth", "servicenow", "oauth2_password", json!({"client_id": "sn-client", "client_secret": "sn-client-secret", "username": "aic.integration", "password": "sn-password"}))
        .await;
    let record = env
        .published_automation(
            "servicenow.create_record",
            oauth["id"].as_str().expect("id"),
            "Record",
            None,
        )
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
    let (_, test) = env
        .call(
            Method::POST,
            &format!("/v1/connections/{conn_id}/test"),
            None,
        )
        .await;
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

#[tokio::test]
async fn a_revoked_salesforce_refresh_token_marks_the_connection_and_later_runs_fail_fast() {
    let env = TestEnv::start().await;
    let org = &env.sandbox.state.salesforce;
    org.add_client("3MVG9refresh", "refresh-client-secret");
    org.add_refresh_token("5Aep861-refresh-token");
    let conn = env
        .connection("SF refresh", "salesforce", "oauth2_refresh_token", json!({"client_id": "3MVG9refresh", "client_secret": "refresh-client-secret", "refresh_token": "5Aep861-refresh-token"}))
        .await;
    let conn_id = conn["id"].as_str().expect("id");
    let lead = env
        .published_automation("salesforce.create_lead", conn_id, "Lead", None)
        .await;
    assert_eq!(
        env.run(&lead, json!({"LastName": "A", "Company": "B"}))
            .await["status"],
        "succeeded"
    );

    org.revoke_refresh_token("5Aep861-refresh-token");
    org.expire_tokens();
    let done = env
        .run(&lead, json!({"LastName": "C", "Company": "D"}))
        .await;
    assert_eq!(
        done["result"]["error"]["code"], "connection_needs_reauthorization",
        "{done}"
    );
    assert_eq!(done["result"]["error"]["vendor"]["code"], "invalid_grant");
    let (_, saved) = env
        .call(Method::GET, &format!("/v1/connections/{conn_id}"), None)
        .await;
    assert_eq!(saved["status"], "needs_reauthorization");

    let tokens_before = org.token_requests.load(std::sync::atomic::Ordering::SeqCst);
    let creates_before = env.sandbox.requests_to("/sobjects/").len();
    let fast = env
        .run(&lead, json!({"LastName": "E", "Company": "F"}))
        .await;
    assert_eq!(
        fast["result"]["error"]["code"],
        "connection_needs_reauthorization"
    );
    assert_eq!(fast["result"]["attempts"], 0);
    assert_eq!(
        org.token_requests.load(std::sync::atomic::Ordering::SeqCst),
        tokens_before,
        "no token request"
    );
    assert_eq!(
        env.sandbox.requests_to("/sobjects/").len(),
        creates_before,
        "no vendor call"
    );
    env.stop().await;
}

#[tokio::test]
async fn salesforce_jwt_bearer_signs_an_assertion_the_org_verifies() {
    let env = TestEnv::start().await;
    let private = include_str!("../fixtures/test-jwt-key.pem");
    let public = include_str!("../fixtures/test-jwt-key.pub.pem");
    env.sandbox
        .state
        .salesforce
        .add_jwt_app("3MVG9jwt", public, "integration@acme.example");
    let conn = env
        .connection("SF JWT", "salesforce", "oauth2_jwt_bearer", json!({"client_id": "3MVG9jwt", "username": "integration@acme.example", "private_key": private}))
        .await;
    let conn_id = conn["id"].as_str().expect("id");
    let (_, test) = env
        .call(
            Method::POST,
            &format!("/v1/connections/{conn_id}/test"),
            None,
        )
        .await;
    assert_eq!(test["ok"], true, "{test}");
    let lead = env
        .published_automation("salesforce.create_lead", conn_id, "Lead", None)
        .await;
    assert_eq!(
        env.run(&lead, json!({"LastName": "Jwt", "Company": "Signed"}))
            .await["status"],
        "succeeded"
    );

    let token_call = env
        .sandbox
        .requests_to("/services/oauth2/token")
        .pop()
        .expect("token call");
    assert!(
        token_call
            .body
            .contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"),
        "{}",
        token_call.body
    );
    assert!(
        !token_call.body.contains("PRIVATE"),
        "the key itself never leaves"
    );

    // A user the app is not approved for: invalid_grant, the connection needs an admin.
    let other = env
        .connection("SF JWT other", "salesforce", "oauth2_jwt_bearer", json!({"client_id": "3MVG9jwt", "username": "someone@acme.example", "private_key": private}))
        .await;
    let (_, test) = env
        .call(
            Method::POST,
            &format!("/v1/connections/{}/test", other["id"].as_str().expect("id")),
            None,
        )
        .await;
    assert_eq!(
        (test["ok"].as_bool(), test["vendor_code"].as_str()),
        (Some(false), Some("invalid_grant")),
        "{test}"
    );
    assert!(
        test["message"]
            .as_str()
            .unwrap_or("")
            .contains("user hasn't approved this consumer"),
        "{test}"
    );
    env.stop().await;
}

#[tokio::test]
async fn salesforce_username_password_grant_works_and_a_wrong_password_is_plain() {
    let env = TestEnv::start().await;
    let org = &env.sandbox.state.salesforce;
    org.add_client("3MVG9pw", "pw-client-secret");
    org.add_user("api@acme.example", "Passw0rdSECURITYTOKEN");
    let good = env
        .connection("SF password", "salesforce", "username_password", json!({"client_id": "3MVG9pw", "client_secret": "pw-client-secret", "username": "api@acme.example", "password": "Passw0rdSECURITYTOKEN"}))
        .await;
    let lead = env
        .published_automation(
            "salesforce.create_lead",
            good["id"].as_str().expect("id"),
            "Lead",
            None,
        )
        .await;
    assert_eq!(
        env.run(&lead, json!({"LastName": "P", "Company": "W"}))
            .await["status"],
        "succeeded"
    );
    let bad = env
        .connection("SF bad password", "salesforce", "username_password", json!({"client_id": "3MVG9pw", "client_secret": "pw-client-secret", "username": "api@acme.example", "password": "wrong"}))
        .await;
    let (_, test) = env
        .call(
            Method::POST,
            &format!("/v1/connections/{}/test", bad["id"].as_str().expect("id")),
            None,
        )
        .await;
    assert_eq!(test["vendor_code"], "invalid_grant");
    assert!(
        test["message"]
            .as_str()
            .unwrap_or("")
            .contains("authentication failure"),
        "{test}"
    );
    env.stop().await;
}
