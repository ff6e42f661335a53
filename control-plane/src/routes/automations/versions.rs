//! An automation's version history: list, rename, restore, and delete (one or several).
//!
//! A version's definition never changes (the database refuses it); only its display name does.
//! Restoring makes an earlier version the live one, announced to the workers as a publish is,
//! and resets the draft to it. The live version cannot be deleted; any other can, and an
//! execution that ran it keeps naming its id in the ledger. Numbers are never given twice.

use super::live::go_live;
use super::{AutomationView, fetch};
use crate::audit::{self, Action, Target};
use crate::auth::{CONFIGURE, Caller, READ};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::precondition::IfMatch;
use crate::routes::{bounded_name, parse_id};
use crate::state::AppState;
use aic_proto::{
    AutomationDefinition, AutomationId, ConnectionId, DefinitionPublishedV1, VersionId,
};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The connection a version runs on, as it stands now.
#[derive(Serialize, JsonSchema)]
pub struct VersionConnection {
    /// Id.
    pub id: ConnectionId,
    /// Name.
    pub name: String,
    /// `untested`, `connected`, `failing` or `needs_reauthorization`.
    pub status: String,
}

/// One entry of an automation's version history.
#[derive(Serialize, JsonSchema)]
pub struct VersionEntry {
    /// Id (what executions record).
    pub id: VersionId,
    /// 1, 2, 3…; never reused.
    pub number: i32,
    /// Name.
    pub name: String,
    /// Whether executions run this version now.
    pub live: bool,
    /// When it was published.
    pub published_at: DateTime<Utc>,
    /// The name of the token that published it (absent once that token is deleted).
    pub published_by: Option<String>,
    /// Its connection (absent if that connection no longer exists).
    pub connection: Option<VersionConnection>,
}

/// Body of `PATCH /v1/automations/{id}/versions/{number}`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameVersion {
    /// New name, 1 to 200 characters.
    #[schemars(length(min = 1, max = 200), pattern(r"\S"))]
    pub name: String,
}

/// Body of `POST /v1/automations/{id}/versions/delete`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteVersions {
    /// The numbers of the versions to delete (1 to 1,000 of them): all are deleted or none.
    #[schemars(length(min = 1, max = 1000), inner(range(min = 1)))]
    #[serde(deserialize_with = "aic_proto::whole::list")]
    pub numbers: Vec<i32>,
}

/// What a bulk delete removed.
#[derive(Serialize, JsonSchema)]
pub struct DeletedVersions {
    /// The numbers deleted, ascending.
    pub deleted: Vec<i32>,
}

const ENTRY: &str = "SELECT v.id, v.number, v.name, v.id = a.published_version_id, v.published_at, \
    t.name, c.id, c.name, c.status \
    FROM automations a JOIN automation_versions v ON v.automation_id = a.id \
    LEFT JOIN api_tokens t ON t.id = v.published_by \
    LEFT JOIN connections c ON c.tenant_id = a.tenant_id AND c.id = (v.definition->>'connection_id')::uuid \
    WHERE a.tenant_id = $1 AND a.id = $2";

fn entry(row: &tokio_postgres::Row) -> VersionEntry {
    let connection: Option<uuid::Uuid> = row.get(6);
    VersionEntry {
        id: VersionId(row.get(0)),
        number: row.get(1),
        name: row.get(2),
        live: row.get::<_, Option<bool>>(3).unwrap_or(false),
        published_at: row.get(4),
        published_by: row.get(5),
        connection: connection.map(|id| VersionConnection {
            id: ConnectionId(id),
            name: row.get(7),
            status: row.get(8),
        }),
    }
}

/// The path's automation id and version number; garbage in either is not found.
fn ids(automation: &str, number: &str) -> Result<(AutomationId, i32), ApiError> {
    Ok((
        parse_id(automation, "automation")?,
        parse_id(number, "version")?,
    ))
}

