//! Salesforce creates made as upserts on an external id field: keyed by the execution id, so a
//! create whose answer was lost is sent again safely and the vendor finds the record a first
//! send made; the field itself is checked when the automation is created.

use aic_tests::harness::TestEnv;
use aic_tests::sandbox::faults::Fault;
use serde_json::json;

/// A Create Lead automation whose creates upsert on an external id field.
async fn upserting_lead(env: &TestEnv) -> String {
    let id = env.upserting_lead_automation().await;
    let (_, view) = env
        .call(reqwest::Method::GET, &format!("/v1/automations/{id}"), None)
        .await;
    assert_eq!(view["external_id_field"], "AIC_Execution_Id__c");
    id
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
        env.sandbox.lead_upserts(id),
        holding.len(),
        done["result"]
    );
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["deduplicated"], true, "{done}");
    assert_eq!(env.sandbox.lead_upserts(id), 2, "sent again, safely");
    assert_eq!(holding.len(), 1, "one record, not two");
    assert_eq!(done["result"]["output"]["id"], holding[0].0.as_str());
    assert_eq!(records.len(), 2, "the plain one and this one");
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
