//! A connection after its creation: rename it, re-authorise it (new secrets, another auth type
//! or domain), change its cap, or delete it once nothing runs on it.
//!
//! New credentials are a new version of the secrets: sealed again, `secret_version` moved on
//! (so that no worker keeps using a token of the old ones), and the connection starts over as
//! `untested`, its failure count and auth breaker cleared — the way out of
//! `needs_reauthorization`, whose executions fail fast until then. Moved to another domain
//! (another org, site or instance), it also ends the cool-downs the former asked for, as
//! `DELETE …/cooldowns` would: that instance's limits are not the new one's. A refusal still
//! under way from the former is not recorded after the move (see [`aic_core::cooldown::record`]).

use super::checks::{check_dns, check_given, resolved_early, validate_given};
use super::cooling::end_all;
use super::{ConnectionInput, ConnectionView, aad, fetch};
use crate::audit::{self, Action, Target};
use crate::auth::{CONFIGURE, Caller};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::precondition::IfMatch;
use crate::routes::{in_use, parse_id};
use crate::state::AppState;
use aic_proto::{ConnectionId, TenantId};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

/// Body of `PATCH /v1/connections/{id}`: each field present is changed, the others are kept.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConnection {
    /// New unique name within the tenant.
    #[serde(default, deserialize_with = "crate::routes::not_null")]
    #[schemars(with = "String", length(min = 1, max = 200), pattern(r"\S"))]
    pub name: Option<String>,
    /// New instance base URL or host: a re-authorisation, which also ends the cool-downs the
    /// former instance asked for.
    #[serde(default, deserialize_with = "crate::routes::not_null")]
    #[schemars(with = "String")]
    pub domain: Option<String>,
    /// Another of the app's auth types; needs `secrets` for it.
    #[serde(default, deserialize_with = "crate::routes::not_null")]
    #[schemars(with = "String")]
    pub auth_type: Option<String>,
    /// Secret fields to change, write-only: each replaces the saved field of its name and the
    /// others stay (they cannot be read back to be sent again). With another auth type, its
    /// whole set.
    #[serde(default, deserialize_with = "crate::routes::not_null")]
    #[schemars(with = "BTreeMap<String, String>")]
    pub secrets: Option<BTreeMap<String, SecretString>>,
    /// The cap on vendor calls in flight over all workers (1 to 10,000); `null` returns to the
    /// workers' default.
    #[serde(default, deserialize_with = "crate::routes::present_whole")]
    #[schemars(with = "Option<i32>")]
    pub max_concurrency: Option<Option<i32>>,
}

/// The saved connection, locked for the edit.
struct Saved {
    name: String,
    app: String,
    domain: String,
    auth_type: String,
    sealed: aic_core::credentials::Sealed,
    max_concurrency: Option<i32>,
    revision: i64,
}

