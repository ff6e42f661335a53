//! Secrets never reach the logs: every log line of a full run — control plane, worker, and the
//! libraries under them, at debug level — is captured and searched for the client secret, the
//! admin token, the credential key and the vendor's access tokens.

use aic_tests::harness::TestEnv;
use aic_tests::logs::Captured;
use serde_json::json;
#[tokio::test]
async fn no_secret_or_token_appears_in_any_log_line() {
    let captured = Captured::install("debug");

    let env = TestEnv::start().await;
    let secret = "client-secret-that-must-stay-hidden-77";
    let conn = env.salesforce_connection("Org", secret, secret).await;
    let conn_id = conn["id"].as_str().expect("id");
    let test = env.test_connection(conn_id).await;
    assert_eq!(test["ok"], true);
    let automation = env
        .published_automation("salesforce.create_lead", conn_id, "Lead", None)
        .await;
    let e = env
        .enqueue(&automation, json!({"LastName": "A", "Company": "B"}))
        .await;
    assert_eq!(env.wait_final(&e).await["status"], "succeeded");
    env.sandbox.state.salesforce.expire_tokens();
    let e = env
        .enqueue(&automation, json!({"LastName": "C", "Company": "D"}))
        .await;
    assert_eq!(env.wait_final(&e).await["status"], "succeeded");
    let wrong = env
        .salesforce_connection("Wrong", "right-one", "wrong-secret-also-hidden-99")
        .await;
    let test = env.test_connection(wrong["id"].as_str().expect("id")).await;
    assert_eq!(test["ok"], false);
    let admin_token = env.admin_token.clone();
    env.stop().await;

    let logs = captured.text();
    assert!(
        logs.contains("execution finished"),
        "the capture works: {} bytes",
        logs.len()
    );
    for (what, needle) in [
        ("client secret", secret),
        ("wrong client secret", "wrong-secret-also-hidden-99"),
        ("admin token", admin_token.as_str()),
        ("Salesforce access token", "00D5g000004SbX!"),
    ] {
        assert!(!logs.contains(needle), "the {what} appears in the logs");
    }
}