/// Refuses a missing automation of the tenant, so that an empty history and no automation
/// differ; else its live version, its name and its revision.
async fn exists(
    client: &impl deadpool_postgres::GenericClient,
    tenant: aic_proto::TenantId,
    id: AutomationId,
    lock: bool,
) -> Result<(Option<uuid::Uuid>, String, i64), ApiError> {
    let sql = if lock {
        "SELECT published_version_id, name, revision FROM automations WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    } else {
        "SELECT published_version_id, name, revision FROM automations WHERE tenant_id = $1 AND id = $2"
    };
    let row = client
        .query_opt(sql, &[&tenant.0, &id.0])
        .await?
        .ok_or_else(|| ApiError::not_found("automation"))?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// `GET /v1/automations/{id}/versions`: the history, newest first.
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<VersionEntry>>, ApiError> {
    caller.require(READ)?;
    let id: AutomationId = parse_id(&id, "automation")?;
    let client = state.pool.get().await?;
    exists(&client, caller.tenant, id, false).await?;
    let rows = client
        .query(
            &format!("{ENTRY} ORDER BY v.number DESC"),
            &[&caller.tenant.0, &id.0],
        )
        .await?;
    Ok(Json(rows.iter().map(entry).collect()))
}

/// `PATCH /v1/automations/{id}/versions/{number}`: renames a version (nothing else of it can
/// change).
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, automation = %id, version = %number))]
pub async fn rename(
    caller: Caller,
    State(state): State<AppState>,
    Path((id, number)): Path<(String, String)>,
    ApiJson(input): ApiJson<RenameVersion>,
) -> Result<Json<VersionEntry>, ApiError> {
    caller.require(CONFIGURE)?;
    let (id, number) = ids(&id, &number)?;
    let name = bounded_name("name", &input.name)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let (_, automation, _) = exists(&tx, caller.tenant, id, true).await?;
    let renamed = tx
        .execute(
            "UPDATE automation_versions SET name = $3 WHERE automation_id = $1 AND number = $2",
            &[&id.0, &number, &name],
        )
        .await?;
    if renamed == 0 {
        return Err(ApiError::not_found("version"));
    }
    let target = Target {
        id: id.0,
        name: &automation,
    };
    let detail = json!({"version": number, "name": name});
    audit::record(&tx, &caller, Action::VersionRenamed, target, detail).await?;
    let row = tx
        .query_one(
            &format!("{ENTRY} AND v.number = $3"),
            &[&caller.tenant.0, &id.0, &number],
        )
        .await?;
    tx.commit().await?;
    Ok(Json(entry(&row)))
}

/// `POST /v1/automations/{id}/versions/{number}/restore`: makes the version live again (its
/// event confirmed by the broker before the change commits, as a publish is) and resets the
/// draft to it, so that the next publish starts from what runs.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, automation = %id, version = %number))]
pub async fn restore(
    caller: Caller,
    State(state): State<AppState>,
    Path((id, number)): Path<(String, String)>,
    if_match: IfMatch,
) -> Result<AutomationView, ApiError> {
    caller.require(CONFIGURE)?;
    let (id, number) = ids(&id, &number)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let (_, automation, revision) = exists(&tx, caller.tenant, id, true).await?;
    if_match
        .check(&tx, caller.tenant, ("automation", id.0), revision)
        .await?;
    let row = tx
        .query_opt(
            "SELECT id, name, published_at, definition FROM automation_versions \
             WHERE automation_id = $1 AND number = $2",
            &[&id.0, &number],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("version"))?;
    let version = VersionId(row.get(0));
    let definition: AutomationDefinition = serde_json::from_value(row.get(3))
        .map_err(|e| ApiError::internal("stored definition", &e))?;
    reset_draft(&state, &tx, id, version, &definition).await?;
    let event = DefinitionPublishedV1 {
        version: aic_proto::MESSAGE_VERSION,
        tenant_id: caller.tenant,
        automation_id: id,
        version_id: version,
        version_number: number,
        version_name: row.get(1),
        published_at: row.get(2),
        definition,
    };
    go_live(
        &state,
        &tx,
        &caller,
        Action::VersionRestored,
        &automation,
        &event,
    )
    .await?;
    let restored = fetch(&tx, caller.tenant, id).await?;
    tx.commit().await?;
    tracing::info!(version = %version, number, "version restored");
    Ok(restored)
}

