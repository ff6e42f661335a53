//! The OpenAPI document against the router: every operation it describes is served (a call
//! without a token is refused for want of one, never "no such route" or "method not allowed"),
//! and every `/v1` route the router declares is described — an endpoint added or renamed
//! without its description fails here.

use aic_tests::harness::{Options, TestEnv};
use reqwest::Method;

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
