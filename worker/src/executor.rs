//! Processing one delivery, start to finish: decode, consult the ledger, resolve, validate,
//! invoke the vendor, record, publish the result — and say whether to ack.
//!
//! Each phase that awaits the database, the broker or the vendor is awaited through
//! `Box::pin`. An async fn's future is as large as its largest phase, and a caller's holds its
//! callee's again, so unboxed the delivery's task was 21 KiB whatever phase it was in — 43 MiB
//! for 2,000 vendor calls in flight, and 21 KiB copied for every spawn. Boxed, an execution's
//! future is ~3 KiB and each phase's state lives only while that phase runs; the delivery's
//! task holds that future boxed in turn (`an_execution_future_is_small` and
//! `a_delivery_task_is_smaller_still` in `consumer.rs`).

use crate::ledger::{Begin, Ledger, LedgerError, NotRun};
use crate::metrics::{Metrics, Step};
use crate::outcome::Outcome;
use crate::perform::perform;
use crate::publish;
use crate::refuse::{dead_letter, ledger_refused, reject, result_refused, reused, too_large};
use crate::retry::{RetryPolicy, in_place};
use crate::tokens::TokenCache;
use aic_core::credentials::Keyring;
use aic_core::egress::EgressPolicy;
use aic_proto::topology::Names;
use aic_proto::{ExecutionRequestV1, ExecutionResultV1, ExecutionStatus};
use chrono::Utc;
use deadpool_postgres::Pool;
use lapin::message::Delivery;
use serde_json::Value;
use std::time::Instant;
use tracing::Instrument;

/// Everything processing needs, shared by all in-flight deliveries.
#[derive(Debug)]
pub struct Ctx {
    /// Apps (host patterns).
    pub catalog: aic_core::catalog::Catalog,
    /// Postgres.
    pub pool: Pool,
    /// The execution ledger (group-committed).
    pub ledger: Ledger,
    /// Per-connection concurrency and cool-downs, across the fleet.
    pub budgets: std::sync::Arc<crate::budget::Budgets>,
    /// Fraction of a vendor-reported quota kept in reserve.
    pub quota_reserve: f64,
    /// Opens connection secrets.
    pub keyring: Keyring,
    /// Egress rules.
    pub egress: EgressPolicy,
    /// Vendor HTTP clients.
    pub http: aic_core::vendor::VendorHttp,
    /// Access tokens.
    pub tokens: TokenCache,
    /// Metrics.
    pub metrics: Metrics,
    /// The broker (results and dead letters), reconnected on demand.
    pub broker: std::sync::Arc<aic_core::amqp::Broker>,
    /// Publishes results (on `broker`).
    pub funnel: crate::funnel::Funnel,
    /// Set when shutdown begins: infrastructure retries stop and leave work to redelivery.
    pub stopping: std::sync::atomic::AtomicBool,
    /// Names.
    pub names: Names,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// A copy parked to wait out its connection's cool-down comes back at least this often to
    /// look at it again (an admin may have ended it).
    pub held_recheck: std::time::Duration,
    /// Connections this process recorded as working.
    pub proven: crate::gate::Proven,
}

/// What to do with the delivery.
#[derive(Debug)]
pub enum Disposition {
    /// Done (result recorded and published, or dead-lettered).
    Ack,
    /// An infrastructure failure: give the message back for a later attempt.
    Requeue(String),
}

