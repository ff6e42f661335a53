//! Execution request and execution result, version 1.

use crate::ids::{AutomationId, ExecutionId, TenantId, VersionId};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Asks a worker to run the published version of an automation once.
///
/// Published to the executions exchange with routing key `execute`, `delivery_mode` 2
/// (persistent) and `content_type` `application/json`. An optional `reply_to` property gets
/// the result too, with the request's `correlation_id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionRequestV1 {
    /// Always `1`.
    pub version: u32,
    /// Chosen by the client (a UUID); the key of the execution ledger: a request redelivered or
    /// re-sent with the same id runs at most once.
    pub execution_id: ExecutionId,
    /// The tenant that owns the automation.
    pub tenant_id: TenantId,
    /// The automation to run; its currently published version is used.
    pub automation_id: AutomationId,
    /// Parameter values by parameter name.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// When the client enqueued the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<DateTime<Utc>>,
    /// Who triggered it, e.g. `flow:onboarding` or `actionbot:step-3` (free text, for audit;
    /// at most 200 characters, no control characters, line separators or bidirectional controls).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::text::source"
    )]
    #[schemars(length(max = 200))]
    pub source: Option<String>,
}

/// Final state of an execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// The vendor confirmed the action.
    Succeeded,
    /// The action was refused or could not run; `error` says why.
    Failed,
    /// The request may or may not have reached the vendor; `error` holds the evidence.
    UnknownOutcome,
}

impl ExecutionStatus {
    /// The wire spelling, also used in routing keys and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::UnknownOutcome => "unknown_outcome",
        }
    }
}

/// The outcome of one execution, published to the results exchange with routing key
/// `<tenant_id>.<status>` (and to the request's `reply_to`, if any).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExecutionResultV1 {
    /// Always `1`.
    pub version: u32,
    /// Absent only when the request was unreadable (then `error.code` says why).
    pub execution_id: Option<ExecutionId>,
    /// Absent only when the request was unreadable.
    pub tenant_id: Option<TenantId>,
    /// Absent only when the request was unreadable.
    pub automation_id: Option<AutomationId>,
    /// The immutable version that ran, when one was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automation_version_id: Option<VersionId>,
    /// `succeeded`, `failed` or `unknown_outcome`.
    pub status: ExecutionStatus,
    /// The mapped vendor response on success, e.g. `{"id":"00Q…"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Map<String, Value>>,
    /// Why it did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ExecutionError>,
    /// Vendor calls made (0 when refused before any call).
    pub attempts: u32,
    /// True when the answer to a create was lost and the record was found at the vendor through
    /// its dedupe handle instead of being created again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deduplicated: bool,
    /// When the worker finished it.
    #[serde(serialize_with = "rfc3339")]
    pub finished_at: DateTime<Utc>,
}

/// A time as chrono's own `Serialize` writes it (RFC 3339, `Z`, as many fractional digits as
/// needed), written to a string first and then escaped once: chrono's goes through
/// `collect_str`, which escapes it piece by piece, ~1% of a worker's instructions per result.
fn rfc3339<S: serde::Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339_text(at))
}

/// A time as chrono's own `Serialize` writes it, without the quotes.
pub(crate) fn rfc3339_text(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A machine-readable failure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExecutionError {
    /// Stable machine code.
    pub code: ExecutionErrorCode,
    /// A human explanation naming the parameter, field or vendor code involved.
    pub message: String,
    /// The parameter at fault, for parameter errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// What the vendor said, when the vendor refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<VendorError>,
}

/// The closed set of failure codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionErrorCode {
    /// The request body was not JSON.
    InvalidJson,
    /// The request carried a `version` this worker does not speak, or none.
    UnknownVersion,
    /// The request did not match its schema.
    InvalidMessage,
    /// No such automation in this tenant.
    UnknownAutomation,
    /// The automation has no published version.
    AutomationNotPublished,
    /// The automation is paused.
    AutomationPaused,
    /// A required parameter is absent or null.
    MissingParameter,
    /// A parameter has the wrong type or format.
    InvalidParameter,
    /// A parameter the automation does not define.
    UnknownParameter,
    /// The connection's credentials were refused by the vendor's token endpoint.
    VendorAuthFailed,
    /// The connection must be re-authorised by an admin.
    ConnectionNeedsReauthorization,
    /// The vendor refused the request; `vendor` holds its code, message and fields.
    VendorRejected,
    /// The vendor kept failing transiently until the retry budget ran out.
    VendorUnavailable,
    /// The connection is cooling down (the vendor's rate limit or quota) for longer than the
    /// execution's retry budget allows it to wait.
    ConnectionThrottled,
    /// The request may have reached the vendor, but no answer came back.
    UnknownOutcome,
    /// An internal failure of the platform (details are in the worker's logs).
    Internal,
    /// The `execution_id` was first published with another request (another automation or
    /// other parameter values): it answers only that request. Sent to the reply queue only.
    ExecutionIdReused,
}

impl ExecutionErrorCode {
    /// The wire spelling (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::UnknownVersion => "unknown_version",
            Self::InvalidMessage => "invalid_message",
            Self::UnknownAutomation => "unknown_automation",
            Self::AutomationNotPublished => "automation_not_published",
            Self::AutomationPaused => "automation_paused",
            Self::MissingParameter => "missing_parameter",
            Self::InvalidParameter => "invalid_parameter",
            Self::UnknownParameter => "unknown_parameter",
            Self::VendorAuthFailed => "vendor_auth_failed",
            Self::ConnectionNeedsReauthorization => "connection_needs_reauthorization",
            Self::VendorRejected => "vendor_rejected",
            Self::VendorUnavailable => "vendor_unavailable",
            Self::ConnectionThrottled => "connection_throttled",
            Self::UnknownOutcome => "unknown_outcome",
            Self::Internal => "internal",
            Self::ExecutionIdReused => "execution_id_reused",
        }
    }
}

/// The vendor's own account of a refusal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VendorError {
    /// HTTP status the vendor answered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The vendor's error code, e.g. `REQUIRED_FIELD_MISSING` or `invalid_client`.
    pub code: String,
    /// The vendor's message.
    pub message: String,
    /// The vendor fields involved, e.g. `["Company"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

impl crate::decode::Versioned for ExecutionRequestV1 {
    fn version(&self) -> u32 {
        self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn every_error_code_is_spelled_as_serialised() {
        let schema = schemars::schema_for!(ExecutionErrorCode).to_value();
        let text = schema.to_string();
        let spelled: Vec<&str> = text
            .split("\"const\":\"")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap_or_default())
            .collect();
        assert_eq!(spelled.len(), 17, "{schema}");
        for s in spelled {
            let code: ExecutionErrorCode =
                serde_json::from_value(serde_json::Value::from(s)).expect(s);
            assert_eq!(code.as_str(), s);
        }
    }

    #[test]
    fn finished_at_is_written_as_chrono_writes_it() {
        let second = Utc.with_ymd_and_hms(2026, 12, 2, 1, 2, 3).unwrap();
        for nanos in [0, 456_000_000, 456_789_000, 456_789_012, 1, 999_999_999] {
            let at = second + chrono::Duration::nanoseconds(nanos);
            let mut ours = serde_json::Serializer::new(Vec::new());
            rfc3339(&at, &mut ours).expect("serialises");
            let chrono = serde_json::to_vec(&at).expect("serialises");
            assert_eq!(
                String::from_utf8_lossy(&ours.into_inner()),
                String::from_utf8_lossy(&chrono)
            );
        }
    }
}
