//! An automation's run history: its executions, newest first, filtered by status and paged by
//! a cursor — what an admin reads to see whether an integration works.
//!
//! The ledger's index on (tenant, automation, enqueued time) serves it; a page continues after
//! the last execution of the page before, by its enqueued time and id (executions begun in one
//! batch share their enqueued time), so a page never skips or repeats one while others arrive.

use super::{COLUMNS, ExecutionView, view};
use crate::auth::{Caller, READ};
use crate::error::{ApiError, ApiQuery};
use crate::routes::{one_of, parse_id};
use crate::state::AppState;
use aic_proto::AutomationId;
use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Filters and paging of `GET /v1/automations/{id}/executions`.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// `queued`, `running`, `succeeded`, `failed` or `unknown_outcome`.
    pub status: Option<String>,
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

const STATUSES: [&str; 5] = [
    "queued",
    "running",
    "succeeded",
    "failed",
    "unknown_outcome",
];

/// `GET /v1/automations/{id}/executions?status=&limit=&after=`. A deleted automation's
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
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be 1 to 200, not {limit}"),
        ));
    }
    let after = q.after.as_deref().map(cursor).transpose()?;
    let client = state.pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM executions WHERE tenant_id = $1 AND automation_id = $2 \
                 AND ($3::text IS NULL OR status = $3) \
                 AND ($4::timestamptz IS NULL OR (enqueued_at, id) < ($4, $5)) \
                 ORDER BY enqueued_at DESC, id DESC LIMIT $6"
            ),
            &[
                &caller.tenant.0,
                &automation.0,
                &q.status,
                &after.map(|a| a.0),
                &after.map(|a| a.1),
                &(limit + 1),
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
    let more = rows.len() > limit as usize;
    let executions: Vec<ExecutionView> = rows.iter().take(limit as usize).map(view).collect();
    let next = executions.last().filter(|_| more).map(|e| {
        format!(
            "{}_{}",
            e.enqueued_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            e.id
        )
    });
    Ok(Json(ExecutionPage { executions, next }))
}

/// A page's `next`: the last execution's enqueued time and id.
fn cursor(raw: &str) -> Result<(DateTime<Utc>, uuid::Uuid), ApiError> {
    let bad = || ApiError::invalid("after", "after must be the 'next' of a page before");
    let (at, id) = raw.split_once('_').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?;
    Ok((at.with_timezone(&Utc), id.parse().map_err(|_| bad())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_what_a_page_wrote() {
        let id = uuid::Uuid::now_v7();
        let at: DateTime<Utc> = "2026-12-05T12:00:00.123456Z".parse().expect("time");
        let raw = format!("{}_{id}", at.to_rfc3339_opts(SecondsFormat::Micros, true));
        assert_eq!(cursor(&raw).expect("cursor"), (at, id));
        for bad in [
            "",
            "yesterday",
            "2026-12-05T12:00:00Z",
            "2026-12-05T12:00:00Z_x",
        ] {
            assert!(cursor(bad).is_err(), "{bad}");
        }
    }
}