/// Handles one delivery.
pub async fn handle(ctx: &Ctx, delivery: &Delivery) -> Disposition {
    let started = Instant::now();
    if delivery.data.len() > aic_proto::MAX_REQUEST_BYTES {
        return Box::pin(too_large(ctx, delivery)).await;
    }
    let req = match aic_proto::decode::decode::<ExecutionRequestV1>(&delivery.data) {
        Ok(r) => r,
        Err(e) => return Box::pin(reject(ctx, delivery, &e)).await,
    };
    // The span every log line and trace span of this execution sits in; it continues the
    // trace of whoever published the request (W3C `traceparent` in the message headers).
    let span = tracing::info_span!(
        "execution",
        execution = %req.execution_id,
        tenant = %req.tenant_id,
        automation = %req.automation_id,
        otel.kind = "consumer",
        status = tracing::field::Empty,
        attempts = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    aic_core::telemetry::continue_trace(&span, delivery.properties.headers().as_ref());
    process(ctx, delivery, req, started).instrument(span).await
}

async fn process(
    ctx: &Ctx,
    delivery: &Delivery,
    req: ExecutionRequestV1,
    started: Instant,
) -> Disposition {
    let handoff = publish::Handoff::read(&delivery.properties);
    if handoff.not_before_ms.is_some()
        && let Some(hopped) = crate::delays::wait_out_delay(ctx, delivery, handoff).await
    {
        return hopped;
    }
    // Given back by the broker (its worker died, stopped or requeued it) or replayed by an
    // operator: this copy settles the row, whatever an earlier delivery left in it.
    let given_back = delivery.redelivered || publish::replayed(&delivery.properties);
    let (resolved, mark) = match Box::pin(ctx.ledger.begin(&req, handoff.seq, given_back))
        .instrument(tracing::info_span!("ledger.begin"))
        .await
    {
        Ok(Begin::Run(resolved, mark)) => (resolved, mark),
        // Boxed: built only when taken, and not part of the execution's own future.
        Ok(Begin::Not(not)) => return Box::pin(not_run(ctx, delivery, &req, handoff, not)).await,
        Err(LedgerError::Refused(why)) => {
            return Box::pin(ledger_refused(ctx, delivery, &req, &why)).await;
        }
        Err(e) => return Disposition::Requeue(e.to_string()),
    };
    let mut outcome = match Box::pin(perform(ctx, &req, resolved, mark, handoff)).await {
        Ok(o) => o,
        // The vendor-call mark refused (no call made on this delivery): as with begin.
        Err(LedgerError::Refused(why)) => {
            return Box::pin(ledger_refused(ctx, delivery, &req, &why)).await;
        }
        Err(e) => return Disposition::Requeue(e.to_string()),
    };
    if let (Some(defer), Some(error)) = (outcome.defer, &outcome.error) {
        let reason = error.message.as_str();
        return Box::pin(crate::delays::hand_off(
            ctx, delivery, &req, &outcome, handoff, defer, reason,
        ))
        .await;
    }
    // Recording and publishing stay in this fn: as a nested async fn of their own they cost
    // ~0.3 k instructions more per execution (callgrind, `aic-bench --only full`).
    let result = result_of(&req, &mut outcome);
    // The outcome is known now: losing it to a Postgres or broker blip would turn a clear
    // result into an unknown one on redelivery, so recording and publishing retry in place —
    // all but a refusal of this result's own values, which no retry would get past.
    let recorded = in_place(&ctx.stopping, &ctx.metrics, Step::RecordResult, || async {
        match ctx.ledger.finish(&result).await {
            Ok(stored) => Ok(Ok(stored)),
            Err(LedgerError::Refused(why)) => Ok(Err(why)),
            Err(e) => Err(e),
        }
    })
    .instrument(tracing::info_span!("ledger.finish"))
    .await;
    let stored = match recorded {
        Some(Ok(stored)) => stored,
        Some(Err(why)) => {
            return Box::pin(result_refused(ctx, delivery, &req, &result, &why)).await;
        }
        None => return Disposition::Requeue("stopping before the result was recorded".into()),
    };
    let status = noted(outcome.status, result.attempts);
    let publishing = Instant::now();
    if Box::pin(publish_in_place(ctx, delivery, &req, status, stored))
        .instrument(tracing::info_span!("result.publish"))
        .await
        .is_none()
    {
        return Disposition::Requeue("stopping before the result was published".into());
    }
    finished(ctx, &outcome, &result, publishing, started);
    Disposition::Ack
}

/// Records the execution's status and attempts on its span (an error status for all but a
/// success); returns the status's name.
#[inline]
fn noted(status: ExecutionStatus, attempts: u32) -> &'static str {
    let span = tracing::Span::current();
    span.record("status", status.as_str());
    span.record("attempts", attempts);
    if status != ExecutionStatus::Succeeded {
        span.record("otel.status_code", "ERROR");
    }
    status.as_str()
}

