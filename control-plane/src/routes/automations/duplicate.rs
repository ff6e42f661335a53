//! An automation duplicated: a new, unpublished draft with the original's template,
//! connection, description, parameters, retry policy and external id field.

use super::{AutomationView, fetch};
use crate::audit::{self, Action, Target};
use crate::auth::{CONFIGURE, Caller};
use crate::error::ApiError;
use crate::extract::OptionalJson;
use crate::routes::{Named, checked_name, clashed, parse_id};
use crate::state::AppState;
use aic_proto::AutomationId;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use deadpool_postgres::GenericClient;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

/// Body of `POST /v1/automations/{id}/duplicate` (optional).
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct DuplicateInput {
    /// The copy's name (default: the original's with ` (copy)`, then ` (copy 2)`…).
    #[schemars(length(min = 1, max = 200), pattern(r"\S"))]
    pub name: Option<String>,
}

/// `POST /v1/automations/{id}/duplicate`: a new, unpublished draft with the original's
/// template, connection, description, parameters, retry policy and external id field.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, automation = %id))]
pub async fn duplicate(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(input): OptionalJson<DuplicateInput>,
) -> Result<(StatusCode, AutomationView), ApiError> {
    caller.require(CONFIGURE)?;
    let id: AutomationId = parse_id(&id, "automation")?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let not_found = || ApiError::not_found("automation");
    let original = name_of(&tx, &caller, id).await?.ok_or_else(not_found)?;
    let names = match &input.name {
        Some(name) => vec![checked_name(name)?.to_string()],
        None => (1..=20).map(|n| copy_name(&original, n)).collect(),
    };
    let copy = AutomationId::new();
    if let Some(name) = insert_copy(&tx, &caller, id, copy, &names).await? {
        let target = Target { id: copy.0, name };
        let detail = json!({"from": id, "from_name": original});
        audit::record(&tx, &caller, Action::AutomationDuplicated, target, detail).await?;
        let view = fetch(&tx, caller.tenant, copy).await?;
        tx.commit().await?;
        tracing::info!(copy = %copy, "automation duplicated");
        return Ok((StatusCode::CREATED, view));
    }
    // Nothing inserted under any name: the original may have been deleted meanwhile.
    name_of(&tx, &caller, id).await?.ok_or_else(not_found)?;
    Err(match &input.name {
        Some(_) => clashed(&tx, Named::Automation, caller.tenant, &names[0]).await,
        None => ApiError::conflict(
            "name_taken",
            format!("'{original}' has too many copies; name this one"),
        ),
    })
}

/// The name of the caller's tenant's automation `id`, if it exists.
async fn name_of(
    client: &impl GenericClient,
    caller: &Caller,
    id: AutomationId,
) -> Result<Option<String>, ApiError> {
    Ok(client
        .query_opt(
            "SELECT name FROM automations WHERE tenant_id = $1 AND id = $2",
            &[&caller.tenant.0, &id.0],
        )
        .await?
        .map(|row| row.get(0)))
}

/// Copies automation `id` into `copy` under the first of `names` that is free, which it
/// answers; none when none is (or the original is gone).
async fn insert_copy<'n>(
    client: &impl GenericClient,
    caller: &Caller,
    id: AutomationId,
    copy: AutomationId,
    names: &'n [String],
) -> Result<Option<&'n str>, ApiError> {
    for name in names {
        let inserted = client
            .execute(
                "INSERT INTO automations (id, tenant_id, connection_id, app, action, name, description, parameters, created_by, retry, external_id_field) \
                 SELECT $3, tenant_id, connection_id, app, action, $4, description, parameters, $5, retry, external_id_field \
                 FROM automations WHERE tenant_id = $1 AND id = $2 ON CONFLICT (tenant_id, name_key(name)) DO NOTHING",
                &[&caller.tenant.0, &id.0, &copy.0, name, &caller.token_id],
            )
            .await?;
        if inserted == 1 {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// The `n`th default name of a copy of `original`, within the 200 characters a name may have.
fn copy_name(original: &str, n: u32) -> String {
    let suffix = if n == 1 {
        " (copy)".to_string()
    } else {
        format!(" (copy {n})")
    };
    let keep = 200 - suffix.chars().count();
    let base: String = original.chars().take(keep).collect();
    format!("{}{suffix}", base.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_numbered_and_fit_the_name_limit() {
        assert_eq!(copy_name("Lead", 1), "Lead (copy)");
        assert_eq!(copy_name("Lead", 3), "Lead (copy 3)");
        let long = "é".repeat(200);
        let copy = copy_name(&long, 12);
        assert_eq!(copy.chars().count(), 200);
        assert!(copy.ends_with(" (copy 12)"), "{copy}");
    }
}
