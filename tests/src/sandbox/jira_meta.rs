//! The site's create metadata, as Jira Cloud serves it (paged, `startAt` / `maxResults` up to
//! 200): a project's issue types (`…/createmeta/{project}/issuetypes`) and the fields an issue
//! type's create screen takes (`…/issuetypes/{id}`), with the site's custom field `Team`.

use super::SandboxState;
use super::jira::{authenticated, metered, unauthorized};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// `(id, name)` of the issue types every project has.
const ISSUE_TYPES: &[(&str, &str)] = &[
    ("10001", "Task"),
    ("10002", "Bug"),
    ("10003", "Story"),
    ("10004", "Epic"),
];

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct Page {
    start_at: Option<usize>,
    max_results: Option<usize>,
}

/// A page of `items` under `key`, as Jira pages its lists.
fn page(key: &str, items: Vec<Value>, p: &Page) -> Value {
    let start = p.start_at.unwrap_or(0);
    let max = p.max_results.unwrap_or(50).clamp(1, 200);
    let total = items.len();
    let slice: Vec<Value> = items.into_iter().skip(start).take(max).collect();
    json!({ key: slice, "startAt": start, "maxResults": max, "total": total })
}

fn no_project(project: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"errorMessages": [format!("No project could be found with key '{project}'.")], "errors": {}})),
    )
        .into_response()
}

/// `GET /rest/api/3/issue/createmeta/{project}/issuetypes`.
pub(super) async fn issue_types(
    State(s): State<Arc<SandboxState>>,
    Path(project): Path<String>,
    Query(p): Query<Page>,
    headers: HeaderMap,
) -> Response {
    let site = s.clone();
    metered(&site.jira, || async move {
        if authenticated(&s.jira, &headers).is_none() {
            return unauthorized();
        }
        if !s.jira.has_project(&project) {
            return no_project(&project);
        }
        let types = ISSUE_TYPES
            .iter()
            .map(|(id, name)| json!({"id": id, "name": name, "subtask": false}))
            .collect();
        axum::Json(page("issueTypes", types, &p)).into_response()
    })
    .await
}

/// `GET /rest/api/3/issue/createmeta/{project}/issuetypes/{id}`.
pub(super) async fn fields(
    State(s): State<Arc<SandboxState>>,
    Path((project, id)): Path<(String, String)>,
    Query(p): Query<Page>,
    headers: HeaderMap,
) -> Response {
    let site = s.clone();
    metered(&site.jira, || async move {
        if authenticated(&s.jira, &headers).is_none() {
            return unauthorized();
        }
        if !s.jira.has_project(&project) {
            return no_project(&project);
        }
        if !ISSUE_TYPES.iter().any(|(known, _)| *known == id) {
            let message = "The issue type selected is invalid.";
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"errorMessages": [message], "errors": {}})),
            )
                .into_response();
        }
        axum::Json(page("fields", create_fields(&project), &p)).into_response()
    })
    .await
}

fn field(id: &str, name: &str, required: bool, schema: Value, extra: Value) -> Value {
    let mut f = json!({"fieldId": id, "key": id, "name": name, "required": required,
        "hasDefaultValue": false, "operations": ["set"], "schema": schema});
    if let (Some(f), Some(extra)) = (f.as_object_mut(), extra.as_object()) {
        f.extend(extra.clone());
    }
    f
}

/// The create screen's fields (the same for every issue type here).
fn create_fields(project: &str) -> Vec<Value> {
    let priorities: Vec<Value> = ["Highest", "High", "Medium", "Low", "Lowest"]
        .iter()
        .map(|p| json!({"name": p}))
        .collect();
    vec![
        field(
            "summary",
            "Summary",
            true,
            json!({"type": "string", "system": "summary"}),
            json!({}),
        ),
        field(
            "issuetype",
            "Issue Type",
            true,
            json!({"type": "issuetype", "system": "issuetype"}),
            json!({}),
        ),
        field(
            "project",
            "Project",
            true,
            json!({"type": "project", "system": "project"}),
            json!({"allowedValues": [{"key": project, "name": project}]}),
        ),
        field(
            "description",
            "Description",
            false,
            json!({"type": "string", "system": "description"}),
            json!({}),
        ),
        field(
            "priority",
            "Priority",
            false,
            json!({"type": "priority", "system": "priority"}),
            json!({"allowedValues": priorities, "hasDefaultValue": true}),
        ),
        field(
            "labels",
            "Labels",
            false,
            json!({"type": "array", "items": "string", "system": "labels"}),
            json!({}),
        ),
        field(
            "assignee",
            "Assignee",
            false,
            json!({"type": "user", "system": "assignee"}),
            json!({}),
        ),
        field(
            "customfield_10010",
            "Team",
            false,
            json!({"type": "string", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:textfield", "customId": 10010}),
            json!({}),
        ),
        field(
            "reporter",
            "Reporter",
            false,
            json!({"type": "user", "system": "reporter"}),
            json!({"operations": [], "hasDefaultValue": true}),
        ),
    ]
}
