//! One error type for the API: a stable machine `code`, a human `message`, the `field` at fault
//! when there is one, and the HTTP status. Infrastructure failures become an opaque 500 that is
//! logged with its cause and never echoed.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    /// Seconds to wait, sent as `Retry-After`.
    retry_after: Option<u64>,
}

/// The JSON body of every error response.
#[derive(Serialize, JsonSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Error details.
#[derive(Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// Stable machine code, e.g. `validation_failed`, `not_found`, `forbidden`.
    pub code: String,
    /// Human explanation.
    pub message: String,
    /// The request field at fault, as a dotted path (`secrets.client_secret`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// An error of `status` and `code` saying `message`, about no field in particular.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// Whether the fault is the service's (a 5xx), not the request's.
    pub fn is_server_error(&self) -> bool {
        self.status.is_server_error()
    }

    /// What the client is told.
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code.into(),
            message: self.message.clone(),
            field: self.field.clone(),
        }
    }

    /// The same, naming the request field at fault.
    pub(crate) fn at(self, field: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..self
        }
    }

    /// 422: a field of the request is wrong.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
        .at(field)
    }

    /// 502: the vendor refused or failed a call the API made on the caller's behalf; the code
    /// is the one an execution would get (`vendor_auth_failed`, `vendor_rejected`…) and the
    /// message says what the vendor said.
    pub fn vendor(failure: &aic_core::vendor::VendorFailure) -> Self {
        let said = failure
            .vendor
            .as_ref()
            .map(|v| format!(" (vendor: {}: {})", v.code, v.message))
            .unwrap_or_default();
        Self::new(
            StatusCode::BAD_GATEWAY,
            failure.code.as_str(),
            format!("{}{said}", failure.message),
        )
    }

    /// 422: the vendor found no such thing as the caller named in `field` (an object, a
    /// project): the caller's to mend, so not a 502; the message says what the vendor said.
    pub fn vendor_not_found(field: &str, failure: &aic_core::vendor::VendorFailure) -> Self {
        Self::invalid(field, Self::vendor(failure).message)
    }

    /// 429: the vendor asked for no calls on the connection until `until` (its rate limit or
    /// quota; see [`aic_core::cooldown`]), so none is made; `Retry-After` says when to try.
    pub fn throttled(until: chrono::DateTime<chrono::Utc>, reason: &str) -> Self {
        let ms = (until - chrono::Utc::now()).num_milliseconds();
        let seconds = u64::try_from(ms).unwrap_or(0).div_ceil(1000);
        let message = format!(
            "the connection is cooling down until {}: {reason}; no call is made to the vendor before then",
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        Self {
            retry_after: Some(seconds),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "connection_throttled",
                message,
            )
        }
    }

    /// 429: every slot of the connection's `cap` on calls at once (its own `max_concurrency`
    /// when `own`, else the workers' setting) stayed held (by executions, or other admins'
    /// calls) for `waited`, so no call is made; `Retry-After` is a second.
    pub fn connection_busy(cap: i32, own: bool, waited: std::time::Duration) -> Self {
        let whose = if own {
            "its max_concurrency"
        } else {
            "the workers' AIC_WORKER_CONNECTION_CONCURRENCY, as it has no max_concurrency"
        };
        let message = format!(
            "the connection's {cap} call(s) at once ({whose}) stayed in use for {} s; \
             no call is made to the vendor beyond its cap",
            waited.as_secs()
        );
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "connection_busy", message)
        }
    }

    /// 404.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 409.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 401.
    pub fn unauthenticated(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// 403.
    pub fn forbidden(message: String) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 503: a dependency is down; the client may retry.
    pub fn unavailable(message: &str) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 503 for `what` ("the request") that the broker did not take (`e`), so `undone` ("nothing
    /// was enqueued"): blocked ([`Self::broker_blocked`]), unreachable, or not confirmed.
    pub fn not_published(e: &aic_core::amqp::PublishError, what: &str, undone: &str) -> Self {
        use aic_core::amqp::PublishError;
        match e {
            PublishError::Blocked => Self::broker_blocked(undone),
            PublishError::Amqp(_) | PublishError::Unreachable(_) => Self::unavailable(&format!(
                "the message broker is unavailable; {undone}, retry later"
            )),
            _ => Self::unavailable(&format!(
                "the message broker did not confirm {what}; {undone}, retry later"
            )),
        }
    }

    /// 503: the message broker blocks new messages (its memory or disk alarm), so `undone`
    /// ("nothing was enqueued"); `Retry-After` is a few seconds.
    fn broker_blocked(undone: &str) -> Self {
        let message = format!(
            "the message broker is refusing new messages (a memory or disk alarm); {undone}, retry later"
        );
        Self {
            retry_after: Some(5),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "broker_blocked", message)
        }
    }

    /// 500, logged with its cause; the client sees only that it happened.
    pub fn internal(context: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(context, cause = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the control plane's logs",
        )
    }
}

