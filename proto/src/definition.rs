//! What an automation does, as published: the definition event and the definition itself.

use crate::ids::{AutomationId, ConnectionId, TenantId, VersionId};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Announces that a new immutable version of an automation is live. Published to the
/// definitions exchange with routing key `definition.published`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DefinitionPublishedV1 {
    /// Always `1`.
    pub version: u32,
    /// Owner of the automation.
    pub tenant_id: TenantId,
    /// The automation.
    pub automation_id: AutomationId,
    /// The new immutable version.
    pub version_id: VersionId,
    /// 1, 2, 3… per automation.
    pub version_number: i32,
    /// Name given to the version.
    pub version_name: String,
    /// When it was published.
    pub published_at: DateTime<Utc>,
    /// The definition itself.
    pub definition: AutomationDefinition,
}

/// A self-contained description of one vendor call: a worker needs nothing else (besides the
/// connection's credentials) to run it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AutomationDefinition {
    /// Catalogue app, e.g. `salesforce`.
    pub app: String,
    /// Template action, e.g. `create_lead`.
    pub action: String,
    /// The connection whose credentials and instance are used.
    pub connection_id: ConnectionId,
    /// HTTP method of the vendor call.
    pub method: HttpMethod,
    /// Path on the connection's instance, e.g. `/services/data/v62.0/sobjects/Lead/`.
    pub path: String,
    /// Parameters, each mapped to a vendor field of the JSON body.
    pub parameters: Vec<ParameterSpec>,
    /// How to tell whether a create whose answer was lost has landed at the vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe: Option<Dedupe>,
    /// How hard to retry this automation's transient vendor failures; unset fields take the
    /// worker's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
}

/// An automation's retry policy: full-jitter exponential backoff between `base_ms` and
/// `cap_ms`, at most `max_attempts` vendor calls, and no retry that would end past `budget_ms`
/// after the first call. A vendor's `Retry-After` replaces the backoff, clamped to `cap_ms`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Vendor calls in all, including the first (1 to 10; 1 means never retry).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::whole::option"
    )]
    pub max_attempts: Option<u32>,
    /// Ceiling of the first retry delay, in milliseconds (10 to 60,000); doubles each retry.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::whole::option"
    )]
    pub base_ms: Option<u64>,
    /// Longest single delay, in milliseconds (at least `base_ms`, at most 300,000).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::whole::option"
    )]
    pub cap_ms: Option<u64>,
    /// Time for all attempts and waits, in milliseconds (1,000 to 900,000).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::whole::option"
    )]
    pub budget_ms: Option<u64>,
    /// While the connection cools down (the vendor's rate limit or quota): wait it out within
    /// the budget (`wait`, the default) or fail at once with `connection_throttled` (`fail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_throttle: Option<ThrottlePolicy>,
}

/// What an execution does while its connection cools down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThrottlePolicy {
    /// Wait until the cool-down ends, within the retry budget.
    Wait,
    /// Fail at once with `connection_throttled`.
    Fail,
}

impl RetrySpec {
    /// Checks the bounds; on failure names the field (`max_attempts`, `base_ms`, …).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let range = |field: &'static str, v: Option<u64>, lo: u64, hi: u64| match v {
            Some(v) if v < lo || v > hi => Err((
                field,
                format!("{field} must be between {lo} and {hi}, not {v}"),
            )),
            _ => Ok(()),
        };
        range("max_attempts", self.max_attempts.map(u64::from), 1, 10)?;
        range("base_ms", self.base_ms, 10, 60_000)?;
        range("cap_ms", self.cap_ms, 10, 300_000)?;
        range("budget_ms", self.budget_ms, 1_000, 900_000)?;
        if let (Some(base), Some(cap)) = (self.base_ms, self.cap_ms) {
            if cap < base {
                return Err((
                    "cap_ms",
                    format!("cap_ms ({cap}) must not be below base_ms ({base})"),
                ));
            }
        }
        Ok(())
    }
}

/// A vendor's handle for recognising a record the worker created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Dedupe {
    /// ServiceNow: the execution id is written to `correlation_id` and queried before any re-send.
    ServicenowCorrelationId,
    /// Salesforce: the create is an upsert keyed by the execution id in this external id field
    /// (`PATCH …/sobjects/{SObject}/{field}/{execution_id}`), so a re-send finds the first record
    /// instead of creating a second one.
    SalesforceExternalId {
        /// The external id field's API name, e.g. `AIC_Execution_Id__c`.
        field: String,
    },
}

/// HTTP methods a definition may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// POST
    Post,
    /// PATCH
    Patch,
    /// PUT
    Put,
}

impl HttpMethod {
    /// The method as HTTP spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Patch => "PATCH",
            Self::Put => "PUT",
        }
    }
}

/// One row of an automation's parameter table; a key it does not know is refused.
// (A `max_lenght` taken and dropped would leave its editor believing the limit holds.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParameterSpec {
    /// Name the caller uses in `parameters`.
    pub name: String,
    /// Expected type; values are checked and coerced before any vendor call.
    #[serde(rename = "type")]
    pub kind: ParameterType,
    /// Vendor field the value is written to (a dotted path for nested bodies).
    pub target: String,
    /// Whether the caller must supply it.
    pub required: bool,
    /// Shown to editors.
    #[serde(default)]
    pub description: String,
    /// Longest accepted string, when the vendor field has a limit.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::whole::option"
    )]
    pub max_length: Option<u32>,
    /// Smallest value accepted, for an integer or a number (the vendor field's range, or the
    /// editor's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<serde_json::Number>,
    /// Largest value accepted, for an integer or a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<serde_json::Number>,
    /// The only values accepted, for a string or each item of a string list (a pick-list's
    /// values, e.g. a ServiceNow urgency's `1`, `2`, `3`); any value when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_values: Vec<String>,
    /// Where the value goes: the JSON body (default) or a `{placeholder}` of the path.
    #[serde(default, skip_serializing_if = "ParameterLocation::is_body")]
    pub location: ParameterLocation,
    /// A reshaping the vendor needs, e.g. plain text to Atlassian Document Format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<Transform>,
}

/// Where a parameter's value is placed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParameterLocation {
    /// At `target` (a dotted path) in the JSON body; `target` `*` merges an object into the root.
    #[default]
    Body,
    /// Into the `{target}` placeholder of the path, percent-encoded.
    Path,
}

impl ParameterLocation {
    fn is_body(&self) -> bool {
        *self == Self::Body
    }
}

/// Reshapings applied to a value before it is placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// Plain text to an Atlassian Document Format document (one paragraph per line).
    Adf,
    /// `v` to `{"key": v}`.
    KeyObject,
    /// `v` to `{"name": v}`.
    NameObject,
    /// `v` to `{"id": v}`.
    IdObject,
    /// `v` to `{"accountId": v}`.
    AccountIdObject,
}

/// Parameter types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParameterType {
    /// Any string.
    String,
    /// An e-mail address.
    Email,
    /// A whole number (`5.0` and numeric strings are accepted and converted; a fraction is not).
    Integer,
    /// A decimal number (a numeric string is accepted and converted).
    Number,
    /// `true`/`false` (also the strings `"true"`/`"false"`).
    Boolean,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An instant, RFC 3339.
    DateTime,
    /// A list of strings (a comma-separated string is accepted and split).
    StringList,
    /// Any JSON object or array, passed through (e.g. Slack blocks).
    Json,
}
