//! Creates whose answer was lost: resolved through the vendor's dedupe handle where one exists
//! (ServiceNow `correlation_id`), reported as `unknown_outcome` where none does — never sent
//! twice blindly.

use aic_proto::topology::EXECUTION_REQUEST_TYPE;
use aic_tests::harness::TestEnv;
use aic_tests::sandbox::faults::Fault;
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

/// Runs one execution over AMQP, then rewinds its ledger row to what a worker crash between the
/// vendor call and the record leaves (running, vendor call started), and delivers it again.
async fn crash_and_redeliver(env: &TestEnv, automation: &str, params: Value) -> (Value, Value) {
    let mut replies = env.listen("", "").await;
    let id = uuid::Uuid::now_v7().to_string();
    let body = json!({"version": 1, "execution_id": id, "tenant_id": env.tenant.to_string(), "automation_id": automation, "parameters": params}).to_string();
    let props = aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE)
        .with_reply_to(replies.queue.as_str().into());
    env.publish_raw(body.as_bytes(), props.clone()).await;
    let first = replies
        .next_json(Duration::from_secs(10))
        .await
        .expect("first result");
    let client = env.pool.get().await.expect("db");
    client
        .execute("UPDATE executions SET status = 'running', result = NULL, finished_at = NULL WHERE id = $1::text::uuid", &[&id])
        .await
        .expect("rewound");
    env.publish_raw(body.as_bytes(), props).await;
    let second = replies
        .next_json(Duration::from_secs(10))
        .await
        .expect("second result");
    (first, second)
}

#[tokio::test]
async fn after_a_crash_the_redelivered_create_is_resolved_by_the_dedupe_handle_or_reported_in_doubt()
 {
    let env = TestEnv::start().await;
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

/// An upsert keyed by the execution id is sent again by any delivery that finds it unfinished,
/// mark or no mark, so it goes without one: a ledger commit fewer per execution. A plain create
/// is marked before it leaves.
#[tokio::test]
async fn an_upsert_goes_without_the_vendor_call_mark_a_plain_create_is_marked() {
    let env = TestEnv::start().await;
    let upsert = upserting_lead(&env).await;
    let plain = env.lead_automation().await;
    let upserted = env
        .run(&upsert, json!({"LastName": "Upserted", "Company": "Acme"}))
        .await;
    let created = env
        .run(&plain, json!({"LastName": "Created", "Company": "Acme"}))
        .await;
    for done in [&upserted, &created] {
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let (upserted, created) = (
        upserted["id"].as_str().expect("id"),
        created["id"].as_str().expect("id"),
    );
    assert_eq!(upserts(&env, upserted), 1);
    assert!(!marked(&env, upserted).await, "the upsert was not marked");
    assert!(marked(&env, created).await, "the plain create was marked");
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
