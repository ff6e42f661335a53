//! Jira Cloud REST v3: Basic auth (e-mail + API token), and the classifier that reads Jira's
//! `{"errorMessages":[…],"errors":{field: message}}` bodies, its differently-shaped login
//! failures, and its 429/503 with `Retry-After`.

use super::fields::{DescribeError, Named, VendorField};
use super::{AccessToken, ConnectionTarget, Credential, RetryClass, VendorFailure};
use crate::egress::EgressPolicy;
use aic_proto::ExecutionErrorCode;
use aic_proto::ParameterType;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Atlassian's OAuth 2.0 token service (overridable by the operator for the sandbox).
pub const TOKEN_URL: &str = "https://auth.atlassian.com/oauth/token";
/// Atlassian's API gateway: 3LO calls go to `{API_GATEWAY}/ex/jira/{cloud_id}/rest/api/3/…`.
pub const API_GATEWAY: &str = "https://api.atlassian.com";

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Whether `raw` reads as a site's cloud id, a UUID: anything else (the site's URL pasted in
/// its place, say) would become part of every call's path on Atlassian's gateway, each then
/// answered 404. The refusal says what is expected, not what was given.
pub fn check_cloud_id(raw: &str) -> Result<(), &'static str> {
    // Hyphenated, as Atlassian writes them: the parser also takes braced and `urn:` forms.
    let hyphenated = raw.len() == 36 && uuid::Uuid::try_parse(raw).is_ok();
    hyphenated.then_some(()).ok_or(
        "must be the site's cloud id, a UUID such as 1324a887-45db-1bf4-1e99-ef0ff456d421, as \
         https://api.atlassian.com/oauth/token/accessible-resources lists it",
    )
}

/// Basic credentials need no round-trip; OAuth 2.0 (3LO) refreshes through Atlassian's token
/// service, which rotates the refresh token on every use.
pub async fn authenticate(
    http: &super::VendorHttp,
    policy: &EgressPolicy,
    target: &ConnectionTarget<'_>,
) -> Result<AccessToken, VendorFailure> {
    match target.auth_type {
        "basic" => Ok(AccessToken::new(
            Credential::Basic {
                user: target.secret("email")?.to_string(),
                secret: SecretString::from(target.secret("api_token")?.to_string()),
            },
            target.instance.clone(),
        )),
        "oauth2_3lo" => {
            // Checked before the refresh token is spent (Atlassian rotates it on every use).
            let cloud = target.secret("cloud_id")?;
            check_cloud_id(cloud).map_err(|why| {
                VendorFailure::config(format!("connection secret field 'cloud_id' {why}"))
            })?;
            let url = policy.endpoint(TOKEN_URL).map_err(VendorFailure::egress)?;
            let body = serde_json::json!({
                "grant_type": "refresh_token",
                "client_id": target.secret("client_id")?,
                "client_secret": target.secret("client_secret")?,
                "refresh_token": target.secret("refresh_token")?,
            });
            let (status, bytes) = http
                .token_answer(http.tokens().post(url).json(&body))
                .await?;
            if !status.is_success() {
                return Err(classify_oauth(status, &bytes));
            }
            let token: TokenResponse = serde_json::from_slice(&bytes).map_err(|_| {
                VendorFailure::config(
                    "Atlassian's token service answered with an unreadable body".into(),
                )
            })?;
            let api_base = policy
                .endpoint(&format!("{API_GATEWAY}/ex/jira/{cloud}"))
                .map_err(VendorFailure::egress)?;
            Ok(AccessToken {
                rotated_refresh_token: token.refresh_token.map(SecretString::from),
                ..AccessToken::new(
                    Credential::Bearer(SecretString::from(token.access_token)),
                    api_base,
                )
            }
            .expiring_in(token.expires_in))
        }
        other => Err(VendorFailure::config(format!(
            "auth type '{other}' is not supported for Jira"
        ))),
    }
}

