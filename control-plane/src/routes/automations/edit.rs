//! An automation's own life: edit its draft, pause and resume it, delete it (`duplicate.rs`
//! copies it).
//!
//! The draft's fields (connection, parameters, retry policy, external id field) change what the
//! next publish freezes, not the live version. The name, the description and the status are the
//! automation's own and take effect at once: a paused automation's executions are refused by
//! the API and, for requests already queued or sent straight over AMQP, by the worker
//! (`automation_paused`).

use super::checks::{check_connection_app, check_external_id_field, check_parameters};
use super::{AutomationView, fetch};
use crate::audit::{self, Action, Target};
use crate::auth::{CONFIGURE, Caller};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::precondition::IfMatch;
use crate::routes::{Named, checked_name, in_use, name_free, parse_id, unique_name};
use crate::state::AppState;
use aic_proto::{AutomationId, ConnectionId, ParameterSpec, RetrySpec};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use deadpool_postgres::GenericClient;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// Whether an automation's executions run.
#[derive(Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum AutomationStatus {
    /// Executions run.
    Running,
    /// Executions are refused with `automation_paused` until it is resumed.
    Paused,
}

impl AutomationStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
        }
    }
}

/// Body of `PATCH /v1/automations/{id}`: each field present is changed, the others are kept.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateAutomation {
    /// New unique name within the tenant.
    #[serde(default, deserialize_with = "crate::routes::not_null")]
    #[schemars(with = "String", length(min = 1, max = 200), pattern(r"\S"))]
    pub name: Option<String>,
    /// New description; `null` empties it, as `""` does.
    #[serde(default, deserialize_with = "crate::routes::null_empties")]
    pub description: Option<String>,
    /// `running` or `paused`, at once.
    #[serde(default, deserialize_with = "crate::routes::not_null")]
    #[schemars(with = "AutomationStatus")]
    pub status: Option<AutomationStatus>,
    /// The draft's connection (same app as the template).
    #[serde(default, deserialize_with = "crate::routes::not_null")]
    #[schemars(with = "ConnectionId")]
    pub connection_id: Option<ConnectionId>,
    /// The draft's whole parameter table (add, edit and delete parameters by sending the table
    /// as it should be). The template's required parameters must stay.
    #[serde(default, deserialize_with = "crate::routes::not_null")]
    #[schemars(with = "Vec<ParameterSpec>")]
    pub parameters: Option<Vec<ParameterSpec>>,
    /// The draft's retry policy; `null` returns to the worker's defaults.
    #[serde(default, deserialize_with = "crate::routes::present")]
    pub retry: Option<Option<RetrySpec>>,
    /// The draft's Salesforce external id field; `null` removes it.
    #[serde(default, deserialize_with = "crate::routes::present")]
    pub external_id_field: Option<Option<String>>,
}

/// The draft as stored, locked for the update.
#[derive(Clone, PartialEq)]
struct Draft {
    app: String,
    action: String,
    connection_id: ConnectionId,
    parameters: serde_json::Value,
    retry: Option<serde_json::Value>,
    external_id_field: Option<String>,
}

/// `PATCH /v1/automations/{id}`: edits the draft, renames, pauses or resumes.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, automation = %id))]
pub async fn update(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    if_match: IfMatch,
    ApiJson(input): ApiJson<UpdateAutomation>,
) -> Result<AutomationView, ApiError> {
    caller.require(CONFIGURE)?;
    let id: AutomationId = parse_id(&id, "automation")?;
    let name = input.name.as_deref().map(checked_name).transpose()?;
    if let Some(text) = &input.description {
        let most = crate::routes::DESCRIPTION_MAX;
        crate::routes::bounded_description("description", text, most)?;
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let (before, revision) = locked(&tx, caller.tenant, id).await?;
    if_match
        .check(&tx, caller.tenant, ("automation", id.0), revision)
        .await?;
    if let Some(name) = name {
        name_free(&tx, Named::Automation, caller.tenant, name, Some(id.0)).await?;
    }
    let mut draft = before.clone();
    edit_draft(&state, &tx, caller.tenant, &mut draft, &input).await?;
    let row = save(&tx, id, name, &input, &draft).await?;
    // What the row held before (its first three columns), against what the edit gave.
    let given = [
        ("name", name),
        ("description", input.description.as_deref()),
        ("status", input.status.map(AutomationStatus::as_str)),
    ];
    let mut detail = serde_json::Map::new();
    for (i, (field, new)) in given.into_iter().enumerate() {
        if new.is_some_and(|new| new != row.get::<_, &str>(i)) {
            detail.insert(field.into(), json!(new));
        }
    }
    draft_changes(&before, &draft, &mut detail);
    if !detail.is_empty() {
        let target = Target {
            id: id.0,
            name: row.get(3),
        };
        let detail = serde_json::Value::Object(detail);
        audit::record(&tx, &caller, Action::AutomationUpdated, target, detail).await?;
    }
    let updated = fetch(&tx, caller.tenant, id).await?;
    tx.commit().await?;
    if let Some(status) = input.status {
        tracing::info!(status = status.as_str(), "automation status set");
    }
    Ok(updated)
}

/// Writes an edit; answers the row's name, description and status as they were (the row is
/// locked: `old` reads it before this update), then its new name.
async fn save(
    tx: &deadpool_postgres::Transaction<'_>,
    id: AutomationId,
    name: Option<&str>,
    input: &UpdateAutomation,
    draft: &Draft,
) -> Result<tokio_postgres::Row, ApiError> {
    tx.query_one(
        "UPDATE automations a SET name = coalesce($2, a.name), \
         description = coalesce($3, a.description), status = coalesce($4, a.status), \
         connection_id = $5, parameters = $6, retry = $7, external_id_field = $8, \
         updated_at = now() FROM (SELECT name, description, status FROM automations WHERE id = $1) old \
         WHERE a.id = $1 RETURNING old.name, old.description, old.status, a.name",
        &[
            &id.0,
            &name,
            &input.description,
            &input.status.map(AutomationStatus::as_str),
            &draft.connection_id.0,
            &draft.parameters,
            &draft.retry,
            &draft.external_id_field,
        ],
    )
    .await
    .map_err(|e| unique_name(e, Named::Automation, name.unwrap_or_default()))
}

/// The tenant's automation `id`'s draft and revision, its row locked until the transaction
/// ends.
async fn locked(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: aic_proto::TenantId,
    id: AutomationId,
) -> Result<(Draft, i64), ApiError> {
    let row = super::draft_row(tx, tenant, id, true).await?;
    let draft = Draft {
        app: row.get(0),
        action: row.get(1),
        connection_id: ConnectionId(row.get(2)),
        parameters: row.get(3),
        retry: row.get(4),
        external_id_field: row.get(5),
    };
    Ok((draft, row.get(7)))
}

/// Adds to an edit's audit detail each draft field that changed, with its new value (the
/// parameter table by its parameters' names).
fn draft_changes(before: &Draft, after: &Draft, detail: &mut serde_json::Map<String, Value>) {
    if after.connection_id != before.connection_id {
        detail.insert("connection_id".into(), json!(after.connection_id));
    }
    if after.parameters != before.parameters {
        let names: Vec<&Value> = after
            .parameters
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| &p["name"])
            .collect();
        detail.insert("parameters".into(), json!(names));
    }
    if after.retry != before.retry {
        detail.insert("retry".into(), json!(after.retry));
    }
    if after.external_id_field != before.external_id_field {
        detail.insert("external_id_field".into(), json!(after.external_id_field));
    }
}

