//! `GET /v1/audit-events`: the tenant's audit trail for its admins, newest first, filtered by
//! action, kind of record, record, or actor, and paged as [`crate::routes::page`] says.

use crate::audit::Action;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::routes::{one_of, page};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What an event can be about.
pub const TARGET_KINDS: [&str; 4] = ["connection", "automation", "token", "deployable"];

/// Filters and paging of `GET /v1/audit-events`.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// One action, e.g. `connection.reauthorised`.
    pub action: Option<String>,
    /// `connection`, `automation`, `token` or `deployable`.
    pub target_kind: Option<String>,
    /// One record's events.
    pub target_id: Option<Uuid>,
    /// One token's doings.
    pub actor_id: Option<Uuid>,
    /// Events per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// The `next` of the page before.
    pub after: Option<String>,
}

/// Who did what to which record, and when.
#[derive(Serialize, JsonSchema)]
pub struct AuditEvent {
    /// Id.
    pub id: Uuid,
    /// When (the change's transaction).
    pub at: DateTime<Utc>,
    /// What was done, e.g. `automation.published`.
    pub action: String,
    /// The token that did it…
    pub actor_id: Option<Uuid>,
    /// …its name then…
    pub actor_name: Option<String>,
    /// …and its role.
    pub actor_role: Option<String>,
    /// `connection`, `automation`, `token` or `deployable`.
    pub target_kind: String,
    /// The record's id.
    pub target_id: Uuid,
    /// Its name then.
    pub target_name: String,
    /// What changed: field names and new values (never a secret's value), a version's
    /// number, a test's outcome.
    pub detail: serde_json::Value,
}

/// One page of the audit trail.
#[derive(Serialize, JsonSchema)]
pub struct AuditPage {
    /// Newest first.
    pub events: Vec<AuditEvent>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /v1/audit-events?action=&target_kind=&target_id=&actor_id=&limit=&after=` (admin).
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require(&[Role::Admin])?;
    let actions: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
    one_of("action", q.action.as_deref(), &actions)?;
    one_of("target_kind", q.target_kind.as_deref(), &TARGET_KINDS)?;
    let limit = page::limit(q.limit)?;
    let after = page::after(q.after.as_deref())?;
    let client = state.pool.get().await?;
    let rows = client
        .query(
            "SELECT id, at, action, actor_id, actor_name, actor_role, target_kind, target_id, \
             target_name, detail FROM audit_events WHERE tenant_id = $1 \
             AND ($2::text IS NULL OR action = $2) AND ($3::text IS NULL OR target_kind = $3) \
             AND ($4::uuid IS NULL OR target_id = $4) AND ($5::uuid IS NULL OR actor_id = $5) \
             AND ($6::timestamptz IS NULL OR (at, id) < ($6, $7)) \
             ORDER BY at DESC, id DESC LIMIT $8",
            &[
                &caller.tenant.0,
                &q.action,
                &q.target_kind,
                &q.target_id,
                &q.actor_id,
                &after.map(|a| a.0),
                &after.map(|a| a.1),
                &(limit + 1),
            ],
        )
        .await?;
    let events = rows
        .iter()
        .map(|r| AuditEvent {
            id: r.get(0),
            at: r.get(1),
            action: r.get(2),
            actor_id: r.get(3),
            actor_name: r.get(4),
            actor_role: r.get(5),
            target_kind: r.get(6),
            target_id: r.get(7),
            target_name: r.get(8),
            detail: r.get(9),
        })
        .collect();
    let (events, next) = page::split(events, limit, |e: &AuditEvent| (e.at, e.id));
    Ok(Json(AuditPage { events, next }))
}