/// A refused refresh: `invalid_grant` means the refresh token is spent or revoked.
pub fn classify_oauth(status: StatusCode, body: &[u8]) -> VendorFailure {
    if status.is_server_error() {
        return classify(status, body);
    }
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let error = v["error"].as_str().unwrap_or("unknown_error").to_string();
    let description = v["error_description"].as_str().unwrap_or("").to_string();
    let reauth = error == "invalid_grant";
    let code = if reauth {
        ExecutionErrorCode::ConnectionNeedsReauthorization
    } else {
        ExecutionErrorCode::VendorAuthFailed
    };
    let message = format!(
        "Atlassian refused the connection's credentials: {error}{}{}",
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
    VendorFailure::vendor(
        RetryClass::Permanent,
        code,
        message,
        status,
        error,
        description,
        vec![],
    )
}

#[derive(Deserialize, Default)]
struct Errors {
    #[serde(default, rename = "errorMessages")]
    error_messages: Vec<String>,
    #[serde(default)]
    errors: Map<String, Value>,
    #[serde(default)]
    message: Option<String>,
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

/// The Jira classifier.
pub fn classify(status: StatusCode, body: &[u8]) -> VendorFailure {
    let e: Errors = serde_json::from_slice(body).unwrap_or_default();
    let mut parts: Vec<String> = e.error_messages.clone();
    parts.extend(
        e.errors
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default())),
    );
    if let Some(m) = &e.message {
        parts.push(m.clone());
    }
    let text = parts.join("; ");
    let fields: Vec<String> = e.errors.keys().cloned().collect();
    let (class, code) = match status.as_u16() {
        401 => (
            RetryClass::RefreshAuth,
            ExecutionErrorCode::VendorAuthFailed,
        ),
        // 408: the vendor gave up reading the request, so it was not applied.
        408 | 429 | 503 | 502 | 504 => {
            (RetryClass::Retryable, ExecutionErrorCode::VendorUnavailable)
        }
        // Any other 5xx on a create may have been applied.
        500..=599 => (
            RetryClass::UnknownOutcome,
            ExecutionErrorCode::UnknownOutcome,
        ),
        _ => (RetryClass::Permanent, ExecutionErrorCode::VendorRejected),
    };
    let message = match class {
        RetryClass::Retryable => format!(
            "Jira is busy or unavailable (HTTP {}){}",
            status.as_u16(),
            suffix(&text)
        ),
        RetryClass::RefreshAuth => format!("Jira refused the credentials{}", suffix(&text)),
        _ => format!(
            "Jira refused the request (HTTP {}){}",
            status.as_u16(),
            suffix(&text)
        ),
    };
    VendorFailure::vendor(
        class,
        code,
        message,
        status,
        format!("HTTP_{}", status.as_u16()),
        text,
        fields,
    )
}

