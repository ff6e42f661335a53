//! Running a finished execution again: what an admin does once the cause of a failure is
//! mended — the connection re-authorised, the vendor back, the mapping fixed.
//!
//! The new execution takes the first one's parameter values and runs the automation's live
//! version, as an enqueue would; its `source` is `rerun:<first id>`, so the two are linked in
//! the ledger. Only a finished execution runs again: one queued or running may still succeed,
//! and running it twice meanwhile would do the action twice. A succeeded or `unknown_outcome`
//! one runs again only when asked by its status (`"allow": "succeeded"`…): its action may
//! have been done already, and doing it again is the caller's deliberate choice — which the
//! audit trail keeps, as it keeps every re-run (`automation.execution_rerun`: who ran which
//! execution again, as what, from which status), written with the re-run's record.
//!
//! After an outage, the failures since a time run again in bulk: each one no run followed yet
//! (the first execution keeps its latest re-run's id, set in the statement that records the
//! re-run — only if none was, for the bulk, so that two bulk calls at once take each failure
//! once).

use super::{RerunOf, Submission, checked_wait, submit};
use crate::auth::{CONFIGURE, Caller, EXECUTE};
use crate::error::ApiError;
use crate::extract::{ApiJson, OptionalJson};
use crate::routes::{page, parse_id};
use crate::state::AppState;
use aic_proto::{AutomationId, ExecutionId};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Body of `POST /v1/executions/{id}/rerun` (optional).
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RerunInput {
    /// Client-chosen id of the new execution: re-sending the same id never runs it twice.
    pub execution_id: Option<ExecutionId>,
    /// Run it again although it `succeeded` or ended in `unknown_outcome` (name that status):
    /// its action may be done twice.
    #[schemars(extend("enum" = ["succeeded", "unknown_outcome", null]))]
    pub allow: Option<String>,
    /// Wait up to this many milliseconds (at most 30000) for the new result.
    #[schemars(range(max = 30_000))]
    #[serde(default, deserialize_with = "aic_proto::whole::option")]
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
    OptionalJson(input): OptionalJson<RerunInput>,
) -> Result<(StatusCode, Json<super::Enqueued>), ApiError> {
    caller.require(EXECUTE)?;
    let first: ExecutionId = parse_id(&id, "execution")?;
    crate::routes::one_of("allow", input.allow.as_deref(), &MAY_HAVE_ACTED)?;
    let wait = checked_wait(input.wait_ms)?;
    let mut client = state.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT e.id, e.automation_id, e.parameters, e.status, a.name FROM executions e \
             LEFT JOIN automations a ON a.id = e.automation_id WHERE e.tenant_id = $1 AND e.id = $2",
            &[&caller.tenant.0, &first.0],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("execution"))?;
    caller.may_reach(&client, row.get(1)).await?;
    allowed(row.get(3), input.allow.as_deref())?;
    let execution = input.execution_id.unwrap_or_default();
    let submission = rerun_of(&row, execution, wait, (false, input.allow));
    let submitted = submit(&state, &caller, &mut client, submission, &http_headers).await?;
    // Waited for with the connection given back.
    drop(client);
    Ok(submitted.answer(&state, &caller).await)
}

/// The execution `execution` running again the one of `row` (its id, automation, parameter
/// values and, fifth, the automation's name), linked to it — with `once`, only if nothing ran
/// it again before — as the caller allowed (`allowed`: the status it may run again from).
fn rerun_of(
    row: &tokio_postgres::Row,
    execution: ExecutionId,
    wait: Option<std::time::Duration>,
    (once, allowed): (bool, Option<String>),
) -> Submission {
    let first = ExecutionId(row.get(0));
    Submission {
        automation: AutomationId(row.get(1)),
        execution,
        parameters: match row.get::<_, Value>(2) {
            Value::Object(values) => values,
            _ => serde_json::Map::new(),
        },
        source: Some(format!("rerun:{first}")),
        idempotency_key: None,
        wait,
        rerun_of: Some(RerunOf {
            first,
            automation_name: row.get::<_, Option<String>>(4).unwrap_or_default(),
            once,
            allowed,
        }),
    }
}

/// The statuses of an execution whose action may have been done.
const MAY_HAVE_ACTED: [&str; 2] = ["succeeded", "unknown_outcome"];

/// Refuses to run again an execution of `status` unless it is finished — and, when its action
/// may have been done (`succeeded`, `unknown_outcome`), unless `allow` names that status.
fn allowed(status: String, allow: Option<&str>) -> Result<(), ApiError> {
    match status.as_str() {
        "failed" => Ok(()),
        acted if MAY_HAVE_ACTED.contains(&acted) && allow == Some(acted) => Ok(()),
        acted if MAY_HAVE_ACTED.contains(&acted) => Err(ApiError::conflict(
            "execution_may_have_acted",
            format!(
                "{}: running it again may do its action twice; send {{\"allow\": \"{status}\"}} \
                 to run it again all the same",
                if status == "succeeded" {
                    "the execution succeeded"
                } else {
                    "whether the execution did its action is unknown"
                }
            ),
        )),
        _ => Err(ApiError::conflict(
            "execution_not_finished",
            format!("the execution is {status}: only a finished one runs again"),
        )),
    }
}

