//! The checked-in JSON Schemas are what other-language clients read: this test fails when the
//! Rust types and the files drift apart. After an intended change of the contract, regenerate
//! them with `AIC_BLESS_SCHEMAS=1 cargo test -p aic-proto --test schemas` and review the diff.

use aic_proto::{DefinitionPublishedV1, ExecutionRequestV1, ExecutionResultV1};
use std::path::PathBuf;

fn generated() -> Vec<(&'static str, String)> {
    let pretty = |s: schemars::Schema| {
        serde_json::to_string_pretty(&s).expect("a schema always serialises") + "\n"
    };
    vec![
        (
            "execution-request.v1.json",
            pretty(schemars::schema_for!(ExecutionRequestV1)),
        ),
        (
            "execution-result.v1.json",
            pretty(schemars::schema_for!(ExecutionResultV1)),
        ),
        (
            "definition-published.v1.json",
            pretty(schemars::schema_for!(DefinitionPublishedV1)),
        ),
    ]
}

#[test]
fn checked_in_schemas_match_the_wire_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let bless = std::env::var_os("AIC_BLESS_SCHEMAS").is_some();
    let mut drifted = Vec::new();
    for (file, schema) in generated() {
        let path = dir.join(file);
        if bless {
            std::fs::write(&path, &schema).expect("schemas/ is writable");
            continue;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if on_disk != schema {
            drifted.push(file);
        }
    }
    assert!(
        drifted.is_empty(),
        "schemas drifted from the types: {drifted:?}; run AIC_BLESS_SCHEMAS=1 cargo test -p aic-proto --test schemas"
    );
}

#[test]
fn an_example_request_round_trips_through_the_wire_type() {
    let body = r#"{"version":1,"execution_id":"0190f5a4-2b1c-7c3e-9a4b-1d2e3f405162",
        "tenant_id":"0190f5a4-2b1c-7c3e-9a4b-1d2e3f405163",
        "automation_id":"0190f5a4-2b1c-7c3e-9a4b-1d2e3f405164",
        "parameters":{"LastName":"Curie","Company":"Radium Ltd"}}"#;
    let req: ExecutionRequestV1 = aic_proto::decode::decode(body.as_bytes()).expect("valid");
    assert_eq!(req.parameters["Company"], "Radium Ltd");
    let again: ExecutionRequestV1 =
        serde_json::from_str(&serde_json::to_string(&req).expect("serialises")).expect("parses");
    assert_eq!(again, req);
}
