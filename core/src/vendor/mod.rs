//! Vendor connectors: authenticate, call, and classify what came back. The HTTP call is the
//! same for every vendor; what differs — how to obtain credentials, which call tests a
//! connection, and how to read a refusal — lives in one module per vendor. Each vendor has one
//! classifier that turns its status codes and error bodies into a [`VendorFailure`] that knows
//! its retry class; nothing downstream matches on strings.

mod client;
mod exchange;
mod failure;
pub mod fields;
pub mod jira;
mod opened;
pub mod rotation;
pub mod salesforce;
pub mod servicenow;
pub mod slack;
mod transport;
mod uri;

pub use client::{
    BuildError, HTTP2_STREAMS_PER_CONNECTION, HttpSettings, InFlight, USER_AGENT, VendorHttp,
};
pub use failure::{RetryClass, VendorFailure, broke, retry_after, transport_failure};
pub use transport::{Answer, Broke, MAX_ANSWER_BYTES, Transport};
pub use uri::{call_uri, join};

pub(crate) use exchange::json_or_null;
use exchange::{method, send};

use crate::credentials::SecretFields;
use crate::egress::EgressPolicy;
use aic_proto::HttpMethod;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use url::Url;

/// The apps with a connector (a closed set: adding one is code, adding an action is data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    /// Salesforce REST.
    Salesforce,
    /// Jira Cloud REST v3.
    Jira,
    /// ServiceNow Table API.
    ServiceNow,
    /// Slack Web API.
    Slack,
}

impl Vendor {
    /// Whether this auth type spends its refresh token on every refresh (rotation), so
    /// refreshes must be serialised across the fleet and the new token stored.
    pub fn rotates_refresh_token(self, auth_type: &str) -> bool {
        matches!((self, auth_type), (Self::Jira, "oauth2_3lo"))
    }

    /// The connector for a catalogue app id or error convention.
    pub fn for_app(app: &str) -> Option<Self> {
        match app {
            "salesforce" => Some(Self::Salesforce),
            "jira" => Some(Self::Jira),
            "servicenow" => Some(Self::ServiceNow),
            "slack" => Some(Self::Slack),
            _ => None,
        }
    }
}

/// Everything needed to authenticate against one connection.
#[derive(Debug)]
pub struct ConnectionTarget<'a> {
    /// Which connector.
    pub vendor: Vendor,
    /// The instance base URL (already checked by the egress policy).
    pub instance: &'a Url,
    /// Auth type id from the catalogue.
    pub auth_type: &'a str,
    /// Opened secret fields.
    pub secrets: &'a SecretFields,
}

impl ConnectionTarget<'_> {
    /// A required secret field, or a failure naming it.
    pub fn secret(&self, name: &str) -> Result<&str, VendorFailure> {
        self.secrets
            .get(name)
            .map(|s| s.expose_secret())
            .ok_or_else(|| {
                VendorFailure::config(format!("connection secret field '{name}' is missing"))
            })
    }
}

/// How calls authenticate.
#[derive(Clone, Debug)]
pub enum Credential {
    /// `Authorization: Bearer …`.
    Bearer(SecretString),
    /// `Authorization: Basic …`.
    Basic {
        /// User (or e-mail).
        user: String,
        /// Password (or API token).
        secret: SecretString,
    },
}

/// Longest a fetched access token is used by its vendor's word: one said to live longer is
/// fetched again after a day.
pub const LONGEST_TOKEN_LIFE: Duration = Duration::from_secs(24 * 3600);

/// A credential and where to call with it.
#[derive(Clone, Debug)]
pub struct AccessToken {
    /// The credential.
    pub credential: Credential,
    /// Base URL for API calls (Salesforce returns its own `instance_url`).
    pub api_base: Url,
    /// When the vendor said it expires (refreshed a little before).
    pub expires_at: Option<Instant>,
    /// A new refresh token the vendor rotated in: it replaces the stored one, which is now spent.
    pub rotated_refresh_token: Option<SecretString>,
    /// A refresh token handed out with this access token (ServiceNow's password grant), held in
    /// memory only: the next access token is asked for with it instead of the stored password.
    pub renewal: Option<SecretString>,
    /// The `Authorization` value, built from `credential` at the first call and reused by the
    /// next ones (it was formatted, and for Basic base64-encoded, on every call); marked
    /// sensitive. A token is not changed once made: a new credential is a new token.
    authorization: OnceLock<HeaderValue>,
}

