//! The OpenAPI 3.1 document served at `/openapi.json`. Schemas come from the same `schemars`
//! derives as the handlers' types, so the document cannot drift from what the code accepts.

use crate::error::ErrorBody;
use crate::routes::{automations, catalog, connections, executions};
use axum::Json;
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

struct Op {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    roles: &'static str,
    body: Option<Value>,
    ok: (&'static str, Value),
}

/// The operations whose body may be left out (`crate::extract::OptionalJson`): their defaults.
const OPTIONAL_BODIES: [(&str, &str); 3] = [
    ("post", "/v1/automations/{id}/publish"),
    ("post", "/v1/automations/{id}/duplicate"),
    ("post", "/v1/executions/{id}/rerun"),
];

fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().to_value()
}

fn array<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    json!({"type": "array", "items": schema::<T>(g)})
}

mod accepts;
mod governance;
mod lifecycle;
mod links;
mod revisions;

use accepts::{catalogued, query_parameters};
use governance::governance_operations;
use lifecycle::lifecycle_operations;

fn operations(g: &mut SchemaGenerator) -> Vec<Op> {
    let mut ops = core_operations(g);
    ops.extend(lifecycle_operations(g));
    ops.extend(governance_operations(g));
    ops
}

fn core_operations(g: &mut SchemaGenerator) -> Vec<Op> {
    let status = json!({"type": "object"});
    vec![
        Op {
            method: "get",
            path: "/healthz",
            id: "healthz",
            summary: "Liveness",
            roles: "none",
            body: None,
            ok: ("200", status.clone()),
        },
        Op {
            method: "get",
            path: "/readyz",
            id: "readyz",
            summary: "Readiness: 200 only when Postgres and RabbitMQ answer",
            roles: "none",
            body: None,
            ok: ("200", status),
        },
        Op {
            method: "get",
            path: "/v1/domains",
            id: "listDomains",
            summary: "The business domains, with how many apps serve each",
            roles: "any",
            body: None,
            ok: ("200", array::<catalog::DomainView>(g)),
        },
        Op {
            method: "get",
            path: "/v1/templates",
            id: "searchTemplates",
            summary: "Every app's automation templates, filtered and searched",
            roles: "any",
            body: None,
            ok: ("200", array::<catalog::TemplateView>(g)),
        },
        Op {
            method: "get",
            path: "/v1/apps",
            id: "listApps",
            summary: "The catalogue of apps",
            roles: "any",
            body: None,
            ok: ("200", array::<catalog::AppView>(g)),
        },
        Op {
            method: "get",
            path: "/v1/apps/{app}/templates",
            id: "listTemplates",
            summary: "An app's automation templates",
            roles: "any",
            body: None,
            ok: ("200", array::<catalog::TemplateView>(g)),
        },
        Op {
            method: "post",
            path: "/v1/connections",
            id: "createConnection",
            summary: "Create a connection (secrets are write-only)",
            roles: "admin, editor",
            body: Some(schema::<connections::ConnectionInput>(g)),
            ok: ("201", schema::<connections::ConnectionView>(g)),
        },
        Op {
            method: "get",
            path: "/v1/connections",
            id: "listConnections",
            summary: "List connections",
            roles: "admin, editor, viewer",
            body: None,
            ok: ("200", array::<connections::ConnectionView>(g)),
        },
        Op {
            method: "get",
            path: "/v1/connections/{id}",
            id: "getConnection",
            summary: "Read a connection",
            roles: "admin, editor, viewer",
            body: None,
            ok: ("200", schema::<connections::ConnectionView>(g)),
        },
        Op {
            method: "post",
            path: "/v1/connections/{id}/test",
            id: "testConnection",
            summary: "Test a saved connection against the vendor and record its status",
            roles: "admin, editor",
            body: None,
            ok: ("200", schema::<connections::TestOutcome>(g)),
        },
        Op {
            method: "delete",
            path: "/v1/connections/{id}/cooldowns",
            id: "clearConnectionCooldowns",
            summary: "End the connection's cool-downs before the vendor's time (its limit raised, its quota bought up)",
            roles: "admin, editor",
            body: None,
            ok: ("200", schema::<connections::ConnectionView>(g)),
        },
        Op {
            method: "post",
            path: "/v1/connection-tests",
            id: "testUnsavedConnection",
            summary: "Test credentials before saving them",
            roles: "admin, editor",
            body: Some(schema::<connections::ConnectionInput>(g)),
            ok: ("200", schema::<connections::TestOutcome>(g)),
        },
        Op {
            method: "post",
            path: "/v1/automations",
            id: "createAutomation",
            summary: "Create a draft automation from a template",
            roles: "admin, editor",
            body: Some(schema::<automations::CreateAutomation>(g)),
            ok: ("201", schema::<automations::AutomationView>(g)),
        },
        Op {
            method: "get",
            path: "/v1/automations",
            id: "listAutomations",
            summary: "List automations",
            roles: "admin, editor, viewer",
            body: None,
            ok: ("200", array::<automations::AutomationView>(g)),
        },
        Op {
            method: "get",
            path: "/v1/automations/{id}",
            id: "getAutomation",
            summary: "Read an automation",
            roles: "admin, editor, viewer",
            body: None,
            ok: ("200", schema::<automations::AutomationView>(g)),
        },
        Op {
            method: "post",
            path: "/v1/automations/{id}/publish",
            id: "publishAutomation",
            summary: "Publish the draft as a new immutable version",
            roles: "admin, editor",
            body: Some(schema::<automations::PublishInput>(g)),
            ok: ("201", schema::<automations::VersionView>(g)),
        },
        Op {
            method: "post",
            path: "/v1/automations/{id}/executions",
            id: "enqueueExecution",
            summary: "Enqueue an execution; answered once the broker confirmed it",
            roles: "admin, editor, service",
            body: Some(schema::<executions::EnqueueInput>(g)),
            ok: ("202", schema::<executions::Enqueued>(g)),
        },
        Op {
            method: "get",
            path: "/v1/executions",
            id: "listTenantExecutions",
            summary: "The tenant's executions across its automations, newest first, by status and time, a page at a time",
            roles: "admin, editor, viewer",
            body: None,
            ok: ("200", schema::<executions::history::ExecutionPage>(g)),
        },
        Op {
            method: "get",
            path: "/v1/executions/{id}",
            id: "getExecution",
            summary: "Read an execution's status and result",
            roles: "any",
            body: None,
            ok: ("200", schema::<executions::ExecutionView>(g)),
        },
        Op {
            method: "post",
            path: "/v1/executions/rerun",
            id: "rerunFailures",
            summary: "Run the failures since a time again, each once, oldest first, a batch at a time",
            roles: "admin, editor",
            body: Some(schema::<executions::rerun::BulkRerunInput>(g)),
            ok: ("200", schema::<executions::rerun::BulkRerun>(g)),
        },
        Op {
            method: "post",
            path: "/v1/executions/{id}/rerun",
            id: "rerunExecution",
            summary: "Run a finished execution again with its parameter values, on the automation's live version",
            roles: "admin, editor, service",
            body: Some(schema::<executions::rerun::RerunInput>(g)),
            ok: ("202", schema::<executions::Enqueued>(g)),
        },
    ]
}

