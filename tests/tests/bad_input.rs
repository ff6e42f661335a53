//! Bad input of every kind ends in a clear, specific failure — never a panic, a hang, a vendor
//! call that should not happen, or a stuck worker.

use aic_proto::topology::{DEAD_LETTER_REASON_HEADER, EXECUTION_REQUEST_TYPE};
use aic_tests::harness::{TestEnv, assert_failed_with, dead_letter_header, reply_properties};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn a_message_that_is_not_json_is_dead_lettered_with_its_reason_and_the_worker_keeps_going() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let mut replies = env.listen("", "").await;
    env.publish_raw(b"{this is not json", reply_properties(&replies.queue))
        .await;

    let dead = env.next_dead_letter().await;
    assert_eq!(
        dead_letter_header(&dead, DEAD_LETTER_REASON_HEADER),
        "invalid_json"
    );
    assert_eq!(dead.delivery.data, b"{this is not json");
    let reply = replies
        .next(Duration::from_secs(10))
        .await
        .expect("a failure reply");
    assert_eq!(
        reply
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str()),
        Some("corr-1")
    );
    let body: Value = serde_json::from_slice(&reply.data).expect("json");
    assert_eq!(body["status"], "failed");
    assert_eq!(body["error"]["code"], "invalid_json");

    // A body a client's library compressed says so, not only where the JSON broke.
    let gzipped = reply_properties(&replies.queue).with_content_encoding("gzip".into());
    env.publish_raw(b"\x1f\x8b\x08\x00compressed", gzipped)
        .await;
    let failed = replies.next_json(Duration::from_secs(10)).await;
    assert_failed_with(failed, "invalid_json", &["content_encoding is 'gzip'"]);
    env.next_dead_letter().await;

    // The worker is still consuming.
    let e = env
        .enqueue(
            &automation,
            json!({"LastName": "Still", "Company": "Alive"}),
        )
        .await;
    assert_eq!(env.wait_final(&e).await["status"], "succeeded");
    assert!(
        env.metrics()
            .await
            .contains(r#"aic_dead_letters_total{reason="invalid_json"} 2"#)
    );
    env.stop().await;
}

#[tokio::test]
async fn a_message_of_an_unknown_version_is_dead_lettered_and_its_tenant_told() {
    let env = TestEnv::start().await;
    let mut results = env
        .listen(&env.names.results_exchange, &format!("{}.#", env.tenant))
        .await;
    let body = json!({"version": 2, "execution_id": uuid::Uuid::now_v7().to_string(), "tenant_id": env.tenant.to_string()});
    env.publish_raw(
        body.to_string().as_bytes(),
        aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE),
    )
    .await;

    let dead = env.next_dead_letter().await;
    assert_eq!(
        dead_letter_header(&dead, DEAD_LETTER_REASON_HEADER),
        "unknown_version"
    );
    assert!(dead_letter_header(&dead, "x-aic-dead-letter-detail").contains("version 2"));
    let result = results
        .next_json(Duration::from_secs(10))
        .await
        .expect("a failure result");
    assert_eq!(result["error"]["code"], "unknown_version");
    assert_eq!(result["execution_id"], body["execution_id"]);
    env.stop().await;
}

