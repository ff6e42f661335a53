//! The control plane's own calls on a saved connection — a connection test, a draft's test
//! run, the field picker — keep to the fleet's cool-downs (see [`aic_core::cooldown`]): none
//! goes to a vendor that asked for no calls until a later time, and a vendor's "stop" in answer
//! to one is recorded for the workers as theirs would be.

use crate::error::ApiError;
use crate::state::AppState;
use aic_core::cooldown;
use aic_core::vendor::VendorFailure;
use aic_proto::ConnectionId;

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
/// `Retry-After`, a spent quota), for every worker and the next call here. The refusal is
/// answered whether or not the record is written; a failed write is logged.
pub(crate) async fn after_refusal(
    state: &AppState,
    conn: ConnectionId,
    scope: Option<&str>,
    failure: &VendorFailure,
) {
    let Some(c) = cooldown::refused(failure, scope, cooldown::RETRY_AFTER_CAP) else {
        return;
    };
    let until = chrono::Utc::now() + chrono::Duration::from_std(c.wait).unwrap_or_default();
    let recorded = async {
        let client = state.pool.get().await?;
        cooldown::record(&client, conn, c.scope, until, &c.reason).await?;
        anyhow::Ok(())
    }
    .await;
    match recorded {
        Ok(()) => {
            tracing::warn!(connection = %conn, scope = c.scope, %until, reason = %c.reason, "connection cooling down")
        }
        Err(e) => tracing::warn!(error = %e, "could not record the connection's cool-down"),
    }
}