/// Longest an API call's statement waits for a lock held elsewhere (a migration, maintenance,
/// a session idle in its transaction) before the call is answered 503 `database_busy`.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
            tracing::warn!(error = %aic_core::with_causes(&e), "a statement gave up waiting for a lock");
            let message = format!(
                "the database kept this call waiting over {} s for a lock held elsewhere (a \
                 migration or maintenance?); retry later",
                LOCK_WAIT.as_secs()
            );
            return Self {
                retry_after: Some(5),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "database_busy", message)
            };
        }
        if connection_lost(&e) {
            tracing::warn!(error = %aic_core::with_causes(&e), "the database connection was lost during a call");
            return Self::unavailable("the database is unavailable; retry later");
        }
        Self::internal("postgres", &aic_core::with_causes(&e))
    }
}

/// Whether `e` says the connection, not the statement, failed: closed or cut under it (the
/// server gone, restarted, or unreachable past the connection's TCP bounds), or refused by a
/// server shutting down or starting — as unavailable as a pool with no connection to give.
fn connection_lost(e: &tokio_postgres::Error) -> bool {
    let refused_by_server = e.code().is_some_and(|c| {
        let code = c.code();
        code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
    });
    let io = std::iter::successors(std::error::Error::source(e), |c| c.source())
        .any(|c| c.is::<std::io::Error>());
    e.is_closed() || refused_by_server || (e.as_db_error().is_none() && io)
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        tracing::warn!(error = %aic_core::with_causes(&e), "no Postgres connection available");
        Self::unavailable("the database is unavailable; retry later")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.detail(),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // What a 401 must say: how to authenticate (RFC 9110, RFC 6750).
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"aic\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// `bytes` read as JSON into `T`; a 422 `invalid_body` naming the field at fault when not.
pub fn json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        with_field(
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                described(&e),
            ),
            &e,
        )
    })
}

/// `e`'s message, after the path to the field it is about (unless the message names it alone:
/// "unknown field `colour`, …" at the top).
pub(crate) fn described<E: std::fmt::Display>(e: &serde_path_to_error::Error<E>) -> String {
    let (path, inner) = (e.path().to_string(), e.inner().to_string());
    if path == "." || inner.starts_with(&format!("unknown field `{path}`")) {
        inner
    } else {
        format!("{path}: {inner}")
    }
}

/// `err` naming the field `e` is about: its path (`parameters[2].max_length`), down to the
/// field serde names in its message alone (unknown or missing: "unknown field `colour`, …").
pub(crate) fn with_field<E: std::fmt::Display>(
    err: ApiError,
    e: &serde_path_to_error::Error<E>,
) -> ApiError {
    let inner = e.inner().to_string();
    let named = ["unknown field `", "missing field `", "duplicate field `"]
        .iter()
        .find_map(|lead| inner.strip_prefix(lead))
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    // The path may end with the unknown field already (a query's or a map's key), or not.
    match (e.path().to_string().as_str(), named) {
        (".", None) => err,
        (".", Some(name)) => err.at(name),
        (path, Some(name)) if path != name && !path.ends_with(&format!(".{name}")) => {
            err.at(format!("{path}.{name}"))
        }
        (path, _) => err.at(path),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        k: u8,
        n: Option<u32>,
    }

    fn field(body: &str) -> Option<String> {
        super::json_body::<Outer>(body.as_bytes())
            .expect_err("refused")
            .field
    }

    #[test]
    fn a_body_error_names_its_field_by_path() {
        let cases = [
            (
                r#"{"name": "a", "inner": [{"k": 1}, {"k": 1, "n": "x"}]}"#,
                "inner[1].n",
            ),
            (
                r#"{"name": "a", "inner": [{"k": 1, "colour": 1}]}"#,
                "inner[0].colour",
            ),
            (r#"{"name": "a", "inner": [{"n": 1}]}"#, "inner[0].k"),
            (r#"{"name": "a", "inner": [], "colour": 1}"#, "colour"),
            (r#"{"inner": []}"#, "name"),
            // Given twice: which is meant?
            (r#"{"name": "a", "inner": [], "name": "b"}"#, "name"),
            (
                r#"{"name": "a", "inner": [{"k": 1, "k": 2}]}"#,
                "inner[0].k",
            ),
        ];
        for (body, path) in cases {
            assert_eq!(field(body).as_deref(), Some(path), "{body}");
        }
        assert_eq!(field("1"), None, "not about a field");
        let said = |body: &str| {
            super::json_body::<Outer>(body.as_bytes())
                .expect_err("refused")
                .message
        };
        assert!(said(r#"{"colour": 1}"#).starts_with("unknown field `colour`"));
        assert!(
            said(r#"{"name": "a", "inner": [{"k": "x"}]}"#).starts_with("inner[0].k: invalid type")
        );
    }
}
