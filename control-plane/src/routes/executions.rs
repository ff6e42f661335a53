//! Executions over HTTP: enqueue (answered only once the broker confirmed the request) and read
//! status and result from the ledger.

use super::parse_id;

pub mod across;
pub mod history;
mod key;
pub mod rerun;
mod submit;
mod waiting;
use crate::auth::{ANY, Caller, EXECUTE};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;
use aic_proto::{AutomationId, ExecutionId, VersionId};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use submit::{RerunOf, Submission, submit};

/// Body of `POST /v1/automations/{id}/executions`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueInput {
    /// Parameter values by parameter name.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// Client-chosen id: re-sending the same request with it never runs the automation twice
    /// (another automation or other values under it are refused: 422 `execution_id_reused`).
    pub execution_id: Option<ExecutionId>,
    /// Free-text origin for audit, e.g. `flow:onboarding` (at most 200 characters, no control
    /// characters).
    #[serde(default, deserialize_with = "aic_proto::text::source")]
    #[schemars(length(max = 200))]
    pub source: Option<String>,
    /// Your own key for this action (per tenant, at most 200 characters): the same request
    /// sent again with it returns the first execution instead of running the automation again
    /// (another automation or other values under it are refused: 422 `idempotency_key_reused`).
    /// The `Idempotency-Key` header gives it as well; both given must agree.
    #[schemars(length(min = 1, max = 200), pattern(r"\S"))]
    pub idempotency_key: Option<String>,
    /// Wait up to this many milliseconds (at most 30000) for the result: answered 200 with the
    /// result when it comes in time, else 202 as usual and the result arrives later.
    #[schemars(range(max = 30_000))]
    #[serde(default, deserialize_with = "aic_proto::whole::option")]
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
    /// Where the request came from, as its sender said (`flow:onboarding`; `rerun:<id>` for a
    /// re-run of execution `<id>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The latest execution that ran this one again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerun_id: Option<ExecutionId>,
}

/// The columns [`view`] reads.
const COLUMNS: &str = "id, automation_id, version_id, status, result, attempts, enqueued_at, finished_at, source, \
     rerun_id";

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
        rerun_id: row.get::<_, Option<uuid::Uuid>>(9).map(ExecutionId),
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
    let idempotency_key = key::given(&http_headers, input.idempotency_key)?;
    let submission = Submission {
        automation: parse_id(&id, "automation")?,
        execution: input.execution_id.unwrap_or_default(),
        parameters: input.parameters,
        source: input.source,
        idempotency_key,
        wait: checked_wait(input.wait_ms)?,
        rerun_of: None,
    };
    let submitted = {
        let mut client = state.pool.get().await?;
        submit(&state, &caller, &mut client, submission, &http_headers).await?
    };
    // Waited for with the connection given back.
    Ok(submitted.answer(&state, &caller).await)
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
