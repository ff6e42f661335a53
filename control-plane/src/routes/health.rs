//! Liveness and readiness.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// Alive: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready only when Postgres and RabbitMQ both answer.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let postgres = aic_core::db::ping(&state.pool).await;
    let rabbitmq = state.broker.is_up();
    let code = if postgres && rabbitmq {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({"postgres": postgres, "rabbitmq": rabbitmq, "ready": postgres && rabbitmq})),
    )
}
