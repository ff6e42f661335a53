//! A version going live, for a publish or a restore: its audit event, and its definition event
//! on the broker (`proto/AMQP.md`), confirmed before the caller's transaction commits.

use crate::audit::{self, Action, Target};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use aic_proto::DefinitionPublishedV1;
use aic_proto::topology::{DEFINITION_PUBLISHED_ROUTING_KEY, DEFINITION_PUBLISHED_TYPE};
use serde_json::json;

/// Makes a version live, for a publish or a restore (`action`): its audit event in the caller's
/// transaction, then its definition event, confirmed by the broker before the caller commits.
pub(super) async fn go_live(
    state: &AppState,
    tx: &deadpool_postgres::Transaction<'_>,
    caller: &Caller,
    action: Action,
    name: &str,
    event: &DefinitionPublishedV1,
) -> Result<(), ApiError> {
    let target = Target {
        id: event.automation_id.0,
        name,
    };
    let detail = json!({"version": event.version_number, "version_name": event.version_name});
    audit::record(tx, caller, action, target, detail).await?;
    announce(state, event).await
}

/// Announces a published version to the workers, confirmed by the broker: refused (and the
/// caller's transaction rolled back) when the broker is unavailable, blocks publishers or does
/// not confirm within [`crate::resend::CONFIRM_WAIT`].
async fn announce(state: &AppState, event: &DefinitionPublishedV1) -> Result<(), ApiError> {
    let body = serde_json::to_vec(event).map_err(|e| ApiError::internal("event", &e))?;
    let to = (
        state.names.definitions_exchange.as_str(),
        DEFINITION_PUBLISHED_ROUTING_KEY,
    );
    let properties = aic_core::amqp::json_properties(DEFINITION_PUBLISHED_TYPE);
    let wait = crate::resend::CONFIRM_WAIT;
    state
        .broker
        .publish_within(to, &body, properties, false, wait)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "definition event not published; publish rolled back");
            ApiError::not_published(&e, "the definition event", "nothing was published")
        })
}
