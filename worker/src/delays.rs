//! A delivery's trips through the delay queues: a retry due later than the worker waits in
//! process handed to one ([`hand_off`]), a copy come back from one waiting out what is left of
//! its delay or hopping on ([`wait_out_delay`]), and a copy of a request another copy is running
//! stepping back into one ([`step_back`]).

use crate::executor::{Ctx, Disposition};
use crate::metrics::Step;
use crate::outcome::Outcome;
use crate::publish;
use crate::retry::in_place;
use aic_proto::ExecutionRequestV1;
use chrono::Utc;
use lapin::message::Delivery;

/// A retry parked in a delay queue came back: waits out what is left of its delay, or, when that
/// is still long, hands it to another delay queue hop (`Some`, what to do with this delivery).
pub(crate) async fn wait_out_delay(
    ctx: &Ctx,
    delivery: &Delivery,
    handoff: publish::Handoff,
) -> Option<Disposition> {
    let not_before = handoff.not_before_ms?;
    let now = Utc::now().timestamp_millis();
    let left = std::time::Duration::from_millis(u64::try_from(not_before - now).unwrap_or(0));
    if left <= ctx.retry.inline_max {
        tokio::time::sleep(left).await;
        return None;
    }
    if handoff.held {
        // The cool-down it waits out may be over early (an admin ended it): the gate looks
        // again, and parks it anew while it holds.
        return None;
    }
    let hop = Box::pin(copy(ctx, delivery, handoff, now));
    Some(match hop.await {
        Ok(()) => Disposition::Ack,
        Err(e) => Disposition::Requeue(format!("delay hop not confirmed: {e}")),
    })
}

/// A retry due later than the worker waits in-process (`wait`, counted from the first attempt
/// at `first_ms`): a copy of the request goes to a delay queue and the ledger records the
/// hand-off; `reason`, the failure it retries, is logged.
pub(crate) async fn hand_off(
    ctx: &Ctx,
    delivery: &Delivery,
    req: &ExecutionRequestV1,
    outcome: &Outcome,
    handoff: publish::Handoff,
    defer: crate::outcome::Defer,
    reason: &str,
) -> Disposition {
    // Park the copy first, then record the hand-off: a crash in between leaves the original
    // to be redelivered with its vendor-call mark still set — finished as in doubt, never
    // sent twice (an upsert keyed by the execution id, unmarked, is sent again: safely) —
    // and the copy then answered from the ledger.
    let now = Utc::now().timestamp_millis();
    let wait = defer.wait;
    let next = publish::Handoff {
        attempts: outcome.attempts,
        first_attempt_ms: Some(defer.first_ms),
        not_before_ms: Some(now + wait.as_millis() as i64),
        seq: handoff.seq + 1,
        held: defer.held,
    };
    if park(ctx, delivery, next, now, Step::HandOff)
        .await
        .is_none()
        || in_place(&ctx.stopping, &ctx.metrics, Step::RecordHandOff, || {
            Box::pin(ctx.ledger.defer(
                &ctx.pool,
                req.execution_id.0,
                (next.seq, next.attempts),
                defer.in_doubt,
            ))
        })
        .await
        .is_none()
    {
        return Disposition::Requeue("stopping before the retry was handed off".into());
    }
    ctx.metrics.retry_deferred(outcome.series.as_deref());
    tracing::info!(
        wait_ms = wait.as_millis() as u64,
        attempts = outcome.attempts,
        reason,
        "retry due later; handed to a delay queue"
    );
    Disposition::Ack
}

/// How long a copy of a request steps back while another copy runs it.
const STEP_BACK_MS: i64 = 1_000;

/// A copy of a request that another copy is running now (its client published it twice):
/// sending it too would run the automation twice, and settling it as in doubt would answer
/// both with an unknown outcome while the other's call is still under way. So it steps back —
/// parked in the shortest delay queue, then begun again — until the other copy has recorded
/// the outcome, and is answered from the ledger with it.
pub(crate) async fn step_back(
    ctx: &Ctx,
    delivery: &Delivery,
    handoff: publish::Handoff,
) -> Disposition {
    let now = Utc::now().timestamp_millis();
    let later = publish::Handoff {
        not_before_ms: Some(now + STEP_BACK_MS),
        held: false,
        ..handoff
    };
    if park(ctx, delivery, later, now, Step::StepBack)
        .await
        .is_none()
    {
        return Disposition::Requeue("stopping before the copy stepped back".into());
    }
    ctx.metrics.duplicate_copies.inc();
    tracing::info!(
        "another copy of this request is running it; this one waits for its outcome in a delay queue"
    );
    Disposition::Ack
}

/// Parks a copy of the delivery in a delay queue as hand-off `next` (its headers say when it is
/// due and which copy it is), retried in place; `None`: the worker began stopping first.
async fn park(
    ctx: &Ctx,
    delivery: &Delivery,
    next: publish::Handoff,
    now_ms: i64,
    step: Step,
) -> Option<()> {
    in_place(&ctx.stopping, &ctx.metrics, step, || {
        Box::pin(copy(ctx, delivery, next, now_ms))
    })
    .await
}

/// Publishes a copy of the delivery to the delay queue its hand-off `next` is due from, once.
fn copy<'a>(
    ctx: &'a Ctx,
    delivery: &'a Delivery,
    next: publish::Handoff,
    now_ms: i64,
) -> impl std::future::Future<Output = Result<(), aic_core::amqp::PublishError>> + 'a {
    publish::handoff(
        &ctx.broker,
        &ctx.names,
        (&delivery.properties, &delivery.data),
        next,
        now_ms,
        ctx.held_recheck.as_millis() as u64,
    )
}
