//! Changes made only to a record as its sender read it (RFC 9110 §13.1.1): a record answers
//! its revision as its `ETag`; a change sent with `If-Match` naming another is refused with a
//! 412 `precondition_failed` saying who changed it last and when, and nothing is written. A
//! change without `If-Match` applies to the record as it stands, as before.

use crate::audit::Action;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use deadpool_postgres::GenericClient;

/// A record's revision as its entity tag, `"7"`, as the `ETag` header carries it.
pub fn etag(revision: i64) -> String {
    format!("\"{revision}\"")
}

/// `body` answered with `revision` as its `ETag`: a record's answer (`IntoResponse` of
/// `AutomationView` and `ConnectionView`).
pub fn tagged(revision: i64, body: impl IntoResponse) -> Response {
    ([(axum::http::header::ETAG, etag(revision))], body).into_response()
}

/// The request's `If-Match`.
#[derive(Debug, PartialEq)]
pub enum IfMatch {
    /// None: the change applies to the record as it stands.
    Absent,
    /// `*`: to the record, whatever its revision.
    Any,
    /// Entity tags, each with whether it is weak (`W/"…"`), which never matches: RFC 9110
    /// compares `If-Match` strongly.
    Tags(Vec<(bool, String)>),
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let values = parts.headers.get_all(axum::http::header::IF_MATCH);
        let mut given = Self::Absent;
        for value in values {
            match (value.to_str().ok().and_then(parse), &mut given) {
                (Some(Self::Tags(more)), Self::Tags(tags)) => tags.extend(more),
                (Some(read), _) => given = read,
                (None, _) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_header",
                        "If-Match must be * or entity tags in double quotes, as an ETag gave them (\"7\")",
                    )
                    .at("If-Match"));
                }
            }
        }
        Ok(given)
    }
}

/// An `If-Match` value (RFC 9110 §13.1.1): `*` or its entity tags; `None` when it is neither.
/// By hand: the `headers` crate's reading skips a malformed tag instead of refusing it, and
/// `If-Match: 7` (the quotes forgotten) would then be refused as a change made meanwhile
/// rather than as the header at fault.
fn parse(value: &str) -> Option<IfMatch> {
    let mut rest = value.trim_matches([' ', '\t']);
    if rest == "*" {
        return Some(IfMatch::Any);
    }
    let mut tags = Vec::new();
    while !rest.is_empty() {
        let (weak, tagged) = match rest.strip_prefix("W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let quoted = tagged.strip_prefix('"')?;
        let end = quoted.find('"')?;
        let tag = &quoted[..end];
        // etagc: visible characters but DQUOTE, and obs-text.
        if tag.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return None;
        }
        tags.push((weak, tag.to_string()));
        // The list's separators, empty elements allowed ("a", , "b").
        rest = quoted[end + 1..].trim_start_matches([' ', '\t']);
        match rest.strip_prefix(',') {
            Some(after) => rest = after.trim_start_matches([' ', '\t', ',']),
            None if rest.is_empty() => {}
            None => return None,
        }
    }
    (!tags.is_empty()).then_some(IfMatch::Tags(tags))
}

impl IfMatch {
    /// Refuses a change to the tenant's `kind` `id` (its row locked by the caller's
    /// transaction) when `If-Match` names none of its current `revision`; the refusal says
    /// whose change came between: the audit trail's last that revised it.
    pub async fn check(
        &self,
        client: &impl GenericClient,
        tenant: aic_proto::TenantId,
        (kind, id): (&str, uuid::Uuid),
        revision: i64,
    ) -> Result<(), ApiError> {
        let current = revision.to_string();
        let passes = match self {
            Self::Absent | Self::Any => true,
            Self::Tags(tags) => tags.iter().any(|(weak, tag)| !weak && *tag == current),
        };
        if passes {
            return Ok(());
        }
        let revising: Vec<&str> = Action::ALL
            .into_iter()
            .filter(|a| a.revises())
            .map(Action::as_str)
            .collect();
        let last = client
            .query_opt(
                "SELECT coalesce(actor_name, actor_role), action, at FROM audit_events \
                 WHERE tenant_id = $1 AND target_id = $2 AND action = ANY($3) \
                 ORDER BY at DESC, id DESC LIMIT 1",
                &[&tenant.0, &id, &revising],
            )
            .await?;
        let by = last.map_or_else(String::new, |r| {
            let at: chrono::DateTime<chrono::Utc> = r.get(2);
            let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let who: Option<&str> = r.get(0);
            let who = who.unwrap_or("an unnamed actor");
            format!(" (last: {} by '{who}' at {at})", r.get::<_, &str>(1))
        });
        Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            format!(
                "the {kind} changed since it was read{by}: its ETag is now {}; read it again and make the change on what it is now",
                etag(revision)
            ),
        )
        .at("If-Match"))
    }
}

#[cfg(test)]
mod tests {
    use super::{IfMatch, parse};

    fn tags(list: &[(bool, &str)]) -> Option<IfMatch> {
        Some(IfMatch::Tags(
            list.iter().map(|(w, t)| (*w, t.to_string())).collect(),
        ))
    }

    #[test]
    fn if_match_is_read_as_rfc_9110_writes_it() {
        assert_eq!(parse("*"), Some(IfMatch::Any));
        assert_eq!(parse(" \"7\" "), tags(&[(false, "7")]));
        assert_eq!(parse("\"7\", W/\"8\""), tags(&[(false, "7"), (true, "8")]));
        assert_eq!(parse("\"a,b\",,\"\""), tags(&[(false, "a,b"), (false, "")]));
        for bad in [
            "",
            "7",
            "\"7",
            "W/",
            "W/7",
            "\"7\" \"8\"",
            "\"a b\"",
            "*, \"7\"",
            ",",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
