//! The admin server: `/metrics` (Prometheus text), `/healthz`, `/readyz`.
//!
//! The queue gauges are read from RabbitMQ when Prometheus scrapes, as an exporter does: a
//! passive declare of each queue on a channel of its own (a missing queue closes the channel it
//! is asked on, which must not be the one results are published on), bounded in time so that
//! a stuck broker cannot hold the scrape. When the broker cannot say, the gauges are dropped
//! rather than left showing an old depth.

use crate::metrics::Metrics;
use aic_proto::topology::Names;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use deadpool_postgres::Pool;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
    /// The queues whose depth `/metrics` reports.
    pub names: Names,
}

/// Longest a scrape waits for the broker to report its queues.
const QUEUE_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// The router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    s.metrics.broker_blocked.set(i64::from(s.broker.blocked()));
    match queue_depths(&s).await {
        Ok(d) => {
            for (role, messages) in [
                ("executions", d.executions),
                ("delayed", d.delayed),
                ("dead_letters", d.dead_letters),
            ] {
                s.metrics
                    .queue_messages
                    .with_label_values(&[role])
                    .set(messages);
            }
            s.metrics.queue_consumers.set(d.consumers);
        }
        Err(e) => {
            tracing::debug!(error = %e, "queue depths unavailable for this scrape");
            s.metrics.queue_messages.reset();
            s.metrics.queue_consumers.set(0);
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

/// What RabbitMQ says of the worker's queues.
#[derive(Debug, Default)]
struct Depths {
    executions: i64,
    delayed: i64,
    dead_letters: i64,
    consumers: i64,
}

async fn queue_depths(s: &AdminState) -> Result<Depths, String> {
    let ch = tokio::time::timeout(QUEUE_READ_TIMEOUT, s.broker.new_channel())
        .await
        .map_err(|_| "no channel from RabbitMQ in time".to_string())?
        .map_err(|e| e.to_string())?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let mut d = Depths::default();
    let read = tokio::time::timeout(QUEUE_READ_TIMEOUT, async {
        let q = ch
            .queue_declare(
                s.names.executions_queue.as_str().into(),
                passive,
                FieldTable::default(),
            )
            .await?;
        d.executions = i64::from(q.message_count());
        d.consumers = i64::from(q.consumer_count());
        d.dead_letters = i64::from(
            ch.queue_declare(
                s.names.dead_letter_queue.as_str().into(),
                passive,
                FieldTable::default(),
            )
            .await?
            .message_count(),
        );
        for (_, name) in &s.names.delay_queues {
            d.delayed += i64::from(
                ch.queue_declare(name.as_str().into(), passive, FieldTable::default())
                    .await?
                    .message_count(),
            );
        }
        Ok::<_, lapin::Error>(())
    })
    .await;
    // Closed in the background: the scrape does not wait for the broker's close-ok.
    tokio::spawn(async move {
        let _ = tokio::time::timeout(
            QUEUE_READ_TIMEOUT,
            ch.close(200, "queue depths read".into()),
        )
        .await;
    });
    match read {
        Ok(Ok(())) => Ok(d),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("RabbitMQ did not report its queues in time".to_string()),
    }
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    let postgres = aic_core::db::ping(&s.pool).await;
    let rabbitmq = s.broker.is_up();
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
