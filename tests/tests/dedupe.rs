//! Creates whose answer was lost: resolved through the vendor's dedupe handle where one exists
//! (ServiceNow `correlation_id`), reported as `unknown_outcome` where none does — never sent
//! twice blindly.

use aic_proto::topology::EXECUTION_REQUEST_TYPE;
use aic_tests::harness::{Options, TestEnv};
use aic_tests::sandbox::faults::Fault;
use lapin::options::{BasicGetOptions, BasicNackOptions};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn a_servicenow_create_whose_answer_was_lost_is_found_not_repeated() {
    let env = TestEnv::start().await;
    let incident = env.incident_automation().await;
    env.sandbox.state.faults.push([Fault::ResetAfterApply]);
    let done = env
        .run(
            &incident,
            json!({"short_description": "applied, answer lost"}),
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["deduplicated"], true);
    assert!(
        done["result"]["output"]["number"]
            .as_str()
            .unwrap_or("")
            .starts_with("INC"),
        "{done}"
    );
    assert_eq!(env.sandbox.incident_creates(), 1, "not created twice");
    let records = env.sandbox.state.servicenow.records();
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].1["correlation_id"], done["id"],
        "the execution id is the correlation id"
    );

    // Lost before it was applied: the lookup finds nothing, so sending again is safe.
    env.sandbox.state.faults.push([Fault::ResetAfterRequest]);
    let done = env
        .run(&incident, json!({"short_description": "never applied"}))
        .await;
    assert_eq!(
        (
            done["status"].as_str(),
            done["result"]["deduplicated"].as_bool()
        ),
        (Some("succeeded"), None),
        "{done}"
    );
    assert_eq!(done["result"]["attempts"], 2);
    assert_eq!(env.sandbox.incident_creates(), 3);
    assert_eq!(env.sandbox.state.servicenow.records().len(), 2);
    env.stop().await;
}

/// A lost answer's lookup by correlation id that fails for a moment (a 503) is retried like
/// any call, not taken for "no way to tell": the create is found missing and sent again.
#[tokio::test]
async fn a_dedupe_lookup_that_fails_for_a_moment_is_retried_before_giving_up() {
    let env = TestEnv::start().await;
    let incident = env.incident_automation().await;
    env.sandbox
        .state
        .faults
        .push([Fault::ResetAfterRequest, Fault::ServerError(503)]);
    let done = env
        .run(&incident, json!({"short_description": "lookup blip"}))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["result"]["attempts"], 2,
        "the lost create and its resend: {done}"
    );
    assert_eq!(env.sandbox.incident_creates(), 2);
    assert_eq!(env.sandbox.state.servicenow.records().len(), 1);

    // A lookup that keeps failing leaves the create in doubt, and the outcome says why.
    let mut faults = vec![Fault::ResetAfterRequest];
    faults.extend([Fault::ServerError(503); 20]);
    env.sandbox.state.faults.push(faults);
    let done = env
        .run(&incident, json!({"short_description": "lookup down"}))
        .await;
    assert_eq!(done["status"], "unknown_outcome", "{done}");
    let message = done["result"]["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("the dedupe lookup failed (transient"),
        "{done}"
    );
    assert_eq!(
        env.sandbox.incident_creates(),
        3,
        "not sent again while in doubt"
    );
    env.stop().await;
}

