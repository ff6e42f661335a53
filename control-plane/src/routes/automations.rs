//! Automations: create from a template, list, read, and publish an immutable version (which
//! also announces the definition on the broker).

use super::parse_id;
use crate::audit::{self, Action, Target};
use crate::auth::{CONFIGURE, Caller, READ};
use crate::error::ApiError;
use crate::extract::{ApiJson, OptionalJson};
use crate::precondition::IfMatch;
use crate::state::AppState;
use aic_core::catalog::Template;
use aic_proto::{
    AutomationDefinition, AutomationId, ConnectionId, DefinitionPublishedV1, ParameterSpec,
    RetrySpec, TenantId, VersionId,
};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use checks::{check_connection_app, check_external_id_field, check_parameters, template_named};
use chrono::{DateTime, Utc};
use live::go_live;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

mod checks;
pub mod duplicate;
pub mod edit;
pub mod fields;
pub mod listing;
mod live;
pub mod trial;
pub mod versions;

/// Body of `POST /v1/automations`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAutomation {
    /// Template id, `app.action`, e.g. `salesforce.create_lead`.
    pub template: String,
    /// The connection to run on (same app as the template).
    pub connection_id: ConnectionId,
    /// Unique name within the tenant (the tile title; 1 to 200 characters).
    #[schemars(length(min = 1, max = 200), pattern(r"\S"))]
    pub name: String,
    /// Description shown on the tile.
    #[serde(default)]
    pub description: String,
    /// The parameter table; defaults to the template's. The template's required parameters
    /// must stay, required and mapped to the same field.
    pub parameters: Option<Vec<ParameterSpec>>,
    /// Retry policy for transient vendor failures; unset fields take the worker's defaults.
    pub retry: Option<RetrySpec>,
    /// Salesforce create templates only: an external id field (API name ending in `__c`) of the
    /// object. Creates become upserts keyed by the execution id in that field, so a re-send
    /// after a crash or a lost answer finds the first record instead of creating another.
    pub external_id_field: Option<String>,
}

/// Body of `POST /v1/automations/{id}/publish` (optional).
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PublishInput {
    /// Name of the version (default, and when blank, `Version N`).
    #[schemars(length(max = 200))]
    pub version_name: Option<String>,
}

/// A published version.
#[derive(Serialize, JsonSchema)]
pub struct VersionView {
    /// Id.
    pub id: VersionId,
    /// 1, 2, 3…
    pub number: i32,
    /// Name.
    pub name: String,
    /// When.
    pub published_at: DateTime<Utc>,
}

/// An automation.
#[derive(Serialize, JsonSchema)]
pub struct AutomationView {
    /// Id.
    pub id: AutomationId,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Template id.
    pub template: String,
    /// Connection.
    pub connection_id: ConnectionId,
    /// `running` or `paused`.
    pub status: String,
    /// The draft parameter table.
    pub parameters: Vec<ParameterSpec>,
    /// The draft retry policy (absent: the worker's defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    /// Salesforce external id field the creates upsert on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id_field: Option<String>,
    /// The live version, if published.
    pub published_version: Option<VersionView>,
    /// Flows, bot steps and launchers running it (`GET /v1/deployables?automation_id=`).
    pub deployables: i64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// One more with every change to the automation (not to its counts): answered as the
    /// `ETag`; send it back as `If-Match: "<revision>"` to change the automation only as it was
    /// read (else 412 `precondition_failed`).
    pub revision: i64,
}

/// An automation is answered with its revision as its `ETag`.
impl axum::response::IntoResponse for AutomationView {
    fn into_response(self) -> axum::response::Response {
        crate::precondition::tagged(self.revision, Json(self))
    }
}