fn suffix(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// Whether `project` can be a Jira project's key or id (letters, digits and `_`, up to 80).
pub fn valid_project(project: &str) -> bool {
    !project.is_empty()
        && project.len() <= 80
        && project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The fields the create screen of `issue_type` (name or id) in `project` (key or id) takes:
/// the project's issue types are read first, for the type's id; then its fields, page by page.
/// A field's target is `fields.<id>`, as a template's parameters name them; what cannot be set
/// on create is left out; a field with a default is not required.
pub async fn create_fields(
    http: &super::VendorHttp,
    policy: &EgressPolicy,
    token: &AccessToken,
    project: &str,
    issue_type: &str,
) -> Result<Vec<VendorField>, DescribeError> {
    if !valid_project(project) {
        let refusal = format!("'{project}' is not a project key or id");
        return Err(DescribeError::Missing(
            Named::Project,
            VendorFailure::rejected(refusal),
        ));
    }
    let base = format!("/rest/api/3/issue/createmeta/{project}/issuetypes");
    let types = pages(http, policy, token, &base, "issueTypes")
        .await
        .map_err(DescribeError::missing_when_absent(Named::Project))?;
    let id = types
        .iter()
        .find(|t| {
            t["id"] == issue_type
                || t["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(issue_type))
        })
        .and_then(|t| t["id"].as_str())
        .ok_or_else(|| {
            let refusal = format!("project {project} has no issue type '{issue_type}'");
            DescribeError::Missing(Named::IssueType, VendorFailure::rejected(refusal))
        })?;
    let fields = pages(http, policy, token, &format!("{base}/{id}"), "fields").await?;
    Ok(fields.iter().filter_map(create_field).collect())
}

/// Every item of a paged Jira list under `key` (at most 10,000).
async fn pages(
    http: &super::VendorHttp,
    policy: &EgressPolicy,
    token: &AccessToken,
    path: &str,
    key: &str,
) -> Result<Vec<Value>, VendorFailure> {
    let mut items: Vec<Value> = Vec::new();
    loop {
        let page_path = format!("{path}?startAt={}&maxResults=200", items.len());
        let body = super::get(http, policy, super::Vendor::Jira, token, &page_path).await?;
        let page = body[key].as_array().cloned().unwrap_or_default();
        let total = body["total"].as_u64().unwrap_or(0);
        let done = page.is_empty();
        items.extend(page);
        if done || items.len() as u64 >= total || items.len() >= 10_000 {
            return Ok(items);
        }
    }
}

/// One field of a create screen, unless it cannot be set.
fn create_field(f: &Value) -> Option<VendorField> {
    let settable = f["operations"]
        .as_array()
        .is_some_and(|ops| ops.iter().any(|o| o == "set"));
    if !settable {
        return None;
    }
    let schema = &f["schema"];
    let kind = schema["type"].as_str().unwrap_or("any");
    let parameter_type = match kind {
        "number" => ParameterType::Number,
        "date" => ParameterType::Date,
        "datetime" => ParameterType::DateTime,
        "array" if schema["items"] == "string" => ParameterType::StringList,
        _ => ParameterType::String,
    };
    let vendor_type = match schema["custom"].as_str() {
        Some(custom) => format!("{kind} ({custom})"),
        None => kind.to_string(),
    };
    Some(VendorField {
        name: format!("fields.{}", f["fieldId"].as_str()?),
        label: f["name"].as_str().unwrap_or_default().to_string(),
        vendor_type,
        parameter_type,
        required: f["required"] == true && f["hasDefaultValue"] != true,
        max_length: None,
        range: None,
        values: f["allowedValues"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| {
                v["name"]
                    .as_str()
                    .or_else(|| v["value"].as_str())
                    .or_else(|| v["key"].as_str())
            })
            .map(str::to_string)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_are_named_and_permanent() {
        let f = classify(StatusCode::BAD_REQUEST, br#"{"errorMessages":[],"errors":{"summary":"You must specify a summary of the issue.","project":"valid project is required"}}"#);
        assert_eq!(f.class, RetryClass::Permanent);
        let v = f.vendor.expect("details");
        assert_eq!(v.fields, ["project", "summary"]);
        assert!(
            f.message
                .contains("summary: You must specify a summary of the issue."),
            "{}",
            f.message
        );
    }

    #[test]
    fn a_request_timeout_is_retried() {
        let f = classify(
            StatusCode::REQUEST_TIMEOUT,
            br#"{"errorMessages":["Request timeout"],"errors":{}}"#,
        );
        assert_eq!(f.class, RetryClass::Retryable);
        let f = classify(
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"errorMessages":["boom"],"errors":{}}"#,
        );
        assert_eq!(
            f.class,
            RetryClass::UnknownOutcome,
            "a 500 on a create may have been applied"
        );
    }

    #[test]
    fn rate_limits_retry_after_the_vendors_delay() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().expect("v"));
        let f = interpret(StatusCode::TOO_MANY_REQUESTS, &h, b"").unwrap_err();
        assert_eq!(
            (f.class, f.retry_after),
            (
                RetryClass::Retryable,
                Some(std::time::Duration::from_secs(3))
            )
        );
    }

    #[test]
    fn a_failed_login_reads_the_other_shape() {
        let f = classify(StatusCode::UNAUTHORIZED, br#"{"message":"Client must be authenticated to access this resource.","status-code":401}"#);
        assert_eq!(f.class, RetryClass::RefreshAuth);
        assert!(f.message.contains("Client must be authenticated"));
    }

    /// A connection saved with the site's address as its cloud id fails on it before its
    /// refresh token is spent: the token service (nothing listens at its port) is never asked.
    #[tokio::test]
    async fn a_cloud_id_that_is_not_one_fails_before_the_token_is_spent() {
        let http = super::super::VendorHttp::new(
            super::super::HttpSettings::single(std::time::Duration::from_secs(5)),
            &EgressPolicy::default(),
        )
        .expect("client");
        let policy = EgressPolicy::new(vec!["127.0.0.1:9".into()])
            .with_overrides(&[format!("{TOKEN_URL}=http://127.0.0.1:9/oauth/token")]);
        let site = url::Url::parse("https://acme.atlassian.net").expect("url");
        let fields = crate::credentials::SecretFields::new(
            [
                ("client_id", "c"),
                ("client_secret", "s"),
                ("refresh_token", "r"),
                ("cloud_id", "https://acme.atlassian.net"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), SecretString::from(v)))
            .collect(),
        );
        let target = ConnectionTarget {
            vendor: super::super::Vendor::Jira,
            instance: &site,
            auth_type: "oauth2_3lo",
            secrets: &fields,
        };
        let f = authenticate(&http, &policy, &target)
            .await
            .expect_err("refused");
        assert!(
            f.message.contains("'cloud_id' must be the site's cloud id"),
            "{}",
            f.message
        );
        assert!(!f.message.contains("acme.atlassian.net"), "{}", f.message);
        assert_eq!(f.class, RetryClass::Permanent);
    }
}
