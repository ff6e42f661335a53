//! Bad input of every kind ends in a clear, specific failure — never a panic, a hang, a vendor
//! call that should not happen, or a stuck worker.

use aic_proto::topology::{
    DEAD_LETTER_DETAIL_HEADER, DEAD_LETTER_REASON_HEADER, EXECUTION_REQUEST_TYPE,
};
use aic_tests::harness::{TestEnv, dead_letter_header};
use lapin::BasicProperties;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn request(env: &TestEnv, automation: &str, parameters: Value) -> (String, Vec<u8>) {
    let id = uuid::Uuid::now_v7().to_string();
    let body = json!({"version": 1, "execution_id": id, "tenant_id": env.tenant.to_string(), "automation_id": automation, "parameters": parameters});
    (id, serde_json::to_vec(&body).expect("json"))
}

fn props(reply_to: &str) -> BasicProperties {
    aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE)
        .with_reply_to(reply_to.into())
        .with_correlation_id("corr-1".into())
}

#[tokio::test]
async fn a_message_that_is_not_json_is_dead_lettered_with_its_reason_and_the_worker_keeps_going() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let mut replies = env.listen("", "").await;
    env.publish_raw(b"{this is not json", props(&replies.queue))
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
            .contains(r#"aic_dead_letters_total{reason="invalid_json"} 1"#)
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
        (
            &lead,
            json!({"LastName": "A", "Company": "B", "Colour": "red"}),
            "unknown_parameter",
            "Colour",
            "parameter 'Colour' is not defined",
        ),
    ];
    for (automation, params, code, parameter, message) in cases {
        let (_, body) = request(&env, automation, params.clone());
        env.publish_raw(&body, props(&replies.queue)).await;
        let result = replies
            .next_json(Duration::from_secs(10))
            .await
            .expect("a result");
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
        let (id, body) = request(&env, &automation, json!({"LastName": "A", "Company": "B"}));
        env.publish_raw(&body, props(&replies.queue)).await;
        let result = replies
            .next_json(Duration::from_secs(10))
            .await
            .expect("a result");
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
    let (id, body) = request(
        &env,
        &automation,
        json!({"LastName": "Once", "Company": "Only"}),
    );
    env.publish_raw(&body, props(&replies.queue)).await;
    let first = replies
        .next_json(Duration::from_secs(10))
        .await
        .expect("first result");
    env.publish_raw(&body, props(&replies.queue)).await;
    let second = replies
        .next_json(Duration::from_secs(10))
        .await
        .expect("second result");
    assert_eq!(first["status"], "succeeded");
    assert_eq!(first, second, "the same result, re-published");
    assert_eq!(second["execution_id"], id.as_str());
    assert_eq!(env.sandbox.requests_to("/sobjects/Lead/").len(), 1);
    env.stop().await;
}

/// Publishes `good` good requests and, in their middle (so that it would share one of their
/// ledger batches), one with `bad` parameters; returns the bad one's result, if any came within
/// 30 s, and how many good ones succeeded.
async fn one_bad_among_good(
    env: &TestEnv,
    automation: &str,
    bad: Value,
    good: usize,
) -> (Option<Value>, usize) {
    let mut replies = env.listen("", "").await;
    let (bad, bad_body) = request(env, automation, bad);
    for i in 0..good {
        let (_, body) = request(
            env,
            automation,
            json!({"LastName": format!("Good{i}"), "Company": "Acme"}),
        );
        env.publish_raw(&body, props(&replies.queue)).await;
        if i == good / 2 {
            env.publish_raw(&bad_body, props(&replies.queue)).await;
        }
    }
    let mut failed = None;
    let mut succeeded = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while (failed.is_none() || succeeded < good) && Instant::now() < deadline {
        let Some(r) = replies.next_json(Duration::from_secs(10)).await else {
            break;
        };
        if r["execution_id"] == bad.as_str() {
            failed = Some(r);
        } else if r["status"] == "succeeded" {
            succeeded += 1;
        }
    }
    (failed, succeeded)
}

/// Checks that the bad request's result came, failed with `code`, and says each of `needles`.
fn failed_with(failed: Option<Value>, code: &str, needles: &[&str]) {
    let failed = failed.expect("a failure result for the bad request");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], code, "{failed}");
    let message = failed["error"]["message"].as_str().unwrap_or("");
    for needle in needles {
        assert!(message.contains(needle), "no {needle:?} in {failed}");
    }
}

