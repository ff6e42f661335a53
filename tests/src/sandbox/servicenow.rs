//! ServiceNow as the sandbox speaks it: Basic auth, the OAuth password and refresh-token grants
//! (`/oauth_token.do`, access tokens that expire, refresh tokens that can be revoked), the Table API's create with `Location` and
//! all-string values, `sys_user` for identity, and `{"error":{…},"status":"failure"}` refusals.

use super::SandboxState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use rand::Rng;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Tables the instance has.
pub const TABLES: &[&str] = &[
    "incident",
    "problem",
    "change_request",
    "sc_request",
    "sys_user",
    "task",
];

/// One simulated instance.
#[derive(Debug)]
pub struct Instance {
    users: Mutex<HashMap<String, String>>,
    clients: Mutex<HashMap<String, String>>,
    tokens: Mutex<HashMap<String, bool>>,
    refresh_tokens: Mutex<HashMap<String, bool>>,
    records: Mutex<Vec<(String, Value)>>,
    counter: AtomicU64,
    /// Token endpoint hits.
    pub token_requests: AtomicU64,
}

impl Default for Instance {
    fn default() -> Self {
        Self {
            users: Mutex::default(),
            clients: Mutex::default(),
            tokens: Mutex::default(),
            refresh_tokens: Mutex::default(),
            records: Mutex::default(),
            counter: AtomicU64::new(10001),
            token_requests: AtomicU64::new(0),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Instance {
    /// A user for Basic auth and the password grant.
    pub fn add_user(&self, user: &str, password: &str) {
        lock(&self.users).insert(user.into(), password.into());
    }

    /// An OAuth application registry entry.
    pub fn add_client(&self, id: &str, secret: &str) {
        lock(&self.clients).insert(id.into(), secret.into());
    }

    /// Expires every issued access token.
    pub fn expire_tokens(&self) {
        lock(&self.tokens).values_mut().for_each(|v| *v = false);
    }

    /// Revokes every issued refresh token (as when the OAuth entity's refresh lifespan ends).
    pub fn revoke_refresh_tokens(&self) {
        lock(&self.refresh_tokens)
            .values_mut()
            .for_each(|v| *v = false);
    }

    /// Records created, as `(table, record)`.
    pub fn records(&self) -> Vec<(String, Value)> {
        lock(&self.records).clone()
    }
}

/// The vendor routes.
pub fn routes() -> Router<Arc<SandboxState>> {
    Router::new()
        .route("/oauth_token.do", post(token))
        .route("/api/now/table/{table}", post(create).get(list))
}

fn failure(status: StatusCode, message: &str, detail: Option<&str>) -> Response {
    (
        status,
        axum::Json(json!({"error": {"message": message, "detail": detail}, "status": "failure"})),
    )
        .into_response()
}

fn authenticated(i: &Instance, headers: &HeaderMap) -> bool {
    let Some(h) = headers.get("authorization").and_then(|h| h.to_str().ok()) else {
        return false;
    };
    if let Some(t) = h.strip_prefix("Bearer ") {
        return lock(&i.tokens).get(t).copied().unwrap_or(false);
    }
    let Some(raw) = h.strip_prefix("Basic ") else {
        return false;
    };
    let Some(decoded) = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return false;
    };
    decoded
        .split_once(':')
        .is_some_and(|(u, p)| lock(&i.users).get(u).map(String::as_str) == Some(p))
}

fn random_token(len: usize) -> String {
    super::random_text(
        len,
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
    )
}

#[derive(Deserialize, Debug)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    username: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
}

async fn token(State(s): State<Arc<SandboxState>>, Form(f): Form<TokenForm>) -> Response {
    let i = &s.servicenow;
    i.token_requests.fetch_add(1, Ordering::SeqCst);
    let denied = || {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error_description": "access_denied", "error": "server_error"})),
        )
            .into_response()
    };
    let client_ok = matches!((&f.client_id, &f.client_secret), (Some(id), Some(sec)) if lock(&i.clients).get(id) == Some(sec));
    let refresh = match f.grant_type.as_deref() {
        Some("password") => {
            let user_ok = matches!((&f.username, &f.password), (Some(u), Some(p)) if lock(&i.users).get(u) == Some(p));
            if !client_ok || !user_ok {
                return denied();
            }
            let refresh = random_token(86);
            lock(&i.refresh_tokens).insert(refresh.clone(), true);
            refresh
        }
        // The same refresh token comes back: ServiceNow does not rotate it.
        Some("refresh_token") => match &f.refresh_token {
            Some(r) if client_ok && lock(&i.refresh_tokens).get(r) == Some(&true) => r.clone(),
            _ => return denied(),
        },
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(
                    json!({"error_description": "unsupported grant type", "error": "invalid_request"}),
                ),
            )
                .into_response();
        }
    };
    let access = random_token(86);
    lock(&i.tokens).insert(access.clone(), true);
    axum::Json(json!({"access_token": access, "refresh_token": refresh, "scope": "useraccount", "token_type": "Bearer", "expires_in": 1799})).into_response()
}

