//! Creates whose answer was lost: resolved through the vendor's dedupe handle where one exists
//! (ServiceNow `correlation_id`), reported as `unknown_outcome` where none does — never sent
//! twice blindly.

use aic_proto::topology::EXECUTION_REQUEST_TYPE;
use aic_tests::harness::{Options, TestEnv};
use aic_tests::sandbox::faults::Fault;
use lapin::options::{BasicGetOptions, BasicNackOptions};
use serde_json::{Value, json};
use std::time::Duration;

fn posts(env: &TestEnv) -> usize {
    env.sandbox
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/now/table/incident")
        .count()
}

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
    assert_eq!(posts(&env), 1, "not created twice");
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
    assert_eq!(posts(&env), 3);
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
    assert_eq!(posts(&env), 2);
    assert_eq!(env.sandbox.state.servicenow.records().len(), 1);
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
    assert_eq!(posts(&env), 1);

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

/// A Create Lead automation whose creates upsert on an external id field.
async fn upserting_lead(env: &TestEnv) -> String {
    let id = env.upserting_lead_automation().await;
    let (_, view) = env
        .call(reqwest::Method::GET, &format!("/v1/automations/{id}"), None)
        .await;
    assert_eq!(view["external_id_field"], "AIC_Execution_Id__c");
    id
}

fn upserts(env: &TestEnv, execution: &str) -> usize {
    env.sandbox
        .requests()
        .iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.path
                    .ends_with(&format!("/sobjects/Lead/AIC_Execution_Id__c/{execution}"))
        })
        .count()
}

#[tokio::test]
async fn a_salesforce_upsert_on_an_external_id_is_re_sent_safely_after_a_lost_answer() {
    let env = TestEnv::start().await;
    let lead = upserting_lead(&env).await;
    // A plain run: one upsert that creates.
    let plain = env
        .run(&lead, json!({"LastName": "Plain", "Company": "Acme"}))
        .await;
    assert_eq!(plain["status"], "succeeded", "{plain}");
    assert_ne!(plain["result"]["deduplicated"], true, "{plain}");
    // The record lands but the answer is lost: the re-sent upsert finds it.
    env.sandbox.state.faults.push([Fault::ResetAfterApply]);
    let done = env
        .run(&lead, json!({"LastName": "Lost answer", "Company": "Acme"}))
        .await;
    let id = done["id"].as_str().expect("id");
    let records = env.sandbox.state.salesforce.records("Lead");
    let holding: Vec<_> = records
        .iter()
        .filter(|(_, f)| f["AIC_Execution_Id__c"] == id)
        .collect();
    println!(
        "upsert with a lost answer: {} calls, {} record(s), result {}",
        upserts(&env, id),
        holding.len(),
        done["result"]
    );
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["deduplicated"], true, "{done}");
    assert_eq!(upserts(&env, id), 2, "sent again, safely");
    assert_eq!(holding.len(), 1, "one record, not two");
    assert_eq!(done["result"]["output"]["id"], holding[0].0.as_str());
    assert_eq!(records.len(), 2, "the plain one and this one");
    env.stop().await;
}

/// Whether the ledger's row of `execution` holds the vendor-call mark.
async fn marked(env: &TestEnv, execution: &str) -> bool {
    let id: uuid::Uuid = execution.parse().expect("execution id");
    env.pool
        .get()
        .await
        .expect("db")
        .query_one(
            "SELECT vendor_call_started_at IS NOT NULL FROM executions WHERE id = $1",
            &[&id],
        )
        .await
        .expect("the execution's row")
        .get(0)
}

