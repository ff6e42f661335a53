//! The OpenAPI document against the router: every operation it describes is served (a call
//! without a token is refused for want of one, never "no such route" or "method not allowed"),
//! and every `/v1` route the router declares is described — an endpoint added or renamed
//! without its description fails here. Each success an operation can answer is described, with
//! the body it comes with.

use aic_tests::harness::{Options, TestEnv};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn every_described_operation_is_served_and_every_route_described() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let doc = aic_control_plane::openapi::document();
    let paths = doc["paths"].as_object().expect("paths");
    let http = reqwest::Client::new();
    let mut described = 0;
    for (path, ops) in paths {
        let concrete = path
            .replace("{id}", &uuid::Uuid::now_v7().to_string())
            .replace("{app}", "salesforce")
            .replace("{number}", "1");
        for (method, op) in ops.as_object().expect("operations") {
            let method: Method = method.to_uppercase().parse().expect("method");
            let resp = http
                .request(method.clone(), format!("{}{concrete}", env.api))
                .send()
                .await
                .expect("answers");
            let public = op["security"] == serde_json::json!([]);
            let expected = if public { 200 } else { 401 };
            assert_eq!(
                resp.status().as_u16(),
                expected,
                "{method} {path}: described, so served ({})",
                if public { "public" } else { "needs a token" }
            );
            described += 1;
        }
    }
    assert!(
        described >= 38,
        "{described} operations: fewer than described today"
    );

    let router = include_str!("../../control-plane/src/routes/mod.rs");
    for declared in router.split('"').filter(|s| s.starts_with("/v1/")) {
        assert!(
            paths.contains_key(declared),
            "the router serves {declared}, which the OpenAPI document does not describe"
        );
    }
    env.stop().await;
}

/// Checks that the served document describes `status` for `method path` and that `body`
/// matches the schema it gives there.
fn assert_described(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let response = &doc["paths"][path][method]["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which the document does not describe: {body}"
    );
    let mut root = doc.clone();
    root["allOf"] = json!([response["content"]["application/json"]["schema"]]);
    let validator = jsonschema::validator_for(&root)
        .unwrap_or_else(|e| panic!("the schema of {method} {path} {status} compiles: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: {errors:?}\n{body}"
    );
}

/// An execution that finishes within its `wait_ms` is answered 200 with its result (asked for
/// again with its id, too), one that does not 202 — run at first and again —, and a
/// deployable registered 201 then, registered again, 200: each as the document says.
#[tokio::test]
async fn every_success_an_operation_answers_is_described_with_its_body() {
    let env = TestEnv::start().await;
    let (_, doc) = env.call(Method::GET, "/openapi.json", None).await;
    let automation = env.lead_automation().await;
    let enqueue = "/v1/automations/{id}/executions";
    let path = format!("/v1/automations/{automation}/executions");
    let lead = json!({"LastName": "Doc", "Company": "Acme"});

    let body = json!({"parameters": lead, "wait_ms": 20_000});
    let (status, done) = env.call(Method::POST, &path, Some(body)).await;
    assert_eq!(
        (status.as_u16(), &done["status"]),
        (200, &json!("succeeded")),
        "{done}"
    );
    assert_described(&doc, "post", enqueue, 200, &done);
    // The same call again (a client retrying it): answered as the first was, without a wait
    // the usual 202 — with the result all the same.
    let id = &done["execution_id"];
    for (wait, expected) in [(Some(20_000), 200), (None, 202)] {
        let mut body = json!({"parameters": lead, "execution_id": id});
        if let Some(wait) = wait {
            body["wait_ms"] = json!(wait);
        }
        let (status, again) = env.call(Method::POST, &path, Some(body)).await;
        assert_eq!(
            (status.as_u16(), &again["result"]),
            (expected, &done["result"]),
            "{again}"
        );
        assert_described(&doc, "post", enqueue, expected, &again);
    }

    env.sandbox.set_latency(Duration::from_millis(1_500));
    let body = json!({"parameters": lead, "wait_ms": 100});
    let (status, queued) = env.call(Method::POST, &path, Some(body)).await;
    assert_eq!(status.as_u16(), 202, "{queued}");
    assert_described(&doc, "post", enqueue, 202, &queued);

    let rerun = "/v1/executions/{id}/rerun";
    let again = format!(
        "/v1/executions/{}/rerun",
        done["execution_id"].as_str().expect("id")
    );
    for (wait_ms, expected) in [(100, 202), (20_000, 200)] {
        let body = json!({"wait_ms": wait_ms, "allow": "succeeded"});
        let (status, answer) = env.call(Method::POST, &again, Some(body)).await;
        assert_eq!(status.as_u16(), expected, "{answer}");
        assert_described(&doc, "post", rerun, expected, &answer);
    }

    let item = json!({"automation_id": automation, "external_id": "flow-1", "kind": "flow",
        "system": "Salesforce Lightning", "name": "Onboarding",
        "link": "https://walkme.example/items/flow-1"});
    for expected in [201, 200] {
        let (status, registered) = env
            .call(Method::POST, "/v1/deployables", Some(item.clone()))
            .await;
        assert_eq!(status.as_u16(), expected, "{registered}");
        assert_described(&doc, "post", "/v1/deployables", expected, &registered);
    }
    env.stop().await;
}
