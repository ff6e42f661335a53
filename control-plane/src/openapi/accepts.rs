//! What the API accepts, as the document says it: the filters each list takes in its query
//! string and the values each takes, and the bodies' apps and templates — the values the
//! handlers check (their own constants, the catalogue's), so that a client built from the
//! document sends what the API takes.

use crate::audit::Action;
use crate::routes::{audit, deployables, executions, tokens};
use serde_json::{Map, Value, json};

/// What a query parameter accepts.
enum Takes {
    /// An id or a name: not empty.
    Name,
    /// Search text.
    Text,
    /// One of these values.
    OneOf(Vec<String>),
    /// An RFC 3339 time.
    Time,
    /// A page's size.
    PageSize,
    /// A record's id.
    Id,
    /// An API name: a letter, then letters, digits and `_`, up to 80.
    ApiName,
}

/// Text without a NUL character.
const NO_NUL: &str = "^[^\\u0000]*$";

impl Takes {
    fn schema(&self) -> Value {
        match self {
            // No NUL character (`%00`), which no filter takes (`crate::extract::ApiQuery`).
            Self::Name => json!({"type": "string", "minLength": 1, "pattern": NO_NUL}),
            Self::Text => json!({"type": "string", "pattern": NO_NUL}),
            Self::OneOf(values) => json!({"type": "string", "enum": values}),
            Self::Time => json!({"type": "string", "format": "date-time"}),
            Self::PageSize => json!({"type": "integer", "minimum": 1, "maximum": 200}),
            Self::Id => json!({"type": "string", "format": "uuid"}),
            Self::ApiName => json!({"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,79}$"}),
        }
    }
}

/// `values` as a parameter's.
fn one_of<'v>(values: impl IntoIterator<Item = &'v str>) -> Takes {
    Takes::OneOf(values.into_iter().map(str::to_string).collect())
}

/// A query parameter: its name, what it does, what it takes.
type Param = (&'static str, &'static str, Takes);

/// The query parameters of `method` `path`, as the document's `parameters`; the apps and
/// business domains those of `catalog`.
pub(super) fn query_parameters(
    catalog: &aic_core::catalog::Catalog,
    method: &str,
    path: &str,
) -> Vec<Value> {
    let list = match method {
        "get" => catalogue_filters(catalog, path).unwrap_or_else(|| record_filters(path)),
        _ => vec![],
    };
    list.into_iter()
        .map(|(name, what, takes)| {
            json!({"name": name, "in": "query", "required": false, "description": what, "schema": takes.schema()})
        })
        .collect()
}

/// The filters of the lists filtered by the catalogue's apps and domains.
fn catalogue_filters(catalog: &aic_core::catalog::Catalog, path: &str) -> Option<Vec<Param>> {
    let app = || {
        let ids = one_of(catalog.apps().map(|(a, _)| a.id.as_str()));
        ("app", "only this app's (id, e.g. `salesforce`)", ids)
    };
    let domain = || {
        let what = "only this business domain's (id, see `/v1/domains`)";
        let ids = one_of(catalog.domains().iter().map(|d| d.id.as_str()));
        ("domain", what, ids)
    };
    let q = (
        "q",
        "search text, case- and accent-insensitive",
        Takes::Text,
    );
    Some(match path {
        "/v1/apps" => vec![domain(), q],
        "/v1/templates" => vec![app(), domain(), q],
        "/v1/automations" => {
            let status = one_of(["running", "paused"]);
            vec![
                app(),
                domain(),
                ("status", "`running` or `paused`", status),
                q,
            ]
        }
        "/v1/connections" => {
            let statuses = one_of(crate::routes::connections::listing::STATUSES);
            vec![app(), ("status", "one status", statuses), q]
        }
        _ => return None,
    })
}

/// The filters of the other lists: executions, fields, tokens, the audit trail, deployables.
fn record_filters(path: &str) -> Vec<Param> {
    use Takes::*;
    let after = ("after", "the `next` of the page before", Name);
    match path {
        "/v1/automations/{id}/executions" | "/v1/executions" => vec![
            (
                "status",
                "one status",
                one_of(executions::history::STATUSES),
            ),
            (
                "since",
                "only those enqueued at or after this time (RFC 3339, e.g. `2026-12-05T00:00:00Z`)",
                Time,
            ),
            (
                "limit",
                "executions per page, 1 to 200 (default 50)",
                PageSize,
            ),
            after,
        ],
        "/v1/automations/{id}/fields" => vec![
            (
                "object",
                "another object than the template's (Salesforce sObject or ServiceNow table)",
                ApiName,
            ),
            (
                "project",
                "Jira: the project whose create screen to read",
                Name,
            ),
            (
                "issue_type",
                "Jira: the issue type (name or id) of that screen",
                Name,
            ),
        ],
        "/v1/tokens" => vec![
            ("role", "one role", one_of(tokens::ROLES)),
            ("status", "one status", one_of(tokens::STATUSES)),
        ],
        "/v1/audit-events" => vec![
            (
                "action",
                "one action",
                one_of(Action::ALL.map(Action::as_str)),
            ),
            (
                "target_kind",
                "one kind of record",
                one_of(audit::TARGET_KINDS),
            ),
            ("target_id", "one record's events", Id),
            ("actor_id", "one token's doings", Id),
            ("limit", "events per page, 1 to 200 (default 50)", PageSize),
            after,
        ],
        "/v1/deployables" => vec![
            ("automation_id", "items running this automation", Id),
            (
                "connection_id",
                "items running an automation on this connection",
                Id,
            ),
            ("system", "items of this system", Text),
            ("kind", "one kind of item", one_of(deployables::KINDS)),
            ("q", "search text, case- and accent-insensitive", Text),
        ],
        _ => vec![],
    }
}

/// The body `schemas` naming an app, an auth type or a template, each limited to the
/// catalogue's.
pub(super) fn catalogued(
    mut schemas: Map<String, Value>,
    catalog: &aic_core::catalog::Catalog,
) -> Value {
    let apps: Vec<&str> = catalog.apps().map(|(a, _)| a.id.as_str()).collect();
    let templates: Vec<String> = catalog
        .apps()
        .flat_map(|(a, ts)| ts.iter().map(move |t| format!("{}.{}", a.id, t.action)))
        .collect();
    // Each app takes some of these; which, `GET /v1/apps` says (a 422 names the others).
    let mut auth_types: Vec<&str> = catalog
        .apps()
        .flat_map(|(a, _)| a.auth_types.iter().map(|t| t.id.as_str()))
        .collect();
    auth_types.sort_unstable();
    auth_types.dedup();
    let mut or_none = json!(auth_types);
    if let Some(values) = or_none.as_array_mut() {
        values.push(Value::Null);
    }
    for (schema, property, values) in [
        ("ConnectionInput", "app", json!(apps)),
        ("ConnectionInput", "auth_type", json!(auth_types)),
        ("UpdateConnection", "auth_type", or_none),
        ("CreateAutomation", "template", json!(templates)),
    ] {
        if let Some(p) = schemas
            .get_mut(schema)
            .and_then(|s| s["properties"].get_mut(property))
        {
            p["enum"] = values;
        }
    }
    Value::Object(schemas)
}
