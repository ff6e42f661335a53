//! Enqueueing one execution, for `POST /v1/automations/{id}/executions` and the re-runs: the
//! automation checked runnable and the values checked against its parameters, the execution
//! recorded (with its outbox row, `crate::resend`) or found already known, the request published
//! and confirmed — or, unconfirmed, undone unless taken over — and what the answer waits for
//! (`super::waiting`).

use super::Enqueued;
use super::waiting::{Submitted, finished};
use crate::audit::{self, Action};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use aic_core::amqp::PublishError;
use aic_proto::{AutomationDefinition, AutomationId, ExecutionId, ExecutionRequestV1};
use axum::http::StatusCode;
use chrono::Utc;
use serde_json::{Map, Value};

/// An execution to enqueue.
pub(super) struct Submission {
    pub(super) automation: AutomationId,
    pub(super) execution: ExecutionId,
    pub(super) parameters: Map<String, Value>,
    pub(super) source: Option<String>,
    pub(super) idempotency_key: Option<String>,
    /// How long the caller waits for the result, if at all.
    pub(super) wait: Option<std::time::Duration>,
    /// The execution this one runs again.
    pub(super) rerun_of: Option<RerunOf>,
}

/// What a re-run runs again, and how it was asked for.
pub(super) struct RerunOf {
    /// The finished execution run again.
    pub(super) first: ExecutionId,
    /// Its automation's name, for the audit trail.
    pub(super) automation_name: String,
    /// Only if nothing ran it again before (the bulk re-run).
    pub(super) once: bool,
    /// The status the caller allowed it to run again from (`succeeded`, `unknown_outcome`).
    pub(super) allowed: Option<String>,
}

/// Enqueues `s` for the caller: checks the automation runs and the values fit its parameters
/// (a request sent again is answered with its execution even when they no longer do),
/// records the execution (or finds it already known) and publishes the request; `Ok` once the
/// broker confirmed it, with what the caller's answer waits for ([`Submitted::answer`], taken
/// once `client` is given back).
pub(super) async fn submit(
    state: &AppState,
    caller: &Caller,
    client: &mut deadpool_postgres::Object,
    s: Submission,
    http_headers: &axum::http::HeaderMap,
) -> Result<Submitted, ApiError> {
    let (automation, execution) = (s.automation, s.execution);
    caller.may_reach(client, automation.0).await?;
    if let Err(refused) = runnable(client, caller, &s).await {
        // A request sent again gets its first answer whatever changed since (the automation
        // paused, or published with other parameters): it was accepted then, and may have run.
        return match already_known(client, caller, &s).await? {
            Some(first) => Ok(answered(first, s.wait)),
            None => Err(refused),
        };
    }
    // The outbox row says the request is still to be confirmed published (`crate::resend`,
    // should this process stop before the confirm).
    // The caller's trace goes on in the worker (W3C trace context, `proto/AMQP.md`), and is
    // kept with the outbox row for a control plane that publishes the request again.
    let trace = aic_core::telemetry::request_headers(http_headers, &tracing::Span::current());
    if !record(client, caller, &s, &trace).await? {
        return known(client, caller, &s).await;
    }
    let body = serde_json::to_vec(&ExecutionRequestV1 {
        version: aic_proto::MESSAGE_VERSION,
        execution_id: execution,
        tenant_id: caller.tenant,
        automation_id: automation,
        parameters: s.parameters,
        requested_at: Some(Utc::now()),
        source: s.source,
    })
    .map_err(|e| ApiError::internal("request", &e))?;
    // Register before publishing, so a fast result cannot arrive before its waiter.
    let reply_queue = state.replies.queue();
    // No reply queue yet (start-up, or a broker reconnect in progress): answer 202 as usual.
    let waiter = s
        .wait
        .filter(|_| !reply_queue.is_empty())
        .map(|_| state.replies.wait_for(&execution.to_string()));
    let reply_to = waiter.is_some().then_some(reply_queue.as_str());
    if let Err(e) = publish_request(state, execution, &body, trace, reply_to).await {
        if let PublishError::Unanswered(_) = e {
            return Ok(unanswered(state, execution, &e));
        }
        let first = s.rerun_of.map(|r| r.first.0);
        not_enqueued(state, client, (execution, first), &e).await?;
        // Taken over: the request is queued after all.
        return Ok(Submitted::Published(execution, None));
    }
    tracing::info!(execution = %execution, "execution enqueued");
    // Left behind, the row would only have the request published again, harmlessly.
    if let Err(e) = client
        .execute(
            "DELETE FROM execution_outbox WHERE execution_id = $1",
            &[&execution.0],
        )
        .await
    {
        tracing::warn!(error = %aic_core::with_causes(&e), execution = %execution, "could not clear a confirmed request's outbox row");
    }
    Ok(Submitted::Published(execution, waiter.zip(s.wait)))
}

