//! Requests recorded but never confirmed published. `POST /v1/automations/{id}/executions`
//! records the execution (and its row in `execution_outbox`) before it publishes the request,
//! so that a repeated call finds it; a control plane that stops between the two — a crash, a
//! kill, a node lost — leaves an execution `queued` that no message will ever run, and a client
//! retrying with the same id or idempotency key is told it is queued, for ever. Every control
//! plane therefore looks, every [`EVERY`], for outbox rows older than [`GRACE`] and publishes
//! their requests again from the execution's row, with the caller's trace context kept in the
//! outbox row (not its reply queue, gone with the stopped control plane) — or whose confirm
//! did not come within [`CONFIRM_WAIT`] (a broker alarm). A request that was in fact delivered
//! (confirm lost, or a long queue) runs
//! once all the same: the worker's ledger answers a second copy from the first. An execution
//! a worker already began needs nothing: its row is just dropped. Rows are claimed with
//! `SKIP LOCKED`, so control planes sweeping at once publish each request once.

use aic_core::amqp::{Broker, PublishError};
use aic_proto::topology::{EXECUTE_ROUTING_KEY, EXECUTION_REQUEST_TYPE, Names};
use aic_proto::{AutomationId, ExecutionId, ExecutionRequestV1, TenantId};
use deadpool_postgres::Pool;
use serde_json::{Map, Value};
use std::time::Duration;

/// How often a control plane looks.
pub const EVERY: Duration = Duration::from_secs(10);

/// How long a request may wait for its confirm before it is published again.
pub const GRACE: Duration = Duration::from_secs(30);

/// Rows claimed per transaction.
const BATCH: i64 = 100;

/// Publishes again the requests whose outbox rows are older than `grace`; how many. A publish
/// the broker refuses stops the round (the rest wait for the next).
pub async fn once(
    pool: &Pool,
    broker: &Broker,
    names: &Names,
    grace: Duration,
) -> anyhow::Result<u64> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "SELECT o.execution_id, e.status, e.tenant_id, e.automation_id, e.parameters, \
               e.source, e.enqueued_at, o.traceparent, o.tracestate \
             FROM execution_outbox o LEFT JOIN executions e ON e.id = o.execution_id \
             WHERE o.since < now() - make_interval(secs => $1) \
             ORDER BY o.since LIMIT $2 FOR UPDATE OF o SKIP LOCKED",
            &[&grace.as_secs_f64(), &BATCH],
        )
        .await?;
    let mut resent = 0;
    for row in &rows {
        let id = ExecutionId(row.get(0));
        if row.get::<_, Option<String>>(1).as_deref() == Some("queued") {
            let request = ExecutionRequestV1 {
                version: aic_proto::MESSAGE_VERSION,
                execution_id: id,
                tenant_id: TenantId(row.get(2)),
                automation_id: AutomationId(row.get(3)),
                parameters: match row.get::<_, Value>(4) {
                    Value::Object(map) => map,
                    _ => Map::new(),
                },
                requested_at: Some(row.get(6)),
                source: row.get(5),
            };
            let trace = aic_core::telemetry::trace_headers(row.get(7), row.get(8));
            if let Err(e) = publish_again(broker, names, &request, trace).await {
                // What went before is done: kept, not published a third time.
                tx.commit().await?;
                return Err(e);
            }
            tracing::warn!(execution = %id, "execution request published again: its first publish was never confirmed (the control plane stopped?)");
            resent += 1;
        }
        // Published now, begun by a worker already, or gone (pruned): nothing left to do.
        tx.execute(
            "DELETE FROM execution_outbox WHERE execution_id = $1",
            &[&id.0],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(resent)
}

/// Publishes `request` as the API does ([`publish`]), with the caller's `trace` (kept in the
/// outbox row) but no reply queue.
async fn publish_again(
    broker: &Broker,
    names: &Names,
    request: &ExecutionRequestV1,
    trace: lapin::types::FieldTable,
) -> anyhow::Result<()> {
    let body = serde_json::to_vec(request)?;
    let mut properties = properties(request.execution_id);
    if !trace.inner().is_empty() {
        properties = properties.with_headers(trace);
    }
    publish(broker, names, &body, properties).await?;
    Ok(())
}

/// An execution request's message properties (JSON, its type, the execution id as message
/// id), before any trace or reply queue.
pub(crate) fn properties(execution: ExecutionId) -> lapin::BasicProperties {
    aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE)
        .with_message_id(execution.to_string().into())
}

/// Longest wait for the broker's confirm of a request. A broker that raised a resource alarm
/// since the last publish reads nothing more from the connection; past this wait the request
/// may still go out once the alarm clears, but its caller is answered.
pub const CONFIRM_WAIT: Duration = Duration::from_secs(5);

/// Publishes an execution request (`body`) to the executions exchange, as `proto/AMQP.md`
/// says; `Ok` once the broker confirmed it, within [`CONFIRM_WAIT`]
/// ([`Broker::publish_within`]: nothing written while the broker blocks publishers).
pub(crate) async fn publish(
    broker: &Broker,
    names: &Names,
    body: &[u8],
    properties: lapin::BasicProperties,
) -> Result<(), PublishError> {
    let to = (names.executions_exchange.as_str(), EXECUTE_ROUTING_KEY);
    broker
        .publish_within(to, body, properties, true, CONFIRM_WAIT)
        .await
}

/// Runs [`once`] every `every` for as long as the control plane runs; a failed round is logged
/// and tried again at the next.
pub async fn run(
    pool: Pool,
    broker: std::sync::Arc<Broker>,
    names: std::sync::Arc<Names>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = once(&pool, &broker, &names, GRACE).await {
            tracing::warn!(error = %aic_core::with_causes(&*e), "could not publish again the requests left unconfirmed");
        }
    }
}
