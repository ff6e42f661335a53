//! The control plane's own calls on a saved connection — a connection test, a draft's test
//! run, the field picker — take a slot of the connection's concurrency cap as the workers'
//! executions do: each holds a lease of one slot in `connection_leases`, which every worker
//! counts when it renews its share, for as long as its vendor calls last. An admin testing a
//! connection capped at one call at a time never puts a second call in flight beside a
//! worker's.
//!
//! Waiting for a slot, the lease says it wants one (`wanted`), and the workers make room for it
//! first (its holder is marked [`aic_core::fleet::CONTROL_PLANE_LEASE`]): each gives back what
//! the call needs at its next renewal, so the call waits for a vendor call to end, not for a
//! backlog of executions to drain; none free within [`WAIT`] is a 429
//! `connection_busy`. A connection without its own cap is capped by the workers'
//! `AIC_WORKER_CONNECTION_CONCURRENCY`, which each records in its lease: the control plane keeps
//! to the one recorded there, and when no worker holds a lease, its call takes a slot at once.
//! A control plane that dies holding a slot leaves a lease that expires within [`LEASE`].

use crate::error::ApiError;
use crate::state::AppState;
use aic_proto::ConnectionId;
use deadpool_postgres::Pool;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a call waits for a free slot.
const WAIT: Duration = Duration::from_secs(10);
/// How often a waiting call looks again.
const LOOK_EVERY: Duration = Duration::from_millis(100);
/// How long a lease lasts unless renewed (as a worker's).
const LEASE: Duration = Duration::from_secs(10);
/// How often a held lease is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(3);

/// A slot of a connection's cap, held until dropped.
pub(crate) struct Slot {
    pool: Pool,
    conn: ConnectionId,
    holder: String,
    renewal: JoinHandle<()>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.renewal.abort();
        // Given back off the answer's path; should it fail, the lease expires by itself.
        let (pool, conn, holder) = (
            self.pool.clone(),
            self.conn,
            std::mem::take(&mut self.holder),
        );
        tokio::spawn(async move { withdraw(&pool, conn, &holder).await });
    }
}

/// What one look found.
enum Look {
    /// The slot is this call's.
    Taken,
    /// All `cap` slots are held (the connection's own cap, or the workers' setting); this
    /// call's want is recorded.
    Full { cap: i32, own: bool },
    /// The connection was deleted meanwhile.
    Gone,
}

/// Clears an admin's call on `conn` in `scope` (`None`: the connection as a whole) to go: a
/// cool-down refuses it (see [`super::not_held`]), else it takes a slot of the cap. `client`,
/// which the check reads with, is given back first: taking the slot needs a connection of its
/// own, and none is held through the vendor's answer.
pub(crate) async fn clear_to_call(
    state: &AppState,
    client: deadpool_postgres::Object,
    conn: ConnectionId,
    scope: Option<&str>,
) -> Result<Slot, ApiError> {
    super::not_held(&client, conn, scope).await?;
    drop(client);
    take(state, conn).await
}

/// Takes a slot of `conn`'s cap for a call, waiting up to [`WAIT`] for one.
async fn take(state: &AppState, conn: ConnectionId) -> Result<Slot, ApiError> {
    let holder = format!(
        "{}{}",
        aic_core::fleet::CONTROL_PLANE_LEASE,
        uuid::Uuid::now_v7()
    );
    let deadline = Instant::now() + WAIT;
    loop {
        match look(&state.pool, conn, &holder).await {
            Ok(Look::Taken) => break,
            Ok(Look::Gone) => return Err(ApiError::not_found("connection")),
            Ok(Look::Full { cap, own }) if Instant::now() >= deadline => {
                withdraw(&state.pool, conn, &holder).await;
                return Err(ApiError::connection_busy(cap, own, WAIT));
            }
            Ok(Look::Full { .. }) => tokio::time::sleep(LOOK_EVERY).await,
            Err(e) => {
                withdraw(&state.pool, conn, &holder).await;
                return Err(e);
            }
        }
    }
    let renewal = tokio::spawn(renew(state.pool.clone(), conn, holder.clone()));
    Ok(Slot {
        pool: state.pool.clone(),
        conn,
        holder,
        renewal,
    })
}

/// Under the connection row's lock (which serialises the workers' renewals too): takes a slot
/// when the others leave one free, else records that this call wants one.
async fn look(pool: &Pool, conn: ConnectionId, holder: &str) -> Result<Look, ApiError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "SELECT max_concurrency FROM connections WHERE id = $1 FOR UPDATE",
            &[&conn.0],
        )
        .await?
    else {
        return Ok(Look::Gone);
    };
    let own_cap: Option<i32> = row.get(0);
    let others = tx
        .query_one(
            "SELECT coalesce(sum(slots), 0)::int8, min(cap) FROM connection_leases \
             WHERE connection_id = $1 AND worker_id <> $2 AND expires_at > now()",
            &[&conn.0, &holder],
        )
        .await?;
    let held: i64 = others.get(0);
    // Without its own cap, the connection's is the workers' setting, which those holding
    // leases on it recorded (the smallest, should the fleet's settings differ); none holding
    // one, nothing competes with this call.
    let cap = own_cap.or(others.get(1));
    let free = cap.is_none_or(|cap| held < i64::from(cap));
    tx.execute(
        "INSERT INTO connection_leases (connection_id, worker_id, slots, wanted, expires_at) \
         VALUES ($1, $2, $3, 1, now() + make_interval(secs => $4)) \
         ON CONFLICT (connection_id, worker_id) DO UPDATE SET slots = EXCLUDED.slots, \
         expires_at = EXCLUDED.expires_at",
        &[&conn.0, &holder, &i32::from(free), &LEASE.as_secs_f64()],
    )
    .await?;
    tx.commit().await?;
    Ok(match cap {
        Some(cap) if !free => Look::Full {
            cap,
            own: own_cap.is_some(),
        },
        _ => Look::Taken,
    })
}

/// Keeps a held lease alive while its calls last.
async fn renew(pool: Pool, conn: ConnectionId, holder: String) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let renewed = async {
            pool.get()
                .await?
                .execute(
                    "UPDATE connection_leases SET expires_at = now() + make_interval(secs => $3) \
                     WHERE connection_id = $1 AND worker_id = $2",
                    &[&conn.0, &holder, &LEASE.as_secs_f64()],
                )
                .await?;
            anyhow::Ok(())
        };
        if let Err(e) = renewed.await {
            tracing::warn!(error = %aic_core::with_causes(&*e), "could not renew a call's connection lease");
        }
    }
}

/// Gives the lease back (a failure is harmless: it expires).
async fn withdraw(pool: &Pool, conn: ConnectionId, holder: &str) {
    let deleted = async {
        pool.get()
            .await?
            .execute(
                "DELETE FROM connection_leases WHERE connection_id = $1 AND worker_id = $2",
                &[&conn.0, &holder],
            )
            .await?;
        anyhow::Ok(())
    };
    if let Err(e) = deleted.await {
        tracing::debug!(error = %aic_core::with_causes(&*e), "could not give back a call's connection lease");
    }
}