#[tokio::test]
async fn parameter_errors_name_the_parameter_and_never_reach_the_vendor() {
    let env = TestEnv::start().await;
    let conn = env.salesforce_connection("Org", "pw", "pw").await;
    let conn_id = conn["id"].as_str().expect("id");
    let lead = env
        .published_automation("salesforce.create_lead", conn_id, "Lead", None)
        .await;
    let opportunity = env
        .published_automation(
            "salesforce.create_opportunity",
            conn_id,
            "Opportunity",
            None,
        )
        .await;
    let mut replies = env.listen("", "").await;

    let cases = [
        (
            &lead,
            json!({"LastName": "Only"}),
            "missing_parameter",
            "Company",
            "required parameter 'Company' is missing",
        ),
        (
            &opportunity,
            json!({"Name": "Deal", "StageName": "Prospecting", "CloseDate": 20261231}),
            "invalid_parameter",
            "CloseDate",
            "parameter 'CloseDate' must be a date (YYYY-MM-DD), got the number 20261231",
        ),
        (
            &lead,
            json!({"LastName": "A", "Company": "B", "Email": "not-an-address"}),
            "invalid_parameter",
            "Email",
            "parameter 'Email' must be an e-mail address, got the string \"not-an-address\"",
        ),
        // Beyond the catalogue's range of the field (Salesforce's 8 digits).
        (
            &lead,
            json!({"LastName": "A", "Company": "B", "NumberOfEmployees": 100_000_000}),
            "invalid_parameter",
            "NumberOfEmployees",
            "parameter 'NumberOfEmployees' must be at most 99999999, got the number 100000000",
        ),
        (
            &lead,
            json!({"LastName": "A", "Company": "B", "Colour": "red"}),
            "unknown_parameter",
            "Colour",
            "parameter 'Colour' is not defined",
        ),
    ];
    for (automation, params, code, parameter, message) in cases {
        let (_, body) = env.request(automation, params.clone());
        let result = env.ask(&mut replies, &body).await;
        assert_eq!(result["status"], "failed", "{result}");
        assert_eq!(result["error"]["code"], code, "{result}");
        assert_eq!(result["error"]["parameter"], parameter, "{result}");
        assert!(
            result["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(message),
            "{result}"
        );
        assert_eq!(result["attempts"], 0);

        // Over HTTP the same mistake is refused at once, naming the field.
        let (status, err) = env
            .call(
                Method::POST,
                &format!("/v1/automations/{automation}/executions"),
                Some(json!({"parameters": params})),
            )
            .await;
        assert_eq!(status, 422, "{err}");
        assert_eq!(err["error"]["field"], format!("parameters.{parameter}"));
    }
    assert!(
        env.sandbox.requests_to("/sobjects/").is_empty(),
        "no call may reach the vendor"
    );
    env.stop().await;
}

#[tokio::test]
async fn unknown_and_unpublished_automations_fail_with_their_own_codes() {
    let env = TestEnv::start().await;
    let conn = env.salesforce_connection("Org", "pw", "pw").await;
    let (status, draft) = env
        .call(Method::POST, "/v1/automations", Some(json!({"template": "salesforce.create_lead", "connection_id": conn["id"], "name": "Draft"})))
        .await;
    assert_eq!(status, 201);
    let mut replies = env.listen("", "").await;
    for (automation, code) in [
        (uuid::Uuid::now_v7().to_string(), "unknown_automation"),
        (
            draft["id"].as_str().expect("id").to_string(),
            "automation_not_published",
        ),
    ] {
        let (id, body) = env.request(&automation, json!({"LastName": "A", "Company": "B"}));
        let result = env.ask(&mut replies, &body).await;
        assert_eq!(result["error"]["code"], code, "{result}");
        assert_eq!(result["execution_id"], id.as_str());
        assert!(
            result["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(&automation)
        );
    }
    let (status, err) = env
        .call(
            Method::POST,
            &format!(
                "/v1/automations/{}/executions",
                draft["id"].as_str().expect("id")
            ),
            Some(json!({"parameters": {}})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), err["error"]["code"].as_str()),
        (409, Some("automation_not_published"))
    );
    assert!(env.sandbox.requests_to("/sobjects/").is_empty());
    env.stop().await;
}

#[tokio::test]
async fn a_wrong_connection_secret_is_reported_plainly_by_the_test_and_by_executions() {
    let env = TestEnv::start().await;
    let conn = env
        .salesforce_connection("Wrong secret", "the-real-secret", "a-wrong-secret")
        .await;
    let id = conn["id"].as_str().expect("id");
    let test = env.test_connection(id).await;
    assert_eq!(test["ok"], false);
    assert_eq!(test["vendor_code"], "invalid_client");
    assert_eq!(
        test["message"],
        "Salesforce refused the connection's credentials: invalid_client (invalid client credentials)"
    );
    let (_, saved) = env
        .call(Method::GET, &format!("/v1/connections/{id}"), None)
        .await;
    assert_eq!(saved["status"], "failing");

    let automation = env
        .published_automation("salesforce.create_lead", id, "Lead", None)
        .await;
    let e = env
        .enqueue(&automation, json!({"LastName": "A", "Company": "B"}))
        .await;
    let done = env.wait_final(&e).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["result"]["error"]["code"], "vendor_auth_failed");
    assert_eq!(done["result"]["error"]["vendor"]["code"], "invalid_client");
    assert!(env.sandbox.requests_to("/sobjects/").is_empty());
    env.stop().await;
}

#[tokio::test]
async fn a_blank_required_field_comes_back_as_salesforces_required_field_missing() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let e = env
        .enqueue(
            &automation,
            json!({"LastName": "Blank company", "Company": ""}),
        )
        .await;
    let done = env.wait_final(&e).await;
    assert_eq!(done["status"], "failed");
    let err = &done["result"]["error"];
    assert_eq!(err["code"], "vendor_rejected");
    assert_eq!(
        err["vendor"],
        json!({"http_status": 400, "code": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [Company]", "fields": ["Company"]})
    );
    assert_eq!(
        done["result"]["attempts"], 1,
        "validation errors are never retried"
    );
    env.stop().await;
}

#[tokio::test]
async fn a_redelivered_execution_is_answered_from_the_ledger_without_a_second_vendor_call() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let mut replies = env.listen("", "").await;
    let (id, body) = env.request(&automation, json!({"LastName": "Once", "Company": "Only"}));
    let first = env.ask(&mut replies, &body).await;
    let second = env.ask(&mut replies, &body).await;
    assert_eq!(first["status"], "succeeded");
    assert_eq!(first, second, "the same result, re-published");
    assert_eq!(second["execution_id"], id.as_str());
    assert_eq!(env.sandbox.requests_to("/sobjects/Lead/").len(), 1);
    env.stop().await;
}

