//! An enqueue over HTTP sent again — by its client-chosen `execution_id` or by an
//! `idempotency_key` of the caller's — returns the first execution and runs nothing again, for
//! the same request only (even once its automation is paused): another automation or other
//! values under a known id or key are refused, naming the field, and never answered with
//! another request's execution. Over AMQP the same holds of an `execution_id`.

use aic_proto::topology::{DEAD_LETTER_DETAIL_HEADER, DEAD_LETTER_REASON_HEADER};
use aic_tests::harness::{TestEnv, assert_failed_with, dead_letter_header};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// Asserts `answer` is the 422 `code` naming `field`, its message saying what `differs`.
fn refused(answer: &(u16, Value), code: &str, field: &str, differs: &str) {
    let (status, body) = answer;
    let error = &body["error"];
    assert_eq!(
        (*status, error["code"].as_str(), error["field"].as_str()),
        (422, Some(code), Some(field)),
        "{body}"
    );
    let message = error["message"].as_str().unwrap_or("");
    assert!(message.contains(differs), "{body}");
}

#[tokio::test]
async fn a_repeated_key_or_id_returns_the_first_execution_of_that_request_only() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    let api = &env;
    let post = |automation: &str, body: Value| {
        let path = format!("/v1/automations/{automation}/executions");
        async move {
            let (status, answer) = api.call(Method::POST, &path, Some(body)).await;
            (status.as_u16(), answer)
        }
    };
    let keyed = |values: Value| json!({"parameters": values, "idempotency_key": "order-42"});
    let ab = json!({"LastName": "A", "Company": "B"});
    let (s1, first) = post(&lead, keyed(ab.clone())).await;
    // The same values written in another order are the same request.
    let (s2, again) = post(&lead, keyed(json!({"Company": "B", "LastName": "A"}))).await;
    assert_eq!((s1, s2), (202, 202), "{first} {again}");
    assert_eq!(first["execution_id"], again["execution_id"], "{again}");

    // Another request under the key is refused, not answered with the first one's execution.
    let other = post(&lead, keyed(json!({"LastName": "Other", "Company": "C"}))).await;
    refused(
        &other,
        "idempotency_key_reused",
        "idempotency_key",
        "other parameter values",
    );
    let holder = first["execution_id"].as_str().expect("id");
    let message = other.1["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains(holder), "names the execution: {message}");
    let elsewhere = env.lead_beside(&lead, "Lead elsewhere").await;
    let other = post(&elsewhere, keyed(ab.clone())).await;
    refused(
        &other,
        "idempotency_key_reused",
        "idempotency_key",
        "another automation",
    );
    // So is a client-chosen execution id sent again with another automation.
    let by_id = json!({"parameters": ab, "execution_id": first["execution_id"]});
    let other = post(&elsewhere, by_id.clone()).await;
    refused(
        &other,
        "execution_id_reused",
        "execution_id",
        "another automation",
    );

    // Once finished, the same request gets the first execution with its result, by key or id.
    env.wait_final(first["execution_id"].as_str().expect("id"))
        .await;
    let (status, third) = post(&lead, keyed(ab.clone())).await;
    assert_eq!(
        (status, &third["execution_id"], third["status"].as_str()),
        (202, &first["execution_id"], Some("succeeded")),
        "{third}"
    );
    assert_eq!(
        third["result"]["status"], "succeeded",
        "the first execution's result comes back"
    );
    let (status, by_id) = post(&lead, by_id).await;
    assert_eq!(
        (status, &by_id["execution_id"]),
        (202, &first["execution_id"]),
        "{by_id}"
    );
    assert_eq!(
        env.sandbox.requests_to("/sobjects/Lead/").len(),
        1,
        "one lead, however often the key is sent"
    );
    let blank = post(&lead, json!({"parameters": {}, "idempotency_key": ""})).await;
    assert_eq!(
        (blank.0, blank.1["error"]["field"].as_str()),
        (422, Some("idempotency_key"))
    );
    env.stop().await;
}

