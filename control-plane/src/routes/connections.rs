//! Connections: create (secrets sealed, write-only), list, read, and test against the vendor.

use super::parse_id;
use crate::audit::{self, Action, Target};
use crate::auth::{CONFIGURE, Caller, READ};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;
use aic_proto::{ConnectionId, TenantId};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
pub(crate) use checks::Validated;
use checks::{check_dns, check_given, validate};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use uuid::Uuid;

mod checks;
mod cooling;
pub mod edit;
pub mod listing;
mod slot;
mod testing;

use cooling::not_held;
pub(crate) use cooling::{after_refusal, clear as clear_cooldowns};
pub(crate) use slot::clear_to_call;
pub(crate) use testing::{Opened, credential, saved};
pub use testing::{TestOutcome, test_saved, test_unsaved};

/// Body of `POST /v1/connections` and `POST /v1/connection-tests`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionInput {
    /// Unique name within the tenant (1 to 200 characters).
    #[schemars(length(min = 1, max = 200), pattern(r"\S"))]
    pub name: String,
    /// Catalogue app id, e.g. `salesforce`.
    #[schemars(length(min = 1))]
    pub app: String,
    /// Instance base URL or host, e.g. `https://acme.my.salesforce.com`.
    #[schemars(length(min = 1))]
    pub domain: String,
    /// One of the app's auth types, e.g. `oauth2_client_credentials`.
    pub auth_type: String,
    /// Secret fields of that auth type (see `GET /v1/apps`). Write-only: never returned, never
    /// logged.
    #[schemars(with = "BTreeMap<String, String>")]
    pub secrets: BTreeMap<String, SecretString>,
    /// The most vendor calls in flight at once on this connection, over all workers (1 to
    /// 10,000; default: the workers' `AIC_WORKER_CONNECTION_CONCURRENCY`).
    #[schemars(range(min = 1, max = 10_000))]
    #[serde(default, deserialize_with = "aic_proto::whole::option")]
    pub max_concurrency: Option<i32>,
}

/// A cool-down on a part of a connection.
#[derive(Serialize, JsonSchema)]
pub struct ScopedCooldown {
    /// What it holds, as `field:value` of the request (`channel:C0123`).
    pub scope: String,
    /// Until when.
    pub until: DateTime<Utc>,
    /// Why.
    pub reason: String,
}

