//! Deployables: the digital-adoption items — flows, ActionBot steps, launchers — that run an
//! automation, registered by the platform that deploys them (a service token will do) and
//! listed for admins with a link to each, by automation, connection or system. Registering
//! an item again (same system and id) updates it; an automation that items use cannot be
//! deleted until they are removed.

use crate::audit::{self, Action, Target};
use crate::auth::{ANY, Caller, EXECUTE};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::{bounded_name, checked_name, found_in, one_of, parse_id};
use crate::state::AppState;
use aic_proto::{AutomationId, ConnectionId};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

/// Body of `POST /v1/deployables`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterDeployable {
    /// The published automation the item runs.
    pub automation_id: AutomationId,
    /// `flow`, `bot_step`, `launcher` or `other`.
    #[schemars(extend("enum" = KINDS))]
    pub kind: String,
    /// The system (the platform's app or environment) the item lives in, e.g. `Salesforce
    /// Lightning — production`.
    #[schemars(length(min = 1, max = 200), pattern(r"\S"))]
    pub system: String,
    /// The platform's own id of the item, unique within its system: registering it again
    /// updates it.
    #[schemars(length(min = 1, max = 200), pattern(r"\S"))]
    pub external_id: String,
    /// The item's name, e.g. `Onboarding: create the first lead`.
    #[schemars(length(min = 1, max = 200), pattern(r"\S"))]
    pub name: String,
    /// Where to open it (`https://…`, at most 2,000 characters, no `user@` in it).
    #[schemars(url, length(max = 2000))]
    pub link: String,
}

/// A deployable item.
#[derive(Serialize, JsonSchema)]
pub struct DeployableView {
    /// Id.
    pub id: Uuid,
    /// The automation it runs…
    pub automation_id: AutomationId,
    /// …and that automation's name.
    pub automation_name: String,
    /// `flow`, `bot_step`, `launcher` or `other`.
    pub kind: String,
    /// The system it lives in.
    pub system: String,
    /// The platform's id of it.
    pub external_id: String,
    /// Name.
    pub name: String,
    /// Where to open it.
    pub link: String,
    /// The name of the token that registered it.
    pub registered_by: Option<String>,
    /// First registered.
    pub created_at: DateTime<Utc>,
    /// Last registered with a change.
    pub updated_at: DateTime<Utc>,
}

/// Filters of `GET /v1/deployables`; each one given narrows the list.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct DeployableFilter {
    /// Items running this automation.
    pub automation_id: Option<AutomationId>,
    /// Items running an automation on this connection (by its draft or its live version).
    pub connection_id: Option<ConnectionId>,
    /// Items of this system.
    pub system: Option<String>,
    /// `flow`, `bot_step`, `launcher` or `other`.
    pub kind: Option<String>,
    /// Search text: name and system, case- and accent-insensitive.
    pub q: Option<String>,
}

pub(crate) const KINDS: [&str; 4] = ["flow", "bot_step", "launcher", "other"];

const SELECT: &str = "SELECT d.id, d.automation_id, a.name, d.kind, d.system, d.external_id, \
    d.name, d.link, (SELECT t.name FROM api_tokens t WHERE t.id = d.registered_by), \
    d.created_at, d.updated_at FROM deployables d JOIN automations a ON a.id = d.automation_id";

fn view(row: &tokio_postgres::Row) -> DeployableView {
    DeployableView {
        id: row.get(0),
        automation_id: AutomationId(row.get(1)),
        automation_name: row.get(2),
        kind: row.get(3),
        system: row.get(4),
        external_id: row.get(5),
        name: row.get(6),
        link: row.get(7),
        registered_by: row.get(8),
        created_at: row.get(9),
        updated_at: row.get(10),
    }
}

/// The registration's fields, trimmed and checked, each refusal naming its field.
fn checked(input: &RegisterDeployable) -> Result<[&str; 5], ApiError> {
    one_of("kind", Some(&input.kind), &KINDS)?;
    let link = input.link.trim();
    let parsed = url::Url::parse(link)
        .map_err(|e| ApiError::invalid("link", format!("link is not an absolute URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") || link.chars().count() > 2000 {
        return Err(ApiError::invalid(
            "link",
            "link must be an http(s) URL of at most 2,000 characters",
        ));
    }
    // Shown to everyone who reads the item: no password in it, and no user name either, by
    // which `https://walkme.example@elsewhere.example/` would pass for another host.
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ApiError::invalid(
            "link",
            "link must not carry a user name or password (user@host)",
        ));
    }
    Ok([
        input.kind.as_str(),
        bounded_name("system", &input.system)?,
        bounded_name("external_id", &input.external_id)?,
        checked_name(&input.name)?,
        link,
    ])
}

/// Refuses (422 naming `automation_id`) an automation the tenant does not have or has not
/// published: a flow can only run a live one. Its row is shared-locked, so that it is not
/// deleted before the registration commits.
async fn live(
    tx: &deadpool_postgres::Transaction<'_>,
    caller: &Caller,
    automation: AutomationId,
) -> Result<(), ApiError> {
    let row = tx
        .query_opt(
            "SELECT name, published_version_id IS NOT NULL FROM automations \
             WHERE tenant_id = $1 AND id = $2 FOR SHARE",
            &[&caller.tenant.0, &automation.0],
        )
        .await?;
    match row.map(|r| (r.get::<_, String>(0), r.get::<_, bool>(1))) {
        None => Err(ApiError::invalid(
            "automation_id",
            format!("there is no automation {automation}"),
        )),
        Some((name, false)) => Err(ApiError::invalid(
            "automation_id",
            format!("automation '{name}' has no live version: publish it first"),
        )),
        Some(_) => Ok(()),
    }
}

