//! An execution result's JSON text, written field by field.
//!
//! The worker writes one result per execution. Through serde's derive every field name, id,
//! status and time went through serde_json's escaping, a byte-by-byte table lookup, though
//! none of them can hold a character that needs escaping: ~half of the ~7 k instructions a
//! result cost. Here those are written as they are, and only what can hold arbitrary text
//! (`output`, `error`) goes through serde_json. The text is byte for byte what
//! `serde_json::to_string` writes for the same value (`the_text_is_serde_json_s`, below).

use crate::execution::{ExecutionResultV1, rfc3339_text};
use serde::ser::Error as _;
use uuid::Uuid;

impl ExecutionResultV1 {
    /// This result as JSON, the same text as `serde_json::to_string(self)`.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        // Named one by one, without `..`: a field added to the result does not compile here
        // until it is written.
        let Self {
            version,
            execution_id,
            tenant_id,
            automation_id,
            automation_version_id,
            status,
            output,
            error,
            attempts,
            deduplicated,
            finished_at,
        } = self;
        let mut out = Vec::with_capacity(384);
        out.extend_from_slice(b"{\"version\":");
        out.extend_from_slice(itoa::Buffer::new().format(*version).as_bytes());
        id(&mut out, b",\"execution_id\":", execution_id.map(|i| i.0));
        id(&mut out, b",\"tenant_id\":", tenant_id.map(|i| i.0));
        id(&mut out, b",\"automation_id\":", automation_id.map(|i| i.0));
        if let Some(v) = automation_version_id {
            id(&mut out, b",\"automation_version_id\":", Some(v.0));
        }
        out.extend_from_slice(b",\"status\":\"");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b'"');
        if let Some(output) = output {
            out.extend_from_slice(b",\"output\":");
            serde_json::to_writer(&mut out, output)?;
        }
        if let Some(error) = error {
            out.extend_from_slice(b",\"error\":");
            serde_json::to_writer(&mut out, error)?;
        }
        out.extend_from_slice(b",\"attempts\":");
        out.extend_from_slice(itoa::Buffer::new().format(*attempts).as_bytes());
        if *deduplicated {
            out.extend_from_slice(b",\"deduplicated\":true");
        }
        out.extend_from_slice(b",\"finished_at\":\"");
        out.extend_from_slice(rfc3339_text(finished_at).as_bytes());
        out.extend_from_slice(b"\"}");
        // Every piece is UTF-8 (serde_json writes nothing else); the check is a formality.
        String::from_utf8(out).map_err(|e| serde_json::Error::custom(e.to_string()))
    }
}

/// `,"name":"<hyphenated lowercase id>"`, or `null`: as uuid's `Serialize` writes an id to a
/// human-readable format. Hex digits and hyphens need no escaping.
fn id(out: &mut Vec<u8>, name: &[u8], id: Option<Uuid>) {
    out.extend_from_slice(name);
    match id {
        Some(id) => {
            out.push(b'"');
            out.extend_from_slice(
                id.hyphenated()
                    .encode_lower(&mut Uuid::encode_buffer())
                    .as_bytes(),
            );
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use crate::execution::{
        ExecutionError, ExecutionErrorCode, ExecutionResultV1, ExecutionStatus, VendorError,
    };
    use crate::ids::{AutomationId, ExecutionId, TenantId, VersionId};
    use chrono::{TimeZone, Utc};
    use serde_json::{Map, Value, json};
    use uuid::Uuid;

    fn outputs() -> Vec<Option<Map<String, Value>>> {
        let map = |v: Value| v.as_object().cloned();
        vec![
            None,
            Some(Map::new()),
            map(json!({"id": "00Q5g00000AbCdEfGH"})),
            map(json!({
                "id": "a\"b\\c\u{0}\u{1f}\n\té—🎉\u{2028}",
                "n": 18446744073709551615u64, "f": 0.1, "neg": -3, "t": true, "z": null,
                "nested": {"list": [1, "two", {"three": [3.5e300]}], "": ""},
                "\"quoted key\"": "</script>"
            })),
        ]
    }

    fn errors() -> Vec<Option<ExecutionError>> {
        vec![
            None,
            Some(ExecutionError {
                code: ExecutionErrorCode::MissingParameter,
                message: "parameter \"LastName\" is required".into(),
                parameter: Some("LastName".into()),
                vendor: None,
            }),
            Some(ExecutionError {
                code: ExecutionErrorCode::VendorRejected,
                message: "Salesforce refused: REQUIRED_FIELD_MISSING \u{7f}\u{0}".into(),
                parameter: None,
                vendor: Some(VendorError {
                    http_status: Some(400),
                    code: "REQUIRED_FIELD_MISSING".into(),
                    message: "Required fields are missing: [Company]\r\n".into(),
                    fields: vec!["Company".into(), "Ünïcode".into()],
                }),
            }),
            Some(ExecutionError {
                code: ExecutionErrorCode::UnknownOutcome,
                message: String::new(),
                parameter: None,
                vendor: Some(VendorError {
                    http_status: None,
                    code: String::new(),
                    message: String::new(),
                    fields: vec![],
                }),
            }),
        ]
    }

    #[test]
    fn the_text_is_serde_json_s() {
        let second = Utc.with_ymd_and_hms(2026, 12, 3, 4, 5, 6).unwrap();
        let ids = [
            None,
            Some(Uuid::nil()),
            Some(Uuid::max()),
            Some(Uuid::from_u128(0x0190b3a4_7b1c_7d2e_8f00_00000000abcd)),
        ];
        let mut checked = 0;
        for (i, output) in outputs().into_iter().enumerate() {
            for (j, error) in errors().into_iter().enumerate() {
                for status in [
                    ExecutionStatus::Succeeded,
                    ExecutionStatus::Failed,
                    ExecutionStatus::UnknownOutcome,
                ] {
                    for (k, nanos) in [0, 1, 456_000_000, 999_999_999].into_iter().enumerate() {
                        let id = ids[(i + j + k) % ids.len()];
                        let result = ExecutionResultV1 {
                            version: [1, 0, u32::MAX][k % 3],
                            execution_id: id.map(ExecutionId),
                            tenant_id: ids[(i + 1) % ids.len()].map(TenantId),
                            automation_id: ids[(j + 2) % ids.len()].map(AutomationId),
                            automation_version_id: ids[(i + j + 3) % ids.len()].map(VersionId),
                            status,
                            output: output.clone(),
                            error: error.clone(),
                            attempts: [0, 1, 7, u32::MAX][(i + k) % 4],
                            deduplicated: (i + j + k) % 2 == 1,
                            finished_at: second + chrono::Duration::nanoseconds(nanos),
                        };
                        let ours = result.to_json().expect("writes");
                        let serde = serde_json::to_string(&result).expect("serialises");
                        assert_eq!(ours, serde);
                        let back: ExecutionResultV1 = serde_json::from_str(&ours).expect("reads");
                        assert_eq!(back, result);
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 4 * 4 * 3 * 4);
    }
}
