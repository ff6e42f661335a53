//! Salesforce's OAuth token endpoint as the sandbox speaks it: client credentials, refresh
//! token, username-password and the JWT bearer flow, with Salesforce's own error codes.

use super::super::SandboxState;
use super::{BASE62, lock};
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;

#[derive(Deserialize, Debug)]
struct JwtClaims {
    iss: String,
    sub: String,
}

/// The token request's form fields, for every grant.
#[derive(Deserialize, Debug)]
pub(super) struct TokenForm {
    assertion: Option<String>,
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// `POST /services/oauth2/token`.
pub(super) async fn token(
    State(s): State<Arc<SandboxState>>,
    Form(form): Form<TokenForm>,
) -> Response {
    s.salesforce.token_requests.fetch_add(1, Ordering::SeqCst);
    let org = &s.salesforce;
    let grant = form.grant_type.as_deref().unwrap_or("");
    if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        if let Err(e) = check_assertion(&s, form.assertion.as_deref().unwrap_or("")) {
            return e;
        }
        return issue_token(&s);
    }
    if !["client_credentials", "refresh_token", "password"].contains(&grant) {
        return oauth_error("unsupported_grant_type", "grant type not supported");
    }
    let (Some(id), Some(secret)) = (form.client_id, form.client_secret) else {
        return oauth_error("invalid_client_id", "client identifier invalid");
    };
    match lock(&org.clients).get(&id) {
        None => return oauth_error("invalid_client_id", "client identifier invalid"),
        Some(expected) if *expected != secret => {
            return oauth_error("invalid_client", "invalid client credentials");
        }
        Some(_) => {}
    }
    match grant {
        "client_credentials" if lock(&org.no_run_as).contains(&id) => {
            return oauth_error("invalid_grant", "no client credentials user enabled");
        }
        "refresh_token" => {
            let ok = form
                .refresh_token
                .as_ref()
                .and_then(|t| lock(&org.refresh_tokens).get(t).copied())
                .unwrap_or(false);
            if !ok {
                return oauth_error("invalid_grant", "expired access/refresh token");
            }
        }
        "password" => {
            let ok = matches!((&form.username, &form.password), (Some(u), Some(p)) if lock(&org.users).get(u) == Some(p));
            if !ok {
                return oauth_error("invalid_grant", "authentication failure");
            }
        }
        _ => {}
    }
    issue_token(&s)
}

fn issue_token(s: &SandboxState) -> Response {
    let mut rng = rand::rng();
    let tail: String = (0..96)
        .map(|_| BASE62[rng.random_range(0..62)] as char)
        .collect();
    let access = format!("00D5g000004SbX!{tail}");
    lock(&s.salesforce.tokens).insert(access.clone(), true);
    let base = lock(&s.base_url).clone();
    let issued_at = chrono::Utc::now().timestamp_millis().to_string();
    axum::Json(json!({
        "access_token": access,
        "instance_url": base,
        "id": format!("{base}/id/00D5g000004SbXEAU/0055g00000A1b2CAAR"),
        "token_type": "Bearer",
        "issued_at": issued_at,
        "signature": "fJ0f4y1yXlK1ZJdu8hDAfkGZp7HPiLnSGGQqW7IhuBM="
    }))
    .into_response()
}

/// Verifies an RS256 JWT bearer assertion as Salesforce does: a known consumer key (`iss`), a
/// signature by its certificate, an accepted audience, an unexpired `exp`, the approved user.
fn check_assertion(s: &SandboxState, assertion: &str) -> Result<(), Response> {
    let base = lock(&s.base_url).clone();
    let unverified = jsonwebtoken::dangerous::insecure_decode::<JwtClaims>(assertion)
        .map_err(|_| oauth_error("invalid_grant", "invalid assertion"))?;
    let Some((public, user)) = lock(&s.salesforce.jwt_apps)
        .get(&unverified.claims.iss)
        .cloned()
    else {
        return Err(oauth_error(
            "invalid_client_id",
            "client identifier invalid",
        ));
    };
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes())
        .map_err(|_| oauth_error("invalid_grant", "invalid assertion"))?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[
        "https://login.salesforce.com",
        "https://test.salesforce.com",
        base.as_str(),
    ]);
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    let claims = jsonwebtoken::decode::<JwtClaims>(assertion, &key, &validation).map_err(|e| {
        match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                oauth_error("invalid_grant", "audience is invalid")
            }
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                oauth_error("invalid_grant", "expired authorization code")
            }
            _ => oauth_error("invalid_grant", "invalid assertion"),
        }
    })?;
    if claims.claims.sub != user {
        return Err(oauth_error(
            "invalid_grant",
            "user hasn't approved this consumer",
        ));
    }
    Ok(())
}
