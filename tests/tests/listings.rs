//! "My automations" and "My connections": the tenant's lists filtered by app, business domain
//! and status and searched without case or accents, and a mistaken filter named.

use aic_tests::harness::{Options, TestEnv};
use reqwest::Method;
use serde_json::{Value, json};

/// The names in a list answer, in order.
fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|a| a["name"].as_str().expect("name"))
        .collect()
}

async fn listed(env: &TestEnv, path: &str) -> Value {
    let (status, list) = env.call(Method::GET, path, None).await;
    assert_eq!(status, 200, "{path}: {list}");
    list
}

#[tokio::test]
async fn lists_filter_by_app_domain_and_status_and_search_without_accents() {
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let lead = env.lead_automation().await; // "Create lead" on "Sales org"
    let jira = env.jira_connection("t0k3n").await;
    let issue = env
        .published_automation("jira.create_issue", &jira, "Créer un ticket", None)
        .await;
    env.call(
        Method::PATCH,
        &format!("/v1/automations/{issue}"),
        Some(json!({"status": "paused", "description": "Incidents remontés par le bot"})),
    )
    .await;
    let cases = [
        ("/v1/automations", vec!["Create lead", "Créer un ticket"]),
        ("/v1/automations?status=paused", vec!["Créer un ticket"]),
        ("/v1/automations?status=running", vec!["Create lead"]),
        ("/v1/automations?app=jira", vec!["Créer un ticket"]),
        ("/v1/automations?domain=sales", vec!["Create lead"]),
        ("/v1/automations?domain=engineering&status=running", vec![]),
        ("/v1/automations?q=CREER", vec!["Créer un ticket"]),
        ("/v1/automations?q=remontes", vec!["Créer un ticket"]),
        ("/v1/automations?q=lead&app=salesforce", vec!["Create lead"]),
        ("/v1/connections?app=jira", vec!["Jira"]),
        ("/v1/connections?status=untested", vec!["Sales org", "Jira"]),
        ("/v1/connections?status=connected", vec![]),
        ("/v1/connections?q=SALES", vec!["Sales org"]),
        ("/v1/connections?q=127.0.0.1", vec!["Sales org", "Jira"]),
    ];
    for (path, expected) in cases {
        assert_eq!(names(&listed(&env, path).await), expected, "{path}");
    }
    assert_eq!(
        listed(&env, "/v1/automations?app=salesforce").await[0]["id"],
        lead.as_str()
    );
    env.stop().await;
}

#[tokio::test]
async fn a_mistaken_filter_is_named_not_ignored() {
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let cases = [
        (
            "/v1/automations?status=stopped",
            "validation_failed",
            Some("status"),
        ),
        (
            "/v1/automations?domain=astrology",
            "validation_failed",
            Some("domain"),
        ),
        (
            "/v1/automations?app=myspace",
            "validation_failed",
            Some("app"),
        ),
        (
            "/v1/automations?stauts=paused",
            "invalid_query",
            Some("stauts"),
        ),
        (
            "/v1/connections?status=broken",
            "validation_failed",
            Some("status"),
        ),
        (
            "/v1/connections?app=myspace",
            "validation_failed",
            Some("app"),
        ),
        (
            "/v1/connections?colour=red",
            "invalid_query",
            Some("colour"),
        ),
        // A NUL character no filter takes (PostgreSQL cannot compare it), refused by name.
        ("/v1/connections?q=a%00b", "invalid_query", Some("q")),
        (
            "/v1/deployables?system=%00",
            "invalid_query",
            Some("system"),
        ),
    ];
    for (path, code, field) in cases {
        env.assert_refused(Method::GET, path, None, (422, code, field))
            .await;
    }
    let (_, err) = env
        .call(Method::GET, "/v1/automations?stauts=paused", None)
        .await;
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("stauts"),
        "{err}"
    );
    env.stop().await;
}
