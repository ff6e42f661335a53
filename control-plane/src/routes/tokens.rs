//! API tokens, managed by the tenant's admins: issue one for a person or a flow (shown once,
//! stored as a hash), list them with when each was last used, and revoke one — at once: every
//! request looks its token up. The tenant's last working admin token cannot be revoked, which
//! would lock the tenant out of its own configuration.

use crate::audit::{self, Action, Target};
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::{checked_name, one_of, parse_id};
use crate::state::AppState;
use crate::tenants::{NewToken, insert_token};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

/// Body of `POST /v1/tokens`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueToken {
    /// Who or what holds it, e.g. `onboarding flow` (1 to 200 characters).
    #[schemars(length(min = 1, max = 200), pattern(r"\S"))]
    pub name: String,
    /// `admin`, `editor`, `viewer` or `service` (runs automations only: flows and bots).
    #[schemars(extend("enum" = ROLES))]
    pub role: String,
    /// When it stops working by itself (RFC 3339, in the future); never when absent.
    #[serde(default, deserialize_with = "crate::routes::time_option")]
    pub expires_at: Option<DateTime<Utc>>,
    /// For a `service` token: the only automations it may run (and read the executions and
    /// register the deployables of), e.g. a bot's three; every automation of the tenant when
    /// absent. Least privilege: a token that leaks runs these alone.
    pub automations: Option<Vec<aic_proto::AutomationId>>,
}

/// A token as the API shows it: never the token itself, which only its issuance answers.
#[derive(Serialize, JsonSchema)]
pub struct TokenView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Role.
    pub role: String,
    /// `active`, `expired` or `revoked`.
    pub status: String,
    /// Issued at.
    pub created_at: DateTime<Utc>,
    /// The name of the token that issued it (absent when issued from the command line).
    pub created_by: Option<String>,
    /// When it stops working by itself.
    pub expires_at: Option<DateTime<Utc>>,
    /// When a request last used it (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked…
    pub revoked_at: Option<DateTime<Utc>>,
    /// …and by which token.
    pub revoked_by: Option<String>,
    /// The automations it is limited to (absent: every automation of the tenant); an automation
    /// deleted leaves the list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automations: Option<Vec<Uuid>>,
}

/// Answer of `POST /v1/tokens`: the token, shown this once.
#[derive(Serialize, JsonSchema)]
pub struct IssuedTokenView {
    /// The token as listed.
    #[serde(flatten)]
    pub view: TokenView,
    /// The bearer token: store it now, it cannot be read again.
    pub token: String,
}

/// Answer of `GET /v1/me`: who the caller's token is.
#[derive(Serialize, JsonSchema)]
pub struct Me {
    /// The tenant.
    pub tenant_id: aic_proto::TenantId,
    /// Its name.
    pub tenant_name: String,
    /// The token making the call (its role says what it may do).
    pub token: TokenView,
}

/// Filters of `GET /v1/tokens`.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    /// `admin`, `editor`, `viewer` or `service`.
    pub role: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub status: Option<String>,
}

pub(crate) const ROLES: [&str; 4] = ["admin", "editor", "viewer", "service"];
pub(crate) const STATUSES: [&str; 3] = ["active", "expired", "revoked"];

const SELECT: &str = "SELECT t.id, t.name, t.role, t.created_at, c.name AS creator, \
    t.expires_at, t.last_used_at, t.revoked_at, r.name AS revoker, \
    CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked' \
    WHEN t.expires_at <= now() THEN 'expired' ELSE 'active' END AS status, \
    CASE WHEN t.scoped THEN ARRAY(SELECT s.automation_id FROM api_token_automations s \
    WHERE s.token_id = t.id ORDER BY s.automation_id) END AS automations \
    FROM api_tokens t LEFT JOIN api_tokens c ON c.id = t.created_by \
    LEFT JOIN api_tokens r ON r.id = t.revoked_by";

fn view(row: &tokio_postgres::Row) -> TokenView {
    TokenView {
        id: row.get(0),
        name: row.get(1),
        role: row.get(2),
        created_at: row.get(3),
        created_by: row.get(4),
        expires_at: row.get(5),
        last_used_at: row.get(6),
        revoked_at: row.get(7),
        revoked_by: row.get(8),
        status: row.get(9),
        automations: row.get(10),
    }
}