/// The condition on deployable `d` that its automation is one the caller's token reaches
/// ([`Caller::may_reach`]), the caller's `scoped` and token id being parameters `$scoped` and
/// `$token`.
fn reached(scoped: u8, token: u8) -> String {
    format!(
        "(NOT ${scoped} OR d.automation_id IN \
         (SELECT automation_id FROM api_token_automations WHERE token_id = ${token}))"
    )
}

/// `POST /v1/deployables` (admin, editor, service): registers an item, 201; registering it
/// again (same system and external id) updates it, 200.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, automation = %input.automation_id))]
pub async fn register(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<RegisterDeployable>,
) -> Result<(StatusCode, Json<DeployableView>), ApiError> {
    caller.require(EXECUTE)?;
    let [kind, system, external_id, name, link] = checked(&input)?;
    let automation = input.automation_id;
    let mut client = state.pool.get().await?;
    caller.may_reach(&client, automation.0).await?;
    let tx = client.transaction().await?;
    live(&tx, &caller, automation).await?;
    // Inserted, or updated when something differs; no row when nothing does.
    let written = tx
        .query_opt(
            "INSERT INTO deployables AS d (id, tenant_id, automation_id, kind, system, external_id, \
             name, link, registered_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (tenant_id, system, external_id) DO UPDATE SET \
             automation_id = EXCLUDED.automation_id, kind = EXCLUDED.kind, name = EXCLUDED.name, \
             link = EXCLUDED.link, registered_by = EXCLUDED.registered_by, updated_at = now() \
             WHERE (d.automation_id, d.kind, d.name, d.link) \
             IS DISTINCT FROM (EXCLUDED.automation_id, EXCLUDED.kind, EXCLUDED.name, EXCLUDED.link) \
             RETURNING d.id, d.id = $1",
            &[
                &Uuid::now_v7(),
                &caller.tenant.0,
                &automation.0,
                &kind,
                &system,
                &external_id,
                &name,
                &link,
                &caller.token_id,
            ],
        )
        .await?;
    let id: Uuid = match &written {
        Some(row) => row.get(0),
        None => tx
            .query_one(
                "SELECT id FROM deployables WHERE tenant_id = $1 AND system = $2 AND external_id = $3",
                &[&caller.tenant.0, &system, &external_id],
            )
            .await?
            .get(0),
    };
    let created = written.as_ref().is_some_and(|row| row.get(1));
    if written.is_some() {
        let action = match created {
            true => Action::DeployableRegistered,
            false => Action::DeployableUpdated,
        };
        let detail = json!({"automation_id": automation, "kind": kind, "system": system,
            "external_id": external_id, "link": link});
        audit::record(&tx, &caller, action, Target { id, name }, detail).await?;
    }
    let row = tx
        .query_one(&format!("{SELECT} WHERE d.id = $1"), &[&id])
        .await?;
    tx.commit().await?;
    let status = match created {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    Ok((status, Json(view(&row))))
}

/// `GET /v1/deployables?automation_id=&connection_id=&system=&kind=&q=` (any role): by system,
/// then name.
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    ApiQuery(filter): ApiQuery<DeployableFilter>,
) -> Result<Json<Vec<DeployableView>>, ApiError> {
    caller.require(ANY)?;
    one_of("kind", filter.kind.as_deref(), &KINDS)?;
    let client = state.pool.get().await?;
    let rows = client
        .query(
            &format!(
                "{SELECT} LEFT JOIN automation_versions v ON v.id = a.published_version_id \
                 WHERE d.tenant_id = $1 AND ($2::uuid IS NULL OR d.automation_id = $2) \
                 AND ($3::uuid IS NULL OR a.connection_id = $3 \
                      OR (v.definition->>'connection_id')::uuid = $3) \
                 AND ($4::text IS NULL OR d.system = $4) AND ($5::text IS NULL OR d.kind = $5) \
                 AND {} ORDER BY d.system, d.name, d.id",
                reached(6, 7)
            ),
            &[
                &caller.tenant.0,
                &filter.automation_id.map(|a| a.0),
                &filter.connection_id.map(|c| c.0),
                &filter.system,
                &filter.kind,
                &caller.scoped,
                &caller.token_id,
            ],
        )
        .await?;
    let needle = filter.q.as_deref().map(aic_core::catalog::fold);
    Ok(Json(
        rows.iter()
            .filter(|row| found_in(needle.as_deref(), &[row.get(6), row.get(4)]))
            .map(view)
            .collect(),
    ))
}

/// `DELETE /v1/deployables/{id}` (admin, editor, service): the item no longer runs the
/// automation (its flow was unpublished or deleted).
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, deployable = %id))]
pub async fn remove(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(EXECUTE)?;
    let id: Uuid = parse_id(&id, "deployable")?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            &format!(
                "DELETE FROM deployables d WHERE tenant_id = $1 AND id = $2 AND {} \
                 RETURNING name, automation_id, system, external_id",
                reached(3, 4)
            ),
            &[&caller.tenant.0, &id, &caller.scoped, &caller.token_id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("deployable"))?;
    let detail = json!({"automation_id": row.get::<_, Uuid>(1), "system": row.get::<_, &str>(2),
        "external_id": row.get::<_, &str>(3)});
    let target = Target {
        id,
        name: row.get(0),
    };
    audit::record(&tx, &caller, Action::DeployableRemoved, target, detail).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
