//! Retiring a credential key. Connections keep the id of the key that sealed their secrets, so
//! adding a key and making it active seals new and re-authorised credentials under it, while
//! older rows still need the old key. `reseal-credentials` opens every connection sealed under
//! another key than the active one and seals it again under the active key — the same secrets,
//! bound to the same row — after which the old key can leave `AIC_CREDENTIAL_KEYS`.
//!
//! The order of a rotation: (1) give every control plane and worker both keys with the new one
//! active and restart them; (2) run `reseal-credentials`; (3) drop the old key. Step (2)
//! checks step (1): every running process reports the ids of the keys it holds
//! ([`aic_core::fleet`]), and while one does not hold the active key — it could not open a row
//! sealed under it: its executions on that connection would fail — nothing is re-sealed, and
//! the report names it (`lacking_key`), unless forced. A row is
//! re-sealed under its row lock, in batches of [`BATCH`] committed one by one, with one audit
//! event each in the tenant's trail (key ids only); a row that does not open (its key missing
//! from the configuration, or its data altered) is reported by id and left as it is, and the
//! command then fails. Secrets never appear in its output.

use crate::audit::{self, Action, Target};
use aic_core::credentials::{Keyring, Sealed, connection_aad};
use aic_proto::{ConnectionId, TenantId};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Connections re-sealed per transaction.
pub const BATCH: i64 = 100;

/// What a run did.
#[derive(Debug, Serialize)]
pub struct Resealed {
    /// The key every connection is to be sealed under.
    pub active_key: String,
    /// Whether this was a dry run (everything opened, nothing written).
    pub dry_run: bool,
    /// Connections by the key that sealed them, before the run.
    pub before: BTreeMap<String, i64>,
    /// Connections re-sealed under the active key (or, in a dry run, that would be).
    pub resealed: u64,
    /// Connections that could not be opened, left as they were.
    pub unopened: Vec<Unopened>,
    /// Connections by key after the run.
    pub after: BTreeMap<String, i64>,
    /// Running processes that do not hold the active key: while there is one, nothing is
    /// re-sealed unless forced.
    pub lacking_key: Vec<aic_core::fleet::Process>,
}

/// A connection whose secrets did not open.
#[derive(Debug, Serialize)]
pub struct Unopened {
    /// The connection.
    pub connection_id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// The key id it is sealed under.
    pub key_id: String,
    /// Why it did not open.
    pub reason: String,
}

/// Re-seals every connection not sealed under `keyring`'s active key (see the module's notes);
/// with `dry_run`, opens them all and writes nothing. While a running process lacks the active
/// key, writes nothing either, unless `force`.
pub async fn reseal(
    pool: &deadpool_postgres::Pool,
    keyring: &Keyring,
    dry_run: bool,
    force: bool,
) -> anyhow::Result<Resealed> {
    let mut client = pool.get().await?;
    let active = keyring.active_id().to_string();
    let before = by_key(&client).await?;
    let mut report = Resealed {
        active_key: active.clone(),
        dry_run,
        before: before.clone(),
        resealed: 0,
        unopened: Vec::new(),
        after: before,
        lacking_key: aic_core::fleet::lacking(&client, &active).await?,
    };
    if !report.lacking_key.is_empty() && !force && !dry_run {
        return Ok(report);
    }
    // Keyset order: a row that did not open is not read again.
    let mut last = Uuid::nil();
    loop {
        let tx = client.transaction().await?;
        let rows = tx
            .query(
                "SELECT id, tenant_id, name, secret_key_id, secret_nonce, secret_ciphertext \
                 FROM connections WHERE secret_key_id <> $1 AND id > $2 ORDER BY id LIMIT $3 \
                 FOR UPDATE",
                &[&active, &last, &BATCH],
            )
            .await?;
        let Some(end) = rows.last() else { break };
        last = end.get(0);
        for row in &rows {
            match one(&tx, keyring, row, dry_run).await? {
                Ok(()) => report.resealed += 1,
                Err(unopened) => report.unopened.push(unopened),
            }
        }
        if dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
    }
    report.after = by_key(&client).await?;
    Ok(report)
}

/// Re-seals one connection's row (`id, tenant_id, name, secret_key_id, secret_nonce,
/// secret_ciphertext`) under the active key, with its audit event, in `tx`; with `dry_run`,
/// only opens it. The inner `Err` is a row that does not open.
async fn one(
    tx: &deadpool_postgres::Transaction<'_>,
    keyring: &Keyring,
    row: &tokio_postgres::Row,
    dry_run: bool,
) -> Result<Result<(), Unopened>, tokio_postgres::Error> {
    let (id, tenant): (Uuid, Uuid) = (row.get(0), row.get(1));
    let sealed = Sealed {
        key_id: row.get(3),
        nonce: row.get(4),
        ciphertext: row.get(5),
    };
    let aad = connection_aad(TenantId(tenant), ConnectionId(id));
    let secrets = match keyring.open(&sealed, &aad) {
        Ok(secrets) => secrets,
        Err(e) => {
            return Ok(Err(Unopened {
                connection_id: id,
                tenant_id: tenant,
                key_id: sealed.key_id,
                reason: e.to_string(),
            }));
        }
    };
    if dry_run {
        return Ok(Ok(()));
    }
    let again = keyring.seal(&secrets, &aad);
    tx.execute(
        "UPDATE connections SET secret_key_id = $2, secret_nonce = $3, \
         secret_ciphertext = $4, updated_at = now() WHERE id = $1",
        &[&id, &again.key_id, &again.nonce, &again.ciphertext],
    )
    .await?;
    let detail = json!({"from_key": sealed.key_id, "to_key": again.key_id});
    let target = Target {
        id,
        name: row.get(2),
    };
    let action = Action::ConnectionResealed;
    audit::by_operator(
        tx,
        TenantId(tenant),
        "reseal-credentials",
        action,
        target,
        detail,
    )
    .await?;
    Ok(Ok(()))
}

/// Connections by the id of the key that sealed them.
async fn by_key(
    client: &tokio_postgres::Client,
) -> Result<BTreeMap<String, i64>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT secret_key_id, count(*) FROM connections GROUP BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