/// `POST /v1/tokens` (admin).
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant))]
pub async fn issue(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<IssueToken>,
) -> Result<(StatusCode, Json<IssuedTokenView>), ApiError> {
    caller.require(&[Role::Admin])?;
    let name = checked_name(&input.name)?;
    let role = Role::parse(&input.role).ok_or_else(|| {
        ApiError::invalid(
            "role",
            format!("role '{}' is not one of {}", input.role, ROLES.join(", ")),
        )
    })?;
    if input.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ApiError::invalid(
            "expires_at",
            "expires_at must be in the future",
        ));
    }
    let scope = checked_scope(role, input.automations.as_deref())?;
    let new = NewToken {
        tenant: caller.tenant,
        role,
        name,
        created_by: Some(caller.token_id),
        expires_at: input.expires_at,
        scope: scope.as_deref(),
    };
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let (id, token) = insert_token(&tx, &new).await?.map_err(|missing| {
        ApiError::invalid("automations", format!("there is no automation {missing}"))
    })?;
    audit::record(
        &tx,
        &caller,
        Action::TokenIssued,
        Target { id, name },
        new.issued_detail(),
    )
    .await?;
    let row = tx
        .query_one(&format!("{SELECT} WHERE t.id = $1"), &[&id])
        .await?;
    tx.commit().await?;
    tracing::info!(token = %id, role = %role, "token issued");
    Ok((
        StatusCode::CREATED,
        Json(IssuedTokenView {
            view: view(&row),
            token,
        }),
    ))
}

/// The automations a token to issue is limited to, deduplicated: only a `service` token is,
/// and to at least one (an empty list would be a token that can do nothing).
fn checked_scope(
    role: Role,
    automations: Option<&[aic_proto::AutomationId]>,
) -> Result<Option<Vec<Uuid>>, ApiError> {
    let Some(automations) = automations else {
        return Ok(None);
    };
    if role != Role::Service {
        return Err(ApiError::invalid(
            "automations",
            format!(
                "only a service token is limited to automations; a {role} token reaches every one"
            ),
        ));
    }
    let ids = crate::tenants::distinct(automations.iter().map(|a| a.0));
    if ids.is_empty() {
        return Err(ApiError::invalid(
            "automations",
            "name at least one automation, or leave `automations` out for every one",
        ));
    }
    Ok(Some(ids))
}

/// `GET /v1/me` (any role): the caller's own token and tenant — what a client (the console, a
/// flow) reads to know what it may do.
pub async fn me(caller: Caller, State(state): State<AppState>) -> Result<Json<Me>, ApiError> {
    // The token's view (its first eleven columns) and the tenant's name, in one round trip.
    let row = state
        .pool
        .get()
        .await?
        .query_one(
            &format!(
                "SELECT v.*, (SELECT name FROM tenants WHERE id = $2) \
                 FROM ({SELECT} WHERE t.id = $1) v"
            ),
            &[&caller.token_id, &caller.tenant.0],
        )
        .await?;
    Ok(Json(Me {
        tenant_id: caller.tenant,
        tenant_name: row.get(11),
        token: view(&row),
    }))
}

/// `GET /v1/tokens?role=&status=` (admin): newest first.
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<TokenQuery>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    caller.require(&[Role::Admin])?;
    one_of("role", q.role.as_deref(), &ROLES)?;
    one_of("status", q.status.as_deref(), &STATUSES)?;
    let client = state.pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT * FROM ({SELECT} WHERE t.tenant_id = $1 \
                 AND ($2::text IS NULL OR t.role = $2)) v \
                 WHERE ($3::text IS NULL OR v.status = $3) ORDER BY v.created_at DESC, v.id DESC"
            ),
            &[&caller.tenant.0, &q.role, &q.status],
        )
        .await?;
    Ok(Json(rows.iter().map(view).collect()))
}

/// `DELETE /v1/tokens/{id}` (admin): revokes it at once; revoking a revoked token changes
/// nothing. Refused (409 `last_admin`) for the tenant's last working admin token.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, token = %id))]
pub async fn revoke(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Admin])?;
    let id: Uuid = parse_id(&id, "token")?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    // Every working admin token of the tenant, locked: two admins revoking each other at once
    // take turns, and the second sees the first's revocation.
    let admins: Vec<Uuid> = tx
        .query(
            "SELECT id FROM api_tokens WHERE tenant_id = $1 AND role = 'admin' \
             AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) FOR UPDATE",
            &[&caller.tenant.0],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let row = tx
        .query_opt(
            "SELECT name, revoked_at IS NOT NULL FROM api_tokens \
             WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
            &[&caller.tenant.0, &id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("token"))?;
    let (name, revoked): (String, bool) = (row.get(0), row.get(1));
    if revoked {
        return Ok(StatusCode::NO_CONTENT);
    }
    if admins == [id] {
        return Err(ApiError::conflict(
            "last_admin",
            format!(
                "'{name}' is the tenant's last working admin token; issue another admin token first"
            ),
        ));
    }
    tx.execute(
        "UPDATE api_tokens SET revoked_at = now(), revoked_by = $2 WHERE id = $1",
        &[&id, &caller.token_id],
    )
    .await?;
    let target = Target { id, name: &name };
    audit::record(&tx, &caller, Action::TokenRevoked, target, json!({})).await?;
    tx.commit().await?;
    tracing::info!("token revoked");
    Ok(StatusCode::NO_CONTENT)
}
