//! Jira Cloud's authentication as the sandbox speaks it: Basic (an Atlassian account's e-mail
//! and API token), OAuth 2.0 (3LO) bearer tokens from Atlassian's token service (refresh grants
//! only, each refresh token working once), and Jira's 401.

use super::SandboxState;
use super::jira::{Site, lock};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// An Atlassian token's characters.
fn random(len: usize) -> String {
    super::random_text(len, ALPHANUMERIC)
}

const ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Atlassian's token service: refresh grants only, and every refresh token works once.
pub(super) async fn oauth_token(
    State(s): State<Arc<SandboxState>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let site = &s.jira;
    site.refreshes.fetch_add(1, Ordering::SeqCst);
    let latency = site.refresh_latency_ms.load(Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    let refuse = |status: StatusCode, error: &str, description: &str| {
        (
            status,
            axum::Json(json!({"error": error, "error_description": description})),
        )
            .into_response()
    };
    if body["grant_type"] != "refresh_token" {
        return refuse(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Unsupported grant type",
        );
    }
    let client_ok = body["client_id"]
        .as_str()
        .zip(body["client_secret"].as_str())
        .is_some_and(|(id, sec)| {
            lock(&site.oauth_clients).get(id).map(String::as_str) == Some(sec)
        });
    if !client_ok {
        return refuse(StatusCode::UNAUTHORIZED, "access_denied", "Unauthorized");
    }
    let presented = body["refresh_token"].as_str().unwrap_or("").to_string();
    let valid = lock(&site.refresh_tokens)
        .get_mut(&presented)
        .map(|v| std::mem::replace(v, false))
        .unwrap_or(false);
    if !valid {
        site.refused_refreshes.fetch_add(1, Ordering::SeqCst);
        return refuse(
            StatusCode::FORBIDDEN,
            "invalid_grant",
            "Unknown or invalid refresh token.",
        );
    }
    let (access, refresh) = (format!("eyJ{}", random(120)), random(64));
    lock(&site.access_tokens).insert(access.clone(), true);
    lock(&site.refresh_tokens).insert(refresh.clone(), true);
    axum::Json(json!({"access_token": access, "refresh_token": refresh, "expires_in": 3600, "scope": "read:jira-work write:jira-work offline_access", "token_type": "Bearer"})).into_response()
}

pub(super) fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, axum::Json(json!({"message": "Client must be authenticated to access this resource.", "status-code": 401}))).into_response()
}

pub(super) fn authenticated(site: &Site, headers: &HeaderMap) -> Option<String> {
    let header = headers.get("authorization")?.to_str().ok()?;
    if let Some(bearer) = header.strip_prefix("Bearer ") {
        let valid = lock(&site.access_tokens)
            .get(bearer)
            .copied()
            .unwrap_or(false);
        return valid.then(|| "oauth-user@acme.example".to_string());
    }
    let raw = header.strip_prefix("Basic ")?;
    let decoded =
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(raw).ok()?).ok()?;
    let (email, token) = decoded.split_once(':')?;
    (lock(&site.users).get(email).map(String::as_str) == Some(token)).then(|| email.to_string())
}
