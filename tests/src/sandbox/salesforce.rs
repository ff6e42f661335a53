//! Salesforce as the sandbox speaks it: the OAuth token endpoint (client credentials), sObject
//! create with Salesforce's own validation order and error arrays, `INVALID_SESSION_ID` on an
//! expired token, the daily quota, and `Sforce-Limit-Info` on every data response.

mod oauth;

use super::SandboxState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One simulated org.
#[derive(Debug)]
pub struct Org {
    clients: Mutex<HashMap<String, String>>,
    refresh_tokens: Mutex<HashMap<String, bool>>,
    jwt_apps: Mutex<HashMap<String, (String, String)>>,
    users: Mutex<HashMap<String, String>>,
    /// Connected apps whose client-credentials flow has no run-as user.
    no_run_as: Mutex<std::collections::HashSet<String>>,
    tokens: Mutex<HashMap<String, bool>>,
    records: Mutex<HashMap<String, (String, Value)>>,
    usage: AtomicU64,
    /// The daily API request allowance (`TotalRequests`).
    pub daily_limit: AtomicU64,
    /// Token endpoint hits, for tests of token caching.
    pub token_requests: AtomicU64,
    /// Answer an upsert that updated a record with `204 No Content`, as API versions before
    /// 46.0 do (later ones answer `200` with `"created": false`).
    pub legacy_upsert_204: std::sync::atomic::AtomicBool,
}

