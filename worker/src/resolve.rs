//! Resolving an execution request to what it runs: the automation's published version (its
//! definition) and the connection that version is pinned to, in one query, tenant-scoped.

use aic_core::credentials::Sealed;
use aic_proto::{
    AutomationDefinition, ConnectionId, ExecutionErrorCode, ExecutionRequestV1, VersionId,
};
use deadpool_postgres::Pool;
use std::collections::BTreeMap;

/// What an execution runs.
#[derive(Debug)]
pub struct Resolved {
    /// The immutable version.
    pub version_id: VersionId,
    /// Its definition.
    pub definition: AutomationDefinition,
    /// Output mapping.
    pub output: BTreeMap<String, String>,
    /// The connection.
    pub connection: ConnectionRow,
}

/// A connection as the worker needs it.
#[derive(Debug)]
pub struct ConnectionRow {
    /// Id.
    pub id: ConnectionId,
    /// Instance base URL.
    pub domain: String,
    /// Auth type.
    pub auth_type: String,
    /// Sealed secrets.
    pub sealed: Sealed,
    /// Version of the secrets (token cache key).
    pub secret_version: i32,
    /// `needs_reauthorization` makes executions fail fast.
    pub status: String,
}

/// Why a request cannot run.
#[derive(Debug)]
pub struct Refusal {
    /// Machine code.
    pub code: ExecutionErrorCode,
    /// Explanation.
    pub message: String,
}

/// Looks the request up. `Ok(Err(_))` is a refusal to report; `Err(_)` an infrastructure failure.
pub async fn resolve(
    pool: &Pool,
    req: &ExecutionRequestV1,
) -> Result<Result<Resolved, Refusal>, crate::ledger::LedgerError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT a.status, v.id, v.definition, v.output, c.id, c.domain, c.auth_type, c.secret_key_id, \
             c.secret_nonce, c.secret_ciphertext, c.secret_version, c.status \
             FROM automations a \
             LEFT JOIN automation_versions v ON v.id = a.published_version_id \
             LEFT JOIN connections c ON c.tenant_id = a.tenant_id AND c.id = (v.definition->>'connection_id')::uuid \
             WHERE a.tenant_id = $1 AND a.id = $2",
            &[&req.tenant_id.0, &req.automation_id.0],
        )
        .await?;
    let refuse = |code, message: String| Ok(Err(Refusal { code, message }));
    let Some(row) = row else {
        return refuse(
            ExecutionErrorCode::UnknownAutomation,
            format!(
                "automation {} does not exist in this tenant",
                req.automation_id
            ),
        );
    };
    let status: String = row.get(0);
    let Some(version) = row.get::<_, Option<uuid::Uuid>>(1) else {
        return refuse(
            ExecutionErrorCode::AutomationNotPublished,
            format!("automation {} has no published version", req.automation_id),
        );
    };
    if status == "paused" {
        return refuse(
            ExecutionErrorCode::AutomationPaused,
            format!("automation {} is paused", req.automation_id),
        );
    }
    let Ok(definition) = serde_json::from_value::<AutomationDefinition>(row.get(2)) else {
        return refuse(
            ExecutionErrorCode::Internal,
            "the published definition could not be read".into(),
        );
    };
    let output: BTreeMap<String, String> = serde_json::from_value(row.get(3)).unwrap_or_default();
    let Some(conn_id) = row.get::<_, Option<uuid::Uuid>>(4) else {
        return refuse(
            ExecutionErrorCode::Internal,
            "the automation's connection no longer exists".into(),
        );
    };
    Ok(Ok(Resolved {
        version_id: VersionId(version),
        definition,
        output,
        connection: ConnectionRow {
            id: ConnectionId(conn_id),
            domain: row.get(5),
            auth_type: row.get(6),
            sealed: Sealed {
                key_id: row.get(7),
                nonce: row.get(8),
                ciphertext: row.get(9),
            },
            secret_version: row.get(10),
            status: row.get(11),
        },
    }))
}