/// Points the automation at `version` and sets its draft to `definition`'s connection,
/// parameters, retry policy and external id field.
async fn reset_draft(
    state: &AppState,
    tx: &deadpool_postgres::Transaction<'_>,
    id: AutomationId,
    version: VersionId,
    definition: &AutomationDefinition,
) -> Result<(), ApiError> {
    let template_dedupe = state
        .catalog
        .template(&definition.app, &definition.action)
        .and_then(|t| t.dedupe.clone());
    let external_id_field = match &definition.dedupe {
        Some(aic_proto::Dedupe::SalesforceExternalId { field })
            if definition.dedupe != template_dedupe =>
        {
            Some(field.clone())
        }
        _ => None,
    };
    let parameters = serde_json::to_value(&definition.parameters)
        .map_err(|e| ApiError::internal("parameters", &e))?;
    let retry = definition
        .retry
        .as_ref()
        .map(|r| serde_json::to_value(r).map_err(|e| ApiError::internal("retry", &e)))
        .transpose()?;
    tx.execute(
        "UPDATE automations SET published_version_id = $2, connection_id = $3, parameters = $4, \
         retry = $5, external_id_field = $6, updated_at = now() WHERE id = $1",
        &[
            &id.0,
            &version.0,
            &definition.connection_id.0,
            &parameters,
            &retry,
            &external_id_field,
        ],
    )
    .await
    .map_err(|e| match e.code() {
        Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) => ApiError::conflict(
            "connection_missing",
            "the version's connection no longer exists; it cannot run again",
        ),
        _ => e.into(),
    })?;
    Ok(())
}

/// `DELETE /v1/automations/{id}/versions/{number}`: deletes one version, not the live one.
pub async fn delete(
    caller: Caller,
    state: State<AppState>,
    Path((id, number)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (id, number) = ids(&id, &number)?;
    delete_numbers(&caller, &state, id, &[number], "number").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/automations/{id}/versions/delete`: deletes several versions at once, all or none.
pub async fn delete_many(
    caller: Caller,
    state: State<AppState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<DeleteVersions>,
) -> Result<Json<DeletedVersions>, ApiError> {
    let id: AutomationId = parse_id(&id, "automation")?;
    if input.numbers.is_empty() || input.numbers.len() > 1000 {
        return Err(ApiError::invalid(
            "numbers",
            "numbers must list 1 to 1,000 versions",
        ));
    }
    let deleted = delete_numbers(&caller, &state, id, &input.numbers, "numbers").await?;
    Ok(Json(DeletedVersions { deleted }))
}

/// Deletes the automation's versions `numbers` in one transaction: refused whole if one of them
/// does not exist (404 for a single version, 422 naming `field[i]` for a list) or is live (409).
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, automation = %id))]
async fn delete_numbers(
    caller: &Caller,
    state: &AppState,
    id: AutomationId,
    numbers: &[i32],
    field: &str,
) -> Result<Vec<i32>, ApiError> {
    caller.require(CONFIGURE)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let (live, automation, _) = exists(&tx, caller.tenant, id, true).await?;
    let found = tx
        .query(
            "SELECT number, id FROM automation_versions WHERE automation_id = $1 AND number = ANY($2)",
            &[&id.0, &numbers],
        )
        .await?;
    let known: Vec<(i32, uuid::Uuid)> = found.iter().map(|r| (r.get(0), r.get(1))).collect();
    if let Some((i, n)) = numbers
        .iter()
        .enumerate()
        .find(|(_, n)| !known.iter().any(|(k, _)| k == *n))
    {
        return Err(match numbers.len() {
            1 => ApiError::not_found("version"),
            _ => ApiError::invalid(format!("{field}[{i}]"), format!("there is no version {n}")),
        });
    }
    if let Some((n, _)) = known.iter().find(|(_, v)| Some(*v) == live) {
        return Err(ApiError::conflict(
            "version_live",
            format!("version {n} is live: restore another version before deleting it"),
        ));
    }
    let ids: Vec<uuid::Uuid> = known.iter().map(|(_, v)| *v).collect();
    tx.execute(
        "DELETE FROM automation_versions WHERE id = ANY($1)",
        &[&ids],
    )
    .await?;
    let mut deleted: Vec<i32> = known.into_iter().map(|(n, _)| n).collect();
    deleted.sort_unstable();
    let target = Target {
        id: id.0,
        name: &automation,
    };
    let detail = json!({"versions": deleted});
    audit::record(&tx, caller, Action::VersionsDeleted, target, detail).await?;
    tx.commit().await?;
    tracing::info!(?deleted, "versions deleted");
    Ok(deleted)
}
