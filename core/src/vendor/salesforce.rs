//! Salesforce REST: the OAuth token endpoint (client credentials, JWT bearer, refresh token,
//! username-password) and the one classifier that reads Salesforce's error arrays
//! (`[{"message","errorCode","fields"}]`) and OAuth errors.

use super::{AccessToken, ConnectionTarget, Credential, RetryClass, VendorFailure};
use crate::egress::EgressPolicy;
use aic_proto::ExecutionErrorCode;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// API version used for identity and limit calls.
pub const API_VERSION: &str = "v62.0";
/// Default `aud` of a JWT bearer assertion (production orgs; sandboxes use test.salesforce.com).
pub const DEFAULT_AUDIENCE: &str = "https://login.salesforce.com";

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    instance_url: Option<String>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: String,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(rename = "errorCode")]
    error_code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    fields: Vec<String>,
}

#[derive(Serialize)]
struct JwtClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

/// Checks that a PEM private key can sign RS256 assertions (used at connection set-up).
pub fn check_private_key(pem: &str) -> Result<(), String> {
    jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
        .map(|_| ())
        .map_err(|e| format!("not an RSA private key in PEM format ({e})"))
}

/// An RS256 JWT bearer assertion: `iss` consumer key, `sub` username, `aud` login URL, `exp`.
pub fn jwt_assertion(
    client_id: &str,
    username: &str,
    private_key: &str,
    audience: &str,
) -> Result<String, VendorFailure> {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key.as_bytes()).map_err(|_| {
        VendorFailure::config(
            "connection secret field 'private_key' is not an RSA private key in PEM format".into(),
        )
    })?;
    let claims = JwtClaims {
        iss: client_id,
        sub: username,
        aud: audience,
        exp: chrono::Utc::now().timestamp() + 180,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .map_err(|e| VendorFailure::config(format!("could not sign the JWT assertion: {e}")))
}

/// The token request's form for the connection's grant.
fn token_form(target: &ConnectionTarget<'_>) -> Result<Vec<(&'static str, String)>, VendorFailure> {
    let s = |name: &str| target.secret(name).map(str::to_string);
    Ok(match target.auth_type {
        "oauth2_client_credentials" => vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", s("client_id")?),
            ("client_secret", s("client_secret")?),
        ],
        "oauth2_refresh_token" => vec![
            ("grant_type", "refresh_token".into()),
            ("client_id", s("client_id")?),
            ("client_secret", s("client_secret")?),
            ("refresh_token", s("refresh_token")?),
        ],
        "username_password" => vec![
            ("grant_type", "password".into()),
            ("client_id", s("client_id")?),
            ("client_secret", s("client_secret")?),
            ("username", s("username")?),
            ("password", s("password")?),
        ],
        "oauth2_jwt_bearer" => {
            let audience = target
                .secrets
                .get("audience")
                .map(|a| secrecy::ExposeSecret::expose_secret(a).to_string())
                .unwrap_or_else(|| DEFAULT_AUDIENCE.into());
            let assertion = jwt_assertion(
                target.secret("client_id")?,
                target.secret("username")?,
                target.secret("private_key")?,
                &audience,
            )?;
            vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                ),
                ("assertion", assertion),
            ]
        }
        other => {
            return Err(VendorFailure::config(format!(
                "auth type '{other}' is not supported for Salesforce"
            )));
        }
    })
}

/// Obtains a token with the connection's grant.
pub async fn authenticate(
    http: &super::VendorHttp,
    policy: &EgressPolicy,
    target: &ConnectionTarget<'_>,
) -> Result<AccessToken, VendorFailure> {
    let url = super::join(policy, target.instance, "/services/oauth2/token")?;
    let form = token_form(target)?;
    let (status, bytes) = http
        .token_answer(http.tokens().post(url).form(&form))
        .await?;
    if !status.is_success() {
        // Grants that carry a user's consent die with it: the connection needs an admin.
        let user_grant = target.auth_type != "oauth2_client_credentials";
        return Err(classify_oauth(status, &bytes, user_grant));
    }
    let token: TokenResponse = serde_json::from_slice(&bytes).map_err(|_| VendorFailure {
        class: RetryClass::Retryable,
        code: ExecutionErrorCode::VendorUnavailable,
        message: "Salesforce's token endpoint answered with an unreadable body".into(),
        vendor: None,
        retry_after: None,
    })?;
    let api_base = match token.instance_url {
        Some(u) => policy.instance_url(&u).map_err(VendorFailure::egress)?,
        None => target.instance.clone(),
    };
    // No expires_in: a Salesforce session is valid until a call answers 401.
    Ok(AccessToken::new(
        Credential::Bearer(SecretString::from(token.access_token)),
        api_base,
    ))
}

