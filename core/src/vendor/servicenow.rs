//! ServiceNow Table API: Basic auth, the OAuth password grant (`/oauth_token.do`, tokens that
//! expire, renewed with the refresh token the grant handed out), and the classifier for
//! `{"error":{"message","detail"},"status":"failure"}`.

use super::{AccessToken, ConnectionTarget, Credential, RetryClass, VendorFailure};
use crate::egress::EgressPolicy;
use aic_proto::ExecutionErrorCode;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Basic needs no round-trip; the password grant fetches a token that expires.
pub async fn authenticate(
    http: &super::VendorHttp,
    policy: &EgressPolicy,
    target: &ConnectionTarget<'_>,
) -> Result<AccessToken, VendorFailure> {
    match target.auth_type {
        "basic" => Ok(AccessToken::new(
            Credential::Basic {
                user: target.secret("username")?.to_string(),
                secret: SecretString::from(target.secret("password")?.to_string()),
            },
            target.instance.clone(),
        )),
        "oauth2_password" => {
            let form = [
                ("grant_type", "password"),
                ("client_id", target.secret("client_id")?),
                ("client_secret", target.secret("client_secret")?),
                ("username", target.secret("username")?),
                ("password", target.secret("password")?),
            ];
            match token_grant(http, policy, target, &form).await {
                Ok(token) => Ok(token),
                Err(Grant::Refused(mut f)) => {
                    f.class = RetryClass::Permanent;
                    f.code = ExecutionErrorCode::VendorAuthFailed;
                    f.message = format!(
                        "ServiceNow refused the connection's credentials: {}",
                        f.vendor.as_ref().map(|v| v.code.as_str()).unwrap_or("")
                    );
                    Err(f)
                }
                Err(Grant::Failed(f)) => Err(f),
            }
        }
        other => Err(VendorFailure::config(format!(
            "auth type '{other}' is not supported for ServiceNow"
        ))),
    }
}

/// The next access token after `previous` expired or was refused: the refresh-token grant with
/// the refresh token the password grant handed out, so the password is sent once per refresh
/// token's life rather than with every access token. A refresh token ServiceNow no longer
/// accepts (expired, revoked, the OAuth entity's lifespan changed) falls back to the password
/// grant; only a refused password fails the execution.
pub async fn renew(
    http: &super::VendorHttp,
    policy: &EgressPolicy,
    target: &ConnectionTarget<'_>,
    previous: &AccessToken,
) -> Result<AccessToken, VendorFailure> {
    let Some(refresh) = previous
        .renewal
        .as_ref()
        .filter(|_| target.auth_type == "oauth2_password")
    else {
        return authenticate(http, policy, target).await;
    };
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", target.secret("client_id")?),
        ("client_secret", target.secret("client_secret")?),
        ("refresh_token", refresh.expose_secret()),
    ];
    match token_grant(http, policy, target, &form).await {
        Ok(mut token) => {
            // ServiceNow may answer a refresh without a new refresh token: the old one lives on.
            if token.renewal.is_none() {
                token.renewal = Some(refresh.clone());
            }
            Ok(token)
        }
        Err(Grant::Refused(_)) => authenticate(http, policy, target).await,
        Err(Grant::Failed(f)) => Err(f),
    }
}

/// Why a token request gave no token.
enum Grant {
    /// The endpoint refused the grant (400 or 401: bad credentials or a dead refresh token).
    Refused(VendorFailure),
    /// Anything else: the endpoint unreachable, a 5xx, an unreadable answer.
    Failed(VendorFailure),
}

/// `POST /oauth_token.do` with `form`.
async fn token_grant(
    http: &super::VendorHttp,
    policy: &EgressPolicy,
    target: &ConnectionTarget<'_>,
    form: &[(&str, &str)],
) -> Result<AccessToken, Grant> {
    let url = super::join(policy, target.instance, "/oauth_token.do").map_err(Grant::Failed)?;
    let (status, bytes) = http
        .token_answer(http.tokens().post(url).form(form))
        .await
        .map_err(Grant::Failed)?;
    if !status.is_success() {
        let f = classify(status, &bytes);
        return Err(
            if f.class == RetryClass::RefreshAuth || status == StatusCode::BAD_REQUEST {
                Grant::Refused(f)
            } else {
                Grant::Failed(f)
            },
        );
    }
    let token: TokenResponse = serde_json::from_slice(&bytes).map_err(|_| {
        Grant::Failed(VendorFailure::config(
            "ServiceNow's token endpoint answered with an unreadable body".into(),
        ))
    })?;
    Ok(AccessToken {
        renewal: token.refresh_token.map(SecretString::from),
        ..AccessToken::new(
            Credential::Bearer(SecretString::from(token.access_token)),
            target.instance.clone(),
        )
    }
    .expiring_in(token.expires_in))
}