/// What becomes of a delivery the ledger's begin found not to run: an older copy, one running
/// elsewhere, another tenant's id, an id sent before with another request, or an execution
/// finished before.
async fn not_run(
    ctx: &Ctx,
    delivery: &Delivery,
    req: &ExecutionRequestV1,
    handoff: publish::Handoff,
    not: NotRun,
) -> Disposition {
    match not {
        NotRun::Superseded => {
            tracing::info!(
                seq = handoff.seq,
                "an older copy of a request handed to a delay queue; the newer copy runs it"
            );
            Disposition::Ack
        }
        NotRun::RunningElsewhere => crate::delays::step_back(ctx, delivery, handoff).await,
        NotRun::ForeignTenant => {
            let detail = format!(
                "execution id {} is already used by another tenant",
                req.execution_id
            );
            dead_letter(ctx, delivery, "execution_id_conflict", &detail).await
        }
        NotRun::Reused(differs) => reused(ctx, delivery, req, differs).await,
        NotRun::Finished(stored) => answer_from_ledger(ctx, delivery, req, &stored).await,
    }
}

/// A delivery whose execution another delivery finished: its stored result is published again.
async fn answer_from_ledger(
    ctx: &Ctx,
    delivery: &Delivery,
    req: &ExecutionRequestV1,
    stored: &Value,
) -> Disposition {
    let status = stored
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("failed")
        .to_string();
    let span = tracing::Span::current();
    span.record("status", status.as_str());
    span.record("attempts", stored.get("attempts").and_then(Value::as_u64));
    let stored = match crate::ledger::json_text(stored) {
        Ok(raw) => raw,
        Err(e) => return Disposition::Requeue(e.to_string()),
    };
    let (funnel, names) = (&ctx.funnel, &ctx.names);
    let published = Box::pin(publish::execution_result(
        funnel,
        names,
        delivery,
        req,
        &status,
        stored.into(),
    ));
    match published.await {
        Ok(()) => {
            ctx.metrics
                .executions
                .with_label_values(&["unknown", "unknown", "replayed"])
                .inc();
            tracing::info!(status, "redelivered execution answered from the ledger");
            Disposition::Ack
        }
        Err(e) => Disposition::Requeue(e),
    }
}

/// The result event of an execution's outcome, whose output and error it takes.
#[inline(always)]
fn result_of(req: &ExecutionRequestV1, outcome: &mut Outcome) -> ExecutionResultV1 {
    ExecutionResultV1 {
        version: aic_proto::MESSAGE_VERSION,
        execution_id: Some(req.execution_id),
        tenant_id: Some(req.tenant_id),
        automation_id: Some(req.automation_id),
        automation_version_id: outcome.version,
        status: outcome.status,
        output: outcome.output.take(),
        error: outcome.error.take(),
        attempts: outcome.attempts,
        deduplicated: outcome.deduplicated,
        finished_at: Utc::now(),
    }
}

/// Counts and logs an execution whose result was published (`publishing` when its publish began).
#[inline(always)]
fn finished(
    ctx: &Ctx,
    outcome: &Outcome,
    result: &ExecutionResultV1,
    publishing: Instant,
    started: Instant,
) {
    let status = outcome.status.as_str();
    ctx.metrics
        .result_publish_duration
        .observe(publishing.elapsed().as_secs_f64());
    ctx.metrics.finished(
        outcome.series.as_deref(),
        outcome.status,
        started.elapsed().as_secs_f64(),
    );
    match &result.error {
        None => tracing::info!(status, attempts = result.attempts, "execution finished"),
        Some(e) => {
            tracing::info!(status, attempts = result.attempts, code = ?e.code, reason = %e.message, "execution finished")
        }
    }
}

/// Publishes an execution's result, retried in place until confirmed (`None`: the worker began
/// stopping first): given back instead, the delivery would come again with its outcome known
/// and be answered a second time.
pub(crate) async fn publish_in_place(
    ctx: &Ctx,
    delivery: &Delivery,
    req: &ExecutionRequestV1,
    status: &str,
    result: std::sync::Arc<str>,
) -> Option<()> {
    in_place(&ctx.stopping, &ctx.metrics, Step::PublishResult, || {
        Box::pin(publish::execution_result(
            &ctx.funnel,
            &ctx.names,
            delivery,
            req,
            status,
            result.clone(),
        ))
    })
    .await
}
