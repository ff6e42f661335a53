//! The router: every route of the API, with the roles each needs decided in its handler.

pub mod audit;
pub mod automations;
pub mod catalog;
pub mod connections;
pub mod deployables;
pub mod executions;
pub mod health;
mod names;
pub mod page;
pub mod tokens;

pub use names::{Named, bounded_name, checked_name, clashed, name_free, name_in, unique_name};

use crate::state::AppState;
use axum::Router;
use axum::routing::{get, patch, post};

/// Builds the router: the API, and `/metrics` counting every request to it in `metrics`.
pub fn router(state: AppState, metrics: std::sync::Arc<crate::metrics::HttpMetrics>) -> Router {
    let scrape = (metrics.clone(), state.pool.clone());
    api(state)
        .route("/metrics", get(crate::metrics::serve).with_state(scrape))
        .layer(answer_panics())
        .layer(axum::middleware::map_response(not_stored))
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::extract::BODY_LIMIT,
        ))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::track,
        ))
}

/// Every answer (but the console's files, which say how they are cached) is neither stored by
/// a browser or a proxy — it holds a tenant's configuration, an execution's result, a token
/// shown once (RFC 6749's `no-store` for an answer carrying a token) — nor read by a browser
/// as another type than the one it gives.
async fn not_stored(mut answer: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let headers = answer.headers_mut();
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    answer
}

/// A handler that panics (a defect) is answered as every internal failure is — an opaque 500,
/// its cause logged — and counted as one, rather than its connection dropped unanswered.
pub(crate) fn answer_panics() -> tower_http::catch_panic::CatchPanicLayer<
    fn(Box<dyn std::any::Any + Send>) -> axum::response::Response,
> {
    tower_http::catch_panic::CatchPanicLayer::custom(|panic| {
        let message = aic_core::panics::message(&*panic);
        axum::response::IntoResponse::into_response(crate::error::ApiError::internal(
            "a request's handler panicked",
            &message,
        ))
    })
}

fn api(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(crate::openapi::serve))
        .merge(crate::console::routes())
        .route("/v1/domains", get(catalog::list_domains))
        .route("/v1/apps", get(catalog::list_apps))
        .route("/v1/templates", get(catalog::search_templates))
        .route("/v1/apps/{app}/templates", get(catalog::list_templates))
        .route(
            "/v1/connections",
            post(connections::create).get(connections::listing::list),
        )
        .route(
            "/v1/connections/{id}",
            get(connections::read)
                .patch(connections::edit::update)
                .delete(connections::edit::delete),
        )
        .route("/v1/connections/{id}/test", post(connections::test_saved))
        .route(
            "/v1/connections/{id}/cooldowns",
            axum::routing::delete(connections::clear_cooldowns),
        )
        .route("/v1/connection-tests", post(connections::test_unsaved))
        .route(
            "/v1/automations",
            post(automations::create).get(automations::listing::list),
        )
        .route(
            "/v1/automations/{id}",
            get(automations::read)
                .patch(automations::edit::update)
                .delete(automations::edit::delete),
        )
        .route("/v1/automations/{id}/test", post(automations::trial::test))
        .route(
            "/v1/automations/{id}/fields",
            get(automations::fields::list),
        )
        .route(
            "/v1/automations/{id}/duplicate",
            post(automations::duplicate::duplicate),
        )
        .route(
            "/v1/automations/{id}/versions",
            get(automations::versions::list),
        )
        .route(
            "/v1/automations/{id}/versions/delete",
            post(automations::versions::delete_many),
        )
        .route(
            "/v1/automations/{id}/versions/{number}",
            patch(automations::versions::rename).delete(automations::versions::delete),
        )
        .route(
            "/v1/automations/{id}/versions/{number}/restore",
            post(automations::versions::restore),
        )
        .route("/v1/automations/{id}/publish", post(automations::publish))
        .route(
            "/v1/automations/{id}/executions",
            post(executions::enqueue).get(executions::history::list),
        )
        .route("/v1/executions", get(executions::across::list))
        .route(
            "/v1/executions/rerun",
            post(executions::rerun::rerun_failures),
        )
        .route("/v1/executions/{id}", get(executions::read))
        .route("/v1/executions/{id}/rerun", post(executions::rerun::rerun))
        .route("/v1/me", get(tokens::me))
        .route("/v1/tokens", post(tokens::issue).get(tokens::list))
        .route("/v1/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/v1/audit-events", get(audit::list))
        .route(
            "/v1/deployables",
            post(deployables::register).get(deployables::list),
        )
        .route(
            "/v1/deployables/{id}",
            axum::routing::delete(deployables::remove),
        )
        .with_state(state)
}

/// Parses a path id, answering 404 (not 400) for garbage: an id that cannot exist is not found.
pub fn parse_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, crate::error::ApiError> {
    raw.parse()
        .map_err(|_| crate::error::ApiError::not_found(what))
}

/// For `#[serde(default, deserialize_with = "…")]` on an edit's field that can be left out but
/// never cleared (a name, a status, a table): `null` is refused, naming the field, rather than
/// read as left out — a client meaning to clear it was answered 200 with nothing changed.
pub fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    let given: Option<T> = serde::Deserialize::deserialize(d)?;
    given.map(Some).ok_or_else(|| {
        serde::de::Error::custom(
            "null clears nothing here: leave the field out to keep it, or give a value",
        )
    })
}