/// A connection as the API shows it: secrets are never included, only which fields are set.
#[derive(Serialize, JsonSchema)]
pub struct ConnectionView {
    /// Id.
    pub id: ConnectionId,
    /// Name.
    pub name: String,
    /// App.
    pub app: String,
    /// Instance base URL.
    pub domain: String,
    /// Auth type.
    pub auth_type: String,
    /// `untested`, `connected`, `failing` or `needs_reauthorization`.
    pub status: String,
    /// Why, when not connected.
    pub status_detail: Option<String>,
    /// When the status was last checked.
    pub status_checked_at: Option<DateTime<Utc>>,
    /// The connection's own concurrency cap, if set.
    pub max_concurrency: Option<i32>,
    /// While the vendor's rate limit or quota holds calls back: until when…
    pub throttled_until: Option<DateTime<Utc>>,
    /// …and why.
    pub throttle_reason: Option<String>,
    /// Cool-downs in force on parts of the connection: where the vendor rate-limits per value
    /// of a request field (Slack: per channel), only the calls with that value are held.
    pub cooldowns: Vec<ScopedCooldown>,
    /// While the vendor keeps refusing the credentials, executions fail fast until then (a
    /// passing connection test closes the breaker).
    pub breaker_open_until: Option<DateTime<Utc>>,
    /// Names of the secret fields stored (values are write-only).
    pub secret_fields: Vec<String>,
    /// Token that created it.
    pub created_by: Option<Uuid>,
    /// The name of the token that created it (absent once that token is deleted).
    pub creator: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Automations running on it: by their draft or their live version (what keeps it from
    /// being deleted).
    pub automations: i64,
    /// Flows, bot steps and launchers running those automations (the tile's count of items
    /// using the connection).
    pub deployables: i64,
    /// One more with every change to what is configured (name, domain, auth type, cap, a new
    /// version of the secrets; not the status, cool-downs or breaker): answered as the `ETag`;
    /// send it back as `If-Match: "<revision>"` to change the connection only as it was read.
    pub revision: i64,
}

/// A connection is answered with its revision as its `ETag`.
impl axum::response::IntoResponse for ConnectionView {
    fn into_response(self) -> axum::response::Response {
        crate::precondition::tagged(self.revision, Json(self))
    }
}

use aic_core::credentials::connection_aad as aad;

/// `POST /v1/connections`: validates, seals the secrets and saves.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, app = %input.app))]
pub async fn create(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<ConnectionInput>,
) -> Result<(StatusCode, ConnectionView), ApiError> {
    caller.require(CONFIGURE)?;
    let v = validate(&state, &input)?;
    check_given(&input.secrets)?;
    check_dns(&state, &v.instance).await?;
    let id = ConnectionId::new();
    let sealed = state.keyring.seal(&v.secrets, &aad(caller.tenant, id));
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let inserted = tx
        .execute(
            "INSERT INTO connections (id, tenant_id, name, app, domain, auth_type, secret_key_id, \
             secret_nonce, secret_ciphertext, created_by, max_concurrency) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) \
             ON CONFLICT (tenant_id, name_key(name)) DO NOTHING",
            &[
                &id.0,
                &caller.tenant.0,
                &input.name.trim(),
                &input.app,
                &v.instance.as_str().trim_end_matches('/'),
                &input.auth_type,
                &sealed.key_id,
                &sealed.nonce,
                &sealed.ciphertext,
                &caller.token_id,
                &input.max_concurrency,
            ],
        )
        .await?;
    if inserted == 0 {
        let (kind, name) = (crate::routes::Named::Connection, input.name.trim());
        return Err(crate::routes::clashed(&tx, kind, caller.tenant, name).await);
    }
    let detail = json!({"app": input.app, "auth_type": input.auth_type,
        "domain": v.instance.as_str().trim_end_matches('/'),
        "max_concurrency": input.max_concurrency, "secret_fields": input.secrets.keys().collect::<Vec<_>>()});
    let target = Target {
        id: id.0,
        name: input.name.trim(),
    };
    audit::record(&tx, &caller, Action::ConnectionCreated, target, detail).await?;
    let created = fetch(&state, &tx, caller.tenant, id).await?;
    tx.commit().await?;
    tracing::info!(connection = %id, "connection created");
    Ok((StatusCode::CREATED, created))
}

const SELECT: &str = "SELECT c.id, c.name, c.app, c.domain, c.auth_type, c.status, c.status_detail, \
    c.status_checked_at, c.created_by, c.created_at, \
    (SELECT count(*) FROM automations a LEFT JOIN automation_versions v ON v.id = a.published_version_id \
       WHERE a.tenant_id = c.tenant_id \
         AND (a.connection_id = c.id OR (v.definition->>'connection_id')::uuid = c.id)), c.max_concurrency, \
    CASE WHEN c.throttled_until > now() THEN c.throttled_until END, \
    CASE WHEN c.throttled_until > now() THEN c.throttle_reason END, \
    CASE WHEN c.breaker_open_until > now() THEN c.breaker_open_until END, \
    (SELECT coalesce(jsonb_agg(jsonb_build_object('scope', d.scope, 'until', d.until, 'reason', d.reason) \
       ORDER BY d.until DESC), '[]') FROM (SELECT x.scope, x.until, x.reason FROM connection_cooldowns x \
       WHERE x.connection_id = c.id AND x.until > now() ORDER BY x.until DESC LIMIT 100) d), \
    (SELECT t.name FROM api_tokens t WHERE t.id = c.created_by), \
    (SELECT count(*) FROM deployables d JOIN automations a ON a.id = d.automation_id \
       LEFT JOIN automation_versions v ON v.id = a.published_version_id \
       WHERE d.tenant_id = c.tenant_id \
         AND (a.connection_id = c.id OR (v.definition->>'connection_id')::uuid = c.id)), c.revision \
    FROM connections c";

fn view(state: &AppState, row: &tokio_postgres::Row) -> ConnectionView {
    let app: String = row.get(2);
    let auth_type: String = row.get(4);
    let secret_fields = state
        .catalog
        .app(&app)
        .and_then(|a| a.auth_types.iter().find(|t| t.id == auth_type))
        .map(|t| t.secret_fields.clone())
        .unwrap_or_default();
    ConnectionView {
        id: ConnectionId(row.get(0)),
        name: row.get(1),
        app,
        domain: row.get(3),
        auth_type,
        status: row.get(5),
        status_detail: row.get(6),
        status_checked_at: row.get(7),
        secret_fields,
        created_by: row.get(8),
        created_at: row.get(9),
        automations: row.get(10),
        max_concurrency: row.get(11),
        throttled_until: row.get(12),
        throttle_reason: row.get(13),
        breaker_open_until: row.get(14),
        cooldowns: scoped_cooldowns(row.get(15)),
        creator: row.get(16),
        deployables: row.get(17),
        revision: row.get(18),
    }
}

/// The cool-downs column as JSON (`jsonb_agg` of scope, until, reason); a row that does not
/// read is left out rather than failing the whole view.
fn scoped_cooldowns(v: serde_json::Value) -> Vec<ScopedCooldown> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some(ScopedCooldown {
                scope: c["scope"].as_str()?.to_string(),
                until: c["until"].as_str()?.parse().ok()?,
                reason: c["reason"].as_str()?.to_string(),
            })
        })
        .collect()
}

/// The tenant's connection `id` as `client` sees it; a change reads it in its own transaction,
/// for the revision it made (see `automations::fetch`).
async fn fetch(
    state: &AppState,
    client: &impl deadpool_postgres::GenericClient,
    tenant: TenantId,
    id: ConnectionId,
) -> Result<ConnectionView, ApiError> {
    let row = client
        .query_opt(
            &format!("{SELECT} WHERE c.tenant_id = $1 AND c.id = $2"),
            &[&tenant.0, &id.0],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))?;
    Ok(view(state, &row))
}

/// `GET /v1/connections/{id}`.
pub async fn read(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<ConnectionView, ApiError> {
    caller.require(READ)?;
    let client = state.pool.get().await?;
    fetch(&state, &client, caller.tenant, parse_id(&id, "connection")?).await
}
