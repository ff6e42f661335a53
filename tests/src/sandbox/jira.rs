//! Jira Cloud as the sandbox speaks it: Basic auth, create issue with Jira's field validation
//! (a description must be Atlassian Document Format), add comment, `/myself`, and its error
//! shapes (`errorMessages`/`errors`; a differently shaped 401).

use super::SandboxState;
use super::jira_auth::{authenticated, unauthorized};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One simulated Jira site.
#[derive(Debug)]
pub struct Site {
    pub(super) users: Mutex<HashMap<String, String>>,
    pub(super) oauth_clients: Mutex<HashMap<String, String>>,
    pub(super) refresh_tokens: Mutex<HashMap<String, bool>>,
    pub(super) access_tokens: Mutex<HashMap<String, bool>>,
    /// Refresh grants served, and how many presented a spent or unknown refresh token.
    pub refreshes: AtomicU64,
    /// Refresh grants refused because the refresh token was spent or unknown.
    pub refused_refreshes: AtomicU64,
    /// How long a refresh grant takes to be answered, in milliseconds (a slow authorisation
    /// server).
    pub refresh_latency_ms: AtomicU64,
    issues: Mutex<HashMap<String, (String, Value)>>,
    next_id: AtomicU64,
    /// Project keys that exist.
    pub projects: Mutex<Vec<String>>,
    /// API requests allowed per rate-limit window (`X-RateLimit-Limit`).
    pub rate_limit: AtomicU64,
    /// Length of a rate-limit window, in milliseconds.
    pub rate_window_ms: AtomicU64,
    /// The current window's end and the requests counted in it.
    window: Mutex<(chrono::DateTime<chrono::Utc>, u64)>,
    /// Requests refused with 429 for the rate limit.
    pub rate_limited: AtomicU64,
    /// The most items a create-metadata page holds, whatever `maxResults` asks: Jira Cloud
    /// answers with fewer than asked when its own page limit is lower.
    pub meta_page_max: AtomicUsize,
}