/// For `#[serde(default, deserialize_with = "…")]` on an edit's text that may be emptied (a
/// description): `null` empties it, as `""` does — what JSON Merge Patch reads it as.
pub fn null_empties<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let given: Option<String> = serde::Deserialize::deserialize(d)?;
    Ok(Some(given.unwrap_or_default()))
}

/// For `#[serde(default, deserialize_with = "…")]`: a field that is present, `null` included
/// (`Some(None)`, clear it), differs from an absent one (`None`, keep it).
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}

/// [`present`] for an integer field, written as any whole number (see [`aic_proto::whole`]).
pub fn present_whole<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    aic_proto::whole::option(d).map(Some)
}

/// Whether `needle` (already [`aic_core::catalog::fold`]ed) is in one of `haystacks`, without
/// case or accents.
pub fn found_in(needle: Option<&str>, haystacks: &[&str]) -> bool {
    needle.is_none_or(|n| {
        haystacks
            .iter()
            .any(|h| aic_core::catalog::fold(h).contains(n))
    })
}

/// For `#[serde(default, deserialize_with = "…")]` on an optional RFC 3339 time in a body (a
/// token's `expires_at`): one without its offset is refused saying so, where chrono says
/// only "premature end of input".
pub fn time_option<'de, D>(d: D) -> Result<Option<chrono::DateTime<chrono::Utc>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let given: Option<String> = serde::Deserialize::deserialize(d)?;
    given
        .map(|raw| {
            chrono::DateTime::parse_from_rfc3339(&raw)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| {
                    serde::de::Error::custom(format!(
                        "'{raw}' is not an RFC 3339 time with its offset, such as \
                         2027-01-01T00:00:00Z ({e})"
                    ))
                })
        })
        .transpose()
}

/// A `since` parameter: an RFC 3339 time (the listings', the bulk re-run's).
pub fn since(raw: &str) -> Result<chrono::DateTime<chrono::Utc>, crate::error::ApiError> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            crate::error::ApiError::invalid(
                "since",
                format!("since must be an RFC 3339 time such as 2026-12-05T00:00:00Z ({e})"),
            )
        })
}

/// A filter's value that must be one of `allowed`, else a 422 naming `field`.
pub fn one_of(
    field: &str,
    value: Option<&str>,
    allowed: &[&str],
) -> Result<(), crate::error::ApiError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(crate::error::ApiError::invalid(
            field,
            format!("{field} must be one of {}, not '{v}'", allowed.join(", ")),
        )),
        _ => Ok(()),
    }
}

/// 409 `code`: `users` (the first five named) still use what is being deleted, e.g. "3
/// automation(s) run on this connection ('A', 'B', 'C'): move them … first".
pub fn in_use(
    code: &'static str,
    users: &[String],
    what: &str,
    advice: &str,
) -> crate::error::ApiError {
    let mut named: Vec<String> = users.iter().take(5).map(|n| format!("'{n}'")).collect();
    if users.len() > 5 {
        named.push(format!("and {} more", users.len() - 5));
    }
    crate::error::ApiError::conflict(
        code,
        format!("{} {what} ({}): {advice}", users.len(), named.join(", ")),
    )
}

/// The most characters a description holds (an automation's; a parameter's holds
/// [`PARAMETER_DESCRIPTION_MAX`]): what a reader of the console takes in, not a document.
pub const DESCRIPTION_MAX: usize = 4_000;
/// The most characters a parameter's description holds.
pub const PARAMETER_DESCRIPTION_MAX: usize = 1_000;

/// Refuses a description in `field` longer than `most` characters, naming it.
pub fn bounded_description(
    field: &str,
    text: &str,
    most: usize,
) -> Result<(), crate::error::ApiError> {
    let count = text.chars().count();
    if count > most {
        return Err(crate::error::ApiError::invalid(
            field,
            format!("{field} is {count} characters long; at most {most} are accepted"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// A panicking handler is answered 500 in the API's shape, and the next request is served.
    #[tokio::test]
    async fn a_handler_that_panics_is_answered_as_an_internal_failure() {
        use axum::routing::get;
        use tower_service::Service;
        async fn boom() -> &'static str {
            panic!("a defect at 3")
        }
        let mut router: axum::Router = axum::Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" }))
            .layer(super::answer_panics());
        let request = |path: &str| {
            let request = axum::http::Request::get(path).body(axum::body::Body::empty());
            request.expect("request")
        };
        let answer = router.call(request("/boom")).await.expect("infallible");
        assert_eq!(answer.status(), 500);
        let body = axum::body::to_bytes(answer.into_body(), 1 << 16).await;
        let body: serde_json::Value = serde_json::from_slice(&body.expect("body")).expect("json");
        assert_eq!(body["error"]["code"], "internal", "{body}");
        assert!(!body.to_string().contains("a defect"), "{body}");
        let fine = router.call(request("/fine")).await.expect("infallible");
        assert_eq!(fine.status(), 200);
    }

    #[test]
    fn a_refusal_names_at_most_five_users() {
        let users: Vec<String> = (1..=7).map(|i| format!("A{i}")).collect();
        let err = format!(
            "{:?}",
            super::in_use(
                "connection_in_use",
                &users,
                "automation(s) run on it",
                "move them"
            )
        );
        assert!(err.contains("\"connection_in_use\""), "{err}");
        assert!(err.contains("7 automation(s) run on it ('A1'"), "{err}");
        assert!(err.contains("'A5', and 2 more): move them"), "{err}");
        assert!(!err.contains("A6"), "{err}");
    }
}