/// Ledger statements of `kind` the worker has run (its `/metrics`).
async fn statements(env: &TestEnv, kind: &str) -> u64 {
    let metrics = env.metrics().await;
    let prefix = format!("aic_ledger_batch_executions_sum{{statement=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// A request's first delivery is marked by the statement that begins it, and goes to the vendor
/// with no statement of its own for the mark when the connection has a slot free at once. The
/// first call on a connection asks the fleet for its share first: it waits with the mark taken
/// back, and a create is marked again before it leaves (an upsert is not: any delivery finding
/// it unfinished sends it again, mark or no mark).
#[tokio::test]
async fn a_first_delivery_is_marked_by_begin_and_needs_no_mark_statement_when_a_slot_is_free() {
    let env = TestEnv::start().await;
    let upsert = upserting_lead(&env).await;
    let plain = env.lead_automation().await;
    let succeeded = |done: &Value| {
        assert_eq!(done["status"], "succeeded", "{done}");
        done["id"].as_str().expect("id").to_string()
    };
    // The first call on each connection (each automation has its own).
    let first = succeeded(
        &env.run(&plain, json!({"LastName": "First", "Company": "Acme"}))
            .await,
    );
    assert_eq!(statements(&env, "mark").await, 2, "taken back, then set");
    assert!(marked(&env, &first).await);
    let first_upsert = succeeded(
        &env.run(&upsert, json!({"LastName": "First up", "Company": "Acme"}))
            .await,
    );
    assert_eq!(statements(&env, "mark").await, 3, "taken back only");
    assert!(!marked(&env, &first_upsert).await);
    // Slots free at once: begin's mark stands, and no mark statement runs.
    let created = succeeded(
        &env.run(&plain, json!({"LastName": "Created", "Company": "Acme"}))
            .await,
    );
    let upserted = succeeded(
        &env.run(&upsert, json!({"LastName": "Upserted", "Company": "Acme"}))
            .await,
    );
    assert_eq!(statements(&env, "mark").await, 3, "no mark statement");
    assert_eq!(statements(&env, "begin").await, 4);
    for id in [&created, &upserted] {
        assert!(marked(&env, id).await, "{id}");
    }
    assert_eq!(upserts(&env, &upserted), 1);
    env.stop().await;
}

/// A first delivery that has to wait for a slot of the connection (its cap of one is taken by
/// a slow call) waits with the mark taken back: a crash then leaves it to be sent, not reported
/// in doubt. It is marked again before its own call.
#[tokio::test]
async fn a_first_delivery_waiting_for_a_slot_waits_unmarked() {
    let env = TestEnv::start().await;
    let lead = env.lead_automation().await;
    env.cap_connections(1).await;
    env.sandbox.set_latency(Duration::from_millis(1500));
    let holder = env
        .enqueue(&lead, json!({"LastName": "Holder", "Company": "Acme"}))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while env.sandbox.requests_to("/sobjects/Lead/").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first call did not start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let waiter = env
        .enqueue(&lead, json!({"LastName": "Waiter", "Company": "Acme"}))
        .await;
    let id: uuid::Uuid = waiter.parse().expect("id");
    let client = env.pool.get().await.expect("db");
    let mut waited_unmarked = false;
    while env.sandbox.requests_to("/sobjects/Lead/").len() == 1 {
        let row = client
            .query_opt(
                "SELECT status, vendor_call_started_at IS NOT NULL FROM executions WHERE id = $1",
                &[&id],
            )
            .await
            .expect("the waiter's row");
        if let Some(row) = row
            && row.get::<_, String>(0) == "running"
            && !row.get::<_, bool>(1)
        {
            waited_unmarked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        waited_unmarked,
        "the waiter was marked while the other call held the slot"
    );
    for id in [&holder, &waiter] {
        let done = env.wait_final(id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert!(marked(&env, id).await, "marked before its call: {done}");
    }
    assert_eq!(env.sandbox.requests_to("/sobjects/Lead/").len(), 2);
    env.stop().await;
}

#[tokio::test]
async fn an_upsert_answered_204_reads_the_record_back_for_its_id() {
    let env = TestEnv::start().await;
    let lead = upserting_lead(&env).await;
    env.sandbox
        .state
        .salesforce
        .legacy_upsert_204
        .store(true, std::sync::atomic::Ordering::SeqCst);
    env.sandbox.state.faults.push([Fault::ResetAfterApply]);
    let done = env
        .run(&lead, json!({"LastName": "Legacy", "Company": "Acme"}))
        .await;
    let id = done["id"].as_str().expect("id");
    let records = env.sandbox.state.salesforce.records("Lead");
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["deduplicated"], true, "{done}");
    assert_eq!(records.len(), 1);
    assert_eq!(
        done["result"]["output"]["id"],
        records[0].0.as_str(),
        "{done}"
    );
    assert_eq!(records[0].1["AIC_Execution_Id__c"], id);
    env.stop().await;
}

#[tokio::test]
async fn an_external_id_field_is_checked_when_the_automation_is_created() {
    let env = TestEnv::start().await;
    let sf = env.salesforce_connection("Org", "s3cret", "s3cret").await;
    env.sandbox.state.slack.add_token("xoxb-x");
    let slack = env
        .connection(
            "Slack",
            "slack",
            "bot_token",
            json!({"bot_token": "xoxb-x"}),
        )
        .await;
    for (template, conn, field, why) in [
        ("salesforce.create_lead", &sf, "Email", "not a custom field"),
        (
            "salesforce.create_lead",
            &sf,
            "Bad__Name__c",
            "not a custom field",
        ),
        (
            "salesforce.create_lead",
            &sf,
            "x/../y__c",
            "not a custom field",
        ),
        (
            "slack.send_message",
            &slack,
            "AIC_Id__c",
            "Salesforce create templates",
        ),
    ] {
        let (status, body) = env
            .call(
                reqwest::Method::POST,
                "/v1/automations",
                Some(json!({"template": template, "name": format!("A {field}"),
                    "connection_id": conn["id"], "external_id_field": field})),
            )
            .await;
        assert_eq!(status, 422, "{field}: {body}");
        assert_eq!(body["error"]["field"], "external_id_field", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(why),
            "{body}"
        );
    }
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
