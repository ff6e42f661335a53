//! Messages the worker cannot run: dead-lettered with a reason, and answered with a failure
//! result where the sender can be addressed.

use crate::executor::{Ctx, Disposition};
use crate::metrics::Step;
use crate::publish;
use crate::retry::in_place;
use aic_proto::{
    AutomationId, DecodeError, ExecutionError, ExecutionErrorCode, ExecutionId, ExecutionRequestV1,
    ExecutionResultV1, ExecutionStatus, TenantId,
};
use chrono::Utc;
use lapin::message::Delivery;
use serde_json::Value;

/// An unreadable message: dead-letter it, and answer the reply address if one can be read.
pub(crate) async fn reject(ctx: &Ctx, delivery: &Delivery, e: &DecodeError) -> Disposition {
    let mut detail = e.to_string();
    // A body compressed by the client's library (Spring AMQP's, say) reads as no JSON at all:
    // say why, rather than "expected value at line 1 column 1".
    let encoding = delivery.properties.content_encoding().as_ref();
    if let (DecodeError::NotJson(_), Some(encoding)) = (e, encoding)
        && !["identity", "utf-8", "utf8"].contains(&encoding.as_str().to_ascii_lowercase().as_str())
    {
        detail.push_str(&format!(
            " (the body's content_encoding is '{}': the worker reads the JSON text as sent, \
             never decompressed)",
            encoding.as_str().chars().take(40).collect::<String>()
        ));
    }
    let disposition = dead_letter(ctx, delivery, e.reason(), &detail).await;
    if matches!(disposition, Disposition::Ack) {
        let code = match e {
            DecodeError::NotJson(_) => ExecutionErrorCode::InvalidJson,
            DecodeError::MissingVersion | DecodeError::UnknownVersion(_) => {
                ExecutionErrorCode::UnknownVersion
            }
            DecodeError::Invalid(_) => ExecutionErrorCode::InvalidMessage,
        };
        answer(ctx, delivery, peeked(delivery), code, detail).await;
    }
    disposition
}

/// A request larger than the contract allows ([`aic_proto::MAX_REQUEST_BYTES`]), not read
/// any further: dead-lettered as `request_too_large`, where operators can see who sent it, and
/// answered `invalid_message` saying its size and the limit.
pub(crate) async fn too_large(ctx: &Ctx, delivery: &Delivery) -> Disposition {
    let detail = format!(
        "the request is {} bytes, more than the {} an execution request may be",
        delivery.data.len(),
        aic_proto::MAX_REQUEST_BYTES
    );
    let disposition = dead_letter(ctx, delivery, "request_too_large", &detail).await;
    if matches!(disposition, Disposition::Ack) {
        let code = ExecutionErrorCode::InvalidMessage;
        answer(ctx, delivery, peeked(delivery), code, detail).await;
    }
    disposition
}

/// A delivery whose processing panicked — a defect of the worker's, which may well meet it on
/// every redelivery: dead-lettered as `worker_panicked` with the panic's message, where
/// operators can replay it once the worker is fixed, and answered as an internal failure. Its
/// ledger row stays as the panic left it (a replay settles it as a redelivery does).
pub(crate) async fn panicked(ctx: &Ctx, delivery: &Delivery, panic: &str) -> Disposition {
    tracing::error!(panic, "processing a delivery panicked; dead-lettering it");
    let detail = format!("the worker failed unexpectedly processing this request: {panic}");
    let disposition = dead_letter(ctx, delivery, "worker_panicked", &detail).await;
    if matches!(disposition, Disposition::Ack) {
        let message = "the worker failed unexpectedly processing this request; it is in the \
                       dead-letter queue (reason worker_panicked)";
        let code = ExecutionErrorCode::Internal;
        answer(ctx, delivery, peeked(delivery), code, message.into()).await;
    }
    disposition
}

/// The ids a message's body holds where they can be read, whatever else it holds. The rest is
/// skipped, not built into values: a body may be megabytes of parameters.
fn peeked(delivery: &Delivery) -> (Option<ExecutionId>, Option<TenantId>, Option<AutomationId>) {
    #[derive(serde::Deserialize, Default)]
    struct Ids {
        execution_id: Option<Value>,
        tenant_id: Option<Value>,
        automation_id: Option<Value>,
    }
    let ids: Ids = serde_json::from_slice(&delivery.data).unwrap_or_default();
    let id = |v: Option<Value>| v.and_then(|v| v.as_str()?.parse::<uuid::Uuid>().ok());
    (
        id(ids.execution_id).map(Into::into),
        id(ids.tenant_id).map(TenantId),
        id(ids.automation_id).map(Into::into),
    )
}

/// A request the execution ledger refuses to record (its values break a rule of the
/// database): it cannot run, now or on any redelivery. Dead-lettered, where operators can
/// replay it once the cause is fixed, and answered as an internal failure.
pub(crate) async fn ledger_refused(
    ctx: &Ctx,
    delivery: &Delivery,
    req: &ExecutionRequestV1,
    why: &str,
) -> Disposition {
    let detail = format!("the execution ledger refused to record this request: {why}");
    let disposition = dead_letter(ctx, delivery, "ledger_refused", &detail).await;
    if matches!(disposition, Disposition::Ack) {
        answer(
            ctx,
            delivery,
            ids_of(req),
            ExecutionErrorCode::Internal,
            detail,
        )
        .await;
    }
    disposition
}