impl Default for Site {
    fn default() -> Self {
        Self {
            users: Mutex::default(),
            oauth_clients: Mutex::default(),
            refresh_tokens: Mutex::default(),
            access_tokens: Mutex::default(),
            refreshes: AtomicU64::new(0),
            refused_refreshes: AtomicU64::new(0),
            refresh_latency_ms: AtomicU64::new(0),
            issues: Mutex::default(),
            next_id: AtomicU64::new(10000),
            projects: Mutex::new(vec!["ENG".into(), "OPS".into()]),
            rate_limit: AtomicU64::new(100_000),
            rate_window_ms: AtomicU64::new(60_000),
            window: Mutex::new((chrono::Utc::now(), 0)),
            rate_limited: AtomicU64::new(0),
            meta_page_max: AtomicUsize::new(200),
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Site {
    /// Adds a user who can log in with `email` and `api_token`.
    pub fn add_user(&self, email: &str, api_token: &str) {
        lock(&self.users).insert(email.into(), api_token.into());
    }

    /// An OAuth 2.0 (3LO) app, and the first refresh token a user granted it.
    pub fn add_oauth_app(&self, client_id: &str, client_secret: &str, refresh_token: &str) {
        lock(&self.oauth_clients).insert(client_id.into(), client_secret.into());
        lock(&self.refresh_tokens).insert(refresh_token.into(), true);
    }

    /// Waits (up to 10 s) until `n` refresh grants have been received in all.
    pub async fn until_refreshes(&self, n: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.refreshes.load(Ordering::SeqCst) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "fewer than {n} refresh grants came"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Expires every access token issued through OAuth.
    pub fn expire_tokens(&self) {
        lock(&self.access_tokens)
            .values_mut()
            .for_each(|v| *v = false);
    }

    /// Whether a project of key (or id) `project` exists.
    pub fn has_project(&self, project: &str) -> bool {
        lock(&self.projects).iter().any(|k| k == project)
    }

    /// Issues created, by key: `(id, fields)`.
    pub fn issues(&self) -> HashMap<String, (String, Value)> {
        lock(&self.issues).clone()
    }
}

/// The vendor routes.
pub fn routes() -> Router<Arc<SandboxState>> {
    let api = || {
        Router::new()
            .route("/rest/api/3/issue", post(create_issue))
            .route("/rest/api/3/issue/{key}/comment", post(add_comment))
            .route("/rest/api/3/myself", get(myself))
            .route(
                "/rest/api/3/issue/createmeta/{project}/issuetypes",
                get(super::jira_meta::issue_types),
            )
            .route(
                "/rest/api/3/issue/createmeta/{project}/issuetypes/{id}",
                get(super::jira_meta::fields),
            )
    };
    // The site answers directly (Basic) and through Atlassian's gateway (OAuth 2.0 bearer).
    Router::new()
        .merge(api())
        .nest("/ex/jira/{cloud}", api())
        .route("/oauth/token", post(super::jira_auth::oauth_token))
}

/// Counts a request against the site's rate limit (a fixed window): its `X-RateLimit-*`
/// headers, or Jira's 429 with `Retry-After` once the window's allowance is spent.
fn meter(site: &Site) -> Result<HeaderMap, Response> {
    let limit = site.rate_limit.load(Ordering::SeqCst);
    let window = chrono::Duration::milliseconds(site.rate_window_ms.load(Ordering::SeqCst) as i64);
    let now = chrono::Utc::now();
    let (reset, count) = {
        let mut w = lock(&site.window);
        if now >= w.0 {
            // Windows end on whole seconds, as the header's precision says.
            let end = now + window;
            let end = chrono::DateTime::from_timestamp(end.timestamp() + 1, 0).unwrap_or(end);
            *w = (end, 0);
        }
        w.1 += 1;
        *w
    };
    let mut headers = HeaderMap::new();
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = axum::http::HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    };
    put("x-ratelimit-limit", limit.to_string());
    put(
        "x-ratelimit-remaining",
        limit.saturating_sub(count).to_string(),
    );
    put(
        "x-ratelimit-reset",
        reset.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    if count <= limit {
        return Ok(headers);
    }
    site.rate_limited.fetch_add(1, Ordering::SeqCst);
    let secs = ((reset - now).num_milliseconds().max(0) as f64 / 1000.0).ceil() as u64;
    put("retry-after", secs.max(1).to_string());
    let mut resp = errors(
        StatusCode::TOO_MANY_REQUESTS,
        &["Rate limit exceeded."],
        Map::new(),
    );
    resp.headers_mut().extend(headers);
    Err(resp)
}

pub(super) async fn metered<F: std::future::Future<Output = Response>>(
    site: &Site,
    handler: impl FnOnce() -> F,
) -> Response {
    match meter(site) {
        Err(refused) => refused,
        Ok(headers) => {
            let mut resp = handler().await;
            resp.headers_mut().extend(headers);
            resp
        }
    }
}

fn errors(status: StatusCode, messages: &[&str], fields: Map<String, Value>) -> Response {
    (
        status,
        axum::Json(json!({"errorMessages": messages, "errors": fields})),
    )
        .into_response()
}

/// True for a minimal valid ADF document.
pub fn is_adf(v: &Value) -> bool {
    v["type"] == "doc"
        && v["version"] == 1
        && v["content"]
            .as_array()
            .is_some_and(|c| c.iter().all(|n| n["type"].is_string()))
}

async fn myself(State(s): State<Arc<SandboxState>>, headers: HeaderMap) -> Response {
    let site = s.clone();
    metered(&site.jira, || myself_inner(State(s), headers)).await
}

async fn myself_inner(State(s): State<Arc<SandboxState>>, headers: HeaderMap) -> Response {
    match authenticated(&s.jira, &headers) {
        Some(email) => axum::Json(json!({"accountId": "5b10a2844c20165700ede21g", "emailAddress": email, "displayName": "AIC Bot", "active": true})).into_response(),
        None => unauthorized(),
    }
}

async fn create_issue(
    State(s): State<Arc<SandboxState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The benchmark's fast mode (as Salesforce's): no rate limit, the body unread, nothing
    // kept, the new issue's keys answered.
    if s.fast.load(Ordering::Relaxed) {
        if authenticated(&s.jira, &headers).is_none() {
            return unauthorized();
        }
        let id = s.jira.next_id.fetch_add(1, Ordering::SeqCst);
        return created(&s, id, &format!("ENG-{id}"));
    }
    let site = s.clone();
    metered(&site.jira, || create_issue_inner(State(s), headers, body)).await
}

async fn create_issue_inner(
    State(s): State<Arc<SandboxState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if authenticated(&s.jira, &headers).is_none() {
        return unauthorized();
    }
    let Ok(Value::Object(root)) = serde_json::from_slice::<Value>(&body) else {
        return errors(
            StatusCode::BAD_REQUEST,
            &["Unexpected character in the request body; it must be a JSON object."],
            Map::new(),
        );
    };
    let fields = root
        .get("fields")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let project = fields
        .get("project")
        .and_then(|p| p["key"].as_str())
        .map(str::to_string);
    let problems = issue_problems(&s.jira, &fields, project.as_deref());
    if !problems.is_empty() {
        return errors(StatusCode::BAD_REQUEST, &[], problems);
    }
    let id = s.jira.next_id.fetch_add(1, Ordering::SeqCst);
    let project = project.unwrap_or_default();
    let n = lock(&s.jira.issues)
        .values()
        .filter(|(_, f)| f["project"]["key"] == project.as_str())
        .count()
        + 1;
    let key = format!("{project}-{n}");
    lock(&s.jira.issues).insert(key.clone(), (id.to_string(), Value::Object(fields)));
    created(&s, id, &key)
}

/// What Jira would refuse in a new issue's `fields`, by field: a field it does not know, the
/// project (`project`, its key) and issue type, and each value it checks.
fn issue_problems(
    jira: &Site,
    fields: &Map<String, Value>,
    project: Option<&str>,
) -> Map<String, Value> {
    let mut problems = Map::new();
    let known = [
        "project",
        "issuetype",
        "summary",
        "description",
        "priority",
        "labels",
        "assignee",
        "customfield_10010",
    ];
    for name in fields.keys().filter(|k| !known.contains(&k.as_str())) {
        problems.insert(
            name.clone(),
            json!(format!(
                "Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
            )),
        );
    }
    if !project.is_some_and(|p| jira.has_project(p)) {
        problems.insert("project".into(), json!("valid project is required"));
    }
    if !fields
        .get("issuetype")
        .and_then(|t| t["name"].as_str())
        .is_some_and(|t| ["Task", "Bug", "Story", "Epic"].contains(&t))
    {
        problems.insert("issuetype".into(), json!("valid issue type is required"));
    }
    value_problems(fields, &mut problems);
    problems
}

/// The summary, description (Atlassian Document Format), priority and labels Jira would
/// refuse, added to `problems`.
fn value_problems(fields: &Map<String, Value>, problems: &mut Map<String, Value>) {
    match fields.get("summary").and_then(Value::as_str) {
        None | Some("") => {
            problems.insert(
                "summary".into(),
                json!("You must specify a summary of the issue."),
            );
        }
        Some(s) if s.chars().count() > 255 => {
            problems.insert(
                "summary".into(),
                json!("Summary must be less than 255 characters."),
            );
        }
        Some(_) => {}
    }
    if fields.get("description").is_some_and(|d| !is_adf(d)) {
        problems.insert(
            "description".into(),
            json!(
                "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
            ),
        );
    }
    if fields.get("priority").is_some_and(|p| {
        !p["name"]
            .as_str()
            .is_some_and(|n| ["Highest", "High", "Medium", "Low", "Lowest"].contains(&n))
    }) {
        problems.insert("priority".into(), json!("Specify a valid priority name"));
    }
    if let Some(labels) = fields.get("labels") {
        let bad = labels
            .as_array()
            .map(|a| {
                a.iter()
                    .find(|l| l.as_str().is_none_or(|t| t.contains(' ')))
            })
            .unwrap_or(Some(labels));
        if let Some(l) = bad {
            problems.insert(
                "labels".into(),
                json!(format!(
                    "The label '{}' contains spaces which is invalid.",
                    l.as_str().unwrap_or("?")
                )),
            );
        }
    }
}

/// Jira's answer to a created issue: its id, key and address.
fn created(s: &SandboxState, id: u64, key: &str) -> Response {
    let base = lock(&s.base_url).clone();
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": id.to_string(), "key": key, "self": format!("{base}/rest/api/3/issue/{id}")})),
    )
        .into_response()
}

async fn add_comment(
    State(s): State<Arc<SandboxState>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let site = s.clone();
    metered(&site.jira, || {
        add_comment_inner(State(s), Path(params), headers, body)
    })
    .await
}

async fn add_comment_inner(
    State(s): State<Arc<SandboxState>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = params.get("key").cloned().unwrap_or_default();
    if authenticated(&s.jira, &headers).is_none() {
        return unauthorized();
    }
    let issue_id = lock(&s.jira.issues)
        .iter()
        .find(|(k, (id, _))| **k == key || *id == key)
        .map(|(_, (id, _))| id.clone());
    let Some(issue_id) = issue_id else {
        return errors(
            StatusCode::NOT_FOUND,
            &["Issue does not exist or you do not have permission to see it."],
            Map::new(),
        );
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !is_adf(&body["body"]) {
        return errors(
            StatusCode::BAD_REQUEST,
            &["Comment body is not valid Atlassian Document Format."],
            Map::new(),
        );
    }
    let id = s.jira.next_id.fetch_add(1, Ordering::SeqCst);
    let base = lock(&s.base_url).clone();
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": id.to_string(), "self": format!("{base}/rest/api/3/issue/{issue_id}/comment/{id}"), "body": body["body"], "created": chrono::Utc::now().to_rfc3339()})),
    )
        .into_response()
}
