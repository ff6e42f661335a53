//! Decoding a message body into the version this build speaks, telling apart the ways it can
//! be unreadable: the worker dead-letters each with its own reason.

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body is not JSON at all.
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    /// JSON without a numeric `version` field.
    #[error("body has no numeric \"version\" field")]
    MissingVersion,
    /// A `version` this build does not speak.
    #[error("message version {0} is not supported (this worker speaks version {v})", v = crate::MESSAGE_VERSION)]
    UnknownVersion(u64),
    /// The right version, but a field is missing or of the wrong type.
    #[error("message does not match the version 1 schema: {0}")]
    Invalid(String),
}

impl DecodeError {
    /// A stable machine reason, used as the dead-letter header value.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "invalid_json",
            Self::MissingVersion => "missing_version",
            Self::UnknownVersion(_) => "unknown_version",
            Self::Invalid(_) => "invalid_message",
        }
    }
}

#[derive(Deserialize)]
struct VersionPeek {
    version: Option<serde_json::Value>,
}

/// A message that says which version of the contract it is.
pub trait Versioned {
    /// Its `version` field.
    fn version(&self) -> u32;
}

/// Decodes `body` as a message of [`crate::MESSAGE_VERSION`].
///
/// A well-formed message of this version is read straight into `T`. Anything else — text that
/// is not `T` for any reason, another version, a possible NUL — is read again through a
/// `serde_json::Value` to say precisely what is wrong. Reading into a `Value` first for every
/// message, then into `T`, was twice the work on the worker's hot path. Whatever the direct
/// read accepts, the `Value` read accepts as the same `T` (the reverse does not hold: a
/// repeated key is refused by the one and kept last by the other, hence the second read).
pub fn decode<T: DeserializeOwned + Versioned>(body: &[u8]) -> Result<T, DecodeError> {
    // A UTF-8 byte order mark, which .NET's and PowerShell's writers put first, is no part of
    // the JSON text (RFC 8259 lets a reader ignore it).
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    // Checked as UTF-8 once, the text's strings are not checked one by one (as `from_slice`
    // does: ~100 instructions a string, a request has a dozen).
    if !crate::text::may_hold_nul(body)
        && let Ok(text) = std::str::from_utf8(body)
        && let Ok(message) = serde_json::from_str::<T>(text)
        && message.version() == crate::MESSAGE_VERSION
    {
        return Ok(message);
    }
    explain(body)
}

