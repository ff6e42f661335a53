//! Optimistic concurrency in the document (`crate::precondition`): the `ETag` an automation or
//! a connection is answered with, and the `If-Match` the changes to one take, with their 412.

use crate::routes::automations::AutomationView;
use crate::routes::connections::ConnectionView;
use schemars::JsonSchema;
use serde_json::{Value, json};

/// The operations that change a record only as it was read when sent with `If-Match`.
fn takes_if_match(method: &str, path: &str) -> bool {
    matches!(
        (method, path),
        (
            "patch" | "delete",
            "/v1/automations/{id}" | "/v1/connections/{id}"
        ) | ("post", "/v1/automations/{id}/publish")
            | ("post", "/v1/automations/{id}/versions/{number}/restore")
    )
}

/// Adds to operation `o` (its parameters in `params`) the `ETag` of a record it answers with
/// and, where it takes one, the `If-Match` header and its 412.
pub(super) fn document(method: &str, path: &str, o: &mut Value, params: &mut Vec<Value>) {
    let (status, success) = match o["responses"].as_object() {
        Some(r) => match r.iter().find(|(s, _)| s.starts_with('2')) {
            Some((s, v)) => (s.clone(), v.clone()),
            None => return,
        },
        None => return,
    };
    let answered = &success["content"]["application/json"]["schema"]["$ref"];
    let tagged = [AutomationView::schema_name(), ConnectionView::schema_name()];
    if tagged
        .iter()
        .any(|name| *answered == format!("#/components/schemas/{name}"))
    {
        o["responses"][&status]["headers"] = json!({"ETag": {
            "description": "The record's revision (`revision`), for `If-Match`",
            "schema": {"type": "string"}
        }});
    }
    if takes_if_match(method, path) {
        params.push(json!({
            "name": "If-Match",
            "in": "header",
            "required": false,
            "description": "The record's `ETag` as it was read (`\"<revision>\"`), or `*`: the change is made only if the record has not changed since. Without it, the change applies to the record as it stands.",
            "schema": {"type": "string"}
        }));
        o["responses"]["412"] = json!({
            "description": "The record changed since it was read (`precondition_failed`, naming its last change): nothing was changed",
            "content": o["responses"]["default"]["content"].clone()
        });
    }
}
