//! Refreshes that spend the refresh token (rotation, e.g. Atlassian 3LO): one at a time per
//! connection across the whole fleet — a Postgres advisory lock held for one transaction —
//! always with the latest stored refresh token, and the rotated one sealed and saved before the
//! lock is released, so no two processes ever present the same refresh token. An admin's
//! re-authorisation made while the vendor answers (it takes the connection's row, not this
//! lock) stands: the rotated token of the credentials it replaced is not written over it.
//!
//! One window remains, and it is the vendor's: if the vendor rotated the token and the commit
//! then fails, the new token is lost and the connection will need re-authorisation.

use super::{AccessToken, ConnectionTarget, RetryClass, Vendor, VendorFailure};
use crate::credentials::{Keyring, Sealed, connection_aad};
use crate::egress::EgressPolicy;
use aic_proto::{ConnectionId, ExecutionErrorCode, TenantId};
use deadpool_postgres::Pool;
use url::Url;

fn coordination_failure(e: impl std::fmt::Display) -> VendorFailure {
    VendorFailure {
        class: RetryClass::Retryable,
        code: ExecutionErrorCode::Internal,
        message: format!("could not coordinate the token refresh through Postgres: {e}"),
        vendor: None,
        retry_after: None,
    }
}

/// The advisory lock key of a connection: its id folded to 64 bits.
fn lock_key(id: ConnectionId) -> i64 {
    let (hi, lo) = id.0.as_u64_pair();
    (hi ^ lo) as i64
}

/// What the refresh needs to know about the connection.
#[derive(Debug)]
pub struct Rotating<'a> {
    /// Connector.
    pub vendor: Vendor,
    /// Instance base URL.
    pub instance: &'a Url,
    /// Auth type.
    pub auth_type: &'a str,
    /// Owner.
    pub tenant: TenantId,
    /// Connection.
    pub connection: ConnectionId,
}

/// Refreshes under the fleet-wide lock and stores the rotated refresh token.
pub async fn refresh(
    pool: &Pool,
    keyring: &Keyring,
    http: &super::VendorHttp,
    policy: &EgressPolicy,
    c: &Rotating<'_>,
) -> Result<AccessToken, VendorFailure> {
    let mut client = pool.get().await.map_err(coordination_failure)?;
    let tx = client.transaction().await.map_err(coordination_failure)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&lock_key(c.connection)],
    )
    .await
    .map_err(coordination_failure)?;
    let row = tx
        .query_one(
            "SELECT secret_key_id, secret_nonce, secret_ciphertext, secret_version FROM connections \
             WHERE id = $1 AND tenant_id = $2",
            &[&c.connection.0, &c.tenant.0],
        )
        .await
        .map_err(coordination_failure)?;
    let sealed = Sealed {
        key_id: row.get(0),
        nonce: row.get(1),
        ciphertext: row.get(2),
    };
    let version: i32 = row.get(3);
    let aad = connection_aad(c.tenant, c.connection);
    let latest = keyring.open(&sealed, &aad).map_err(coordination_failure)?;
    let target = ConnectionTarget {
        vendor: c.vendor,
        instance: c.instance,
        auth_type: c.auth_type,
        secrets: &latest,
    };
    let token = super::authenticate(http, policy, &target).await?;
    if let Some(rotated) = &token.rotated_refresh_token {
        let resealed = keyring.seal(&latest.with("refresh_token", rotated.clone()), &aad);
        let kept = tx
            .execute(
                "UPDATE connections SET secret_key_id = $2, secret_nonce = $3, secret_ciphertext = $4, \
                 updated_at = now() WHERE id = $1 AND secret_version = $5",
                &[
                    &c.connection.0,
                    &resealed.key_id,
                    &resealed.nonce,
                    &resealed.ciphertext,
                    &version,
                ],
            )
            .await
            .map_err(coordination_failure)?;
        if kept == 0 {
            tracing::warn!(
                connection = %c.connection,
                "the connection was re-authorised (or deleted) while its token was refreshed: the new \
                 credentials stand, the former ones' rotated refresh token is dropped"
            );
        }
    }
    tx.commit().await.map_err(coordination_failure)?;
    Ok(token)
}
