//! The router: every route of the API, with the roles each needs decided in its handler.

pub mod automations;
pub mod catalog;
pub mod connections;
pub mod executions;
pub mod health;

use crate::state::AppState;
use axum::Router;
use axum::routing::{get, post};

/// Builds the router: the API, and `/metrics` counting every request to it.
pub fn router(state: AppState) -> Router {
    let metrics = std::sync::Arc::new(crate::metrics::HttpMetrics::new());
    api(state)
        .route(
            "/metrics",
            get(crate::metrics::serve).with_state(metrics.clone()),
        )
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::track,
        ))
}

fn api(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(crate::openapi::serve))
        .route("/v1/domains", get(catalog::list_domains))
        .route("/v1/apps", get(catalog::list_apps))
        .route("/v1/templates", get(catalog::search_templates))
        .route("/v1/apps/{app}/templates", get(catalog::list_templates))
        .route(
            "/v1/connections",
            post(connections::create).get(connections::list),
        )
        .route("/v1/connections/{id}", get(connections::read))
        .route("/v1/connections/{id}/test", post(connections::test_saved))
        .route("/v1/connection-tests", post(connections::test_unsaved))
        .route(
            "/v1/automations",
            post(automations::create).get(automations::list),
        )
        .route("/v1/automations/{id}", get(automations::read))
        .route("/v1/automations/{id}/publish", post(automations::publish))
        .route("/v1/automations/{id}/executions", post(executions::enqueue))
        .route("/v1/executions/{id}", get(executions::read))
        .with_state(state)
}

/// Parses a path id, answering 404 (not 400) for garbage: an id that cannot exist is not found.
pub fn parse_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, crate::error::ApiError> {
    raw.parse()
        .map_err(|_| crate::error::ApiError::not_found(what))
}

/// A record's name, trimmed: 1 to 200 characters, else a 422 naming the `name` field.
pub fn checked_name(name: &str) -> Result<&str, crate::error::ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(crate::error::ApiError::invalid(
            "name",
            "name must be 1 to 200 characters",
        ));
    }
    Ok(name)
}