impl AccessToken {
    /// A credential for calls to `api_base`, with no expiry, rotation or renewal.
    pub fn new(credential: Credential, api_base: Url) -> Self {
        Self {
            credential,
            api_base,
            expires_at: None,
            rotated_refresh_token: None,
            renewal: None,
            authorization: OnceLock::new(),
        }
    }

    /// The header value calls send: `Bearer …` or `Basic base64(user:secret)`.
    fn authorization(&self) -> Result<HeaderValue, VendorFailure> {
        if let Some(value) = self.authorization.get() {
            return Ok(value.clone());
        }
        use base64::Engine;
        let mut value = match &self.credential {
            Credential::Bearer(t) => HeaderValue::try_from(format!("Bearer {}", t.expose_secret())),
            Credential::Basic { user, secret } => HeaderValue::try_from(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", secret.expose_secret()))
            )),
        }
        .map_err(|_| {
            VendorFailure::config(
                "the connection's credential holds characters an HTTP header cannot carry".into(),
            )
        })?;
        value.set_sensitive(true);
        Ok(self.authorization.get_or_init(|| value).clone())
    }

    /// With the expiry a vendor gave, `expires_in` seconds from now, kept to
    /// [`LONGEST_TOKEN_LIFE`]: a token endpoint answering a year, or `u64::MAX`, would have
    /// overflowed the clock (a panic in the middle of a call) or never fetched one again.
    pub fn expiring_in(self, expires_in: Option<u64>) -> Self {
        let life = |s| Duration::from_secs(s).min(LONGEST_TOKEN_LIFE);
        Self {
            expires_at: expires_in.map(|s| Instant::now() + life(s)),
            ..self
        }
    }

    /// Still usable, with a margin so a call does not start with a token about to die.
    pub fn is_fresh(&self) -> bool {
        self.expires_at
            .is_none_or(|at| Instant::now() + Duration::from_secs(30) < at)
    }
}

/// One vendor call, from a published definition.
#[derive(Debug)]
pub struct Call<'a> {
    /// Method.
    pub method: HttpMethod,
    /// Path under the API base, placeholders already filled.
    pub path: &'a str,
    /// JSON body.
    pub body: &'a Value,
    /// Output field → JSON pointer into the success body.
    pub output: &'a BTreeMap<String, String>,
}