fn stringify(fields: &Map<String, Value>) -> Map<String, Value> {
    fields
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k.clone(), Value::String(text))
        })
        .collect()
}

/// A new record's `sys_id` and number (`INC0000001`, by table).
fn new_keys(i: &Instance, table: &str) -> (String, String) {
    let sys_id: String = {
        let mut rng = rand::rng();
        (0..32)
            .map(|_| b"0123456789abcdef"[rng.random_range(0..16)] as char)
            .collect()
    };
    let n = i.counter.fetch_add(1, Ordering::SeqCst);
    let prefix = match table {
        "incident" => "INC",
        "problem" => "PRB",
        "change_request" => "CHG",
        "sc_request" => "REQ",
        _ => "TASK",
    };
    (sys_id, format!("{prefix}{n:07}"))
}

/// ServiceNow's refusal of a create before its body is read: no credentials, a request or
/// answer not in JSON, an unknown table.
fn refused(i: &Instance, headers: &HeaderMap, table: &str) -> Option<Response> {
    if !authenticated(i, headers) {
        return Some(failure(
            StatusCode::UNAUTHORIZED,
            "User Not Authenticated",
            Some("Required to provide Auth information"),
        ));
    }
    let json_header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"))
    };
    if !json_header("accept") || !json_header("content-type") {
        return Some(failure(
            StatusCode::BAD_REQUEST,
            "Requested response and request content types must be application/json",
            None,
        ));
    }
    if !TABLES.contains(&table) {
        return Some(failure(
            StatusCode::BAD_REQUEST,
            &format!("Invalid table {table}"),
            None,
        ));
    }
    None
}

async fn create(
    State(s): State<Arc<SandboxState>>,
    Path(table): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let i = &s.servicenow;
    if let Some(refusal) = refused(i, &headers, &table) {
        return refusal;
    }
    // The benchmark's fast mode (as Salesforce's): the body unread, nothing kept, the record's
    // keys answered.
    if s.fast.load(Ordering::Relaxed) {
        let (sys_id, number) = new_keys(i, &table);
        return (
            StatusCode::CREATED,
            axum::Json(json!({"result": {"sys_id": sys_id, "number": number}})),
        )
            .into_response();
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return failure(
            StatusCode::BAD_REQUEST,
            "Exception while reading request",
            Some("The payload is not valid JSON."),
        );
    };
    let (sys_id, number) = new_keys(i, &table);
    let mut record = stringify(&fields);
    record.insert("sys_id".into(), json!(sys_id));
    record.insert("number".into(), json!(number));
    record.insert(
        "sys_created_on".into(),
        json!(chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()),
    );
    let base = lock(&s.base_url).clone();
    if let Some(caller) = fields.get("caller_id").and_then(Value::as_str) {
        record.insert(
            "caller_id".into(),
            json!({"link": format!("{base}/api/now/table/sys_user/{caller}"), "value": caller}),
        );
    }
    lock(&i.records).push((table.clone(), Value::Object(record.clone())));
    let mut resp = (StatusCode::CREATED, axum::Json(json!({"result": record}))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{base}/api/now/table/{table}/{sys_id}")) {
        resp.headers_mut().insert("location", v);
    }
    resp
}

#[derive(Deserialize, Debug, Default)]
struct ListQuery {
    sysparm_query: Option<String>,
    sysparm_exclude_reference_link: Option<String>,
}

async fn list(
    State(s): State<Arc<SandboxState>>,
    Path(table): Path<String>,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    if !authenticated(&s.servicenow, &headers) {
        return failure(
            StatusCode::UNAUTHORIZED,
            "User Not Authenticated",
            Some("Required to provide Auth information"),
        );
    }
    let exclude_links = q.sysparm_exclude_reference_link.as_deref() == Some("true");
    if let Some(meta) =
        super::servicenow_meta::answer(&table, q.sysparm_query.as_deref(), exclude_links)
    {
        return axum::Json(meta).into_response();
    }
    if !TABLES.contains(&table.as_str()) {
        return failure(
            StatusCode::BAD_REQUEST,
            &format!("Invalid table {table}"),
            None,
        );
    }
    // The encoded query this sandbox understands: `field=value`.
    if let Some((field, value)) = q.sysparm_query.as_deref().and_then(|q| q.split_once('=')) {
        let found: Vec<Value> = lock(&s.servicenow.records)
            .iter()
            .filter(|(t, r)| *t == table && r[field] == value)
            .map(|(_, r)| r.clone())
            .collect();
        return axum::Json(json!({"result": found})).into_response();
    }
    axum::Json(
        json!({"result": [{"sys_id": "6816f79cc0a8016401c5a33be04be441", "user_name": "admin"}]}),
    )
    .into_response()
}