/// Body of `POST /v1/executions/rerun`: which failures to run again.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRerunInput {
    /// Failures enqueued at or after this time (RFC 3339, e.g. `2026-12-05T00:00:00Z`).
    #[schemars(extend("format" = "date-time"))]
    pub since: String,
    /// Only this automation's.
    pub automation_id: Option<AutomationId>,
    /// At most this many, oldest first (1 to 200, default 50).
    #[schemars(range(min = 1, max = 200))]
    #[serde(default, deserialize_with = "aic_proto::whole::option")]
    pub limit: Option<i64>,
    /// The `next` of the call before: go on past the failures it listed, those it could not
    /// run again included. Without it, from the oldest failure not run again yet.
    pub after: Option<String>,
}

/// What a bulk re-run did.
#[derive(Serialize, JsonSchema)]
pub struct BulkRerun {
    /// Each failure taken, oldest first.
    pub reruns: Vec<RerunItem>,
    /// Pass as `after` to go on with the failures left; absent when none is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One failure run again, or why not.
#[derive(Serialize, JsonSchema)]
pub struct RerunItem {
    /// The failed execution.
    pub execution_id: ExecutionId,
    /// Its re-run, queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerun_id: Option<ExecutionId>,
    /// Why it was not run again (its values no longer fit the live version's parameters…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::error::ErrorDetail>,
}

/// Failures of running automations not run again yet, after the cursor: each automation's
/// oldest since the time (through the ledger's index), merged, oldest first.
const FAILURES: &str = "SELECT x.id, x.automation_id, x.parameters, x.enqueued_at, a.name \
    FROM automations a CROSS JOIN LATERAL ( \
      SELECT e.id, e.automation_id, e.parameters, e.enqueued_at FROM executions e \
      WHERE e.tenant_id = $1 AND e.automation_id = a.id AND e.enqueued_at >= $2 \
        AND e.status = 'failed' AND e.rerun_id IS NULL \
        AND ($5::timestamptz IS NULL OR (e.enqueued_at, e.id) > ($5, $6)) \
      ORDER BY e.enqueued_at, e.id LIMIT $4) x \
    WHERE a.tenant_id = $1 AND ($3::uuid IS NULL OR a.id = $3) \
      AND a.status = 'running' AND a.published_version_id IS NOT NULL \
    ORDER BY x.enqueued_at, x.id LIMIT $4";

/// `POST /v1/executions/rerun`: runs the failures since a time again, each once (admins and
/// editors). Finding them reads each automation's executions since the time: a search longer
/// than the listing's bound is refused naming `since`. A paused or unpublished automation's failures wait until it runs again; one whose
/// values no longer fit is listed with its error and left; a broker that does not confirm
/// stops the batch (`next` then goes on from the failure it stopped at).
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant))]
pub async fn rerun_failures(
    caller: Caller,
    State(state): State<AppState>,
    http_headers: axum::http::HeaderMap,
    ApiJson(input): ApiJson<BulkRerunInput>,
) -> Result<Json<BulkRerun>, ApiError> {
    caller.require(CONFIGURE)?;
    let since = crate::routes::since(&input.since)?;
    let limit = page::limit(input.limit)?;
    let after = page::after(input.after.as_deref())?;
    let mut client = state.pool.get().await?;
    let automation = input.automation_id.map(|a| a.0);
    let (at, id) = (after.map(|a| a.0), after.map(|a| a.1));
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
        &caller.tenant.0,
        &since,
        &automation,
        &(limit + 1),
        &at,
        &id,
    ];
    let what = "the failures to run again";
    let rows = super::across::bounded(&mut client, FAILURES, &params, what).await?;
    let (rows, mut next) = page::split(rows, limit, |r| (r.get(3), r.get(0)));
    let mut reruns = Vec::new();
    for row in &rows {
        let first = ExecutionId(row.get(0));
        let submission = rerun_of(row, ExecutionId::default(), None, (true, None));
        let (rerun_id, error) =
            match submit(&state, &caller, &mut client, submission, &http_headers).await {
                Ok(submitted) => (Some(submitted.execution()), None),
                // The database or the broker failing: what is done stays done; the rest, this
                // failure first, waits for the next call.
                Err(e) if e.is_server_error() => {
                    if reruns.is_empty() {
                        return Err(e);
                    }
                    next = after_listed(&rows[..reruns.len()]);
                    reruns.push(RerunItem {
                        execution_id: first,
                        rerun_id: None,
                        error: Some(e.detail()),
                    });
                    return Ok(Json(BulkRerun { reruns, next }));
                }
                Err(e) => (None, Some(e.detail())),
            };
        reruns.push(RerunItem {
            execution_id: first,
            rerun_id,
            error,
        });
    }
    Ok(Json(BulkRerun { reruns, next }))
}

/// The cursor after the last of `rows` (none when there is none).
fn after_listed(rows: &[tokio_postgres::Row]) -> Option<String> {
    rows.last().map(|r| page::next((r.get(3), r.get(0))))
}