/// Classifies a token endpoint refusal (`{"error","error_description"}`). With `user_grant`,
/// `invalid_grant` means the refresh token, key or password no longer works: re-authorise.
pub fn classify_oauth(status: StatusCode, body: &[u8], user_grant: bool) -> VendorFailure {
    if status.is_server_error() {
        return server_error(status, body);
    }
    let (code, description) = match serde_json::from_slice::<OAuthError>(body) {
        Ok(e) => (e.error, e.error_description),
        // No OAuth answer at all: the domain serves no token endpoint (not an org's My
        // Domain), which no credentials would change.
        Err(_) if status == StatusCode::NOT_FOUND => {
            return VendorFailure::vendor(
                RetryClass::Permanent,
                ExecutionErrorCode::VendorAuthFailed,
                "Salesforce has no token endpoint at this connection's domain (HTTP 404): the \
                 domain must be the org's My Domain URL, as Setup > My Domain shows it"
                    .into(),
                status,
                "http_404".into(),
                String::new(),
                vec![],
            );
        }
        Err(_) => (format!("http_{}", status.as_u16()), String::new()),
    };
    let reauth = user_grant && code == "invalid_grant";
    let message = format!(
        "Salesforce refused the connection's credentials: {code}{}{}",
        if description.is_empty() {
            String::new()
        } else {
            format!(" ({description})")
        },
        if reauth {
            "; the connection needs to be re-authorised"
        } else {
            ""
        }
    );
    let platform = if reauth {
        ExecutionErrorCode::ConnectionNeedsReauthorization
    } else {
        ExecutionErrorCode::VendorAuthFailed
    };
    VendorFailure::vendor(
        RetryClass::Permanent,
        platform,
        message,
        status,
        code,
        description,
        vec![],
    )
}

/// Reads `Sforce-Limit-Info: api-usage=10018/100000[; api-bursts=…]`.
pub fn parse_limit_info(header: &str) -> Option<(u64, u64)> {
    let usage = header
        .split(';')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("api-usage="))?;
    let (used, max) = usage.split_once('/')?;
    Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
}

fn server_error(status: StatusCode, body: &[u8]) -> VendorFailure {
    let first = serde_json::from_slice::<Vec<ApiError>>(body)
        .ok()
        .and_then(|v| v.into_iter().next());
    let (code, message) = match first {
        Some(e) => (e.error_code, e.message),
        None => (format!("HTTP_{}", status.as_u16()), String::new()),
    };
    VendorFailure {
        class: RetryClass::Retryable,
        code: ExecutionErrorCode::VendorUnavailable,
        message: format!("Salesforce is unavailable: {code} {message}")
            .trim()
            .to_string(),
        vendor: Some(aic_proto::VendorError {
            http_status: Some(status.as_u16()),
            code,
            message,
            fields: vec![],
        }),
        retry_after: None,
    }
}

/// The Salesforce classifier: status and error array → retry class and platform code.
pub fn classify(status: StatusCode, body: &[u8]) -> VendorFailure {
    if status.is_server_error() {
        return server_error(status, body);
    }
    // The vendor gave up reading the request, so it was not applied: safe to send again.
    if status == StatusCode::REQUEST_TIMEOUT {
        return request_timeout();
    }
    let errors: Vec<ApiError> = serde_json::from_slice(body).unwrap_or_default();
    let Some(first) = errors.first() else {
        return VendorFailure {
            class: RetryClass::Permanent,
            code: ExecutionErrorCode::VendorRejected,
            message: format!(
                "Salesforce answered HTTP {} with no error details",
                status.as_u16()
            ),
            vendor: Some(aic_proto::VendorError {
                http_status: Some(status.as_u16()),
                code: format!("HTTP_{}", status.as_u16()),
                message: String::new(),
                fields: vec![],
            }),
            retry_after: None,
        };
    };
    let class = class_of(status, first);
    let code = match class {
        RetryClass::Retryable => ExecutionErrorCode::VendorUnavailable,
        _ => ExecutionErrorCode::VendorRejected,
    };
    let fields: Vec<String> = errors
        .iter()
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let message = errors
        .iter()
        .map(|e| format!("{}: {}", e.error_code, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    VendorFailure {
        class,
        code,
        message: format!("Salesforce refused the request: {message}"),
        vendor: Some(aic_proto::VendorError {
            http_status: Some(status.as_u16()),
            code: first.error_code.clone(),
            message: first.message.clone(),
            fields,
        }),
        retry_after: None,
    }
}

/// HTTP 408: the vendor gave up reading the request.
fn request_timeout() -> VendorFailure {
    VendorFailure {
        class: RetryClass::Retryable,
        code: ExecutionErrorCode::VendorUnavailable,
        message: "Salesforce answered HTTP 408: it timed out reading the request".into(),
        vendor: Some(aic_proto::VendorError {
            http_status: Some(408),
            code: "REQUEST_TIMEOUT".into(),
            message: String::new(),
            fields: Vec::new(),
        }),
        retry_after: None,
    }
}

/// Whether a refusal whose first error is `first` may be sent again, after a new token or as
/// it is.
fn class_of(status: StatusCode, first: &ApiError) -> RetryClass {
    match (status.as_u16(), first.error_code.as_str()) {
        (401, _) | (_, "INVALID_SESSION_ID") => RetryClass::RefreshAuth,
        (_, "UNABLE_TO_LOCK_ROW") => RetryClass::Retryable,
        // Concurrency limit: transient. Daily quota (TotalRequests): retrying burns nothing
        // useful until the window rolls, so it is permanent for this execution.
        (403, "REQUEST_LIMIT_EXCEEDED") if first.message.contains("Concurrent") => {
            RetryClass::Retryable
        }
        _ => RetryClass::Permanent,
    }
}

#[cfg(test)]
mod tests;