/// `PATCH /v1/connections/{id}`.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, connection = %id))]
pub async fn update(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    if_match: IfMatch,
    ApiJson(input): ApiJson<UpdateConnection>,
) -> Result<ConnectionView, ApiError> {
    caller.require(CONFIGURE)?;
    let id: ConnectionId = parse_id(&id, "connection")?;
    let new_secrets = input.secrets.is_some();
    let early = resolved_early(
        &state,
        (caller.tenant, id),
        input.domain.as_deref(),
        new_secrets,
    )
    .await?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let saved = locked(&tx, caller.tenant, id).await?;
    let at = ("connection", id.0);
    if_match
        .check(&tx, caller.tenant, at, saved.revision)
        .await?;
    let new_auth_type = input
        .auth_type
        .as_ref()
        .is_some_and(|a| *a != saved.auth_type);
    if new_auth_type && input.secrets.is_none() {
        return Err(ApiError::invalid(
            "secrets",
            "a new auth type needs its secret fields",
        ));
    }
    let reauthorised =
        input.secrets.is_some() || input.domain.as_deref().is_some_and(|d| d != saved.domain);
    let secret_fields: Option<Vec<String>> =
        input.secrets.as_ref().map(|s| s.keys().cloned().collect());
    let given = input.secrets.clone();
    let merged = merge(&state, caller.tenant, id, &saved, input)?;
    let fresh = |name: &str| given.as_ref().is_some_and(|g| g.contains_key(name));
    let checked = validate_given(&state, &merged, &fresh)?;
    check_given(&given.unwrap_or_default())?;
    if reauthorised {
        // Resolved again under the lock only if a concurrent edit moved the domain meanwhile.
        match early.filter(|r| r.instance == checked.instance) {
            Some(r) => r.outcome?,
            None => check_dns(&state, &checked.instance).await?,
        }
    }
    let domain = checked.instance.as_str().trim_end_matches('/');
    let sealed = reauthorised.then(|| {
        state
            .keyring
            .seal(&checked.secrets, &aad(caller.tenant, id))
    });
    let kind = crate::routes::Named::Connection;
    crate::routes::name_free(&tx, kind, caller.tenant, merged.name.trim(), Some(id.0)).await?;
    save(&tx, id, &merged, domain, sealed.as_ref()).await?;
    let mut detail = changes(&saved, &merged, domain, secret_fields);
    if domain != saved.domain
        && let Some(ended) = end_all(&tx, id).await?.detail()
    {
        // Another instance: the former's limits are not its own.
        detail["cooldowns_ended"] = ended;
    }
    if detail.as_object().is_some_and(|d| !d.is_empty()) {
        let action = match reauthorised {
            true => Action::ConnectionReauthorised,
            false => Action::ConnectionUpdated,
        };
        let target = Target {
            id: id.0,
            name: merged.name.trim(),
        };
        audit::record(&tx, &caller, action, target, detail).await?;
    }
    let updated = fetch(&state, &tx, caller.tenant, id).await?;
    tx.commit().await?;
    tracing::info!(reauthorised, "connection updated");
    Ok(updated)
}

/// The audit detail of an edit: each field whose value changed, with its new value, and the
/// names (only) of the secret fields given.
fn changes(
    saved: &Saved,
    merged: &ConnectionInput,
    domain: &str,
    secret_fields: Option<Vec<String>>,
) -> serde_json::Value {
    let mut detail = serde_json::Map::new();
    let name = merged.name.trim();
    if name != saved.name {
        detail.insert("name".into(), json!(name));
    }
    if domain != saved.domain {
        detail.insert("domain".into(), json!(domain));
    }
    if merged.auth_type != saved.auth_type {
        detail.insert("auth_type".into(), json!(merged.auth_type));
    }
    if merged.max_concurrency != saved.max_concurrency {
        detail.insert("max_concurrency".into(), json!(merged.max_concurrency));
    }
    if let Some(fields) = secret_fields {
        detail.insert("secret_fields".into(), json!(fields));
    }
    serde_json::Value::Object(detail)
}

/// Writes the edited connection; `sealed`, when given, is a new version of its secrets, with
/// which the connection starts over: untested, no failures, no open breaker.
async fn save(
    tx: &deadpool_postgres::Transaction<'_>,
    id: ConnectionId,
    merged: &ConnectionInput,
    domain: &str,
    sealed: Option<&aic_core::credentials::Sealed>,
) -> Result<(), ApiError> {
    let name = merged.name.trim();
    let reauthorised = sealed.is_some();
    tx.execute(
        "UPDATE connections SET name = $2, max_concurrency = $3, domain = $4, auth_type = $5, \
         secret_key_id = coalesce($6, secret_key_id), secret_nonce = coalesce($7, secret_nonce), \
         secret_ciphertext = coalesce($8, secret_ciphertext), \
         secret_version = secret_version + CASE WHEN $9 THEN 1 ELSE 0 END, \
         status = CASE WHEN $9 THEN 'untested' ELSE status END, \
         status_detail = CASE WHEN $9 THEN NULL ELSE status_detail END, \
         status_checked_at = CASE WHEN $9 THEN NULL ELSE status_checked_at END, \
         auth_failures = CASE WHEN $9 THEN 0 ELSE auth_failures END, \
         breaker_open_until = CASE WHEN $9 THEN NULL ELSE breaker_open_until END, \
         updated_at = now() WHERE id = $1",
        &[
            &id.0,
            &name,
            &merged.max_concurrency,
            &domain,
            &merged.auth_type,
            &sealed.map(|s| &s.key_id),
            &sealed.map(|s| &s.nonce),
            &sealed.map(|s| &s.ciphertext),
            &reauthorised,
        ],
    )
    .await
    .map_err(|e| crate::routes::unique_name(e, crate::routes::Named::Connection, name))?;
    Ok(())
}