/// The operations that call the vendor through a saved connection, held by its cool-downs and
/// its cap on calls at once (see `routes::connections::clear_to_call`).
fn calls_the_vendor(method: &str, path: &str) -> bool {
    matches!(
        (method, path),
        ("post", "/v1/connections/{id}/test")
            | ("post", "/v1/automations/{id}/test")
            | ("get", "/v1/automations/{id}/fields")
    )
}

/// The operations that answer a second success beside their main one, with the same body: its
/// status and what it means.
fn other_success(method: &str, path: &str) -> Option<(&'static str, &'static str)> {
    match (method, path) {
        ("post", "/v1/automations/{id}/executions" | "/v1/executions/{id}/rerun") => Some((
            "200",
            "The execution finished within `wait_ms`: its final status and its result",
        )),
        ("post", "/v1/automations/{id}/publish") => Some((
            "200",
            "The draft is unchanged since the live version: nothing published, the live version answered",
        )),
        ("post", "/v1/deployables") => Some((
            "200",
            "The item was registered before (the same system, kind and external id): updated",
        )),
        _ => None,
    }
}

/// Builds the document.
pub fn document() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "#/components/schemas/".into();
    settings.meta_schema = None;
    let mut g = settings.into_generator();
    let error = schema::<ErrorBody>(&mut g);
    // The catalogue is built in: its apps, domains and templates are the only ones accepted.
    let catalog = aic_core::catalog::Catalog::load().expect("the built-in catalogue loads");
    let mut paths = Map::new();
    for op in operations(&mut g) {
        let (method, path) = (op.method, op.path);
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[method] = operation(op, &error, &catalog);
    }
    links::link(&mut paths);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Action Integration Center control plane",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Connections, automations, versions, executions, tokens and the audit trail. Authenticate with `Authorization: Bearer <token>`."
        },
        "paths": paths,
        "components": {
            "schemas": catalogued(g.take_definitions(true), &catalog),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        },
        "security": [{"bearer": []}]
    })
}