/// What a successful call returned.
#[derive(Clone, Debug, Default)]
pub struct CallSuccess {
    /// Mapped output.
    pub output: Map<String, Value>,
    /// The vendor's own quota reading, `(used, limit)`, when it sent one.
    pub quota: Option<(u64, u64)>,
    /// For an upsert: whether it created the record (`false`: it found one already there).
    pub created: Option<bool>,
    /// When the vendor's quota window resets, when it said (`X-RateLimit-Reset`).
    pub quota_resets_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Idle connections an HTTP client keeps per vendor host, unless configured otherwise.
pub const IDLE_CONNECTIONS_PER_HOST: usize = 256;

/// Obtains a credential for a connection.
pub async fn authenticate(
    http: &VendorHttp,
    policy: &EgressPolicy,
    target: &ConnectionTarget<'_>,
) -> Result<AccessToken, VendorFailure> {
    match target.vendor {
        Vendor::Salesforce => salesforce::authenticate(http, policy, target).await,
        Vendor::Jira => jira::authenticate(http, policy, target).await,
        Vendor::ServiceNow => servicenow::authenticate(http, policy, target).await,
        Vendor::Slack => slack::authenticate(target),
    }
}

/// The next credential after `previous` expired or was refused: a renewal where the vendor
/// handed one out with `previous`, else [`authenticate`] again.
pub async fn renew(
    http: &VendorHttp,
    policy: &EgressPolicy,
    target: &ConnectionTarget<'_>,
    previous: &AccessToken,
) -> Result<AccessToken, VendorFailure> {
    match target.vendor {
        Vendor::ServiceNow => servicenow::renew(http, policy, target, previous).await,
        _ => authenticate(http, policy, target).await,
    }
}

/// Reads the vendor's answer: the success body, or the classified refusal.
fn interpret(
    vendor: Vendor,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, VendorFailure> {
    match vendor {
        Vendor::Salesforce if status.is_success() => Ok(json_or_null(body)),
        Vendor::Salesforce => Err(salesforce::classify(status, body)),
        Vendor::Jira => jira::interpret(status, headers, body),
        Vendor::ServiceNow => servicenow::interpret(status, headers, body),
        Vendor::Slack => slack::interpret(status, headers, body),
    }
}

/// Refuses a success `value` read from a `body` that is not JSON: no vendor's API answers so,
/// something in its place did (see [`failure::not_the_vendors_answer`]).
fn vendors_own(
    value: &Value,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    sent_write: bool,
) -> Result<(), VendorFailure> {
    if value.is_null() && !body.is_empty() {
        let kind = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        return Err(failure::not_the_vendors_answer(status, kind, sent_write));
    }
    Ok(())
}

/// Runs one call with a credential.
pub async fn call(
    http: &VendorHttp,
    policy: &EgressPolicy,
    vendor: Vendor,
    token: &AccessToken,
    call: &Call<'_>,
) -> Result<CallSuccess, VendorFailure> {
    let (status, headers, body) = send(
        http,
        policy,
        token,
        method(call.method),
        call.path,
        Some(call.body),
    )
    .await?;
    let quota = match vendor {
        Vendor::Salesforce => headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .and_then(salesforce::parse_limit_info),
        _ => rate_limit_headers(&headers),
    };
    let quota_resets_at = headers
        .get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(v.trim()).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    let mut value = interpret(vendor, status, &headers, &body)?;
    vendors_own(&value, status, &headers, &body, true)?;
    // A Salesforce upsert that updated answers 204 without a body before API 46.0: the record
    // it found is read back for its id.
    if vendor == Vendor::Salesforce
        && call.method == HttpMethod::Patch
        && status == StatusCode::NO_CONTENT
    {
        let record = get(http, policy, vendor, token, call.path).await?;
        value = serde_json::json!({"id": record.get("Id"), "success": true, "created": false});
    }
    let created = match vendor {
        Vendor::Salesforce if call.method == HttpMethod::Patch => {
            value.get("created").and_then(Value::as_bool)
        }
        _ => None,
    };
    Ok(CallSuccess {
        output: map_output(&value, call.output),
        quota,
        created,
        quota_resets_at,
    })
}

/// `X-RateLimit-Limit` and `X-RateLimit-Remaining` (Jira, and others that use the convention) as
/// `(used, limit)`.
fn rate_limit_headers(headers: &HeaderMap) -> Option<(u64, u64)> {
    let read = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let limit = read("x-ratelimit-limit")?;
    let remaining = read("x-ratelimit-remaining")?;
    Some((limit.saturating_sub(remaining), limit))
}

/// A read (GET) with a credential, interpreted by the vendor's classifier.
pub async fn get(
    http: &VendorHttp,
    policy: &EgressPolicy,
    vendor: Vendor,
    token: &AccessToken,
    path: &str,
) -> Result<Value, VendorFailure> {
    let (status, headers, bytes) =
        send(http, policy, token, reqwest::Method::GET, path, None).await?;
    let value = interpret(vendor, status, &headers, &bytes)?;
    vendors_own(&value, status, &headers, &bytes, false)?;
    Ok(value)
}

/// The vendor's cheap identity call, to test a connection.
pub async fn test_connection(
    http: &VendorHttp,
    policy: &EgressPolicy,
    vendor: Vendor,
    token: &AccessToken,
) -> Result<(), VendorFailure> {
    let (method, path) = match vendor {
        Vendor::Salesforce => (
            reqwest::Method::GET,
            format!("/services/data/{}/limits", salesforce::API_VERSION),
        ),
        Vendor::Jira => (reqwest::Method::GET, "/rest/api/3/myself".to_string()),
        Vendor::ServiceNow => (
            reqwest::Method::GET,
            "/api/now/table/sys_user?sysparm_limit=1".to_string(),
        ),
        Vendor::Slack => (reqwest::Method::POST, "/api/auth.test".to_string()),
    };
    let body = (method == reqwest::Method::POST).then(|| Value::Object(Map::new()));
    let (status, headers, bytes) = send(http, policy, token, method, &path, body.as_ref()).await?;
    let value = interpret(vendor, status, &headers, &bytes)?;
    vendors_own(&value, status, &headers, &bytes, false)
}

/// Picks output fields out of a success body by JSON pointer.
pub fn map_output(body: &Value, output: &BTreeMap<String, String>) -> Map<String, Value> {
    output
        .iter()
        .filter_map(|(name, ptr)| {
            crate::pointer::lookup(body, ptr).map(|v| (name.clone(), v.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests;