/// The tenant's connection `id`, its row locked until the transaction ends.
async fn locked(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: TenantId,
    id: ConnectionId,
) -> Result<Saved, ApiError> {
    let row = tx
        .query_opt(
            "SELECT name, app, domain, auth_type, secret_key_id, secret_nonce, secret_ciphertext, \
             max_concurrency, revision FROM connections WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
            &[&tenant.0, &id.0],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))?;
    Ok(Saved {
        name: row.get(0),
        app: row.get(1),
        domain: row.get(2),
        auth_type: row.get(3),
        sealed: aic_core::credentials::Sealed {
            key_id: row.get(4),
            nonce: row.get(5),
            ciphertext: row.get(6),
        },
        max_concurrency: row.get(7),
        revision: row.get(8),
    })
}

/// The connection as it will be: `input`'s fields over the saved ones — its secret fields over
/// the saved secrets, opened, unless it changes the auth type — so that the whole is checked
/// as a create checks it.
fn merge(
    state: &AppState,
    tenant: TenantId,
    id: ConnectionId,
    saved: &Saved,
    input: UpdateConnection,
) -> Result<ConnectionInput, ApiError> {
    let auth_type = input.auth_type.unwrap_or_else(|| saved.auth_type.clone());
    let secrets = match input.secrets {
        // Another auth type's secrets are its own, whole.
        Some(given) if auth_type != saved.auth_type => given,
        given => {
            let mut secrets = state
                .keyring
                .open(&saved.sealed, &aad(tenant, id))
                .map_err(|e| ApiError::internal("opening connection secrets", &e))?
                .into_map();
            secrets.extend(given.unwrap_or_default());
            secrets
        }
    };
    Ok(ConnectionInput {
        name: input.name.unwrap_or_else(|| saved.name.clone()),
        app: saved.app.clone(),
        domain: input.domain.unwrap_or_else(|| saved.domain.clone()),
        auth_type,
        secrets,
        max_concurrency: input.max_concurrency.unwrap_or(saved.max_concurrency),
    })
}

/// `DELETE /v1/connections/{id}`: refused (409 `connection_in_use`, naming them) while an
/// automation's draft or live version runs on it; its leases and cool-downs go with it.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, connection = %id))]
pub async fn delete(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    caller.require(CONFIGURE)?;
    let id: ConnectionId = parse_id(&id, "connection")?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let saved = locked(&tx, caller.tenant, id).await?;
    let at = ("connection", id.0);
    if_match
        .check(&tx, caller.tenant, at, saved.revision)
        .await?;
    let users: Vec<String> = tx
        .query(
            "SELECT a.name FROM automations a \
             LEFT JOIN automation_versions v ON v.id = a.published_version_id \
             WHERE a.tenant_id = $1 AND (a.connection_id = $2 OR (v.definition->>'connection_id')::uuid = $2) \
             ORDER BY a.name",
            &[&caller.tenant.0, &id.0],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !users.is_empty() {
        return Err(in_use(
            "connection_in_use",
            &users,
            "automation(s) run on this connection",
            "move them to another connection or delete them first",
        ));
    }
    tx.execute("DELETE FROM connections WHERE id = $1", &[&id.0])
        .await?;
    let target = Target {
        id: id.0,
        name: &saved.name,
    };
    let detail = json!({"app": saved.app, "domain": saved.domain});
    audit::record(&tx, &caller, Action::ConnectionDeleted, target, detail).await?;
    tx.commit().await?;
    tracing::info!("connection deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_null_cap_differs_from_no_cap_given() {
        let none: UpdateConnection = serde_json::from_str("{}").expect("empty");
        assert_eq!(none.max_concurrency, None);
        let null: UpdateConnection =
            serde_json::from_str(r#"{"max_concurrency": null}"#).expect("null");
        assert_eq!(null.max_concurrency, Some(None));
    }
}