/// A lost answer's lookup the vendor refuses for its token (expired between the create and the
/// lookup) is made again with a refreshed token, as a call would be, rather than leaving the
/// create in doubt: the create had landed, so the execution is answered from the record.
#[tokio::test]
async fn a_dedupe_lookup_refused_for_its_token_is_made_again_with_a_fresh_one() {
    let env = TestEnv::start().await;
    let oauth = env.servicenow_oauth_connection().await;
    let incident = env
        .published_automation("servicenow.create_incident", &oauth, "Incident", None)
        .await;
    let first = env
        .run(&incident, json!({"short_description": "warm"}))
        .await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let grants = env.sandbox.requests_to("/oauth_token.do").len();
    // The create lands and its answer is lost; the lookup's token is refused.
    env.sandbox
        .state
        .faults
        .push([Fault::ResetAfterApply, Fault::TokenRefused]);
    let done = env
        .run(&incident, json!({"short_description": "token expired"}))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["deduplicated"], true, "{done}");
    assert_eq!(env.sandbox.incident_creates(), 2, "not created twice");
    assert_eq!(
        env.sandbox.requests_to("/oauth_token.do").len(),
        grants + 1,
        "one token refresh"
    );
    env.stop().await;
}

/// Runs one execution over AMQP, then rewinds its ledger row to what a worker crash between the
/// vendor call and the record leaves (running, vendor call started), and has the broker deliver
/// it again as it does after a crash: the copy taken off the executions queue by a consumer that
/// gives it back unacked comes again flagged `redelivered` (a client's second publish would
/// not be: that copy would wait for the first, see
/// `a_request_published_twice_at_once_is_sent_once_and_answered_alike`). The environment runs
/// no worker of its own: each delivery gets one, stopped before the next.
async fn crash_and_redeliver(env: &TestEnv, automation: &str, params: Value) -> (Value, Value) {
    let mut replies = env.listen("", "").await;
    let id = uuid::Uuid::now_v7().to_string();
    let body = json!({"version": 1, "execution_id": id, "tenant_id": env.tenant.to_string(), "automation_id": automation, "parameters": params}).to_string();
    let props = aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE)
        .with_reply_to(replies.queue.as_str().into());
    let worker = env.start_worker(|_| ()).await;
    env.publish_raw(body.as_bytes(), props.clone()).await;
    let first = replies
        .next_json(Duration::from_secs(10))
        .await
        .expect("first result");
    worker.shutdown().await;
    let client = env.pool.get().await.expect("db");
    client
        .execute("UPDATE executions SET status = 'running', result = NULL, finished_at = NULL WHERE id = $1::text::uuid", &[&id])
        .await
        .expect("rewound");
    env.publish_raw(body.as_bytes(), props).await;
    let ch = env.amqp.create_channel().await.expect("channel");
    let taken = ch
        .basic_get(
            env.names.executions_queue.as_str().into(),
            BasicGetOptions { no_ack: false },
        )
        .await
        .expect("basic.get")
        .expect("the copy is queued");
    ch.basic_nack(
        taken.delivery.delivery_tag,
        BasicNackOptions {
            multiple: false,
            requeue: true,
        },
    )
    .await
    .expect("given back");
    let worker = env.start_worker(|_| ()).await;
    let second = replies
        .next_json(Duration::from_secs(10))
        .await
        .expect("second result");
    worker.shutdown().await;
    (first, second)
}

#[tokio::test]
async fn after_a_crash_the_redelivered_create_is_resolved_by_the_dedupe_handle_or_reported_in_doubt()
 {
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Options::default()
    })
    .await;
    let incident = env.incident_automation().await;
    let (first, second) =
        crash_and_redeliver(&env, &incident, json!({"short_description": "crash"})).await;
    assert_eq!(first["status"], "succeeded");
    assert_eq!(
        (second["status"].as_str(), second["deduplicated"].as_bool()),
        (Some("succeeded"), Some(true)),
        "{second}"
    );
    assert_eq!(
        second["output"]["sys_id"], first["output"]["sys_id"],
        "the same record"
    );
    assert_eq!(second["attempts"], 0);
    assert_eq!(env.sandbox.incident_creates(), 1);

    // Salesforce create has no dedupe handle: in doubt, not re-sent.
    let lead = env.lead_automation().await;
    let (first, second) =
        crash_and_redeliver(&env, &lead, json!({"LastName": "Crash", "Company": "C"})).await;
    assert_eq!(first["status"], "succeeded");
    assert_eq!(second["status"], "unknown_outcome", "{second}");
    assert!(
        second["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("no dedupe handle"),
        "{second}"
    );
    assert_eq!(
        env.sandbox.requests_to("/sobjects/Lead/").len(),
        1,
        "never sent twice"
    );
    env.stop().await;
}

