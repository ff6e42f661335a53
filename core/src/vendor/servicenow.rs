//! ServiceNow Table API: Basic auth, the OAuth password grant (`/oauth_token.do`, tokens that
//! expire), and the classifier for `{"error":{"message","detail"},"status":"failure"}`.

use super::{AccessToken, ConnectionTarget, Credential, RetryClass, VendorFailure};
use crate::egress::EgressPolicy;
use aic_proto::ExecutionErrorCode;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, Instant};

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Basic needs no round-trip; the password grant fetches a token that expires.
pub async fn authenticate(
    http: &reqwest::Client,
    policy: &EgressPolicy,
    target: &ConnectionTarget<'_>,
) -> Result<AccessToken, VendorFailure> {
    match target.auth_type {
        "basic" => Ok(AccessToken {
            credential: Credential::Basic {
                user: target.secret("username")?.to_string(),
                secret: SecretString::from(target.secret("password")?.to_string()),
            },
            api_base: target.instance.clone(),
            expires_at: None,
            rotated_refresh_token: None,
        }),
        "oauth2_password" => {
            let url = super::join(policy, target.instance, "/oauth_token.do")?;
            let form = [
                ("grant_type", "password"),
                ("client_id", target.secret("client_id")?),
                ("client_secret", target.secret("client_secret")?),
                ("username", target.secret("username")?),
                ("password", target.secret("password")?),
            ];
            let resp = http
                .post(url)
                .form(&form)
                .send()
                .await
                .map_err(|e| super::transport_failure(&e, false))?;
            let status = resp.status();
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| super::transport_failure(&e, false))?;
            if !status.is_success() {
                let mut f = classify(status, &bytes);
                if f.class == RetryClass::RefreshAuth || status == StatusCode::BAD_REQUEST {
                    f.class = RetryClass::Permanent;
                    f.code = ExecutionErrorCode::VendorAuthFailed;
                    f.message = format!(
                        "ServiceNow refused the connection's credentials: {}",
                        f.vendor.as_ref().map(|v| v.code.as_str()).unwrap_or("")
                    );
                }
                return Err(f);
            }
            let token: TokenResponse = serde_json::from_slice(&bytes).map_err(|_| {
                VendorFailure::config(
                    "ServiceNow's token endpoint answered with an unreadable body".into(),
                )
            })?;
            Ok(AccessToken {
                credential: Credential::Bearer(SecretString::from(token.access_token)),
                api_base: target.instance.clone(),
                expires_at: token
                    .expires_in
                    .map(|s| Instant::now() + Duration::from_secs(s)),
                rotated_refresh_token: None,
            })
        }
        other => Err(VendorFailure::config(format!(
            "auth type '{other}' is not supported for ServiceNow"
        ))),
    }
}

/// The record of `table_path` (`/api/now/table/incident`) whose `correlation_id` is
/// `correlation`, if one exists: how a create whose answer was lost is recognised.
pub async fn find_by_correlation(
    http: &reqwest::Client,
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
        return Ok(serde_json::from_slice(body).unwrap_or(Value::Null));
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