#[tokio::test]
async fn a_nul_character_is_refused_by_name_and_fails_only_its_own_execution() {
    // PostgreSQL cannot store U+0000: one such request must not fail the ledger batch it would
    // share with others, on every retry, forever.
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let good = 20;
    let (failed, succeeded) = env
        .one_bad_among_good(
            &automation,
            json!({"LastName": "Nul\u{0}Byte", "Company": "Acme"}),
            good,
        )
        .await;
    assert_failed_with(failed, "invalid_message", &["parameters.LastName", "NUL"]);
    assert!(succeeded >= good, "{succeeded} of {good} succeeded");
    let dead = env.next_dead_letter().await;
    assert_eq!(
        dead_letter_header(&dead, DEAD_LETTER_REASON_HEADER),
        "invalid_message"
    );

    // Over HTTP the same request is refused at once, naming the field.
    let (status, err) = env
        .call(
            Method::POST,
            &format!("/v1/automations/{automation}/executions"),
            Some(json!({"parameters": {"LastName": "Nul\u{0}Byte", "Company": "Acme"}})),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["field"], "parameters.LastName", "{err}");
    assert_eq!(
        env.sandbox.requests_to("/sobjects/").len(),
        good,
        "only the good requests reached the vendor"
    );
    env.stop().await;
}

/// A request larger than the contract's 4 MiB is not run: dead-lettered as it came, answered
/// saying its size, never recorded in the ledger nor sent to the vendor; the requests around it
/// run as usual.
#[tokio::test]
async fn a_request_larger_than_the_contract_allows_is_dead_lettered_and_answered() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let huge = "x".repeat(aic_proto::MAX_REQUEST_BYTES);
    let (failed, succeeded) = env
        .one_bad_among_good(
            &automation,
            json!({"LastName": huge, "Company": "Acme"}),
            10,
        )
        .await;
    let limit = aic_proto::MAX_REQUEST_BYTES.to_string();
    assert_failed_with(failed.clone(), "invalid_message", &["bytes", &limit]);
    assert!(succeeded >= 10, "{succeeded} of 10 succeeded");
    let dead = env.next_dead_letter().await;
    assert_eq!(
        dead_letter_header(&dead, DEAD_LETTER_REASON_HEADER),
        "request_too_large"
    );
    assert!(dead.delivery.data.len() > aic_proto::MAX_REQUEST_BYTES);
    let id = failed.as_ref().map(|f| f["execution_id"].clone());
    let id: uuid::Uuid = id.and_then(|v| v.as_str()?.parse().ok()).expect("its id");
    let rows = env
        .pool
        .get()
        .await
        .expect("db")
        .query("SELECT 1 FROM executions WHERE id = $1", &[&id])
        .await
        .expect("query");
    assert!(rows.is_empty(), "nothing of it recorded in the ledger");
    assert_eq!(env.sandbox.requests_to("/sobjects/").len(), 10);
    let metrics = env.metrics().await;
    assert!(
        metrics.contains(r#"aic_dead_letters_total{reason="request_too_large"} 1"#),
        "{metrics}"
    );
    env.stop().await;
}

/// A request for a paused automation (sent straight over AMQP: the API refuses it) fails with
/// `automation_paused`, and neither its result nor its ledger row names a version: none ran,
/// though begin had recorded the published one while the row was running.
#[tokio::test]
async fn a_paused_automation_fails_its_executions_without_a_version() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    env.pool
        .get()
        .await
        .expect("db")
        .execute(
            "UPDATE automations SET status = 'paused' WHERE id = $1",
            &[&automation.parse::<uuid::Uuid>().expect("id")],
        )
        .await
        .expect("paused");
    let mut replies = env.listen("", "").await;
    let (id, body) = env.request(&automation, json!({"LastName": "A", "Company": "B"}));
    let result = env.ask(&mut replies, &body).await;
    assert_eq!(result["error"]["code"], "automation_paused", "{result}");
    assert!(result["automation_version_id"].is_null(), "{result}");
    let row = env.wait_final(&id).await;
    assert_eq!(row["status"], "failed", "{row}");
    assert!(row["version_id"].is_null(), "{row}");
    assert!(env.sandbox.requests_to("/sobjects/Lead/").is_empty());
    env.stop().await;
}
