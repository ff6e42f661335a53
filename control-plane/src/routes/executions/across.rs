//! The tenant's executions across its automations, newest first — what an admin reads to see
//! what ran, and what failed, in the last hour, whichever automation it was.
//!
//! No index of its own: one on (tenant, enqueued time) would cost every execution's insert on
//! the workers' hot path. The ledger's index on (tenant, automation, enqueued time) serves it
//! instead: the tenant's automations are walked through it (a loose index scan, as the
//! retention does — deleted automations' executions included), each one's newest page read
//! from it, and the pages merged. A page costs one index probe per automation that ever ran;
//! a status that is rare reads each automation's executions until a page of them is found,
//! which `since` bounds — a page taking longer than five seconds is refused, naming it.

use super::history::{ExecutionPage, STATUSES};
use super::{COLUMNS, view};
use crate::auth::{Caller, READ};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::routes::{one_of, page};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use schemars::JsonSchema;
use serde::Deserialize;

/// Filters and paging of `GET /v1/executions`.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AcrossQuery {
    /// `queued`, `running`, `succeeded`, `failed` or `unknown_outcome`.
    pub status: Option<String>,
    /// Only executions enqueued at or after this time (RFC 3339, e.g. `2026-12-05T00:00:00Z`).
    pub since: Option<String>,
    /// Executions per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// The `next` of the page before.
    pub after: Option<String>,
}

/// Each automation's newest page (after the cursor, of the status, since the time), merged.
fn statement() -> String {
    format!(
        "WITH RECURSIVE automations AS ( \
           (SELECT automation_id FROM executions WHERE tenant_id = $1 \
            ORDER BY automation_id LIMIT 1) \
           UNION ALL \
           SELECT n.automation_id FROM automations a, LATERAL ( \
             SELECT e.automation_id FROM executions e \
             WHERE e.tenant_id = $1 AND e.automation_id > a.automation_id \
             ORDER BY e.automation_id LIMIT 1) n) \
         SELECT x.* FROM automations a CROSS JOIN LATERAL ( \
           SELECT {COLUMNS} FROM executions e \
           WHERE e.tenant_id = $1 AND e.automation_id = a.automation_id \
             AND ($2::text IS NULL OR e.status = $2) \
             AND ($3::timestamptz IS NULL OR e.enqueued_at >= $3) \
             AND ($4::timestamptz IS NULL OR (e.enqueued_at, e.id) < ($4, $5)) \
           ORDER BY e.enqueued_at DESC, e.id DESC LIMIT $6) x \
         ORDER BY enqueued_at DESC, id DESC LIMIT $6"
    )
}

/// `GET /v1/executions?status=&since=&limit=&after=`: admins, editors and viewers.
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AcrossQuery>,
) -> Result<Json<ExecutionPage>, ApiError> {
    caller.require(READ)?;
    one_of("status", q.status.as_deref(), &STATUSES)?;
    let since = q.since.as_deref().map(crate::routes::since).transpose()?;
    let limit = page::limit(q.limit)?;
    let after = page::after(q.after.as_deref())?;
    let mut client = state.pool.get().await?;
    let what = match q.status.as_deref() {
        Some(status) => format!("a page of {status} executions across every automation"),
        None => "a page of executions across every automation".to_string(),
    };
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
        &caller.tenant.0,
        &q.status,
        &since,
        &after.map(|a| a.0),
        &after.map(|a| a.1),
        &(limit + 1),
    ];
    let rows = bounded(&mut client, &statement(), &params, &what).await?;
    let (executions, next) = page::split(rows.iter().map(view).collect(), limit, |e| {
        (e.enqueued_at, e.id.0)
    });
    Ok(Json(ExecutionPage { executions, next }))
}

/// Longest a page may take: a rare status over a long ledger reads much of it.
const LONGEST: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `statement` in a read-only transaction PostgreSQL cancels past [`LONGEST`]: finding
/// `what` (a page, the failures to run again) that takes longer is refused naming `since`,
/// rather than left to run.
pub(super) async fn bounded(
    client: &mut deadpool_postgres::Object,
    statement: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    what: &str,
) -> Result<Vec<tokio_postgres::Row>, ApiError> {
    let tx = client.build_transaction().read_only(true).start().await?;
    let limit = format!("SET LOCAL statement_timeout = {}", LONGEST.as_millis());
    tx.batch_execute(&limit).await?;
    let rows = tx.query(statement, params).await.map_err(|e| {
        if e.code() != Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) {
            return ApiError::from(e);
        }
        ApiError::invalid(
            "since",
            format!(
                "finding {what} took longer than {} s: narrow it with a later since (or one \
                 automation's)",
                LONGEST.as_secs()
            ),
        )
    })?;
    tx.commit().await?;
    Ok(rows)
}
