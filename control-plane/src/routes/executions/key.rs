//! The request's idempotency key: the body's `idempotency_key`, or the `Idempotency-Key`
//! header that HTTP clients and flow tools send (draft-ietf-httpapi-idempotency-key-header: a
//! structured-field string, `"8e03978e-…"`; the bare value many clients send is taken too).
//! Both given must agree: a client sending one key in the header and another in the body
//! would not know which one its retries are matched by.

use crate::error::ApiError;
use axum::http::{HeaderMap, StatusCode};

/// The header's name, as errors name it.
const HEADER: &str = "Idempotency-Key";

/// The key the request gives, checked: 1 to 200 characters, not blank.
pub(super) fn given(headers: &HeaderMap, body: Option<String>) -> Result<Option<String>, ApiError> {
    let header = from_header(headers)?;
    let (key, field) = match (body, header) {
        (Some(b), Some(h)) if b != h => {
            return Err(ApiError::invalid(
                HEADER,
                "the Idempotency-Key header and the body's idempotency_key differ: give one, or the same in both",
            ));
        }
        (Some(b), _) => (b, "idempotency_key"),
        (None, Some(h)) => (h, HEADER),
        (None, None) => return Ok(None),
    };
    if key.trim().is_empty() || key.chars().count() > 200 {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be 1 to 200 characters"),
        ));
    }
    Ok(Some(key))
}

/// The `Idempotency-Key` header's key, if given: once, as visible ASCII, a quoted string or a
/// bare value.
fn from_header(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let malformed = |why: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_header",
            format!("Idempotency-Key {why}"),
        )
        .at(HEADER)
    };
    if values.next().is_some() {
        return Err(malformed("is given more than once"));
    }
    let text = value
        .to_str()
        .map_err(|_| malformed("must be visible ASCII (a quoted string, \"…\")"))?
        .trim();
    match text.strip_prefix('"') {
        None if text.contains('"') => Err(malformed("has a stray double quote")),
        None => Ok(Some(text.to_string())),
        Some(quoted) => unquoted(quoted)
            .map(Some)
            .ok_or_else(|| malformed("must be one string in double quotes, \\\" and \\\\ escaped")),
    }
}

/// A structured-field string's content (after its opening quote): up to its closing quote,
/// which must end the value, with `\"` and `\\` unescaped.
fn unquoted(rest: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                e @ ('"' | '\\') => out.push(e),
                _ => return None,
            },
            '"' => return chars.next().is_none().then_some(out),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, HeaderValue::from_bytes(v).expect("a header value"));
        }
        h
    }

    fn refused(r: Result<Option<String>, ApiError>) -> (u16, String, Option<String>) {
        let e = r.expect_err("refused");
        let d = e.detail();
        let status = axum::response::IntoResponse::into_response(e).status();
        (status.as_u16(), d.code, d.field)
    }

    #[test]
    fn the_header_gives_the_key_quoted_or_bare() {
        let key = |values: &[&[u8]], body: Option<&str>| {
            given(&with(values), body.map(str::to_string)).expect("taken")
        };
        assert_eq!(key(&[br#""order-42""#], None).as_deref(), Some("order-42"));
        assert_eq!(key(&[b"order-42"], None).as_deref(), Some("order-42"));
        assert_eq!(
            key(&[br#""a \"b\" \\ c""#], None).as_deref(),
            Some(r#"a "b" \ c"#)
        );
        assert_eq!(
            key(&[b"k"], Some("k")).as_deref(),
            Some("k"),
            "the same in both"
        );
        assert_eq!(key(&[], Some("k")).as_deref(), Some("k"));
        assert_eq!(key(&[], None), None);
    }

    #[test]
    fn a_malformed_or_contradicting_header_is_refused_naming_it() {
        let header = Some(HEADER.to_string());
        for values in [
            &[br#""open"#.as_slice()][..],
            &[br#""a"b""#],
            &[br#""a\x""#],
            &[br#"a"b"#],
            &["é".as_bytes()],
            &[b"k1", b"k2"],
        ] {
            assert_eq!(
                refused(given(&with(values), None)),
                (400, "invalid_header".into(), header.clone()),
                "{values:?}"
            );
        }
        let long = format!("\"{}\"", "k".repeat(201));
        for (values, body) in [
            (&[b"k1".as_slice()][..], Some("k2")),
            (&[br#""  ""#], None),
            (&[long.as_bytes()], None),
        ] {
            assert_eq!(
                refused(given(&with(values), body.map(str::to_string))),
                (422, "validation_failed".into(), header.clone()),
                "{values:?} {body:?}"
            );
        }
        assert_eq!(
            refused(given(&with(&[]), Some(" ".into()))),
            (
                422,
                "validation_failed".into(),
                Some("idempotency_key".into())
            )
        );
    }
}
