//! "My connections": the tenant's connections, filtered by app and status, and searched by
//! name and domain.

use super::{ConnectionView, SELECT, view};
use crate::auth::{Caller, READ};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::routes::{found_in, one_of};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use schemars::JsonSchema;
use serde::Deserialize;

/// Filters of `GET /v1/connections`; each one given narrows the list.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ConnectionFilter {
    /// Only connections to this app (`jira`).
    pub app: Option<String>,
    /// `untested`, `connected`, `failing` or `needs_reauthorization`.
    pub status: Option<String>,
    /// Search text: name and domain, case- and accent-insensitive.
    pub q: Option<String>,
}

/// A connection's statuses.
pub const STATUSES: [&str; 4] = ["untested", "connected", "failing", "needs_reauthorization"];

/// `GET /v1/connections?app=&status=&q=`, oldest first.
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    ApiQuery(filter): ApiQuery<ConnectionFilter>,
) -> Result<Json<Vec<ConnectionView>>, ApiError> {
    caller.require(READ)?;
    one_of("status", filter.status.as_deref(), &STATUSES)?;
    crate::routes::catalog::known_filters(&state, filter.app.as_deref(), None)?;
    let client = state.pool.get().await?;
    let rows = client
        .query(
            &format!(
                "{SELECT} WHERE c.tenant_id = $1 AND ($2::text IS NULL OR c.app = $2) \
                 AND ($3::text IS NULL OR c.status = $3) ORDER BY c.created_at"
            ),
            &[&caller.tenant.0, &filter.app, &filter.status],
        )
        .await?;
    let needle = filter.q.as_deref().map(aic_core::catalog::fold);
    Ok(Json(
        rows.iter()
            .filter(|row| found_in(needle.as_deref(), &[row.get(1), row.get(3)]))
            .map(|row| view(&state, row))
            .collect(),
    ))
}