/// A request under an execution id first sent with another request of the tenant's (`differs`:
/// another automation, other values): not run, and not answered with the first request's
/// result as if it were its own. Dead-lettered as `execution_id_reused`, and answered on its
/// reply queue only — on the results exchange the failure would read as the outcome of the
/// execution that holds the id.
pub(crate) async fn reused(
    ctx: &Ctx,
    delivery: &Delivery,
    req: &ExecutionRequestV1,
    differs: &str,
) -> Disposition {
    let detail = format!(
        "execution id {} was first published with {differs}: it answers only the request it \
         was first published with (publish that request again for its result, or a new \
         execution_id for a new execution)",
        req.execution_id
    );
    let disposition = dead_letter(ctx, delivery, "execution_id_reused", &detail).await;
    if matches!(disposition, Disposition::Ack) {
        let ids = ids_of(req);
        let result = failure(ids, ExecutionErrorCode::ExecutionIdReused, detail);
        let body = serde_json::to_vec(&result).unwrap_or_default();
        let mid = Some(req.execution_id.to_string());
        if let Err(err) = publish::reply(&ctx.funnel, &delivery.properties, mid, body.into()).await
        {
            tracing::warn!(error = %err, "could not answer a request under a reused execution id");
        }
    }
    disposition
}

/// An execution whose final state the ledger refuses to record (the result's values break a
/// rule of the database) after its vendor call was made. Retrying would hold it forever and
/// answer nobody; dropping the outcome would hide what the vendor did. So the result is
/// published as it stands, and a copy of the request is dead-lettered with the reason for
/// operators — the ledger's row stays as the vendor-call mark left it (in doubt), which the
/// detail says.
pub(crate) async fn result_refused(
    ctx: &Ctx,
    delivery: &Delivery,
    req: &ExecutionRequestV1,
    result: &ExecutionResultV1,
    why: &str,
) -> Disposition {
    let body = match crate::ledger::published(result) {
        Ok(body) => body,
        Err(e) => return Disposition::Requeue(e.to_string()),
    };
    let status = result.status.as_str();
    // Both retried in place, as the result of a recorded execution is: given back, the
    // delivery would come again with its vendor call in doubt and be answered a second time,
    // as an unknown outcome.
    let published = Box::pin(crate::executor::publish_in_place(
        ctx,
        delivery,
        req,
        status,
        body.into(),
    ))
    .await;
    if published.is_none() {
        return Disposition::Requeue("stopping before the result was published".into());
    }
    let detail = format!(
        "the execution ledger refused to record this execution's result ({why}); the result \
         was published as it stands ({status}), and the ledger still shows its vendor call in doubt"
    );
    let reason = "ledger_refused";
    let parked = in_place(&ctx.stopping, &ctx.metrics, Step::DeadLetter, || {
        Box::pin(publish::dead_letter(
            &ctx.broker,
            &ctx.names,
            &delivery.properties,
            &delivery.data,
            reason,
            &detail,
        ))
    })
    .await;
    if parked.is_none() {
        return Disposition::Requeue("stopping before the request was dead-lettered".into());
    }
    dead_lettered(ctx, reason, &detail);
    Disposition::Ack
}

/// Publishes the failure result of a message that cannot run, when its sender can be
/// addressed: a reply queue, or a tenant's results.
async fn answer(
    ctx: &Ctx,
    delivery: &Delivery,
    ids: Ids,
    code: ExecutionErrorCode,
    message: String,
) {
    let tenant = ids.1;
    if delivery.properties.reply_to().is_none() && tenant.is_none() {
        return;
    }
    let result = failure(ids, code, message);
    let body = serde_json::to_vec(&result).unwrap_or_default();
    let mid = result.execution_id.map(|i| i.to_string());
    if let Err(err) = publish::result(
        &ctx.funnel,
        &ctx.names,
        &delivery.properties,
        tenant,
        "failed",
        mid,
        lapin::types::FieldTable::default(),
        body.into(),
    )
    .await
    {
        tracing::warn!(error = %err, "could not publish the failure result of a message that cannot run");
    }
}

/// The ids a readable request names, for its failure result.
fn ids_of(req: &ExecutionRequestV1) -> Ids {
    (
        Some(req.execution_id),
        Some(req.tenant_id),
        Some(req.automation_id),
    )
}

/// An execution id, a tenant and an automation, as far as a message gives them.
type Ids = (Option<ExecutionId>, Option<TenantId>, Option<AutomationId>);

/// The failure result of a message that cannot run.
fn failure(
    (execution_id, tenant, automation_id): Ids,
    code: ExecutionErrorCode,
    message: String,
) -> ExecutionResultV1 {
    ExecutionResultV1 {
        version: aic_proto::MESSAGE_VERSION,
        execution_id,
        tenant_id: tenant,
        automation_id,
        automation_version_id: None,
        status: ExecutionStatus::Failed,
        output: None,
        error: Some(ExecutionError {
            code,
            message,
            parameter: None,
            vendor: None,
        }),
        attempts: 0,
        deduplicated: false,
        finished_at: Utc::now(),
    }
}

/// Parks the message in the dead-letter queue with why; acks only once that publish is confirmed.
pub(crate) async fn dead_letter(
    ctx: &Ctx,
    delivery: &Delivery,
    reason: &str,
    detail: &str,
) -> Disposition {
    match publish::dead_letter(
        &ctx.broker,
        &ctx.names,
        &delivery.properties,
        &delivery.data,
        reason,
        detail,
    )
    .await
    {
        Ok(()) => {
            dead_lettered(ctx, reason, detail);
            Disposition::Ack
        }
        Err(e) => Disposition::Requeue(format!("dead letter not confirmed: {e}")),
    }
}

/// Counts and logs a message parked in the dead-letter queue.
fn dead_lettered(ctx: &Ctx, reason: &str, detail: &str) {
    ctx.metrics.dead_letters.with_label_values(&[reason]).inc();
    tracing::warn!(reason, detail, "message dead-lettered");
}
