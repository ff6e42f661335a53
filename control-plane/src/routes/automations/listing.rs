//! "My automations": the tenant's automations, filtered by app, business domain and status,
//! and searched by name and description.

use super::{AutomationView, SELECT, view};
use crate::auth::{Caller, READ};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::routes::{found_in, one_of};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use schemars::JsonSchema;
use serde::Deserialize;

/// Filters of `GET /v1/automations`; each one given narrows the list.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AutomationFilter {
    /// Only automations of this app (`salesforce`).
    pub app: Option<String>,
    /// Only automations whose template belongs to this business domain (see `GET /v1/domains`).
    pub domain: Option<String>,
    /// `running` or `paused`.
    pub status: Option<String>,
    /// Search text: name and description, case- and accent-insensitive.
    pub q: Option<String>,
}

/// `GET /v1/automations?app=&domain=&status=&q=`, oldest first.
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    ApiQuery(filter): ApiQuery<AutomationFilter>,
) -> Result<Json<Vec<AutomationView>>, ApiError> {
    caller.require(READ)?;
    one_of("status", filter.status.as_deref(), &["running", "paused"])?;
    crate::routes::catalog::known_filters(&state, filter.app.as_deref(), filter.domain.as_deref())?;
    let client = state.pool.get().await?;
    let rows = client
        .query(
            &format!(
                "{SELECT} WHERE a.tenant_id = $1 AND ($2::text IS NULL OR a.app = $2) \
                 AND ($3::text IS NULL OR a.status = $3) ORDER BY a.created_at"
            ),
            &[&caller.tenant.0, &filter.app, &filter.status],
        )
        .await?;
    let needle = filter.q.as_deref().map(aic_core::catalog::fold);
    let in_domain = |row: &tokio_postgres::Row| {
        filter.domain.as_ref().is_none_or(|d| {
            let (app, action): (&str, &str) = (row.get(15), row.get(16));
            state
                .catalog
                .template(app, action)
                .is_some_and(|t| &t.domain == d)
        })
    };
    Ok(Json(
        rows.iter()
            .filter(|row| in_domain(row))
            .filter(|row| found_in(needle.as_deref(), &[row.get(1), row.get(2)]))
            .map(view)
            .collect(),
    ))
}
