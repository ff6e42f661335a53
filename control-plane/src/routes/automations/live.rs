//! A version going live, for a publish or a restore: its audit event, and its definition event
//! on the broker (`proto/AMQP.md`), confirmed before the caller's transaction commits; and a
//! publish that would make the live version again.

use super::VersionView;
use crate::audit::{self, Action, Target};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use aic_proto::topology::{DEFINITION_PUBLISHED_ROUTING_KEY, DEFINITION_PUBLISHED_TYPE};
use aic_proto::{AutomationId, DefinitionPublishedV1, VersionId};
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

/// The live version of automation `id`, when it holds the very definition and output the
/// draft would be published as: another version would be identical to it.
pub(super) async fn unchanged(
    tx: &deadpool_postgres::Transaction<'_>,
    id: AutomationId,
    (definition, output): (&serde_json::Value, &serde_json::Value),
) -> Result<Option<VersionView>, ApiError> {
    let row = tx
        .query_opt(
            "SELECT v.id, v.number, v.name, v.published_at FROM automations a \
             JOIN automation_versions v ON v.id = a.published_version_id \
             WHERE a.id = $1 AND v.definition = $2 AND v.output = $3",
            &[&id.0, definition, output],
        )
        .await?;
    Ok(row.map(|r| VersionView {
        id: VersionId(r.get(0)),
        number: r.get(1),
        name: r.get(2),
        published_at: r.get(3),
    }))
}

/// Refuses a publish of an unchanged draft under a name other than the live version's: it
/// publishes nothing, so the name would be dropped (409 `draft_unchanged`).
pub(super) fn named_alike(
    id: AutomationId,
    live: &VersionView,
    asked: Option<&str>,
) -> Result<(), ApiError> {
    match asked.map(str::trim) {
        Some(name) if !name.is_empty() && name != live.name => Err(ApiError::conflict(
            "draft_unchanged",
            format!(
                "the draft is unchanged since version {} (\"{}\"), which is live: nothing to \
                 publish; rename that version to name it (PATCH /v1/automations/{id}/versions/{})",
                live.number, live.name, live.number
            ),
        )),
        _ => Ok(()),
    }
}