/// A client may publish a request twice (it lost the first publish's confirm): the two copies
/// then run at the same time, here while the vendor takes 300 ms to answer the first. The
/// automation still runs once — one create at the vendor —, and both copies are answered with
/// the same final result, the one the ledger recorded.
#[tokio::test]
async fn a_request_published_twice_at_once_is_sent_once_and_answered_alike() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    env.sandbox.set_latency(Duration::from_millis(300));
    let mut replies = env.listen("", "").await;
    let id = uuid::Uuid::now_v7().to_string();
    let body = json!({"version": 1, "execution_id": id, "tenant_id": env.tenant.to_string(), "automation_id": lead, "parameters": {"LastName": "Twice", "Company": "Acme"}}).to_string();
    let props = aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE)
        .with_reply_to(replies.queue.as_str().into());
    env.publish_raw(body.as_bytes(), props.clone()).await;
    env.publish_raw(body.as_bytes(), props).await;
    let mut answers = Vec::new();
    for _ in 0..2 {
        answers.push(
            replies
                .next_json(Duration::from_secs(20))
                .await
                .expect("each copy is answered"),
        );
    }
    assert_eq!(
        env.sandbox.requests_to("/sobjects/Lead/").len(),
        1,
        "sent once: {answers:?}"
    );
    assert_eq!(answers[0], answers[1], "answered alike");
    assert_eq!(answers[0]["status"], "succeeded", "{answers:?}");
    assert!(
        env.metrics()
            .await
            .lines()
            .any(|l| l.starts_with("aic_duplicate_copies_total ") && !l.ends_with(" 0")),
        "the copy that waited is counted"
    );
    env.stop().await;
}

/// A sign-in page or a proxy answering 200 in the vendor's place is no success: a create
/// without a dedupe handle is reported in doubt, saying what answered; one with a handle is
/// looked up, found missing and sent again; a connection's test fails.
#[tokio::test]
async fn a_page_answering_in_the_vendors_place_is_no_success() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    env.sandbox.state.faults.push([Fault::HtmlPage]);
    let done = env
        .run(&lead, json!({"LastName": "Proxied", "Company": "Acme"}))
        .await;
    assert_eq!(
        (
            done["status"].as_str(),
            done["result"]["error"]["code"].as_str()
        ),
        (Some("unknown_outcome"), Some("unknown_outcome")),
        "{done}"
    );
    let message = done["result"]["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("200 OK with a body that is not JSON (text/html; charset=utf-8)"),
        "{message}"
    );
    let incident = env.incident_automation().await;
    env.sandbox.state.faults.push([Fault::HtmlPage]);
    let done = env
        .run(&incident, json!({"short_description": "behind a proxy"}))
        .await;
    assert_eq!(
        (done["status"].as_str(), done["result"]["attempts"].as_u64()),
        (Some("succeeded"), Some(2)),
        "{done}"
    );
    assert_eq!(env.sandbox.state.servicenow.records().len(), 1);
    // Nor does such a page prove a connection's credentials in its test.
    let (_, read) = env
        .call(
            reqwest::Method::GET,
            &format!("/v1/automations/{lead}"),
            None,
        )
        .await;
    let connection = read["connection_id"].as_str().expect("connection");
    env.sandbox.state.faults.push([Fault::HtmlPage]);
    let test = env.test_connection(connection).await;
    assert_eq!(
        (test["ok"].as_bool(), test["status"].as_str()),
        (Some(false), Some("failing")),
        "{test}"
    );
    assert!(test.to_string().contains("not JSON (text/html"), "{test}");
    env.stop().await;
}
