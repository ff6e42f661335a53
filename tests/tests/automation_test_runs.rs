//! "Test automation": a draft run once against the vendor before it is published — the request
//! an execution would send, its answer mapped as an execution's, refusals in the vendor's words,
//! and nothing left in the ledger or on the broker.

use aic_control_plane::auth::Role;
use aic_tests::harness::{Options, TestEnv};
use reqwest::Method;
use serde_json::json;

async fn executions(env: &TestEnv) -> i64 {
    env.pool
        .get()
        .await
        .expect("db")
        .query_one("SELECT count(*) FROM executions", &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn a_draft_is_tested_as_it_stands_not_as_published() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let automation = env.lead_automation().await;
    let path = format!("/v1/automations/{automation}");
    let params = env
        .parameters_renamed(&automation, "Title", "JobTitle")
        .await;
    env.call(Method::PATCH, &path, Some(json!({"parameters": params})))
        .await;

    let run =
        json!({"parameters": {"LastName": "Lovelace", "Company": "Engines", "JobTitle": "CTO"}});
    let (status, tested) = env
        .call(Method::POST, &format!("{path}/test"), Some(run))
        .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(
        (tested["ok"].as_bool(), tested["status"].as_str()),
        (Some(true), Some("succeeded")),
        "{tested}"
    );
    assert_eq!(
        tested["request"],
        "POST /services/data/v62.0/sobjects/Lead/"
    );
    let leads = env.sandbox.requests_to("/sobjects/Lead/");
    assert_eq!(leads.len(), 1);
    let sent: serde_json::Value = serde_json::from_str(&leads[0].body).expect("json");
    assert_eq!(
        (sent["LastName"].as_str(), sent["Title"].as_str()),
        (Some("Lovelace"), Some("CTO"))
    );
    assert!(
        tested["output"]["id"]
            .as_str()
            .is_some_and(|id| id.len() == 18),
        "{tested}"
    );
    assert!(!tested.to_string().contains("s3cret-value"), "{tested}");
    assert_eq!(executions(&env).await, 0, "a test run is no execution");
    let (_, after) = env.call(Method::GET, &path, None).await;
    assert_eq!(
        after["published_version"]["number"], 1,
        "nothing was published"
    );
    env.stop().await;
}

#[tokio::test]
async fn test_runs_refuse_bad_parameters_and_report_the_vendors_refusal() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let automation = env.lead_automation().await;
    let test = format!("/v1/automations/{automation}/test");
    let (status, err) = env
        .call(
            Method::POST,
            &test,
            Some(json!({"parameters": {"Company": "B"}})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), err["error"]["field"].as_str()),
        (422, Some("parameters.LastName")),
        "{err}"
    );
    assert!(
        env.sandbox.requests_to("/sobjects/").is_empty(),
        "nothing sent"
    );

    let wrong = env
        .salesforce_connection("Wrong org", "right", "wrong")
        .await;
    let refused = env
        .published_automation(
            "salesforce.create_lead",
            wrong["id"].as_str().expect("id"),
            "Refused",
            None,
        )
        .await;
    let (status, tested) = env
        .call(
            Method::POST,
            &format!("/v1/automations/{refused}/test"),
            Some(json!({"parameters": {"LastName": "A", "Company": "B"}})),
        )
        .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(
        (tested["ok"].as_bool(), tested["status"].as_str()),
        (Some(false), Some("failed"))
    );
    assert_eq!(tested["error"]["code"], "vendor_auth_failed", "{tested}");
    assert_eq!(
        tested["error"]["vendor"]["code"], "invalid_client",
        "{tested}"
    );
    assert!(
        !tested.to_string().contains("not-the-secret-9f2"),
        "{tested}"
    );

    let viewer = env.token(Role::Viewer).await;
    let denied = env
        .call_as(
            &viewer,
            Method::POST,
            &test,
            Some(json!({"parameters": {}})),
        )
        .await;
    assert_eq!(denied.0, 403, "{}", denied.1);
    let missing = env
        .call(Method::POST, "/v1/automations/nope/test", Some(json!({})))
        .await;
    assert_eq!(missing.0, 404, "{}", missing.1);
    env.stop().await;
}

#[tokio::test]
async fn an_upserting_draft_is_tested_as_the_upsert_it_would_send() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let automation = env.upserting_lead_automation().await;
    let (status, tested) = env
        .call(
            Method::POST,
            &format!("/v1/automations/{automation}/test"),
            Some(json!({"parameters": {"LastName": "A", "Company": "B"}})),
        )
        .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["ok"], true, "{tested}");
    let request = tested["request"].as_str().expect("request");
    assert!(
        request.starts_with("PATCH /services/data/v62.0/sobjects/Lead/AIC_Execution_Id__c/"),
        "{request}"
    );
    assert_eq!(env.sandbox.requests_to("/AIC_Execution_Id__c/").len(), 1);
    env.stop().await;
}
