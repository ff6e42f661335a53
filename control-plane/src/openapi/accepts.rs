//! The filters each list takes in its query string, and what each accepts: the values the
//! handlers check (their own constants), so that a client built from the document sends what
//! the API takes.

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

impl Takes {
    fn schema(&self) -> Value {
        match self {
            Self::Name => json!({"type": "string", "minLength": 1}),
            Self::Text => json!({"type": "string"}),
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

/// The query parameters of `method` `path`, as the document's `parameters`; the apps and
/// business domains those of `catalog`.
pub(super) fn query_parameters(
    catalog: &aic_core::catalog::Catalog,
    method: &str,
    path: &str,
) -> Vec<Value> {
    use Takes::*;
    let apps = || one_of(catalog.apps().map(|(a, _)| a.id.as_str()));
    let app = || ("app", "only this app's (id, e.g. `salesforce`)", apps());
    let domain = || {
        let what = "only this business domain's (id, see `/v1/domains`)";
        let ids = one_of(catalog.domains().iter().map(|d| d.id.as_str()));
        ("domain", what, ids)
    };
    let q = || ("q", "search text, case- and accent-insensitive", Text);
    let history = || {
        let since =
            "only those enqueued at or after this time (RFC 3339, e.g. `2026-12-05T00:00:00Z`)";
        vec![
            (
                "status",
                "one status",
                one_of(executions::history::STATUSES),
            ),
            ("since", since, Time),
            (
                "limit",
                "executions per page, 1 to 200 (default 50)",
                PageSize,
            ),
            ("after", "the `next` of the page before", Name),
        ]
    };
    let list = match (method, path) {
        ("get", "/v1/apps") => vec![domain(), q()],
        ("get", "/v1/templates") => vec![app(), domain(), q()],
        ("get", "/v1/automations") => {
            let status = one_of(["running", "paused"]);
            vec![
                app(),
                domain(),
                ("status", "`running` or `paused`", status),
                q(),
            ]
        }
        ("get", "/v1/automations/{id}/executions") | ("get", "/v1/executions") => history(),
        ("get", "/v1/automations/{id}/fields") => vec![
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
        ("get", "/v1/tokens") => vec![
            ("role", "one role", one_of(tokens::ROLES)),
            ("status", "one status", one_of(tokens::STATUSES)),
        ],
        ("get", "/v1/audit-events") => vec![
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
            ("after", "the `next` of the page before", Name),
        ],
        ("get", "/v1/deployables") => vec![
            ("automation_id", "items running this automation", Id),
            (
                "connection_id",
                "items running an automation on this connection",
                Id,
            ),
            ("system", "items of this system", Text),
            ("kind", "one kind of item", one_of(deployables::KINDS)),
            q(),
        ],
        ("get", "/v1/connections") => {
            let statuses = one_of(crate::routes::connections::listing::STATUSES);
            vec![app(), ("status", "one status", statuses), q()]
        }
        _ => vec![],
    };
    list.into_iter()
        .map(|(name, what, takes)| {
            json!({"name": name, "in": "query", "required": false, "description": what, "schema": takes.schema()})
        })
        .collect()
}

/// The body `schemas` naming an app or a template, each limited to the catalogue's.
pub(super) fn catalogued(
    mut schemas: Map<String, Value>,
    catalog: &aic_core::catalog::Catalog,
) -> Value {
    let apps: Vec<&str> = catalog.apps().map(|(a, _)| a.id.as_str()).collect();
    let templates: Vec<String> = catalog
        .apps()
        .flat_map(|(a, ts)| ts.iter().map(move |t| format!("{}.{}", a.id, t.action)))
        .collect();
    for (schema, property, values) in [
        ("ConnectionInput", "app", json!(apps)),
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