/// Records `s` as queued, with its outbox row (`crate::resend`), in one statement — a re-run
/// with its link and its audit event, in one transaction: `false` when it is already known —
/// its id, or the tenant's idempotency key, taken (any unique violation means so) — or, for a
/// bulk re-run, when something ran its execution again before.
async fn record(
    client: &mut deadpool_postgres::Object,
    caller: &Caller,
    s: &Submission,
    trace: &lapin::types::FieldTable,
) -> Result<bool, ApiError> {
    let (traceparent, tracestate) = aic_core::telemetry::trace_text(trace);
    let values = Value::Object(s.parameters.clone());
    let Some(rerun) = &s.rerun_of else {
        let inserted = client
            .execute(
                "WITH e AS (INSERT INTO executions (id, tenant_id, automation_id, status, parameters, source, idempotency_key) \
                   VALUES ($1, $2, $3, 'queued', $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id) \
                 INSERT INTO execution_outbox (execution_id, traceparent, tracestate) SELECT id, $7, $8 FROM e",
                &[&s.execution.0, &caller.tenant.0, &s.automation.0, &values, &s.source, &s.idempotency_key, &traceparent, &tracestate],
            )
            .await?;
        return Ok(inserted == 1);
    };
    // A re-run also links the execution it runs again to it (unless its id was taken: then
    // it is not this re-run) — with `once`, only if nothing ran it again before — and is
    // audited, all in one transaction.
    let tx = client.transaction().await?;
    let inserted = tx
        .execute(
            "WITH l AS (UPDATE executions SET rerun_id = $1 WHERE tenant_id = $2 AND id = $7 \
               AND (NOT $8 OR rerun_id IS NULL) AND NOT EXISTS (SELECT 1 FROM executions WHERE id = $1) \
               RETURNING id), \
             e AS (INSERT INTO executions (id, tenant_id, automation_id, status, parameters, source) \
               SELECT $1, $2, $3, 'queued', $4, $5 WHERE EXISTS (SELECT 1 FROM l) \
               ON CONFLICT DO NOTHING RETURNING id) \
             INSERT INTO execution_outbox (execution_id, traceparent, tracestate) SELECT id, $6, $9 FROM e",
            &[&s.execution.0, &caller.tenant.0, &s.automation.0, &values, &s.source, &traceparent, &rerun.first.0, &rerun.once, &tracestate],
        )
        .await?;
    if inserted == 1 {
        let mut detail = serde_json::json!({"execution_id": rerun.first, "rerun_id": s.execution});
        if let Some(status) = &rerun.allowed {
            detail["allow"] = status.as_str().into();
        }
        let target = audit::Target {
            id: s.automation.0,
            name: &rerun.automation_name,
        };
        audit::record(&tx, caller, Action::ExecutionRerun, target, detail).await?;
    }
    tx.commit().await?;
    Ok(inserted == 1)
}

/// An enqueue whose confirm did not come in time (`e`): the request may still reach the
/// broker, from the connection's buffer, so it is not undone; its outbox row has it published
/// again past its grace (`crate::resend`; the worker's ledger runs a second copy once), and
/// the caller is answered that it is queued, without its result.
fn unanswered(state: &AppState, execution: ExecutionId, e: &PublishError) -> Submitted {
    state.replies.forget(&execution.to_string());
    tracing::warn!(error = %e, execution = %execution, "execution request not confirmed in time; kept to be published again");
    Submitted::Published(execution, None)
}

