//! Running a finished execution again: what an admin does once the cause of a failure is
//! mended — the connection re-authorised, the vendor back, the mapping fixed.
//!
//! The new execution takes the first one's parameter values and runs the automation's live
//! version, as an enqueue would; its `source` is `rerun:<first id>`, so the two are linked in
//! the ledger. Only a finished execution runs again: one queued or running may still succeed,
//! and running it twice meanwhile would do the action twice. A succeeded or `unknown_outcome`
//! one runs again only when asked by its status (`"allow": "succeeded"`…): its action may
//! have been done already, and doing it again is the caller's deliberate choice.

use super::{Submission, checked_wait, submit};
use crate::auth::{Caller, EXECUTE};
use crate::error::ApiError;
use crate::routes::parse_id;
use crate::state::AppState;
use aic_proto::{AutomationId, ExecutionId};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// Body of `POST /v1/executions/{id}/rerun` (optional).
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RerunInput {
    /// Client-chosen id of the new execution: re-sending the same id never runs it twice.
    pub execution_id: Option<ExecutionId>,
    /// Run it again although it `succeeded` or ended in `unknown_outcome` (name that status):
    /// its action may be done twice.
    pub allow: Option<String>,
    /// Wait up to this many milliseconds (at most 30000) for the new result.
    pub wait_ms: Option<u64>,
}

/// `POST /v1/executions/{id}/rerun`: 202 with the new execution (200 with its result when
/// waited for and finished in time).
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, execution = %id))]
pub async fn rerun(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    http_headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<super::Enqueued>), ApiError> {
    caller.require(EXECUTE)?;
    let first: ExecutionId = parse_id(&id, "execution")?;
    let input: RerunInput = crate::routes::optional_body(&body)?;
    crate::routes::one_of("allow", input.allow.as_deref(), &MAY_HAVE_ACTED)?;
    let wait = checked_wait(input.wait_ms)?;
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT automation_id, status, parameters FROM executions \
             WHERE tenant_id = $1 AND id = $2",
            &[&caller.tenant.0, &first.0],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("execution"))?;
    let automation = AutomationId(row.get(0));
    caller.may_reach(&client, automation.0).await?;
    allowed(row.get(1), input.allow.as_deref())?;
    let parameters = match row.get::<_, Value>(2) {
        Value::Object(values) => values,
        _ => serde_json::Map::new(),
    };
    let submission = Submission {
        automation,
        execution: input.execution_id.unwrap_or_default(),
        parameters,
        source: Some(format!("rerun:{first}")),
        idempotency_key: None,
        wait,
    };
    submit(&state, &caller, &client, submission, &http_headers).await
}

/// The statuses of an execution whose action may have been done.
const MAY_HAVE_ACTED: [&str; 2] = ["succeeded", "unknown_outcome"];

/// Refuses to run again an execution of `status` unless it is finished — and, when its action
/// may have been done (`succeeded`, `unknown_outcome`), unless `allow` names that status.
fn allowed(status: String, allow: Option<&str>) -> Result<(), ApiError> {
    match status.as_str() {
        "failed" => Ok(()),
        "succeeded" | "unknown_outcome" if allow == Some(status.as_str()) => Ok(()),
        "succeeded" | "unknown_outcome" => Err(ApiError::conflict(
            "execution_may_have_acted",
            format!(
                "the execution {status}: running it again may do its action twice; send \
                 {{\"allow\": \"{status}\"}} to run it again all the same"
            ),
        )),
        _ => Err(ApiError::conflict(
            "execution_not_finished",
            format!("the execution is {status}: only a finished one runs again"),
        )),
    }
}
