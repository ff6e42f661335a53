//! The audit trail: who changed which connection, automation, token or deployable item, when,
//! and how — and who ran a finished execution again, which may do its action twice. Each
//! change writes its event in its own transaction, so that a change never lands without its
//! record nor a record without its change. An event names its actor and target by id and by
//! name as they were, since either may be gone when it is read; its detail names the fields
//! changed and their new values, never a secret's value (re-authorisation names the secret
//! fields that changed, not what they hold).

use crate::auth::Caller;
use crate::error::ApiError;
use aic_proto::TenantId;
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;

/// What was done: the `action` of an event, stable for filters and alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A connection saved.
    ConnectionCreated,
    /// Renamed or capped.
    ConnectionUpdated,
    /// New secrets, auth type or domain.
    ConnectionReauthorised,
    /// Tested against the vendor, its status recorded.
    ConnectionTested,
    /// Deleted.
    ConnectionDeleted,
    /// Its secrets sealed again under the active credential key (`reseal-credentials`).
    ConnectionResealed,
    /// Its cool-downs ended before the vendor's time.
    CooldownsCleared,
    /// An automation created from a template.
    AutomationCreated,
    /// Its draft, name, description or status changed.
    AutomationUpdated,
    /// Copied from another.
    AutomationDuplicated,
    /// Deleted with its versions.
    AutomationDeleted,
    /// Its draft run once against the vendor.
    AutomationTested,
    /// A new version made live.
    AutomationPublished,
    /// One of its finished executions run again (`POST /v1/executions/…/rerun`).
    ExecutionRerun,
    /// A version renamed.
    VersionRenamed,
    /// An older version made live again.
    VersionRestored,
    /// Versions deleted from the history.
    VersionsDeleted,
    /// An API token issued.
    TokenIssued,
    /// An API token revoked.
    TokenRevoked,
    /// A flow, bot step or launcher registered as running an automation.
    DeployableRegistered,
    /// Registered again with a change.
    DeployableUpdated,
    /// No longer runs the automation.
    DeployableRemoved,
}

impl Action {
    /// Every action, for the list's filter.
    pub const ALL: [Action; 22] = [
        Self::ConnectionCreated,
        Self::ConnectionUpdated,
        Self::ConnectionReauthorised,
        Self::ConnectionTested,
        Self::ConnectionDeleted,
        Self::ConnectionResealed,
        Self::CooldownsCleared,
        Self::AutomationCreated,
        Self::AutomationUpdated,
        Self::AutomationDuplicated,
        Self::AutomationDeleted,
        Self::AutomationTested,
        Self::AutomationPublished,
        Self::ExecutionRerun,
        Self::VersionRenamed,
        Self::VersionRestored,
        Self::VersionsDeleted,
        Self::TokenIssued,
        Self::TokenRevoked,
        Self::DeployableRegistered,
        Self::DeployableUpdated,
        Self::DeployableRemoved,
    ];

    /// The stored spelling: `<kind>.<past participle>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectionCreated => "connection.created",
            Self::ConnectionUpdated => "connection.updated",
            Self::ConnectionReauthorised => "connection.reauthorised",
            Self::ConnectionTested => "connection.tested",
            Self::ConnectionDeleted => "connection.deleted",
            Self::ConnectionResealed => "connection.resealed",
            Self::CooldownsCleared => "connection.cooldowns_cleared",
            Self::AutomationCreated => "automation.created",
            Self::AutomationUpdated => "automation.updated",
            Self::AutomationDuplicated => "automation.duplicated",
            Self::AutomationDeleted => "automation.deleted",
            Self::AutomationTested => "automation.tested",
            Self::AutomationPublished => "automation.published",
            Self::ExecutionRerun => "automation.execution_rerun",
            Self::VersionRenamed => "automation.version_renamed",
            Self::VersionRestored => "automation.version_restored",
            Self::VersionsDeleted => "automation.versions_deleted",
            Self::TokenIssued => "token.issued",
            Self::TokenRevoked => "token.revoked",
            Self::DeployableRegistered => "deployable.registered",
            Self::DeployableUpdated => "deployable.updated",
            Self::DeployableRemoved => "deployable.removed",
        }
    }

    /// Whether the action changes its record's revision (its `ETag`, `crate::precondition`):
    /// what admins and editors configure, not a test, a rerun or a version renamed.
    pub fn revises(self) -> bool {
        matches!(
            self,
            Self::ConnectionCreated
                | Self::ConnectionUpdated
                | Self::ConnectionReauthorised
                | Self::AutomationCreated
                | Self::AutomationUpdated
                | Self::AutomationPublished
                | Self::VersionRestored
        )
    }

    /// The kind of record the action is done to.
    pub fn target_kind(self) -> &'static str {
        self.as_str().split_once('.').map_or("", |(kind, _)| kind)
    }
}

/// What an event is about: its id and its name at the time.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The record's id.
    pub id: Uuid,
    /// Its name when the change was made.
    pub name: &'a str,
}

/// Records `action` by `caller` on `target`, in the transaction of the change (`client`).
pub async fn record(
    client: &impl GenericClient,
    caller: &Caller,
    action: Action,
    target: Target<'_>,
    detail: Value,
) -> Result<(), ApiError> {
    let actor = Actor {
        id: Some(caller.token_id),
        command: None,
        role: caller.role.as_str(),
    };
    Ok(insert(client, caller.tenant, actor, action, target, detail).await?)
}

/// Records `action` on `target` of `tenant` by an operator's `command` (no token acts; the
/// event names the command, with the role `operator`), in the change's transaction.
pub async fn by_operator(
    client: &impl GenericClient,
    tenant: TenantId,
    command: &str,
    action: Action,
    target: Target<'_>,
    detail: Value,
) -> Result<(), tokio_postgres::Error> {
    let actor = Actor {
        id: None,
        command: Some(command),
        role: "operator",
    };
    insert(client, tenant, actor, action, target, detail).await
}

/// Who acts: a token (named as it is now) or an operator's command.
struct Actor<'a> {
    id: Option<Uuid>,
    command: Option<&'a str>,
    role: &'a str,
}

async fn insert(
    client: &impl GenericClient,
    tenant: TenantId,
    actor: Actor<'_>,
    action: Action,
    target: Target<'_>,
    detail: Value,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO audit_events (id, tenant_id, actor_id, actor_name, actor_role, action, \
             target_kind, target_id, target_name, detail) \
             SELECT $1, $2, $3, COALESCE((SELECT name FROM api_tokens WHERE id = $3), $10), $4, \
             $5, $6, $7, $8, $9",
            &[
                &Uuid::now_v7(),
                &tenant.0,
                &actor.id,
                &actor.role,
                &action.as_str(),
                &action.target_kind(),
                &target.id,
                &target.name,
                &detail,
                &actor.command,
            ],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_listed_once_and_names_its_kind() {
        let mut seen = std::collections::BTreeSet::new();
        for a in Action::ALL {
            assert!(seen.insert(a.as_str()), "{a:?} twice");
            assert!(
                crate::routes::audit::TARGET_KINDS.contains(&a.target_kind()),
                "{a:?}"
            );
        }
    }
}
