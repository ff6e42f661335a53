//! The site's create metadata, as Jira Cloud serves it (paged, `startAt` / `maxResults` up to
//! 200): a project's issue types (`…/createmeta/{project}/issuetypes`) and the fields an issue
//! type's create screen takes (`…/issuetypes/{id}`), with the site's custom field `Team`.

use super::SandboxState;
use super::jira::Site;
use super::jira::metered;
use super::jira_auth::{authenticated, unauthorized};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;

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

/// A page of `items` under `key`, as Jira pages its lists: `maxResults` of them (50 unless
/// asked), at most the site's page limit.
fn page(site: &Site, key: &str, items: Vec<Value>, p: &Page) -> Value {
    let start = p.start_at.unwrap_or(0);
    let limit = site.meta_page_max.load(Ordering::SeqCst).max(1);
    let max = p.max_results.unwrap_or(50).clamp(1, limit);
    let total = items.len();
    let slice: Vec<Value> = items.into_iter().skip(start).take(max).collect();
    json!({ key: slice, "startAt": start, "maxResults": max, "total": total })
}

/// Jira's refusal of a request without a valid credential, or for a project it does not have.
fn refused(s: &SandboxState, headers: &HeaderMap, project: &str) -> Option<Response> {
    if authenticated(&s.jira, headers).is_none() {
        return Some(unauthorized());
    }
    if !s.jira.has_project(project) {
        let message = format!("No project could be found with key '{project}'.");
        let body = json!({"errorMessages": [message], "errors": {}});
        return Some((StatusCode::NOT_FOUND, axum::Json(body)).into_response());
    }
    None
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
        if let Some(refusal) = refused(&s, &headers, &project) {
            return refusal;
        }
        let types = ISSUE_TYPES
            .iter()
            .map(|(id, name)| json!({"id": id, "name": name, "subtask": false}))
            .collect();
        axum::Json(page(&s.jira, "issueTypes", types, &p)).into_response()
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
        if let Some(refusal) = refused(&s, &headers, &project) {
            return refusal;
        }
        if !ISSUE_TYPES.iter().any(|(known, _)| *known == id) {
            let message = "The issue type selected is invalid.";
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"errorMessages": [message], "errors": {}})),
            )
                .into_response();
        }
        axum::Json(page(&s.jira, "fields", create_fields(&project), &p)).into_response()
    })
    .await
}

/// `(id, name, required, schema)` of the create screen's fields (the same for every issue
/// type here); `priority` has a default and `reporter` cannot be set on create.
const FIELDS: &[(&str, &str, bool, &str)] = &[
    (
        "summary",
        "Summary",
        true,
        r#"{"type": "string", "system": "summary"}"#,
    ),
    (
        "issuetype",
        "Issue Type",
        true,
        r#"{"type": "issuetype", "system": "issuetype"}"#,
    ),
    (
        "project",
        "Project",
        true,
        r#"{"type": "project", "system": "project"}"#,
    ),
    (
        "description",
        "Description",
        false,
        r#"{"type": "string", "system": "description"}"#,
    ),
    (
        "priority",
        "Priority",
        false,
        r#"{"type": "priority", "system": "priority"}"#,
    ),
    (
        "labels",
        "Labels",
        false,
        r#"{"type": "array", "items": "string", "system": "labels"}"#,
    ),
    (
        "assignee",
        "Assignee",
        false,
        r#"{"type": "user", "system": "assignee"}"#,
    ),
    (
        "customfield_10010",
        "Team",
        false,
        r#"{"type": "string", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:textfield", "customId": 10010}"#,
    ),
    (
        "reporter",
        "Reporter",
        false,
        r#"{"type": "user", "system": "reporter"}"#,
    ),
];

/// The create screen of `project`'s issue types, as Jira describes each field.
fn create_fields(project: &str) -> Vec<Value> {
    FIELDS
        .iter()
        .map(|(id, name, required, schema)| {
            let schema: Value = serde_json::from_str(schema).unwrap_or_default();
            let mut f = json!({"fieldId": id, "key": id, "name": name, "required": required,
                "hasDefaultValue": false, "operations": ["set"], "schema": schema});
            match *id {
                "project" => f["allowedValues"] = json!([{"key": project, "name": project}]),
                "priority" => {
                    f["hasDefaultValue"] = json!(true);
                    f["allowedValues"] = ["Highest", "High", "Medium", "Low", "Lowest"]
                        .iter()
                        .map(|p| json!({"name": p}))
                        .collect();
                }
                "reporter" => f["operations"] = json!([]),
                _ => {}
            }
            f
        })
        .collect()
}