/// Applies `input`'s draft fields to `draft`, each checked as a create checks it.
async fn edit_draft(
    state: &AppState,
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: aic_proto::TenantId,
    draft: &mut Draft,
    input: &UpdateAutomation,
) -> Result<(), ApiError> {
    let touches_template =
        input.parameters.is_some() || matches!(input.external_id_field, Some(Some(_)));
    let template = state.catalog.template(&draft.app, &draft.action);
    if touches_template && template.is_none() {
        return Err(ApiError::conflict(
            "template_retired",
            format!("template '{}.{}' no longer exists", draft.app, draft.action),
        ));
    }
    if let (Some(parameters), Some(template)) = (&input.parameters, template) {
        check_parameters(template, parameters)?;
        draft.parameters =
            serde_json::to_value(parameters).map_err(|e| ApiError::internal("parameters", &e))?;
    }
    if let Some(retry) = &input.retry {
        if let Some(retry) = retry {
            retry
                .check()
                .map_err(|(field, message)| ApiError::invalid(format!("retry.{field}"), message))?;
        }
        draft.retry = retry
            .as_ref()
            .map(|r| serde_json::to_value(r).map_err(|e| ApiError::internal("retry", &e)))
            .transpose()?;
    }
    if let Some(field) = &input.external_id_field {
        if let (Some(field), Some(template)) = (field, template) {
            check_external_id_field(&draft.app, template, field)?;
        }
        draft.external_id_field = field.clone();
    }
    if let Some(connection) = input.connection_id {
        check_connection_app(tx, tenant, connection, &draft.app).await?;
        draft.connection_id = connection;
    }
    Ok(())
}

/// `DELETE /v1/automations/{id}`: the automation and its versions. Executions keep their
/// ledger rows (read by id as before); requests still queued for it fail with
/// `unknown_automation`.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, automation = %id))]
pub async fn delete(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    caller.require(CONFIGURE)?;
    let id: AutomationId = parse_id(&id, "automation")?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let (_, revision) = locked(&tx, caller.tenant, id).await?;
    if_match
        .check(&tx, caller.tenant, ("automation", id.0), revision)
        .await?;
    let users: Vec<String> = tx
        .query(
            "SELECT name || ' (' || system || ')' FROM deployables WHERE automation_id = $1 \
             ORDER BY system, name",
            &[&id.0],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !users.is_empty() {
        return Err(in_use(
            "automation_in_use",
            &users,
            "deployable item(s) run this automation",
            "remove them from their flows and bots (DELETE /v1/deployables/{id}) first",
        ));
    }
    let deleted = tx
        .query_one(
            "DELETE FROM automations WHERE id = $1 RETURNING name, app || '.' || action",
            &[&id.0],
        )
        .await?;
    let target = Target {
        id: id.0,
        name: deleted.get(0),
    };
    let detail = json!({"template": deleted.get::<_, &str>(1)});
    audit::record(&tx, &caller, Action::AutomationDeleted, target, detail).await?;
    tx.commit().await?;
    tracing::info!("automation deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_absent_fields_differ() {
        let absent: UpdateAutomation = serde_json::from_str("{}").expect("empty");
        assert!(absent.retry.is_none() && absent.external_id_field.is_none());
        let cleared: UpdateAutomation =
            serde_json::from_str(r#"{"retry": null, "external_id_field": null}"#).expect("nulls");
        assert_eq!(cleared.retry.map(|r| r.is_none()), Some(true));
        assert_eq!(cleared.external_id_field, Some(None));
        let status: UpdateAutomation =
            serde_json::from_str(r#"{"status": "paused"}"#).expect("status");
        assert_eq!(status.status, Some(AutomationStatus::Paused));
        assert!(serde_json::from_str::<UpdateAutomation>(r#"{"status": "stopped"}"#).is_err());
    }
}