/// One operation of the document: its answers (`error` for the others), parameters and body.
fn operation(op: Op, error: &Value, catalog: &aic_core::catalog::Catalog) -> Value {
    let described = match op.ok.0 {
        "201" => "Created",
        "202" => "Queued (or not finished within `wait_ms`): follow `status_url`",
        _ => "Success",
    };
    let body = json!({"application/json": {"schema": op.ok.1}});
    let success = match op.ok.0 {
        "204" => json!({"description": "Done; no content"}),
        _ => json!({"description": described, "content": body}),
    };
    let mut o = json!({
        "operationId": op.id,
        "summary": op.summary,
        "description": format!("Roles: {}.", op.roles),
        "responses": {
            op.ok.0: success,
            "default": {"description": "Error", "content": {"application/json": {"schema": error}}}
        }
    });
    if let Some((status, description)) = other_success(op.method, op.path) {
        o["responses"][status] = json!({"description": description, "content": body});
    }
    if op.roles == "none" {
        o["security"] = json!([]);
    }
    if calls_the_vendor(op.method, op.path) {
        o["responses"]["429"] = json!({
            "description": "The connection is cooling down (the vendor's rate limit or quota; `connection_throttled`), or every slot of its cap on calls at once stayed in use (`connection_busy`): no call was made",
            "headers": {"Retry-After": {"description": "Seconds until the cool-down ends, or to wait before trying for a slot again", "schema": {"type": "integer"}}},
            "content": {"application/json": {"schema": error}}
        });
    }
    let mut params: Vec<Value> = [("id", "string"), ("app", "string"), ("number", "integer")]
        .iter()
        .filter(|(p, _)| op.path.contains(&format!("{{{p}}}")))
        .map(|(p, t)| json!({"name": p, "in": "path", "required": true, "schema": {"type": t}}))
        .collect();
    params.extend(query_parameters(catalog, op.method, op.path));
    revisions::document(op.method, op.path, &mut o, &mut params);
    if (op.method, op.path) == ("post", "/v1/automations/{id}/executions") {
        params.push(json!({
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            "description": "The request's idempotency key (`\"order-42\"`, or bare), as the body's `idempotency_key`; both given must agree",
            "schema": {"type": "string"}
        }));
    }
    if !params.is_empty() {
        o["parameters"] = Value::Array(params);
    }
    if let Some(body) = op.body {
        let required = !OPTIONAL_BODIES.contains(&(op.method, op.path));
        o["requestBody"] =
            json!({"required": required, "content": {"application/json": {"schema": body}}});
    }
    o
}

/// `GET /openapi.json`.
pub async fn serve() -> Json<Value> {
    static DOC: OnceLock<Value> = OnceLock::new();
    Json(DOC.get_or_init(document).clone())
}

#[cfg(test)]
mod tests;