/// The `Value` read: the message, or precisely why it is not one.
fn explain<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    if let Some(path) = crate::text::may_hold_nul(body)
        .then(|| crate::text::nul_path(&value, ""))
        .flatten()
    {
        return Err(DecodeError::Invalid(format!(
            "{path} contains a NUL character (\\u0000), which cannot be stored"
        )));
    }
    let peek = VersionPeek::deserialize(&value).map_err(|_| DecodeError::MissingVersion)?;
    match peek.version.as_ref().and_then(serde_json::Value::as_u64) {
        None => Err(DecodeError::MissingVersion),
        Some(v) if v != u64::from(crate::MESSAGE_VERSION) => Err(DecodeError::UnknownVersion(v)),
        Some(_) => T::deserialize(value).map_err(|e| DecodeError::Invalid(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExecutionRequestV1;

    #[test]
    fn garbage_is_not_json() {
        let e = decode::<ExecutionRequestV1>(b"{nope").unwrap_err();
        assert_eq!(e.reason(), "invalid_json");
    }

    #[test]
    fn text_that_is_not_utf8_is_not_json_and_utf8_text_is_kept() {
        let ids = r#""execution_id":"0190b3a4-7b1c-7d2e-8f00-000000000001","tenant_id":"0190b3a4-7b1c-7d2e-8f00-000000000002","automation_id":"0190b3a4-7b1c-7d2e-8f00-000000000003""#;
        let mut bad =
            format!(r#"{{"version":1,{ids},"parameters":{{"LastName":"x"}}}}"#).into_bytes();
        // The parameter's value (the last `x`; `execution_id` holds one too).
        let at = bad.iter().rposition(|b| *b == b'x').expect("x");
        bad[at] = 0xff;
        let e = decode::<ExecutionRequestV1>(&bad).unwrap_err();
        assert_eq!(e.reason(), "invalid_json", "{e:?}");
        let name = "Gr\u{e9}goire \u{1f680}";
        let good = format!(r#"{{"version":1,{ids},"parameters":{{"LastName":"{name}"}}}}"#);
        let req = decode::<ExecutionRequestV1>(good.as_bytes()).expect("UTF-8 text decodes");
        assert_eq!(req.parameters["LastName"], name);
        let marked = [&b"\xEF\xBB\xBF"[..], good.as_bytes()].concat();
        let req = decode::<ExecutionRequestV1>(&marked).expect("a byte order mark first");
        assert_eq!(req.parameters["LastName"], name);
        let twice = [&b"\xEF\xBB\xBF"[..], &marked].concat();
        let e = decode::<ExecutionRequestV1>(&twice).unwrap_err();
        assert_eq!(
            e.reason(),
            "invalid_json",
            "one mark, not any number: {e:?}"
        );
    }

    #[test]
    fn a_source_past_a_label_is_refused_naming_it() {
        let ids = r#""execution_id":"0190b3a4-7b1c-7d2e-8f00-000000000001","tenant_id":"0190b3a4-7b1c-7d2e-8f00-000000000002","automation_id":"0190b3a4-7b1c-7d2e-8f00-000000000003""#;
        let with = |source: &str| format!(r#"{{"version":1,{ids},"source":"{source}"}}"#);
        let req = decode::<ExecutionRequestV1>(with(&"s".repeat(200)).as_bytes()).expect("a label");
        assert_eq!(req.source.map(|s| s.len()), Some(200));
        let e = decode::<ExecutionRequestV1>(with(&"s".repeat(201)).as_bytes()).unwrap_err();
        assert_eq!(e.reason(), "invalid_message", "{e}");
        assert!(
            e.to_string().contains("source is 201 characters long"),
            "{e}"
        );
        let e = decode::<ExecutionRequestV1>(with("bot\\r").as_bytes()).unwrap_err();
        assert!(e.to_string().contains("U+000D"), "{e}");
        // A label that reads backwards, as a name may not either.
        let e = decode::<ExecutionRequestV1>(with("flow:\\u202egnp.exe").as_bytes()).unwrap_err();
        assert!(e.to_string().contains("U+202E"), "{e}");
    }

    #[test]
    fn a_future_version_is_named_in_the_error() {
        let e = decode::<ExecutionRequestV1>(br#"{"version":7}"#).unwrap_err();
        assert_eq!(e.reason(), "unknown_version");
        assert!(e.to_string().contains("version 7"));
    }

    #[test]
    fn a_nul_character_is_refused_and_located() {
        let body = br#"{"version":1,"execution_id":"0190b3a4-7b1c-7d2e-8f00-000000000001","tenant_id":"0190b3a4-7b1c-7d2e-8f00-000000000002","automation_id":"0190b3a4-7b1c-7d2e-8f00-000000000003","parameters":{"LastName":"a\u0000b"}}"#;
        let e = decode::<ExecutionRequestV1>(body).unwrap_err();
        assert_eq!(e.reason(), "invalid_message");
        assert!(e.to_string().contains("parameters.LastName"), "{e}");
        assert!(e.to_string().contains("NUL"), "{e}");
    }

    #[test]
    fn the_direct_read_and_the_explaining_read_agree() {
        let ids = r#""execution_id":"0190b3a4-7b1c-7d2e-8f00-000000000001","tenant_id":"0190b3a4-7b1c-7d2e-8f00-000000000002","automation_id":"0190b3a4-7b1c-7d2e-8f00-000000000003""#;
        let good = format!(
            r#"{{"version":1,{ids},"parameters":{{"Amount":0.9999999999999999,"Big":18446744073709551615,"Tags":["a","é"],"N":null}},"requested_at":"2026-12-02T01:02:03.456Z","source":"flow:x"}}"#
        );
        let direct = decode::<ExecutionRequestV1>(good.as_bytes()).expect("decodes");
        let explained = explain::<ExecutionRequestV1>(good.as_bytes()).expect("decodes");
        assert_eq!(direct, explained);
        for (body, reason) in [
            (format!(r#"{{"version":2,{ids}}}"#), "unknown_version"),
            (format!(r#"{{"version":1.0,{ids}}}"#), "missing_version"),
            (format!(r#"{{"version":"1",{ids}}}"#), "missing_version"),
            (
                format!(r#"{{"version":1,{ids},"extra":1}}"#),
                "invalid_message",
            ),
            (format!(r#"{{"version":1,{ids}}} trailing"#), "invalid_json"),
        ] {
            let e = decode::<ExecutionRequestV1>(body.as_bytes()).unwrap_err();
            assert_eq!(e.reason(), reason, "{body}");
        }
        let repeated =
            format!(r#"{{"version":1,{ids},"parameters":{{"A":1}},"parameters":{{"A":2}}}}"#);
        let kept_last = decode::<ExecutionRequestV1>(repeated.as_bytes()).expect("decodes");
        assert_eq!(kept_last.parameters["A"], 2);
    }

    #[test]
    fn a_missing_field_is_invalid_and_named() {
        let e = decode::<ExecutionRequestV1>(br#"{"version":1}"#).unwrap_err();
        assert_eq!(e.reason(), "invalid_message");
        assert!(e.to_string().contains("execution_id"), "{e}");
    }
}
