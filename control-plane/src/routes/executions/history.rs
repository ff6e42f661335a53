//! An automation's run history: its executions, newest first, filtered by status and time and
//! paged by a cursor — what an admin reads to see whether an integration works.
//!
//! The ledger's index on (tenant, automation, enqueued time) serves it; pages as
//! [`crate::routes::page`] says, by enqueued time.

use super::{COLUMNS, ExecutionView, view};
use crate::auth::{Caller, READ};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::routes::{one_of, page, parse_id};
use crate::state::AppState;
use aic_proto::AutomationId;
use axum::Json;
use axum::extract::{Path, State};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Filters and paging of `GET /v1/automations/{id}/executions`.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// `queued`, `running`, `succeeded`, `failed` or `unknown_outcome`.
    pub status: Option<String>,
    /// Only executions enqueued at or after this time (RFC 3339, e.g. `2026-12-05T00:00:00Z`).
    pub since: Option<String>,
    /// Executions per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// The `next` of the page before.
    pub after: Option<String>,
}

/// One page of an automation's executions.
#[derive(Serialize, JsonSchema)]
pub struct ExecutionPage {
    /// Newest first.
    pub executions: Vec<ExecutionView>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

pub(crate) const STATUSES: [&str; 5] = [
    "queued",
    "running",
    "succeeded",
    "failed",
    "unknown_outcome",
];

/// `GET /v1/automations/{id}/executions?status=&since=&limit=&after=`. A deleted automation's
/// executions stay readable; an automation that never existed is not found.
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<ExecutionPage>, ApiError> {
    caller.require(READ)?;
    let automation: AutomationId = parse_id(&id, "automation")?;
    one_of("status", q.status.as_deref(), &STATUSES)?;
    let since = q.since.as_deref().map(crate::routes::since).transpose()?;
    let limit = page::limit(q.limit)?;
    let after = page::after(q.after.as_deref())?;
    let client = state.pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM executions WHERE tenant_id = $1 AND automation_id = $2 \
                 AND ($3::text IS NULL OR status = $3) \
                 AND ($4::timestamptz IS NULL OR (enqueued_at, id) < ($4, $5)) \
                 AND ($7::timestamptz IS NULL OR enqueued_at >= $7) \
                 ORDER BY enqueued_at DESC, id DESC LIMIT $6"
            ),
            &[
                &caller.tenant.0,
                &automation.0,
                &q.status,
                &after.map(|a| a.0),
                &after.map(|a| a.1),
                &(limit + 1),
                &since,
            ],
        )
        .await?;
    if rows.is_empty() && after.is_none() {
        let known = client
            .query_opt(
                "SELECT 1 FROM automations WHERE tenant_id = $1 AND id = $2",
                &[&caller.tenant.0, &automation.0],
            )
            .await?;
        known.ok_or_else(|| ApiError::not_found("automation"))?;
    }
    let (executions, next) = page::split(rows.iter().map(view).collect(), limit, |e| {
        (e.enqueued_at, e.id.0)
    });
    Ok(Json(ExecutionPage { executions, next }))
}
