//! The admin server: `/metrics` (Prometheus text), `/healthz`, `/readyz`.

use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use deadpool_postgres::Pool;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the admin endpoints read.
#[derive(Clone, Debug)]
pub struct AdminState {
    /// Metrics.
    pub metrics: Metrics,
    /// Postgres (readiness).
    pub pool: Pool,
    /// Broker (readiness).
    pub broker: Arc<aic_core::amqp::Broker>,
    /// True while the consumer is attached.
    pub consuming: Arc<AtomicBool>,
}

/// The router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    let postgres = aic_core::db::ping(&s.pool).await;
    let rabbitmq = s.broker.is_up().await;
    let consuming = s.consuming.load(Ordering::SeqCst);
    let ready = postgres && rabbitmq && consuming;
    let body = serde_json::json!({"postgres": postgres, "rabbitmq": rabbitmq, "consuming": consuming, "ready": ready});
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        axum::Json(body),
    )
}
