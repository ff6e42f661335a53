//! Executions over HTTP: enqueue (answered only once the broker confirmed the request) and read
//! status and result from the ledger.

use super::parse_id;

pub mod across;
pub mod history;
pub mod rerun;
use crate::auth::{ANY, Caller, EXECUTE};
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;
use aic_proto::{AutomationDefinition, AutomationId, ExecutionId, ExecutionRequestV1, VersionId};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Body of `POST /v1/automations/{id}/executions`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueInput {
    /// Parameter values by parameter name.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// Client-chosen id: re-sending the same id never runs the automation twice.
    pub execution_id: Option<ExecutionId>,
    /// Free-text origin for audit, e.g. `flow:onboarding`.
    pub source: Option<String>,
    /// Your own key for this action (per tenant, at most 200 characters): a repeated key
    /// returns the first execution instead of running the automation again.
    pub idempotency_key: Option<String>,
    /// Wait up to this many milliseconds (at most 30000) for the result: answered 200 with the
    /// result when it comes in time, else 202 as usual and the result arrives later.
    pub wait_ms: Option<u64>,
}

/// Longest synchronous wait.
const MAX_WAIT_MS: u64 = 30_000;

/// Answer to an enqueue.
#[derive(Serialize, JsonSchema)]
pub struct Enqueued {
    /// The execution's id.
    pub execution_id: ExecutionId,
    /// `queued`, or the current status when the id was already known.
    pub status: String,
    /// Where to read the outcome.
    pub status_url: String,
    /// The result (an `ExecutionResultV1`), when waited for and finished in time.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<aic_proto::ExecutionResultV1>")]
    pub result: Option<Value>,
}

