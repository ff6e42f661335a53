//! Testing a connection against its vendor, saved or not, and what a call on a saved one
//! needs: its secrets opened and a credential for it.

use super::{
    ConnectionInput, Validated, aad, after_refusal, check_dns, check_given, clear_to_call, validate,
};
use crate::audit::{self, Action, Target};
use crate::auth::{CONFIGURE, Caller};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::routes::parse_id;
use crate::state::AppState;
use aic_core::vendor::{self, ConnectionTarget, Vendor};
use aic_proto::{ConnectionId, TenantId};
use axum::Json;
use axum::extract::{Path, State};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

/// Result of a connection test.
#[derive(Serialize, JsonSchema)]
pub struct TestOutcome {
    /// True when the vendor accepted the credentials and the identity call.
    pub ok: bool,
    /// The connection status this implies.
    pub status: String,
    /// A plain sentence: what worked or what the vendor said.
    pub message: String,
    /// The vendor's own error code, e.g. `invalid_client`.
    pub vendor_code: Option<String>,
}

/// A credential for the connection `v`: a saved connection (`saved` names it) whose grant
/// rotates its refresh token refreshes through the fleet-wide lock and stores the rotated token.
pub(crate) async fn credential(
    state: &AppState,
    v: &Validated,
    auth_type: &str,
    saved: Option<(TenantId, ConnectionId)>,
) -> Result<vendor::AccessToken, vendor::VendorFailure> {
    match saved {
        Some((tenant, connection)) if v.vendor.rotates_refresh_token(auth_type) => {
            let c = vendor::rotation::Rotating {
                vendor: v.vendor,
                instance: &v.instance,
                auth_type,
                tenant,
                connection,
            };
            vendor::rotation::refresh(&state.pool, &state.keyring, &state.http, &state.egress, &c)
                .await
        }
        _ => {
            let target = ConnectionTarget {
                vendor: v.vendor,
                instance: &v.instance,
                auth_type,
                secrets: &v.secrets,
            };
            vendor::authenticate(&state.http, &state.egress, &target).await
        }
    }
}

/// Tests credentials. A saved connection whose grant rotates its refresh token refreshes
/// through the fleet-wide lock and stores the rotated token (`saved` names it and its domain).
async fn run_test(
    state: &AppState,
    v: &Validated,
    auth_type: &str,
    saved: Option<(TenantId, ConnectionId, &str)>,
) -> TestOutcome {
    let result = async {
        let owner = saved.map(|(tenant, connection, _)| (tenant, connection));
        let token = credential(state, v, auth_type, owner).await?;
        vendor::test_connection(&state.http, &state.egress, v.vendor, &token).await
    }
    .await;
    if let (Err(f), Some((_, connection, domain))) = (&result, saved) {
        after_refusal(state, (connection, domain), None, f).await;
    }
    match result {
        Ok(()) => TestOutcome {
            ok: true,
            status: "connected".into(),
            message: "the vendor accepted the credentials".into(),
            vendor_code: None,
        },
        Err(f) => TestOutcome {
            ok: false,
            status: "failing".into(),
            message: f.message,
            vendor_code: f.vendor.map(|v| v.code),
        },
    }
}

/// `POST /v1/connection-tests`: tests credentials before saving them.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, app = %input.app))]
pub async fn test_unsaved(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<ConnectionInput>,
) -> Result<Json<TestOutcome>, ApiError> {
    caller.require(CONFIGURE)?;
    let v = validate(&state, &input)?;
    check_given(&input.secrets)?;
    check_dns(&state, &v.instance).await?;
    if v.vendor.rotates_refresh_token(&input.auth_type) {
        // Testing would spend the refresh token with nowhere to keep its successor.
        return Err(ApiError::invalid(
            "auth_type",
            format!(
                "auth type '{}' rotates its refresh token on every use: save the connection, then test it",
                input.auth_type
            ),
        ));
    }
    Ok(Json(run_test(&state, &v, &input.auth_type, None).await))
}

/// A saved connection as a call needs it.
pub(crate) struct Opened {
    /// Its connector, instance and secrets, opened.
    pub checked: Validated,
    /// Its auth type.
    pub auth_type: String,
    /// The version of the secrets opened (one more with each re-authorisation).
    pub secret_version: i32,
    /// Its domain as saved, whence the instance (a cool-down the vendor asks for holds the
    /// connection while it stays there).
    pub domain: String,
}

