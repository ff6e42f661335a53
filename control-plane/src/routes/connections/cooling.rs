//! The control plane's own calls on a saved connection — a connection test, a draft's test
//! run, the field picker — keep to the fleet's cool-downs (see [`aic_core::cooldown`]): none
//! goes to a vendor that asked for no calls until a later time, and a vendor's "stop" in answer
//! to one is recorded for the workers as theirs would be. An admin who knows better (the
//! vendor's limit raised, its quota bought up) may end them all at once.

use super::{ConnectionView, fetch};
use crate::audit::{self, Action, Target};
use crate::auth::{CONFIGURE, Caller};
use crate::error::ApiError;
use crate::routes::parse_id;
use crate::state::AppState;
use aic_core::cooldown;
use aic_core::vendor::VendorFailure;
use aic_proto::ConnectionId;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde_json::json;

/// Refuses a call on `conn` in `scope` (`None`: the connection as a whole) while a cool-down
/// holds it: a 429 saying until when and why, with `Retry-After`.
pub(crate) async fn not_held(
    client: &tokio_postgres::Client,
    conn: ConnectionId,
    scope: Option<&str>,
) -> Result<(), ApiError> {
    match cooldown::holding(client, conn, scope).await? {
        Some((until, reason)) => Err(ApiError::throttled(until, &reason)),
        None => Ok(()),
    }
}

/// Records the cool-down a vendor's refusal of a call on `conn` in `scope` calls for (a
/// `Retry-After`, a spent quota), for every worker and the next call here — while the
/// connection stays on the domain called (`conn`'s second half; see [`cooldown::record`]).
/// The refusal is answered whether or not the record is written; a failed write is logged.
pub(crate) async fn after_refusal(
    state: &AppState,
    (conn, domain): (ConnectionId, &str),
    scope: Option<&str>,
    failure: &VendorFailure,
) {
    let Some(c) = cooldown::refused(failure, scope, cooldown::RETRY_AFTER_CAP) else {
        return;
    };
    let until = chrono::Utc::now() + chrono::Duration::from_std(c.wait).unwrap_or_default();
    let recorded = async {
        let client = state.pool.get().await?;
        let kept = cooldown::record(&client, conn, domain, c.scope, until, &c.reason).await?;
        anyhow::Ok(kept)
    }
    .await;
    match recorded {
        Ok(true) => {
            tracing::warn!(connection = %conn, scope = c.scope, %until, reason = %c.reason, "connection cooling down")
        }
        Ok(false) => {
            tracing::info!(connection = %conn, scope = c.scope, "a refusal from the connection's former instance holds nothing: the connection was moved or deleted")
        }
        Err(e) => {
            tracing::warn!(error = %aic_core::with_causes(&*e), "could not record the connection's cool-down")
        }
    }
}

/// `DELETE /v1/connections/{id}/cooldowns`: ends the connection's cool-downs, of the whole and
/// of its parts, before the vendor's time. Every worker drops the holds it keeps from before
/// this moment at its next lease renewal (within seconds), and keeps any the vendor imposes
/// after; executions parked in a delay queue behind a cool-down run at their next look
/// (`AIC_WORKER_COOLDOWN_RECHECK_MS`, 2 minutes by default). Audited with
/// what was ended; ending none records nothing.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, connection = %id))]
pub async fn clear(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<ConnectionView, ApiError> {
    caller.require(CONFIGURE)?;
    let id: ConnectionId = parse_id(&id, "connection")?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let name: String = tx
        .query_opt(
            "SELECT name FROM connections WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
            &[&caller.tenant.0, &id.0],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))?
        .get(0);
    let ended = end_all(&tx, id).await?;
    if let Some(detail) = ended.detail() {
        let target = Target {
            id: id.0,
            name: &name,
        };
        audit::record(&tx, &caller, Action::CooldownsCleared, target, detail).await?;
        tracing::warn!(connection = %id, "connection's cool-downs ended by an admin");
    }
    let cleared = fetch(&state, &tx, caller.tenant, id).await?;
    tx.commit().await?;
    Ok(cleared)
}

/// The cool-downs [`end_all`] ended: of the whole connection (until when it held), and the
/// scopes held.
pub(crate) struct Ended {
    whole: Option<DateTime<Utc>>,
    scopes: Vec<String>,
}

impl Ended {
    /// What was ended, for the audit record; `None` when nothing held.
    pub(crate) fn detail(&self) -> Option<serde_json::Value> {
        (self.whole.is_some() || !self.scopes.is_empty())
            .then(|| json!({"throttled_until": self.whole, "scopes": self.scopes}))
    }
}

/// Ends every cool-down of connection `id`, whose row the caller has locked, and stamps the
/// moment: every worker drops the holds it keeps from before it at its next lease renewal.
pub(crate) async fn end_all(
    tx: &deadpool_postgres::Transaction<'_>,
    id: ConnectionId,
) -> Result<Ended, tokio_postgres::Error> {
    let whole: Option<DateTime<Utc>> = tx
        .query_one(
            "SELECT CASE WHEN throttled_until > now() THEN throttled_until END \
             FROM connections WHERE id = $1",
            &[&id.0],
        )
        .await?
        .get(0);
    let scopes = tx
        .query(
            "DELETE FROM connection_cooldowns WHERE connection_id = $1 RETURNING scope, until > now()",
            &[&id.0],
        )
        .await?
        .iter()
        .filter(|r| r.get::<_, bool>(1))
        .map(|r| r.get(0))
        .collect();
    tx.execute(
        "UPDATE connections SET throttled_until = NULL, throttle_reason = NULL, \
         cooldowns_cleared_at = now() WHERE id = $1",
        &[&id.0],
    )
    .await?;
    Ok(Ended { whole, scopes })
}
