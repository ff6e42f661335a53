//! A whole number written with a fraction (`250.0`) is an integer, as JSON Schema counts one
//! and as clients whose serialisers write every number as a float (Python's, a spreadsheet's)
//! send it: an execution's integer parameter reaches the vendor as `250`, and the API's integer
//! fields take it. A fraction is still refused, naming the parameter or the field.

use aic_tests::harness::TestEnv;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn integers_written_with_a_fraction_are_taken_and_fractions_refused_by_name() {
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let run = format!("/v1/automations/{automation}/executions");
    let lead = |employees: Value| json!({"LastName": "Whole", "Company": "Acme", "NumberOfEmployees": employees});

    // Synchronous (`wait_ms` written as a float too): the Lead the vendor got has 250.
    let body = json!({"parameters": lead(json!(250.0)), "wait_ms": 20000.0});
    let (status, done) = env.call(Method::POST, &run, Some(body)).await;
    assert_eq!(
        (status, &done["status"]),
        (StatusCode::OK, &json!("succeeded")),
        "{done}"
    );
    let sent: Vec<Value> = env
        .sandbox
        .requests_to("/sobjects/Lead/")
        .iter()
        .map(|r| serde_json::from_str(&r.body).expect("a JSON body"))
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0]["NumberOfEmployees"].to_string(),
        "250",
        "{}",
        sent[0]
    );

    // A fraction is refused naming the parameter, and no call is made.
    let body = json!({"parameters": lead(json!(250.5))});
    let (status, err) = env.call(Method::POST, &run, Some(body)).await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("parameters.NumberOfEmployees")
        ),
        "{err}"
    );
    assert!(err.to_string().contains("must be a whole number"), "{err}");
    assert_eq!(env.sandbox.requests_to("/sobjects/Lead/").len(), 1);

    // The API's own integer fields: a connection's cap set and changed as floats.
    let (_, auto) = env
        .call(Method::GET, &format!("/v1/automations/{automation}"), None)
        .await;
    let conn = format!(
        "/v1/connections/{}",
        auto["connection_id"].as_str().expect("id")
    );
    let (status, edited) = env
        .call(Method::PATCH, &conn, Some(json!({"max_concurrency": 3.0})))
        .await;
    assert_eq!(
        (status, &edited["max_concurrency"]),
        (StatusCode::OK, &json!(3)),
        "{edited}"
    );
    for (cap, says) in [
        (json!(2.5), "expected a whole number"),
        (json!(1e10), "within the field's range"),
    ] {
        let (status, err) = env
            .call(Method::PATCH, &conn, Some(json!({"max_concurrency": cap})))
            .await;
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("max_concurrency")),
            "{err}"
        );
        assert!(err["error"]["message"].to_string().contains(says), "{err}");
    }
    env.stop().await;
}