/// An execution as recorded in the ledger.
#[derive(Serialize, JsonSchema)]
pub struct ExecutionView {
    /// Id.
    pub id: ExecutionId,
    /// Automation.
    pub automation_id: AutomationId,
    /// The immutable version it runs or ran: recorded when a worker begins it (none while
    /// queued), and none for a request refused before it ran (its result names none either).
    pub version_id: Option<VersionId>,
    /// `queued`, `running`, `succeeded`, `failed` or `unknown_outcome`.
    pub status: String,
    /// The result as published (an `ExecutionResultV1`), once finished.
    #[schemars(with = "Option<aic_proto::ExecutionResultV1>")]
    pub result: Option<Value>,
    /// Vendor calls made.
    pub attempts: i32,
    /// Enqueued.
    pub enqueued_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Where the request came from, as its sender said (`flow:onboarding`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The columns [`view`] reads.
const COLUMNS: &str =
    "id, automation_id, version_id, status, result, attempts, enqueued_at, finished_at, source";

/// An execution's row of [`COLUMNS`].
fn view(row: &tokio_postgres::Row) -> ExecutionView {
    ExecutionView {
        id: ExecutionId(row.get(0)),
        automation_id: AutomationId(row.get(1)),
        version_id: row.get::<_, Option<uuid::Uuid>>(2).map(VersionId),
        status: row.get(3),
        result: row.get(4),
        attempts: row.get(5),
        enqueued_at: row.get(6),
        finished_at: row.get(7),
        source: row.get(8),
    }
}

/// `POST /v1/automations/{id}/executions`.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, automation = %id))]
pub async fn enqueue(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    http_headers: axum::http::HeaderMap,
    ApiJson(input): ApiJson<EnqueueInput>,
) -> Result<(StatusCode, Json<Enqueued>), ApiError> {
    caller.require(EXECUTE)?;
    checked_key(input.idempotency_key.as_deref())?;
    let submission = Submission {
        automation: parse_id(&id, "automation")?,
        execution: input.execution_id.unwrap_or_default(),
        parameters: input.parameters,
        source: input.source,
        idempotency_key: input.idempotency_key,
        wait: checked_wait(input.wait_ms)?,
    };
    let client = state.pool.get().await?;
    submit(&state, &caller, &client, submission, &http_headers).await
}

/// An execution to enqueue.
struct Submission {
    automation: AutomationId,
    execution: ExecutionId,
    parameters: Map<String, Value>,
    source: Option<String>,
    idempotency_key: Option<String>,
    /// How long the caller waits for the result, if at all.
    wait: Option<std::time::Duration>,
}

/// Enqueues `s` for the caller: checks the automation runs and the values fit its parameters,
/// records the execution (or finds it already known), publishes the request and answers once
/// the broker confirmed it — with the result when it came within the caller's wait.
async fn submit(
    state: &AppState,
    caller: &Caller,
    client: &deadpool_postgres::Object,
    s: Submission,
    http_headers: &axum::http::HeaderMap,
) -> Result<(StatusCode, Json<Enqueued>), ApiError> {
    let (automation, execution) = (s.automation, s.execution);
    caller.may_reach(client, automation.0).await?;
    let definition = runnable_definition(client, caller, automation).await?;
    // Early feedback for HTTP callers; the worker checks again, authoritatively.
    aic_core::params::build_body(&definition.parameters, &s.parameters)
        .map_err(|e| ApiError::invalid(format!("parameters.{}", e.parameter), e.message))?;
    // Any unique violation (the id, or the tenant's idempotency key) means "already known".
    // The outbox row, in the same statement, says the request is still to be confirmed
    // published (`crate::resend`, should this process stop before the confirm).
    let inserted = client
        .execute(
            "WITH e AS (INSERT INTO executions (id, tenant_id, automation_id, status, parameters, source, idempotency_key) \
             VALUES ($1, $2, $3, 'queued', $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id) \
             INSERT INTO execution_outbox (execution_id) SELECT id FROM e",
            &[&execution.0, &caller.tenant.0, &automation.0, &Value::Object(s.parameters.clone()), &s.source, &s.idempotency_key],
        )
        .await?;
    if inserted == 0 {
        let known = already_known(client, caller, execution, &s.idempotency_key).await?;
        return Ok((StatusCode::ACCEPTED, Json(known)));
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
    if let Err(e) = publish_request(state, execution, &body, http_headers, reply_to).await {
        not_enqueued(state, client, execution, &e).await?;
        // Taken over: the request is queued after all.
        return Ok(answer(state, execution, None).await);
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
    Ok(answer(state, execution, waiter.zip(s.wait)).await)
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
    execution: ExecutionId,
    e: &aic_core::amqp::PublishError,
) -> Result<(), ApiError> {
    state.replies.forget(&execution.to_string());
    tracing::error!(error = %e, execution = %execution, "execution request not confirmed");
    let undone = client
        .execute(
            "WITH o AS (DELETE FROM execution_outbox WHERE execution_id = $1 RETURNING execution_id) \
             DELETE FROM executions WHERE id IN (SELECT execution_id FROM o) AND status = 'queued'",
            &[&execution.0],
        )
        .await?;
    if undone == 1 {
        return Err(ApiError::unavailable(
            "the message broker did not confirm the request; nothing was enqueued, retry later",
        ));
    }
    tracing::warn!(execution = %execution, "the request's publish was not confirmed, but it was taken over (published again, or begun): answered as queued");
    Ok(())
}

/// The answer to an enqueued execution: its result if it came within the caller's wait (200),
/// else its id to follow (202).
async fn answer(
    state: &AppState,
    execution: ExecutionId,
    waiting: Option<(tokio::sync::oneshot::Receiver<Value>, std::time::Duration)>,
) -> (StatusCode, Json<Enqueued>) {
    let mut answer = Enqueued {
        execution_id: execution,
        status: "queued".into(),
        status_url: format!("/v1/executions/{execution}"),
        result: None,
    };
    if let Some((rx, budget)) = waiting {
        match tokio::time::timeout(budget, rx).await {
            Ok(Ok(result)) => {
                answer.status = result["status"].as_str().unwrap_or("failed").to_string();
                answer.result = Some(result);
                return (StatusCode::OK, Json(answer));
            }
            // Past the budget the caller gets the id; the result still arrives as usual.
            _ => state.replies.forget(&execution.to_string()),
        }
    }
    (StatusCode::ACCEPTED, Json(answer))
}

/// Refuses an idempotency key that is blank or longer than 200 characters.
fn checked_key(key: Option<&str>) -> Result<(), ApiError> {
    if key.is_some_and(|k| k.trim().is_empty() || k.chars().count() > 200) {
        return Err(ApiError::invalid(
            "idempotency_key",
            "idempotency_key must be 1 to 200 characters",
        ));
    }
    Ok(())
}

/// How long an enqueue waits for the result (`wait_ms`), if at all.
fn checked_wait(wait_ms: Option<u64>) -> Result<Option<std::time::Duration>, ApiError> {
    match wait_ms {
        Some(ms) if ms > MAX_WAIT_MS => Err(ApiError::invalid(
            "wait_ms",
            format!("wait_ms must be at most {MAX_WAIT_MS}"),
        )),
        other => Ok(other
            .filter(|ms| *ms > 0)
            .map(std::time::Duration::from_millis)),
    }
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

/// The execution an enqueue found already recorded (its id, or the tenant's idempotency key,
/// taken): answered as it stands, and not run again.
async fn already_known(
    client: &deadpool_postgres::Object,
    caller: &Caller,
    execution: ExecutionId,
    idempotency_key: &Option<String>,
) -> Result<Enqueued, ApiError> {
    let existing = client
        .query_opt(
            "SELECT id, status, result FROM executions WHERE tenant_id = $1 AND (id = $2 OR idempotency_key = $3) \
             ORDER BY (idempotency_key IS NOT DISTINCT FROM $3) DESC LIMIT 1",
            &[&caller.tenant.0, &execution.0, idempotency_key],
        )
        .await?
        .ok_or_else(|| ApiError::conflict("execution_id_taken", "this execution id is already used"))?;
    let first = ExecutionId(existing.get(0));
    Ok(Enqueued {
        execution_id: first,
        status: existing.get(1),
        status_url: format!("/v1/executions/{first}"),
        result: existing.get(2),
    })
}

/// Publishes an execution request (`body`) as `proto/AMQP.md` says, carrying the caller's trace, with
/// `reply_to` when the caller waits for the result; `Ok` once the broker confirmed it.
async fn publish_request(
    state: &AppState,
    execution: ExecutionId,
    body: &[u8],
    http_headers: &axum::http::HeaderMap,
    reply_to: Option<&str>,
) -> Result<(), aic_core::amqp::PublishError> {
    let mut properties = crate::resend::properties(execution);
    // The caller's trace goes on in the worker (W3C trace context, `proto/AMQP.md`).
    let trace = aic_core::telemetry::request_headers(http_headers, &tracing::Span::current());
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

/// `GET /v1/executions/{id}`.
pub async fn read(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ExecutionView>, ApiError> {
    caller.require(ANY)?;
    let id: ExecutionId = parse_id(&id, "execution")?;
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM executions WHERE tenant_id = $1 AND id = $2"),
            &[&caller.tenant.0, &id.0],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("execution"))?;
    let found = view(&row);
    caller.may_reach(&client, found.automation_id.0).await?;
    Ok(Json(found))
}