/// The record of `table_path` (`/api/now/table/incident`) whose `correlation_id` is
/// `correlation`, if one exists: how a create whose answer was lost is recognised.
pub async fn find_by_correlation(
    http: &super::VendorHttp,
    policy: &EgressPolicy,
    token: &AccessToken,
    table_path: &str,
    correlation: &str,
) -> Result<Option<Value>, VendorFailure> {
    let path = format!("{table_path}?sysparm_query=correlation_id%3D{correlation}&sysparm_limit=1");
    let body = super::get(http, policy, super::Vendor::ServiceNow, token, &path).await?;
    Ok(body["result"].as_array().and_then(|r| r.first()).cloned())
}

#[derive(Deserialize, Default)]
struct Envelope {
    #[serde(default)]
    error: Option<Detail>,
}

#[derive(Deserialize, Default)]
struct Detail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    detail: Option<String>,
}

/// Success body, or the classified refusal.
pub fn interpret(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, VendorFailure> {
    if status.is_success() {
        return Ok(super::json_or_null(body));
    }
    Err(classify(status, body).with_retry_after(headers))
}

/// The ServiceNow classifier.
pub fn classify(status: StatusCode, body: &[u8]) -> VendorFailure {
    let detail = serde_json::from_slice::<Envelope>(body)
        .ok()
        .and_then(|e| e.error)
        .unwrap_or_default();
    let vendor_message = detail.detail.clone().unwrap_or_default();
    let code_text = if detail.message.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        detail.message.clone()
    };
    let (class, code) = match status.as_u16() {
        401 => (
            RetryClass::RefreshAuth,
            ExecutionErrorCode::VendorAuthFailed,
        ),
        // 408: the vendor gave up reading the request, so it was not applied.
        408 | 429 | 502 | 503 | 504 => {
            (RetryClass::Retryable, ExecutionErrorCode::VendorUnavailable)
        }
        500..=599 => (
            RetryClass::UnknownOutcome,
            ExecutionErrorCode::UnknownOutcome,
        ),
        _ => (RetryClass::Permanent, ExecutionErrorCode::VendorRejected),
    };
    let message = format!(
        "ServiceNow answered HTTP {}: {code_text}{}",
        status.as_u16(),
        if vendor_message.is_empty() {
            String::new()
        } else {
            format!(" ({vendor_message})")
        }
    );
    VendorFailure::vendor(
        class,
        code,
        message,
        status,
        code_text,
        vendor_message,
        vec![],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_table_is_permanent_with_its_message() {
        let f = classify(
            StatusCode::BAD_REQUEST,
            br#"{"error":{"message":"Invalid table x","detail":null},"status":"failure"}"#,
        );
        assert_eq!(
            (f.class, f.code),
            (RetryClass::Permanent, ExecutionErrorCode::VendorRejected)
        );
        assert_eq!(f.vendor.expect("details").code, "Invalid table x");
    }

    #[test]
    fn rate_limits_and_gateways_retry_and_a_500_is_in_doubt() {
        assert_eq!(
            classify(
                StatusCode::TOO_MANY_REQUESTS,
                br#"{"error":{"message":"Rate limit exceeded"},"status":"failure"}"#
            )
            .class,
            RetryClass::Retryable
        );
        assert_eq!(
            classify(StatusCode::BAD_GATEWAY, b"").class,
            RetryClass::Retryable
        );
        assert_eq!(
            classify(StatusCode::REQUEST_TIMEOUT, b"").class,
            RetryClass::Retryable
        );
        assert_eq!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, b"").class,
            RetryClass::UnknownOutcome
        );
        assert_eq!(classify(StatusCode::UNAUTHORIZED, br#"{"error":{"message":"User Not Authenticated","detail":"Required to provide Auth information"},"status":"failure"}"#).class, RetryClass::RefreshAuth);
    }
}
