//! OpenAPI links: which operations take the id a record's creation answered with (a client
//! follows them; schemathesis chains them, so its sequences reach the operations on one record).

use serde_json::{Map, Value, json};

/// The operations that make a record: their method and path, where their answer holds its id,
/// and the path under which the others take it as `{id}`.
const MAKES: [(&str, &str, &str, &str); 7] = [
    (
        "post",
        "/v1/connections",
        "$response.body#/id",
        "/v1/connections/{id}",
    ),
    (
        "post",
        "/v1/automations",
        "$response.body#/id",
        "/v1/automations/{id}",
    ),
    (
        "post",
        "/v1/automations/{id}/duplicate",
        "$response.body#/id",
        "/v1/automations/{id}",
    ),
    (
        "post",
        "/v1/automations/{id}/executions",
        "$response.body#/execution_id",
        "/v1/executions/{id}",
    ),
    (
        "post",
        "/v1/executions/{id}/rerun",
        "$response.body#/execution_id",
        "/v1/executions/{id}",
    ),
    (
        "post",
        "/v1/tokens",
        "$response.body#/id",
        "/v1/tokens/{id}",
    ),
    (
        "post",
        "/v1/deployables",
        "$response.body#/id",
        "/v1/deployables/{id}",
    ),
];

/// Adds to `paths` (path → method → operation) the links from each operation that makes a
/// record to those that use it, and from a publish to the operations on the version it made.
pub(super) fn link(paths: &mut Map<String, Value>) {
    for (method, path, id, under) in MAKES {
        let targets = operations(paths, |p| {
            (p == under || p.starts_with(&format!("{under}/"))) && !p.contains("{number}")
        });
        add(paths, (method, path), &targets, &json!({"id": id}));
    }
    let versions = operations(paths, |p| {
        p.starts_with("/v1/automations/{id}/versions/{number}")
    });
    let version = json!({"id": "$request.path.id", "number": "$response.body#/number"});
    add(
        paths,
        ("post", "/v1/automations/{id}/publish"),
        &versions,
        &version,
    );
}

/// The operation ids of the paths `keep` takes.
fn operations(paths: &Map<String, Value>, keep: impl Fn(&str) -> bool) -> Vec<String> {
    paths
        .iter()
        .filter(|(p, _)| keep(p))
        .flat_map(|(_, ops)| ops.as_object().into_iter().flat_map(|m| m.values()))
        .filter_map(|op| op["operationId"].as_str().map(str::to_string))
        .collect()
}

/// Links the success answers of `method` `path` to each of `targets`, with `parameters`.
fn add(
    paths: &mut Map<String, Value>,
    (method, path): (&str, &str),
    targets: &[String],
    parameters: &Value,
) {
    let Some(responses) = paths
        .get_mut(path)
        .and_then(|ops| ops.get_mut(method))
        .and_then(|op| op.get_mut("responses"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let links: Map<String, Value> = targets
        .iter()
        .map(|target| {
            (
                target.clone(),
                json!({"operationId": target, "parameters": parameters}),
            )
        })
        .collect();
    // Every success carries the record (an execution's: queued, or finished within the wait).
    for (_, success) in responses.iter_mut().filter(|(s, _)| s.starts_with('2')) {
        success["links"] = Value::Object(links.clone());
    }
}