/// `POST /v1/automations`: a draft from a template.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, template = %input.template))]
pub async fn create(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<CreateAutomation>,
) -> Result<(StatusCode, AutomationView), ApiError> {
    caller.require(CONFIGURE)?;
    let (app, action, template) = template_named(&state.catalog, &input.template)?;
    let name = crate::routes::checked_name(&input.name)?;
    let most = crate::routes::DESCRIPTION_MAX;
    crate::routes::bounded_description("description", &input.description, most)?;
    let parameters = input
        .parameters
        .unwrap_or_else(|| template.parameters.clone());
    check_parameters(template, &parameters)?;
    if let Some(retry) = &input.retry {
        retry
            .check()
            .map_err(|(field, message)| ApiError::invalid(format!("retry.{field}"), message))?;
    }
    if let Some(field) = &input.external_id_field {
        check_external_id_field(app, template, field)?;
    }
    let retry = input
        .retry
        .map(|r| serde_json::to_value(r).map_err(|e| ApiError::internal("retry", &e)))
        .transpose()?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    check_connection_app(&tx, caller.tenant, input.connection_id, app).await?;
    let id = AutomationId::new();
    let inserted = tx
        .execute(
            "INSERT INTO automations (id, tenant_id, connection_id, app, action, name, description, parameters, created_by, retry, external_id_field) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT (tenant_id, name_key(name)) DO NOTHING",
            &[
                &id.0,
                &caller.tenant.0,
                &input.connection_id.0,
                &app,
                &action,
                &name,
                &input.description,
                &serde_json::to_value(&parameters).map_err(|e| ApiError::internal("parameters", &e))?,
                &caller.token_id,
                &retry,
                &input.external_id_field,
            ],
        )
        .await?;
    if inserted == 0 {
        let kind = crate::routes::Named::Automation;
        return Err(crate::routes::clashed(&tx, kind, caller.tenant, name).await);
    }
    let detail = json!({"template": input.template, "connection_id": input.connection_id});
    let target = Target { id: id.0, name };
    audit::record(&tx, &caller, Action::AutomationCreated, target, detail).await?;
    let created = fetch(&tx, caller.tenant, id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, created))
}

const SELECT: &str = "SELECT a.id, a.name, a.description, a.app || '.' || a.action, a.connection_id, a.status, \
    a.parameters, a.created_at, a.updated_at, v.id, v.number, v.name, v.published_at, a.retry, a.external_id_field, \
    a.app, a.action, (SELECT count(*) FROM deployables d WHERE d.automation_id = a.id), a.revision \
    FROM automations a LEFT JOIN automation_versions v ON v.id = a.published_version_id";

fn view(row: &tokio_postgres::Row) -> AutomationView {
    let version_id: Option<uuid::Uuid> = row.get(9);
    AutomationView {
        id: AutomationId(row.get(0)),
        name: row.get(1),
        description: row.get(2),
        template: row.get(3),
        connection_id: ConnectionId(row.get(4)),
        status: row.get(5),
        parameters: serde_json::from_value(row.get(6)).unwrap_or_default(),
        retry: row
            .get::<_, Option<serde_json::Value>>(13)
            .and_then(|v| serde_json::from_value(v).ok()),
        external_id_field: row.get(14),
        created_at: row.get(7),
        updated_at: row.get(8),
        deployables: row.get(17),
        revision: row.get(18),
        published_version: version_id.map(|id| VersionView {
            id: VersionId(id),
            number: row.get(10),
            name: row.get(11),
            published_at: row.get(12),
        }),
    }
}

/// The tenant's automation `id` as `client` sees it: a change reads it in its own transaction,
/// so that the revision it answers is the one it made, not a later change's committed between
/// (whose ETag, sent back with this change's values, would undo that change unseen).
async fn fetch(
    client: &impl deadpool_postgres::GenericClient,
    tenant: TenantId,
    id: AutomationId,
) -> Result<AutomationView, ApiError> {
    let row = client
        .query_opt(
            &format!("{SELECT} WHERE a.tenant_id = $1 AND a.id = $2"),
            &[&tenant.0, &id.0],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("automation"))?;
    Ok(view(&row))
}

