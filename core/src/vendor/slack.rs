//! Slack Web API: bot tokens, and the classifier for Slack's HTTP-200 `{"ok":false,"error":…}`
//! refusals and its 429 `ratelimited`.

use super::{AccessToken, ConnectionTarget, Credential, RetryClass, VendorFailure};
use aic_proto::ExecutionErrorCode;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::SecretString;
use serde_json::Value;

/// A bot token is the credential.
pub fn authenticate(target: &ConnectionTarget<'_>) -> Result<AccessToken, VendorFailure> {
    match target.auth_type {
        "bot_token" => Ok(AccessToken::new(
            Credential::Bearer(SecretString::from(target.secret("bot_token")?.to_string())),
            target.instance.clone(),
        )),
        other => Err(VendorFailure::config(format!(
            "auth type '{other}' is not supported for Slack"
        ))),
    }
}

/// Success only with `"ok": true`; Slack reports logical errors with HTTP 200.
pub fn interpret(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, VendorFailure> {
    let value = super::json_or_null(body);
    if status.is_success() && value["ok"] == true {
        return Ok(value);
    }
    Err(classify(status, &value).with_retry_after(headers))
}

/// The Slack classifier.
pub fn classify(status: StatusCode, body: &Value) -> VendorFailure {
    let error = body["error"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("http_{}", status.as_u16()));
    let details: Vec<String> = body["response_metadata"]["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect();
    let (class, code) = match error.as_str() {
        "ratelimited" | "rate_limited" => {
            (RetryClass::Retryable, ExecutionErrorCode::VendorUnavailable)
        }
        "not_authed" | "invalid_auth" | "token_revoked" | "token_expired" | "account_inactive" => {
            (RetryClass::Permanent, ExecutionErrorCode::VendorAuthFailed)
        }
        // The message may have been posted: retrying could post it twice.
        "internal_error" | "fatal_error" => (
            RetryClass::UnknownOutcome,
            ExecutionErrorCode::UnknownOutcome,
        ),
        _ if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT => {
            (RetryClass::Retryable, ExecutionErrorCode::VendorUnavailable)
        }
        _ => (RetryClass::Permanent, ExecutionErrorCode::VendorRejected),
    };
    let message = format!(
        "Slack answered {error}{}",
        if details.is_empty() {
            String::new()
        } else {
            format!(": {}", details.join("; "))
        }
    );
    VendorFailure::vendor(
        class,
        code,
        message,
        status,
        error,
        details.join("; "),
        vec![],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_ok_false_at_http_200_is_a_failure() {
        let f = interpret(
            StatusCode::OK,
            &HeaderMap::new(),
            br#"{"ok":false,"error":"channel_not_found"}"#,
        )
        .unwrap_err();
        assert_eq!(
            (f.class, f.code),
            (RetryClass::Permanent, ExecutionErrorCode::VendorRejected)
        );
        assert_eq!(f.vendor.expect("details").code, "channel_not_found");
    }

    #[test]
    fn each_class_of_slack_error() {
        assert_eq!(
            classify(StatusCode::REQUEST_TIMEOUT, &json!(null)).class,
            RetryClass::Retryable
        );
        assert_eq!(
            classify(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"ok":false,"error":"ratelimited"})
            )
            .class,
            RetryClass::Retryable
        );
        assert_eq!(
            classify(StatusCode::OK, &json!({"ok":false,"error":"token_revoked"})).code,
            ExecutionErrorCode::VendorAuthFailed
        );
        assert_eq!(
            classify(
                StatusCode::OK,
                &json!({"ok":false,"error":"internal_error"})
            )
            .class,
            RetryClass::UnknownOutcome
        );
        assert_eq!(
            classify(StatusCode::SERVICE_UNAVAILABLE, &Value::Null).class,
            RetryClass::Retryable
        );
        let f = classify(
            StatusCode::OK,
            &json!({"ok":false,"error":"invalid_blocks","response_metadata":{"messages":["[ERROR] missing required field: text [json-pointer:/blocks/0/text]"]}}),
        );
        assert!(
            f.message.contains("json-pointer:/blocks/0/text"),
            "{}",
            f.message
        );
    }
}