impl Default for Org {
    fn default() -> Self {
        Self {
            clients: Mutex::default(),
            no_run_as: Mutex::default(),
            refresh_tokens: Mutex::default(),
            jwt_apps: Mutex::default(),
            users: Mutex::default(),
            tokens: Mutex::default(),
            records: Mutex::default(),
            usage: AtomicU64::new(0),
            daily_limit: AtomicU64::new(100_000),
            token_requests: AtomicU64::new(0),
            legacy_upsert_204: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Org {
    /// Registers a connected app (consumer key and secret) with client credentials enabled.
    pub fn add_client(&self, id: &str, secret: &str) {
        lock(&self.clients).insert(id.into(), secret.into());
    }

    /// Removes the run-as user of a connected app's client-credentials flow: Salesforce then
    /// answers `invalid_grant` (the admin must fix the app, not the secret).
    pub fn remove_run_as_user(&self, id: &str) {
        lock(&self.no_run_as).insert(id.into());
    }

    /// Accepts `refresh_token` for the refresh grant until it is revoked.
    pub fn add_refresh_token(&self, refresh_token: &str) {
        lock(&self.refresh_tokens).insert(refresh_token.into(), true);
    }

    /// Revokes a refresh token: the refresh grant answers `invalid_grant` from then on.
    pub fn revoke_refresh_token(&self, refresh_token: &str) {
        lock(&self.refresh_tokens).insert(refresh_token.into(), false);
    }

    /// A connected app with a certificate (its RSA public key, PEM) pre-authorised for
    /// `username`, for the JWT bearer flow.
    pub fn add_jwt_app(&self, client_id: &str, public_key_pem: &str, username: &str) {
        lock(&self.jwt_apps).insert(client_id.into(), (public_key_pem.into(), username.into()));
    }

    /// A user for the username-password grant (password + security token).
    pub fn add_user(&self, username: &str, password: &str) {
        lock(&self.users).insert(username.into(), password.into());
    }

    /// Expires every issued session, as an org's session timeout does.
    pub fn expire_tokens(&self) {
        lock(&self.tokens)
            .values_mut()
            .for_each(|valid| *valid = false);
    }

    /// Records created, as `(id, fields)`, for one sObject type.
    pub fn records(&self, sobject: &str) -> Vec<(String, Value)> {
        lock(&self.records)
            .iter()
            .filter(|(_, (t, _))| t == sobject)
            .map(|(id, (_, v))| (id.clone(), v.clone()))
            .collect()
    }
}

/// The vendor routes.
pub fn routes() -> Router<Arc<SandboxState>> {
    Router::new()
        .route("/services/oauth2/token", post(oauth::token))
        .route("/services/oauth2/userinfo", get(userinfo))
        .route("/services/data/{version}/limits", get(limits))
        .route("/services/data/{version}/limits/", get(limits))
        .route("/services/data/{version}/sobjects/{sobject}", post(create))
        .route("/services/data/{version}/sobjects/{sobject}/", post(create))
        .route(
            "/services/data/{version}/sobjects/{sobject}/describe",
            get(super::salesforce_schema::serve_describe),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/{field}/{value}",
            axum::routing::patch(upsert).get(by_external_id),
        )
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// An 18-character Salesforce id with `prefix`, including the case-checksum suffix.
pub fn new_id(prefix: &str) -> String {
    let mut rng = rand::rng();
    let mut id15: String = prefix.to_string();
    id15.push_str("5g");
    while id15.len() < 15 {
        id15.push(BASE62[rng.random_range(0..62)] as char);
    }
    let suffix: String = id15
        .as_bytes()
        .chunks(5)
        .map(|chunk| {
            let bits = chunk.iter().enumerate().fold(0usize, |acc, (i, c)| {
                acc | (usize::from(c.is_ascii_uppercase()) << i)
            });
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits] as char
        })
        .collect();
    id15 + &suffix
}

pub(super) fn errors(status: StatusCode, list: Vec<Value>) -> (StatusCode, Value) {
    (status, Value::Array(list))
}

pub(super) fn error(code: &str, message: String, fields: &[&str]) -> Value {
    if fields.is_empty() {
        json!({"message": message, "errorCode": code})
    } else {
        json!({"message": message, "errorCode": code, "fields": fields})
    }
}

/// Common front of every data API call: session check, quota, and the limit header.
pub(super) fn with_limits(
    s: &SandboxState,
    headers: &HeaderMap,
    handler: impl FnOnce() -> (StatusCode, Value),
) -> Response {
    let session_ok = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|t| lock(&s.salesforce.tokens).get(t).copied().unwrap_or(false));
    let limit = s.salesforce.daily_limit.load(Ordering::SeqCst);
    let (status, body) = if !session_ok {
        errors(
            StatusCode::UNAUTHORIZED,
            vec![error(
                "INVALID_SESSION_ID",
                "Session expired or invalid".into(),
                &[],
            )],
        )
    } else if s.salesforce.usage.fetch_add(1, Ordering::SeqCst) >= limit {
        errors(
            StatusCode::FORBIDDEN,
            vec![error(
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.".into(),
                &[],
            )],
        )
    } else {
        handler()
    };
    let used = s.salesforce.usage.load(Ordering::SeqCst).min(limit.max(1));
    let mut resp = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("api-usage={used}/{limit}")) {
        resp.headers_mut().insert("sforce-limit-info", v);
    }
    resp
}

async fn userinfo(State(s): State<Arc<SandboxState>>, headers: HeaderMap) -> Response {
    with_limits(&s, &headers, || {
        (
            StatusCode::OK,
            json!({"sub": "0055g00000A1b2CAAR", "organization_id": "00D5g000004SbXEAU"}),
        )
    })
}

async fn limits(
    State(s): State<Arc<SandboxState>>,
    Path(_version): Path<String>,
    headers: HeaderMap,
) -> Response {
    let limit = s.salesforce.daily_limit.load(Ordering::SeqCst);
    with_limits(&s, &headers, || {
        let used = s.salesforce.usage.load(Ordering::SeqCst);
        (
            StatusCode::OK,
            json!({"DailyApiRequests": {"Max": limit, "Remaining": limit.saturating_sub(used)}}),
        )
    })
}

async fn create(
    State(s): State<Arc<SandboxState>>,
    Path((version, sobject)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fast = s.fast.load(Ordering::Relaxed);
    with_limits(&s, &headers, || {
        if !valid_version(&version) {
            return errors(
                StatusCode::NOT_FOUND,
                vec![error(
                    "NOT_FOUND",
                    "The requested resource does not exist".into(),
                    &[],
                )],
            );
        }
        let Some(schema) = super::salesforce_schema::schema(&sobject) else {
            return errors(
                StatusCode::NOT_FOUND,
                vec![error(
                    "INVALID_TYPE",
                    format!("sObject type '{sobject}' is not supported."),
                    &[],
                )],
            );
        };
        if fast {
            return (
                StatusCode::CREATED,
                json!({"id": new_id(schema.prefix), "success": true, "errors": []}),
            );
        }
        let fields: Map<String, Value> = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return errors(StatusCode::BAD_REQUEST, vec![error("JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from non-object value at [line:1, column:1]".into(), &[])]),
            Err(e) => return errors(StatusCode::BAD_REQUEST, vec![error("JSON_PARSER_ERROR", format!("Unexpected character: {e}"), &[])]),
        };
        let exists = |id: &str| lock(&s.salesforce.records).contains_key(id);
        if let Err(list) = super::salesforce_schema::validate(schema, &sobject, &fields, &exists) {
            return errors(StatusCode::BAD_REQUEST, list);
        }
        let id = new_id(schema.prefix);
        lock(&s.salesforce.records).insert(id.clone(), (sobject.clone(), Value::Object(fields)));
        (
            StatusCode::CREATED,
            json!({"id": id, "success": true, "errors": []}),
        )
    })
}

/// `PATCH …/sobjects/{sobject}/{field}/{value}`: upsert by external id. Creates the record
/// (201, `"created": true`) or updates the one holding that value (200, `"created": false`;
/// 204 in legacy mode); several holders are a 300.
async fn upsert(
    State(s): State<Arc<SandboxState>>,
    Path((version, sobject, field, value)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    with_limits(&s, &headers, || {
        let Some(schema) =
            super::salesforce_schema::schema(&sobject).filter(|_| valid_version(&version))
        else {
            return errors(
                StatusCode::NOT_FOUND,
                vec![error(
                    "NOT_FOUND",
                    "The requested resource does not exist".into(),
                    &[],
                )],
            );
        };
        if !field.ends_with("__c") {
            return errors(
                StatusCode::BAD_REQUEST,
                vec![error(
                    "INVALID_FIELD",
                    format!("Field {field} is not an external id or indexed field for {sobject}"),
                    &[],
                )],
            );
        }
        // The benchmark's fast mode, as for creates: every upsert creates, nothing is kept.
        if s.fast.load(Ordering::Relaxed) {
            return (
                StatusCode::CREATED,
                json!({"id": new_id(schema.prefix), "success": true, "errors": [], "created": true}),
            );
        }
        let fields: Map<String, Value> = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => m,
            _ => {
                return errors(
                    StatusCode::BAD_REQUEST,
                    vec![error(
                        "JSON_PARSER_ERROR",
                        "Cannot deserialize instance of sObject".into(),
                        &[],
                    )],
                );
            }
        };
        if fields.contains_key(&field) {
            return errors(
                StatusCode::BAD_REQUEST,
                vec![error(
                    "INVALID_FIELD",
                    format!(
                        "The external id field {field} may not be set in the body of an upsert"
                    ),
                    &[field.as_str()],
                )],
            );
        }
        upsert_into(&s, schema, (&version, &sobject), (&field, &value), fields)
    })
}

/// Creates the `sobject` whose external id `field` is `value` from `fields`, or updates the
/// one record holding it; several holding it: 300 with each one's address.
fn upsert_into(
    s: &SandboxState,
    schema: &'static super::salesforce_schema::Schema,
    (version, sobject): (&str, &str),
    (field, value): (&str, &str),
    mut fields: Map<String, Value>,
) -> (StatusCode, Value) {
    let mut records = lock(&s.salesforce.records);
    let holders: Vec<String> = records
        .iter()
        .filter(|(_, (t, v))| *t == sobject && v.get(field).and_then(Value::as_str) == Some(value))
        .map(|(id, _)| id.clone())
        .collect();
    match holders.as_slice() {
        [] => {
            drop(records);
            let exists = |id: &str| lock(&s.salesforce.records).contains_key(id);
            if let Err(list) = super::salesforce_schema::validate(schema, sobject, &fields, &exists)
            {
                return errors(StatusCode::BAD_REQUEST, list);
            }
            fields.insert(field.to_string(), Value::String(value.to_string()));
            let id = new_id(schema.prefix);
            lock(&s.salesforce.records)
                .insert(id.clone(), (sobject.to_string(), Value::Object(fields)));
            (
                StatusCode::CREATED,
                json!({"id": id, "success": true, "errors": [], "created": true}),
            )
        }
        [id] => {
            if let Some((_, Value::Object(existing))) = records.get_mut(id) {
                existing.extend(fields);
            }
            if s.salesforce.legacy_upsert_204.load(Ordering::SeqCst) {
                (StatusCode::NO_CONTENT, Value::Null)
            } else {
                (
                    StatusCode::OK,
                    json!({"id": id, "success": true, "errors": [], "created": false}),
                )
            }
        }
        many => (
            StatusCode::MULTIPLE_CHOICES,
            Value::Array(
                many.iter()
                    .map(|id| {
                        Value::String(format!("/services/data/{version}/sobjects/{sobject}/{id}"))
                    })
                    .collect(),
            ),
        ),
    }
}

/// `GET …/sobjects/{sobject}/{field}/{value}`: the record holding that external id.
async fn by_external_id(
    State(s): State<Arc<SandboxState>>,
    Path((_version, sobject, field, value)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    with_limits(&s, &headers, || {
        let records = lock(&s.salesforce.records);
        let found = records.iter().find(|(_, (t, v))| {
            *t == sobject && v.get(&field) == Some(&Value::String(value.clone()))
        });
        match found {
            Some((id, (_, Value::Object(fields)))) => {
                let mut record = fields.clone();
                record.insert("Id".into(), Value::String(id.clone()));
                record.insert("attributes".into(), json!({"type": sobject}));
                (StatusCode::OK, Value::Object(record))
            }
            _ => errors(
                StatusCode::NOT_FOUND,
                vec![error(
                    "NOT_FOUND",
                    "The requested resource does not exist".into(),
                    &[],
                )],
            ),
        }
    })
}

fn valid_version(v: &str) -> bool {
    v.strip_prefix('v')
        .and_then(|n| n.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
        })
}

#[derive(Deserialize, Debug)]
pub(super) struct ClientInput {
    client_id: String,
    client_secret: String,
}

pub(super) async fn admin_add_client(
    State(s): State<Arc<SandboxState>>,
    axum::Json(c): axum::Json<ClientInput>,
) -> &'static str {
    s.salesforce.add_client(&c.client_id, &c.client_secret);
    "added"
}

pub(super) async fn admin_expire_tokens(State(s): State<Arc<SandboxState>>) -> &'static str {
    s.salesforce.expire_tokens();
    "expired"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_prefix_and_eighteen_characters() {
        let id = new_id("00Q");
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("00Q"));
        assert!(id.bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn api_versions_look_like_salesforce_ones() {
        assert!(valid_version("v62.0"));
        assert!(!valid_version("62.0") && !valid_version("v62") && !valid_version("vX.0"));
    }
}