/// A saved connection as a call needs it, secrets opened.
pub(crate) async fn saved(
    state: &AppState,
    client: &deadpool_postgres::Client,
    tenant: TenantId,
    id: ConnectionId,
) -> Result<Opened, ApiError> {
    let row = client
        .query_opt(
            "SELECT app, domain, auth_type, secret_key_id, secret_nonce, secret_ciphertext, \
             secret_version FROM connections WHERE tenant_id = $1 AND id = $2",
            &[&tenant.0, &id.0],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))?;
    let app: String = row.get(0);
    let sealed = aic_core::credentials::Sealed {
        key_id: row.get(3),
        nonce: row.get(4),
        ciphertext: row.get(5),
    };
    let secrets = state
        .keyring
        .open(&sealed, &aad(tenant, id))
        .map_err(|e| ApiError::internal("opening connection secrets", &e))?;
    let vendor = Vendor::for_app(&app).ok_or_else(|| ApiError::internal("connector", &app))?;
    let patterns = state
        .catalog
        .app(&app)
        .map(|a| a.host_patterns.clone())
        .unwrap_or_default();
    let domain: String = row.get(1);
    let instance = state
        .egress
        .app_instance_url(&domain, &patterns)
        .map_err(|e| ApiError::invalid("domain", e.to_string()))?;
    Ok(Opened {
        checked: Validated {
            vendor,
            instance,
            secrets,
        },
        auth_type: row.get(2),
        secret_version: row.get(6),
        domain,
    })
}

/// `POST /v1/connections/{id}/test`: tests a saved connection and records its status.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, connection = %id))]
pub async fn test_saved(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TestOutcome>, ApiError> {
    caller.require(CONFIGURE)?;
    let id: ConnectionId = parse_id(&id, "connection")?;
    let client = state.pool.get().await?;
    let saved = saved(&state, &client, caller.tenant, id).await?;
    let slot = clear_to_call(&state, client, id, None).await?;
    let outcome = run_test(
        &state,
        &saved.checked,
        &saved.auth_type,
        Some((caller.tenant, id, &saved.domain)),
    )
    .await;
    drop(slot);
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let name = tx
        .query_opt(
            "UPDATE connections SET status = $3, status_detail = $4, status_checked_at = now(), \
             auth_failures = CASE WHEN $3 = 'connected' THEN 0 ELSE auth_failures END, \
             breaker_open_until = CASE WHEN $3 = 'connected' THEN NULL ELSE breaker_open_until END \
             WHERE tenant_id = $1 AND id = $2 AND secret_version = $5 RETURNING name",
            &[
                &caller.tenant.0,
                &id.0,
                &outcome.status,
                &(!outcome.ok).then_some(&outcome.message),
                &saved.secret_version,
            ],
        )
        .await?;
    let Some(name) = name else {
        return Err(unrecorded(&tx, caller.tenant, id).await);
    };
    let target = Target {
        id: id.0,
        name: name.get(0),
    };
    let detail = json!({"ok": outcome.ok, "status": outcome.status});
    audit::record(&tx, &caller, Action::ConnectionTested, target, detail).await?;
    tx.commit().await?;
    Ok(Json(outcome))
}

/// Why a test's outcome was not recorded: the connection was deleted while the vendor
/// answered (404), or re-authorised (409 `connection_reauthorised`: the outcome is of the
/// credentials replaced, and says nothing of the new ones).
async fn unrecorded(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: TenantId,
    id: ConnectionId,
) -> ApiError {
    let there = tx
        .query_opt(
            "SELECT 1 FROM connections WHERE tenant_id = $1 AND id = $2",
            &[&tenant.0, &id.0],
        )
        .await;
    match there {
        Ok(Some(_)) => ApiError::conflict(
            "connection_reauthorised",
            "the connection was re-authorised while it was tested: the outcome was of the \
             credentials replaced; test it again",
        ),
        Ok(None) => ApiError::not_found("connection"),
        Err(e) => e.into(),
    }
}