/// `GET /v1/automations/{id}`.
pub async fn read(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<AutomationView, ApiError> {
    caller.require(READ)?;
    let client = state.pool.get().await?;
    fetch(&client, caller.tenant, parse_id(&id, "automation")?).await
}

/// `POST /v1/automations/{id}/publish`: freezes the draft into a new immutable version and
/// announces it — unless it would freeze into the live version's very definition: then nothing
/// is published, and the live version is answered (200). The event is confirmed by the broker
/// before the transaction commits, so a committed version always has its event; a rare event
/// for a version that then failed to commit is harmless, since workers resolve versions from
/// Postgres.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, automation = %id))]
pub async fn publish(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    if_match: IfMatch,
    OptionalJson(input): OptionalJson<PublishInput>,
) -> Result<(StatusCode, Json<VersionView>), ApiError> {
    caller.require(CONFIGURE)?;
    let id: AutomationId = parse_id(&id, "automation")?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let row = draft_row(&tx, caller.tenant, id, true).await?;
    if_match
        .check(&tx, caller.tenant, ("automation", id.0), row.get(7))
        .await?;
    let (definition, template) = definition_of(&state.catalog, &row)?;
    let def_json =
        serde_json::to_value(&definition).map_err(|e| ApiError::internal("definition", &e))?;
    let output =
        serde_json::to_value(&template.output).map_err(|e| ApiError::internal("output", &e))?;
    if let Some(live) = live::unchanged(&tx, id, (&def_json, &output)).await? {
        live::named_alike(id, &live, input.version_name.as_deref())?;
        return Ok((StatusCode::OK, Json(live)));
    }
    let (number, version_name) = next_version(&tx, id, input.version_name).await?;
    let version = VersionId::new();
    let published_at: DateTime<Utc> = tx
        .query_one(
            "INSERT INTO automation_versions (id, automation_id, tenant_id, number, name, definition, output, published_by) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8) RETURNING published_at",
            &[&version.0, &id.0, &caller.tenant.0, &number, &version_name, &def_json, &output, &caller.token_id],
        )
        .await?
        .get(0);
    tx.execute(
        "UPDATE automations SET published_version_id = $2, updated_at = now() WHERE id = $1",
        &[&id.0, &version.0],
    )
    .await?;
    let event = DefinitionPublishedV1 {
        version: aic_proto::MESSAGE_VERSION,
        tenant_id: caller.tenant,
        automation_id: id,
        version_id: version,
        version_number: number,
        version_name: version_name.clone(),
        published_at,
        definition,
    };
    let name: &str = row.get(6);
    go_live(
        &state,
        &tx,
        &caller,
        Action::AutomationPublished,
        name,
        &event,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(version = %version, number, "automation published");
    Ok((
        StatusCode::CREATED,
        Json(VersionView {
            id: version,
            number,
            name: version_name,
            published_at,
        }),
    ))
}

/// The tenant's automation `id` as its draft stands (`app, action, connection_id, parameters,
/// retry, external_id_field`, as [`definition_of`] reads it, then its `name` and `revision`); with
/// `lock`, its row locked until the transaction ends (two publishes, or a publish and an edit,
/// of one automation take turns).
async fn draft_row(
    client: &impl deadpool_postgres::GenericClient,
    tenant: aic_proto::TenantId,
    id: AutomationId,
    lock: bool,
) -> Result<tokio_postgres::Row, ApiError> {
    let sql = "SELECT app, action, connection_id, parameters, retry, external_id_field, name, \
               revision FROM automations WHERE tenant_id = $1 AND id = $2";
    let sql = if lock {
        format!("{sql} FOR UPDATE")
    } else {
        sql.to_string()
    };
    client
        .query_opt(&sql, &[&tenant.0, &id.0])
        .await?
        .ok_or_else(|| ApiError::not_found("automation"))
}

/// The number of `automation`'s next version — one past every version it ever published, so
/// that a deleted version's number is never given again — and its name: `name` unless blank
/// (at most 200 characters), else `Version <number>`. The automation's row is locked.
async fn next_version(
    tx: &deadpool_postgres::Transaction<'_>,
    automation: AutomationId,
    name: Option<String>,
) -> Result<(i32, String), ApiError> {
    let name = match name.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => {
            Some(crate::routes::bounded_name("version_name", n)?.to_string())
        }
        _ => None,
    };
    let number: i32 = tx
        .query_one(
            "UPDATE automations SET versions_published = versions_published + 1 WHERE id = $1 \
             RETURNING versions_published",
            &[&automation.0],
        )
        .await?
        .get(0);
    let name = name.unwrap_or_else(|| format!("Version {number}"));
    Ok((number, name))
}

/// The definition a draft's row (`app, action, connection_id, parameters, retry,
/// external_id_field`) freezes into, with the template it is made from; refused when the
/// template was retired.
fn definition_of<'c>(
    catalog: &'c aic_core::catalog::Catalog,
    row: &tokio_postgres::Row,
) -> Result<(AutomationDefinition, &'c Template), ApiError> {
    let (app, action): (String, String) = (row.get(0), row.get(1));
    let template = catalog.template(&app, &action).ok_or_else(|| {
        ApiError::conflict(
            "template_retired",
            format!("template '{app}.{action}' no longer exists"),
        )
    })?;
    let definition = AutomationDefinition {
        app,
        action,
        connection_id: ConnectionId(row.get(2)),
        method: template.method,
        path: template.path.clone(),
        parameters: serde_json::from_value(row.get(3))
            .map_err(|e| ApiError::internal("stored parameters", &e))?,
        dedupe: match row.get::<_, Option<String>>(5) {
            Some(field) => Some(aic_proto::Dedupe::SalesforceExternalId { field }),
            None => template.dedupe.clone(),
        },
        retry: row
            .get::<_, Option<serde_json::Value>>(4)
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| ApiError::internal("stored retry policy", &e))?,
    };
    Ok((definition, template))
}