/// Undoes an enqueue the broker did not confirm (`e`): the reply waiter and the queued row go,
/// so the client can retry with the same id, and the caller is told to retry later (`Err`).
/// Unless the request was taken over meanwhile — its outbox row claimed by a control plane that
/// published it again ([`crate::resend`], past its grace), or its execution begun by a worker
/// (the broker had it, only the confirm was lost): then it stays, and is answered as queued
/// (`Ok`), not as "nothing was enqueued".
async fn not_enqueued(
    state: &AppState,
    client: &deadpool_postgres::Object,
    (execution, first): (ExecutionId, Option<uuid::Uuid>),
    e: &PublishError,
) -> Result<(), ApiError> {
    state.replies.forget(&execution.to_string());
    tracing::error!(error = %e, execution = %execution, "execution request not confirmed");
    // A re-run undone no longer links the execution it ran again (which a bulk re-run may
    // then take again), nor stays in the audit trail: it did not happen.
    let undone: i64 = client
        .query_one(
            "WITH o AS (DELETE FROM execution_outbox WHERE execution_id = $1 RETURNING execution_id), \
             d AS (DELETE FROM executions WHERE id IN (SELECT execution_id FROM o) AND status = 'queued' \
               RETURNING id, tenant_id, automation_id), \
             u AS (UPDATE executions SET rerun_id = NULL WHERE id = $2 AND rerun_id = $1 AND EXISTS (SELECT 1 FROM d)), \
             a AS (DELETE FROM audit_events a USING d WHERE $2::uuid IS NOT NULL AND a.tenant_id = d.tenant_id \
               AND a.target_id = d.automation_id AND a.action = $3 AND a.detail->>'rerun_id' = d.id::text) \
             SELECT count(*) FROM d",
            &[&execution.0, &first, &Action::ExecutionRerun.as_str()],
        )
        .await?
        .get(0);
    if undone == 1 {
        return Err(ApiError::not_published(
            e,
            "the request",
            "nothing was enqueued",
        ));
    }
    tracing::warn!(execution = %execution, "the request's publish was not confirmed, but it was taken over (published again, or begun): answered as queued");
    Ok(())
}

/// Whether `s` may run: its automation published and running, its values fitting the published
/// parameters (early feedback for HTTP callers; the worker checks again, authoritatively).
async fn runnable(
    client: &deadpool_postgres::Object,
    caller: &Caller,
    s: &Submission,
) -> Result<(), ApiError> {
    let definition = runnable_definition(client, caller, s.automation).await?;
    aic_core::params::build_body(&definition.parameters, &s.parameters)
        .map_err(|e| ApiError::invalid(format!("parameters.{}", e.parameter), e.message))?;
    Ok(())
}

/// The published definition of the caller's automation, refused when there is none or the
/// automation is paused.
async fn runnable_definition(
    client: &deadpool_postgres::Object,
    caller: &Caller,
    automation: AutomationId,
) -> Result<AutomationDefinition, ApiError> {
    let row = client
        .query_opt(
            "SELECT a.status, v.definition FROM automations a \
             LEFT JOIN automation_versions v ON v.id = a.published_version_id \
             WHERE a.tenant_id = $1 AND a.id = $2",
            &[&caller.tenant.0, &automation.0],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("automation"))?;
    let status: String = row.get(0);
    let Some(definition) = row.get::<_, Option<Value>>(1) else {
        return Err(ApiError::conflict(
            "automation_not_published",
            "the automation has no published version; publish it first",
        ));
    };
    let definition: AutomationDefinition = serde_json::from_value(definition)
        .map_err(|e| ApiError::internal("stored definition", &e))?;
    if status == "paused" {
        return Err(ApiError::conflict(
            "automation_paused",
            "the automation is paused",
        ));
    }
    Ok(definition)
}