#[tokio::test]
async fn a_nul_character_is_refused_by_name_and_fails_only_its_own_execution() {
    // PostgreSQL cannot store U+0000: one such request must not fail the ledger batch it would
    // share with others, on every retry, forever.
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let good = 20;
    let (failed, succeeded) = one_bad_among_good(
        &env,
        &automation,
        json!({"LastName": "Nul\u{0}Byte", "Company": "Acme"}),
        good,
    )
    .await;
    failed_with(failed, "invalid_message", &["parameters.LastName", "NUL"]);
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

#[tokio::test]
async fn a_request_the_ledger_refuses_is_dead_lettered_and_answered_not_retried_forever() {
    // A rule of the database that one request breaks (here a constraint an operator added):
    // the ledger refuses to record it on every try, so retrying it in the worker, as an outage
    // is retried, would hold it there for good and answer nobody.
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    env.pool
        .get()
        .await
        .expect("client")
        .batch_execute(
            "ALTER TABLE executions ADD CONSTRAINT no_poison \
             CHECK (parameters->>'LastName' IS DISTINCT FROM 'Poison') NOT VALID",
        )
        .await
        .expect("constraint");
    let good = 10;
    let (failed, succeeded) = one_bad_among_good(
        &env,
        &automation,
        json!({"LastName": "Poison", "Company": "Acme"}),
        good,
    )
    .await;
    failed_with(failed, "internal", &["no_poison", "SQLSTATE 23514"]);
    assert!(succeeded >= good, "{succeeded} of {good} succeeded");
    let dead = env.next_dead_letter().await;
    assert_eq!(
        dead_letter_header(&dead, DEAD_LETTER_REASON_HEADER),
        "ledger_refused"
    );
    assert!(dead_letter_header(&dead, DEAD_LETTER_DETAIL_HEADER).contains("no_poison"));
    assert_eq!(
        env.sandbox.requests_to("/sobjects/").len(),
        good,
        "only the good requests reached the vendor"
    );
    env.stop().await;
}

/// Adds a rule to the ledger's table that only the request with `LastName` `name` breaks, at
/// the step `when` (an SQL condition on the row) — as an operator's constraint might.
async fn poison(env: &TestEnv, constraint: &str, name: &str, when: &str) {
    env.pool
        .get()
        .await
        .expect("client")
        .batch_execute(&format!(
            "ALTER TABLE executions ADD CONSTRAINT {constraint} \
             CHECK (NOT ({when}) OR parameters->>'LastName' IS DISTINCT FROM '{name}') NOT VALID"
        ))
        .await
        .expect("constraint");
}

#[tokio::test]
async fn a_vendor_call_mark_the_ledger_refuses_fails_the_execution_without_calling() {
    // The row is recorded, but the note that the call is about to leave is refused: the call
    // must not go out unrecorded, and the request must not come back for ever.
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    poison(
        &env,
        "no_poison_mark",
        "PoisonMark",
        "vendor_call_started_at IS NOT NULL",
    )
    .await;
    let good = 10;
    let (failed, succeeded) = one_bad_among_good(
        &env,
        &automation,
        json!({"LastName": "PoisonMark", "Company": "Acme"}),
        good,
    )
    .await;
    failed_with(failed, "internal", &["no_poison_mark", "SQLSTATE 23514"]);
    assert!(succeeded >= good, "{succeeded} of {good} succeeded");
    let dead = env.next_dead_letter().await;
    assert_eq!(
        dead_letter_header(&dead, DEAD_LETTER_REASON_HEADER),
        "ledger_refused"
    );
    assert_eq!(
        env.sandbox.requests_to("/sobjects/").len(),
        good,
        "the refused request never reached the vendor"
    );
    env.stop().await;
}

#[tokio::test]
async fn a_result_the_ledger_refuses_is_published_as_it_stands_and_dead_lettered_once() {
    // The vendor was called and answered; only the final state cannot be written. Retrying it
    // in place would hold the execution for ever and answer nobody.
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    poison(
        &env,
        "no_poison_result",
        "PoisonResult",
        "status NOT IN ('queued', 'running')",
    )
    .await;
    let good = 10;
    let (result, succeeded) = one_bad_among_good(
        &env,
        &automation,
        json!({"LastName": "PoisonResult", "Company": "Acme"}),
        good,
    )
    .await;
    let result = result.expect("a result for the request whose result was refused");
    assert_eq!(result["status"], "succeeded", "{result}");
    assert!(
        result["output"]["id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "the vendor's record id is in the result: {result}"
    );
    assert!(succeeded >= good, "{succeeded} of {good} succeeded");
    let dead = env.next_dead_letter().await;
    assert_eq!(
        dead_letter_header(&dead, DEAD_LETTER_REASON_HEADER),
        "ledger_refused"
    );
    let detail = dead_letter_header(&dead, DEAD_LETTER_DETAIL_HEADER);
    assert!(
        detail.contains("no_poison_result") && detail.contains("published as it stands"),
        "{detail}"
    );
    assert_eq!(
        env.sandbox.requests_to("/sobjects/").len(),
        good + 1,
        "the vendor was called once for it, not again"
    );
    env.stop().await;
}