/// The `Idempotency-Key` header that HTTP clients and flow tools send is the body's key: a
/// retry carrying it gets the first execution, one carrying it with other values is refused,
/// and a header that contradicts the body's key or is malformed is refused naming it.
#[tokio::test]
async fn the_idempotency_key_header_is_the_bodys_key() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    let path = format!("/v1/automations/{lead}/executions");
    let post = |key: &'static str, body: Value| {
        let req = env.api_request(&env.admin_token, Method::POST, &path);
        async move {
            let (status, _, answer) =
                TestEnv::exchange(req.header("Idempotency-Key", key), Some(body)).await;
            (status.as_u16(), answer)
        }
    };
    let ab = json!({"parameters": {"LastName": "A", "Company": "B"}});
    let (s1, first) = post("\"crm-sync-7\"", ab.clone()).await;
    let (s2, again) = post("crm-sync-7", ab.clone()).await;
    assert_eq!((s1, s2), (202, 202), "{first} {again}");
    assert_eq!(
        first["execution_id"], again["execution_id"],
        "quoted or bare, one key: {again}"
    );
    let in_body =
        json!({"parameters": {"LastName": "A", "Company": "B"}, "idempotency_key": "crm-sync-7"});
    let (_, by_body) = post("crm-sync-7", in_body).await;
    assert_eq!(first["execution_id"], by_body["execution_id"], "{by_body}");
    let other = post(
        "crm-sync-7",
        json!({"parameters": {"LastName": "Other", "Company": "B"}}),
    )
    .await;
    refused(
        &other,
        "idempotency_key_reused",
        "idempotency_key",
        "other parameter values",
    );
    let contradicting =
        json!({"parameters": {"LastName": "A", "Company": "B"}, "idempotency_key": "crm-sync-8"});
    refused(
        &post("crm-sync-7", contradicting).await,
        "validation_failed",
        "Idempotency-Key",
        "differ",
    );
    let (status, malformed) = post("\"unclosed", ab).await;
    assert_eq!(
        (
            status,
            malformed["error"]["code"].as_str(),
            malformed["error"]["field"].as_str()
        ),
        (400, Some("invalid_header"), Some("Idempotency-Key")),
        "{malformed}"
    );
    env.wait_final(first["execution_id"].as_str().expect("id"))
        .await;
    assert_eq!(
        env.sandbox.requests_to("/sobjects/Lead/").len(),
        1,
        "one lead for the key"
    );
    env.stop().await;
}

/// A request accepted, then sent again after its automation was paused (a bot retrying a
/// call whose answer it lost, while an admin pauses the automation for an incident at the
/// vendor), is answered with its execution — it may have run — not refused as if it were new;
/// a new request is refused.
#[tokio::test]
async fn a_request_sent_again_after_its_automation_was_paused_gets_its_execution() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    let path = format!("/v1/automations/{lead}/executions");
    let request = json!({"parameters": {"LastName": "Before", "Company": "Pause"},
        "idempotency_key": "bot-turn-9", "wait_ms": 10_000});
    let (status, first) = env.call(Method::POST, &path, Some(request.clone())).await;
    assert_eq!(
        (status.as_u16(), first["status"].as_str()),
        (200, Some("succeeded")),
        "{first}"
    );
    let (status, paused) = env
        .call(
            Method::PATCH,
            &format!("/v1/automations/{lead}"),
            Some(json!({"status": "paused"})),
        )
        .await;
    assert_eq!(status, 200, "{paused}");

    let (status, again) = env.call(Method::POST, &path, Some(request)).await;
    assert_eq!(
        (
            status.as_u16(),
            &again["execution_id"],
            again["result"]["status"].as_str()
        ),
        (200, &first["execution_id"], Some("succeeded")),
        "{again}"
    );
    let by_id = json!({"parameters": {"LastName": "Before", "Company": "Pause"},
        "execution_id": first["execution_id"]});
    let (status, by_id) = env.call(Method::POST, &path, Some(by_id)).await;
    assert_eq!(
        (status.as_u16(), &by_id["execution_id"]),
        (202, &first["execution_id"]),
        "{by_id}"
    );
    let new = json!({"parameters": {"LastName": "After", "Company": "Pause"},
        "idempotency_key": "bot-turn-10"});
    let (status, refused) = env.call(Method::POST, &path, Some(new)).await;
    assert_eq!(
        (status.as_u16(), refused["error"]["code"].as_str()),
        (409, Some("automation_paused")),
        "{refused}"
    );
    assert_eq!(env.sandbox.requests_to("/sobjects/Lead/").len(), 1);
    env.stop().await;
}