/// The answer to a submission whose execution id or idempotency key was already recorded: a
/// re-run meant to run once refused, else the execution as it stands ([`answered`]).
async fn known(
    client: &deadpool_postgres::Object,
    caller: &Caller,
    s: &Submission,
) -> Result<Submitted, ApiError> {
    if s.rerun_of.as_ref().is_some_and(|r| r.once) {
        return Err(ApiError::conflict(
            "already_rerun",
            "the execution was run again meanwhile",
        ));
    }
    let known = already_known(client, caller, s).await?.ok_or_else(|| {
        ApiError::conflict("execution_id_taken", "this execution id is already used")
    })?;
    Ok(answered(known, s.wait))
}

/// The answer to a request sent again, with its first execution (`known`): for a caller that
/// waits, a 200 once it finished (a retried call gets what the first one got).
fn answered(known: Enqueued, wait: Option<std::time::Duration>) -> Submitted {
    match wait {
        Some(_) if finished(&known.status) => Submitted::Now(StatusCode::OK, known),
        Some(wait) => Submitted::Running(known, wait),
        None => Submitted::Now(StatusCode::ACCEPTED, known),
    }
}

/// The execution recorded under the id or the tenant's idempotency key of `s`, if any (an id
/// taken in another tenant is none): answered as it stands, and not run again — when it was
/// asked for with the same automation and values. A key or an id answers only the request it was first sent with:
/// another request under it is refused (422, naming the field), not answered with the first
/// request's execution as if it were its own.
async fn already_known(
    client: &deadpool_postgres::Object,
    caller: &Caller,
    s: &Submission,
) -> Result<Option<Enqueued>, ApiError> {
    let values = Value::Object(s.parameters.clone());
    let Some(existing) = client
        .query_opt(
            "SELECT id, status, result, automation_id = $4, parameters = $5, (idempotency_key = $3) IS TRUE \
             FROM executions WHERE tenant_id = $1 AND (id = $2 OR idempotency_key = $3) \
             ORDER BY (idempotency_key = $3) IS TRUE DESC LIMIT 1",
            &[&caller.tenant.0, &s.execution.0, &s.idempotency_key, &s.automation.0, &values],
        )
        .await?
    else {
        return Ok(None);
    };
    let (same_automation, same_values, by_key): (bool, bool, bool) =
        (existing.get(3), existing.get(4), existing.get(5));
    let first = ExecutionId(existing.get(0));
    if !(same_automation && same_values) {
        return Err(reused(by_key, same_automation, first));
    }
    Ok(Some(Enqueued {
        execution_id: first,
        status: existing.get(1),
        status_url: format!("/v1/executions/{first}"),
        result: existing.get(2),
    }))
}

/// 422: an idempotency key (`by_key`) or an execution id sent again with another request than
/// the one it was first sent with (another automation, unless `same_automation`, or other
/// values) — a client's mistake that, answered with the first execution (`first`, named), would
/// pass that execution off as this request's.
fn reused(by_key: bool, same_automation: bool, first: ExecutionId) -> ApiError {
    let (field, code, what) = if by_key {
        (
            "idempotency_key",
            "idempotency_key_reused",
            "this idempotency key",
        )
    } else {
        ("execution_id", "execution_id_reused", "this execution id")
    };
    let differs = if same_automation {
        "other parameter values"
    } else {
        "another automation"
    };
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        code,
        format!(
            "{what} was first sent with {differs} (execution {first}): it answers only the request it was first sent with (send that request again for its execution, or a new {field} for a new one)"
        ),
    )
    .at(field)
}

/// Publishes an execution request (`body`) as `proto/AMQP.md` says, carrying `trace`, with
/// `reply_to` when the caller waits for the result; `Ok` once the broker confirmed it.
async fn publish_request(
    state: &AppState,
    execution: ExecutionId,
    body: &[u8],
    trace: lapin::types::FieldTable,
    reply_to: Option<&str>,
) -> Result<(), PublishError> {
    let mut properties = crate::resend::properties(execution);
    if !trace.inner().is_empty() {
        properties = properties.with_headers(trace);
    }
    if let Some(queue) = reply_to {
        properties = properties
            .with_reply_to(queue.into())
            .with_correlation_id(execution.to_string().into());
    }
    crate::resend::publish(&state.broker, &state.names, body, properties).await
}