/// An execution id published again over AMQP with another request — other values, another
/// automation — whether its execution has finished or is still at the vendor, is not run and
/// not answered with the first request's result as if it were its own: it is dead-lettered as
/// `execution_id_reused` and answered `failed` on its reply queue only (the results exchange
/// carries the execution's own outcome); the ledger row stays the first request's.
#[tokio::test]
async fn an_execution_id_published_again_with_another_request_is_refused_not_answered() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    let mut replies = env.listen("", "").await;
    let mut results = env
        .listen(&env.names.results_exchange, &format!("{}.#", env.tenant))
        .await;
    let request = |id: &str, automation: &str, last_name: &str| {
        json!({"version": 1, "execution_id": id, "tenant_id": env.tenant.to_string(),
            "automation_id": automation, "parameters": {"LastName": last_name, "Company": "Reuse"}})
        .to_string()
    };
    let (id, body) = env.request(&lead, json!({"LastName": "First", "Company": "Reuse"}));
    let first = env.ask(&mut replies, &body).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    // The same request again is answered with its execution's result.
    let again = env.ask(&mut replies, &body).await;
    assert_eq!(again["output"], first["output"], "{again}");

    let refused = |answer: Value, differs: &str| {
        assert_failed_with(Some(answer), "execution_id_reused", &[differs, &id]);
    };
    let other_values = request(&id, &lead, "Second");
    refused(
        env.ask(&mut replies, other_values.as_bytes()).await,
        "other parameter values",
    );
    let elsewhere = env.lead_beside(&lead, "Lead elsewhere").await;
    let other_automation = request(&id, &elsewhere, "First");
    refused(
        env.ask(&mut replies, other_automation.as_bytes()).await,
        "another automation",
    );

    // Under way at a slow vendor, it is refused at once, not made to wait for the first.
    env.sandbox.set_latency(Duration::from_secs(3));
    let (slow, body) = env.request(&lead, json!({"LastName": "Slow", "Company": "Reuse"}));
    env.publish_raw(
        body.as_slice(),
        aic_tests::harness::reply_properties(&replies.queue),
    )
    .await;
    while env.sandbox.requests_to("/sobjects/Lead/").len() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = std::time::Instant::now();
    let meanwhile = env
        .ask(&mut replies, request(&slow, &lead, "Other").as_bytes())
        .await;
    assert!(started.elapsed() < Duration::from_secs(2), "{meanwhile}");
    assert_failed_with(Some(meanwhile), "execution_id_reused", &[&slow]);
    let slow_result = replies.next_json(Duration::from_secs(10)).await;
    let slow_result = slow_result.expect("the first request's own result");
    assert_eq!(slow_result["status"], "succeeded", "{slow_result}");

    for _ in 0..3 {
        let dead = env.next_dead_letter().await;
        assert_eq!(
            dead_letter_header(&dead, DEAD_LETTER_REASON_HEADER),
            "execution_id_reused"
        );
        assert!(dead_letter_header(&dead, DEAD_LETTER_DETAIL_HEADER).contains("first published"));
    }
    // The results exchange carried each execution's own outcomes, never the refusals.
    let mut seen = Vec::new();
    while let Some(r) = results.next_json(Duration::from_millis(500)).await {
        seen.push(r["status"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(seen, ["succeeded", "succeeded", "succeeded"], "{seen:?}");
    for (id, last_name) in [(&id, "First"), (&slow, "Slow")] {
        let row = env
            .query_one(
                "SELECT status, parameters->>'LastName', automation_id::text FROM executions WHERE id = $1::text::uuid",
                &[id],
            )
            .await;
        let (status, name, automation): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        assert_eq!((status.as_str(), name.as_str()), ("succeeded", last_name));
        assert_eq!(automation, lead);
    }
    let sent = env.sandbox.requests_to("/sobjects/Lead/");
    assert_eq!(sent.len(), 2, "only the first requests reached the vendor");
    env.stop().await;
}
