//! Leases: how a worker's share of a connection's cap is negotiated with the fleet in Postgres
//! (`connection_leases`), renewed while in use, handed back when idle or wanted elsewhere, and
//! how the fleet's cool-downs reach this worker with each renewal.

use super::{Budgets, Held, IDLE_GIVE_BACK_EVERY, LEASE, RENEW_ON_DEMAND, Slots};
use aic_proto::ConnectionId;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What a renewal found.
#[derive(Debug)]
pub(super) enum Renewed {
    /// The share is leased and the cool-downs read.
    Done,
    /// Another renewal of the connection is under way; it wakes the waiters when done.
    UnderWay,
    /// The connection's row is gone: deleted (with its automations) since the execution
    /// resolved it.
    Gone,
}

/// The other live leases of a connection, as a renewal reads them.
struct Others {
    /// The slots they hold.
    slots: i64,
    /// The slots they want.
    wanted: i64,
    /// How many want any.
    active: i64,
    /// How many there are.
    leases: i64,
    /// How many are the control plane's calls waiting for a slot (each wants one).
    admins_waiting: i64,
}

/// What a renewal reads of a connection's row under its lock.
struct Locked {
    /// The connection's own cap on calls at once, if set.
    own_cap: Option<i32>,
    /// Its cool-down, until when and why, if one is recorded.
    throttle: Option<(DateTime<Utc>, String)>,
    /// When an admin last ended its cool-downs (by the database's clock).
    cleared_at: Option<DateTime<Utc>>,
    /// The database's clock as the row was locked: cool-downs read now are known since then,
    /// on the clock `cleared_at` is on (the worker's own may be off by any amount).
    db_now: DateTime<Utc>,
}

impl Budgets {
    /// The connections this worker knows whose local state passes `keep`.
    fn connections(&self, keep: impl Fn(&Slots) -> bool) -> Vec<(ConnectionId, Arc<Slots>)> {
        let m = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .filter(|(_, s)| keep(s))
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// Renews the connections that hold slots other workers want and this one does not. One
    /// renewed too recently (see RENEW_ON_DEMAND, IDLE_GIVE_BACK_EVERY) is looked at again
    /// later (a burst of finished calls gives back in one go), through a wake-up rather than a
    /// sleep here: the periodic renewals that keep every lease alive must never wait behind
    /// this.
    pub(super) async fn give_back(&self) {
        let flagged = self.connections(|s| s.give_back.load(Ordering::SeqCst));
        let mut later = Duration::ZERO;
        for (conn, slots) in flagged {
            let since = slots
                .renewed_at
                .lock()
                .ok()
                .and_then(|r| r.map(|at| at.elapsed()));
            let spacing = if slots.contended.load(Ordering::SeqCst) {
                RENEW_ON_DEMAND
            } else {
                IDLE_GIVE_BACK_EVERY
            };
            if let Some(since) = since.filter(|s| *s < spacing) {
                later = later.max(spacing - since);
                continue;
            }
            slots.give_back.store(false, Ordering::SeqCst);
            // (A renewal under way counts what is in use now: this one is skipped; a connection
            // gone has nothing to give back.)
            if let Err(e) = self.renew(conn, None, &slots).await {
                tracing::warn!(error = %aic_core::with_causes(&*e), "could not give back a connection's unused share");
            }
        }
        if !later.is_zero() {
            let wake = self.wake.clone();
            tokio::spawn(async move {
                tokio::time::sleep(later).await;
                wake.notify_one();
            });
        }
    }

    /// Leases this worker's share of `conn` and reads its cool-down; says whether it did,
    /// found another renewal of the connection under way (which does the same), or found the
    /// connection deleted.
    pub(super) async fn renew(
        &self,
        conn: ConnectionId,
        cap: Option<i32>,
        slots: &Slots,
    ) -> anyhow::Result<Renewed> {
        let Some(_renewal) = slots.begin_renewal() else {
            return Ok(Renewed::UnderWay);
        };
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let locked = Self::lock_connection(&tx, conn).await?;
        if let Some(l) = &locked {
            let skew = (l.db_now - Utc::now()).num_milliseconds();
            self.clock_skew_ms.store(skew, Ordering::Relaxed);
        }
        let Some(locked) = locked else {
            // No share to lease: none is left to call on (the connection's leases and
            // cool-downs went with its row).
            slots.count.lower(0);
            return Ok(Renewed::Gone);
        };
        let cap = i64::from(locked.own_cap.or(cap).unwrap_or(self.default_cap as i32));
        let scoped = Self::cooldowns(&tx, conn).await?;
        let others = self.others(&tx, conn).await?;
        let capacity = i64::from(self.capacity);
        // An admin's call waiting for a slot goes first: the workers share what it leaves.
        let (workers_cap, workers_wanted) = (
            cap - others.admins_waiting,
            others.wanted - others.admins_waiting,
        );
        let wanted = wanted(slots, capacity, workers_cap, workers_wanted);
        let grant = share(
            workers_cap,
            wanted,
            others.slots,
            workers_wanted,
            others.active - others.admins_waiting,
        );
        slots
            .contended
            .store(others.wanted > others.slots, Ordering::SeqCst);
        slots.tight.store(
            capacity > cap || (others.leases > 0 && others.wanted + capacity > cap),
            Ordering::SeqCst,
        );
        // A smaller share takes effect before the fleet can see it, and what is in use at that
        // instant stays counted until it finishes: calls admitted under the old share while
        // this transaction ran are in the record, none beyond it starts from here on, and the
        // cap holds while shares shrink. A larger share takes effect only once committed.
        let in_use = slots.count.lower(grant as usize) as i64;
        let recorded = grant.max(in_use);
        self.record(&tx, conn, recorded, wanted, cap).await?;
        tx.commit().await?;
        applied(slots, grant, locked, scoped);
        Ok(Renewed::Done)
    }

    /// Locks `conn`'s row, which serialises the fleet's renewals of one connection, and reads
    /// its own cap and its cool-down; `None` once the row is gone.
    async fn lock_connection(
        tx: &deadpool_postgres::Transaction<'_>,
        conn: ConnectionId,
    ) -> Result<Option<Locked>, tokio_postgres::Error> {
        let row = tx
            .query_opt(
                "SELECT max_concurrency, throttled_until, throttle_reason, cooldowns_cleared_at, \
                 clock_timestamp() FROM connections WHERE id = $1 FOR UPDATE",
                &[&conn.0],
            )
            .await?;
        Ok(row.map(|row| {
            let throttle: Option<DateTime<Utc>> = row.get(1);
            let reason: Option<String> = row.get(2);
            Locked {
                own_cap: row.get(0),
                throttle: throttle.map(|until| (until, reason.unwrap_or_default())),
                cleared_at: row.get(3),
                db_now: row.get(4),
            }
        }))
    }

    /// The scoped cool-downs of `conn` other workers recorded, the expired ones cleared away.
    async fn cooldowns(
        tx: &deadpool_postgres::Transaction<'_>,
        conn: ConnectionId,
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        tx.query(
            "WITH gone AS (DELETE FROM connection_cooldowns WHERE connection_id = $1 AND until <= now()) \
             SELECT scope, until, reason FROM connection_cooldowns WHERE connection_id = $1 AND until > now()",
            &[&conn.0],
        )
        .await
    }

    /// The other live leases of `conn`: other workers' and the control plane's calls'.
    async fn others(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        conn: ConnectionId,
    ) -> Result<Others, tokio_postgres::Error> {
        let row = tx
            .query_one(
                "SELECT coalesce(sum(slots), 0)::int8, coalesce(sum(wanted), 0)::int8, \
                 count(*) FILTER (WHERE wanted > 0), count(*), \
                 count(*) FILTER (WHERE slots = 0 AND wanted > 0 AND starts_with(worker_id, $3)) \
                 FROM connection_leases \
                 WHERE connection_id = $1 AND worker_id <> $2 AND expires_at > now()",
                &[&conn.0, &self.worker, &aic_core::fleet::CONTROL_PLANE_LEASE],
            )
            .await?;
        Ok(Others {
            slots: row.get(0),
            wanted: row.get(1),
            active: row.get(2),
            leases: row.get(3),
            admins_waiting: row.get(4),
        })
    }

    /// Records this worker's lease of `conn`: `slots` held and `wanted`, for one [`LEASE`],
    /// and the `cap` it keeps to (which the control plane's calls on a connection without its
    /// own keep to as well).
    async fn record(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        conn: ConnectionId,
        slots: i64,
        wanted: i64,
        cap: i64,
    ) -> Result<u64, tokio_postgres::Error> {
        tx.execute(
            "INSERT INTO connection_leases (connection_id, worker_id, slots, wanted, cap, expires_at) \
             VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) \
             ON CONFLICT (connection_id, worker_id) DO UPDATE SET slots = EXCLUDED.slots, \
             wanted = EXCLUDED.wanted, cap = EXCLUDED.cap, expires_at = EXCLUDED.expires_at",
            &[
                &conn.0,
                &self.worker,
                &(slots as i32),
                &(wanted as i32),
                &(cap as i32),
                &LEASE.as_secs_f64(),
            ],
        )
        .await
    }

    /// Renews every connection in use and gives back the leases of idle ones: those with no
    /// call in flight or waiting, and none started since the last pass.
    pub(super) async fn renew_all(&self) {
        for (conn, slots) in self.connections(|_| true) {
            let used = slots.used.swap(false, Ordering::Relaxed);
            if !used && self.close_if_idle(conn, &slots).await {
                continue;
            }
            if let Err(e) = self.renew(conn, None, &slots).await {
                tracing::warn!(error = %aic_core::with_causes(&*e), "could not renew a connection lease");
            }
        }
    }

    /// Gives back the whole lease of a connection with nothing in flight or waiting, at once
    /// rather than at expiry; says whether it did. The share drops to nothing first, so no
    /// call starts on a lease the fleet no longer sees: an execution arriving meanwhile
    /// renews first.
    async fn close_if_idle(&self, conn: ConnectionId, slots: &Arc<Slots>) -> bool {
        let Some(renewal) = slots.begin_renewal() else {
            return false;
        };
        if slots.waiting.load(Ordering::SeqCst) != 0 || !slots.count.close_if_idle() {
            return false;
        }
        if let Ok(mut l) = slots.lease_until.lock() {
            *l = None;
        }
        let deleted = async {
            self.pool
                .get()
                .await?
                .execute(
                    "DELETE FROM connection_leases WHERE connection_id = $1 AND worker_id = $2",
                    &[&conn.0, &self.worker],
                )
                .await?;
            anyhow::Ok(())
        };
        if let Err(e) = deleted.await {
            // Harmless: the lease expires on its own.
            tracing::debug!(error = %aic_core::with_causes(&*e), "could not give back an idle connection's lease");
        }
        // Executions count themselves as waiting under this lock (see `admit`), and none is
        // in flight on a closed share: one that came meanwhile keeps the state here.
        let mut m = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if slots.waiting.load(Ordering::SeqCst) == 0 && slots.count.in_use() == 0 {
            m.remove(&conn);
        }
        drop(m);
        drop(renewal);
        // One that came meanwhile found this under way: it may renew now.
        slots.freed.notify_waiters();
        true
    }
}

/// This worker's share of a connection: what it wants, within what the others actually hold,
/// and — when others want slots too — no more than its fair part.
fn share(cap: i64, wanted: i64, others_slots: i64, others_wanted: i64, others_active: i64) -> i64 {
    let fair = (cap + others_active) / (others_active + 1);
    let left_by_others_wants = cap - others_wanted;
    wanted
        .min(cap - others_slots)
        .min(fair.max(left_by_others_wants))
        .max(0)
}

/// The share this worker asks of a connection's `cap`, holding at most `capacity` deliveries.
/// Alone on the connection, or when the cap has room for every worker's whole prefetch, it asks
/// for every delivery it may hold, so that its share never lags its load. When workers compete
/// for a tight cap, it asks for what its calls in flight and waiting need, and lets the
/// fair-share rule split it: a share asked for but unused would sit idle while another worker's
/// executions wait.
fn wanted(slots: &Slots, capacity: i64, cap: i64, others_wanted: i64) -> i64 {
    if others_wanted == 0 || others_wanted + capacity <= cap {
        capacity
    } else {
        ((slots.count.in_use() + slots.waiting.load(Ordering::SeqCst)) as i64).min(capacity)
    }
}

/// Applies a committed renewal to this worker's slots: the share granted, the lease's
/// expiry, and the connection's cool-downs (`locked.throttle`, and `scoped` rows of scope,
/// until and reason) that other workers recorded — those this worker kept from before an
/// admin ended them (`locked.cleared_at`) dropped first; then wakes the callers waiting for a
/// slot.
fn applied(slots: &Slots, grant: i64, locked: Locked, scoped: Vec<tokio_postgres::Row>) {
    slots.count.set_limit(grant as usize);
    if let Ok(mut l) = slots.lease_until.lock() {
        // Renewed well before the database's expiry, so the two never disagree.
        *l = Some(Instant::now() + LEASE / 2);
    }
    if let Ok(mut r) = slots.renewed_at.lock() {
        *r = Some(Instant::now());
    }
    let now = Utc::now();
    let since = locked.db_now;
    // Known since the admin's clearing: the vendor's say after it stands.
    let current = |h: &Held| locked.cleared_at.is_none_or(|at| h.since > at);
    if let Ok(mut t) = slots.throttle.lock() {
        if t.as_ref().is_some_and(|h| !current(h)) {
            *t = None;
        }
        // Another worker's cool-down; a later local one (not yet written) stands.
        if let Some((until, reason)) = locked.throttle
            && t.as_ref().is_none_or(|h| h.until < until)
        {
            *t = Some(Held {
                until,
                reason,
                since,
            });
        }
    }
    if let Ok(mut m) = slots.scoped.lock() {
        m.retain(|_, h| h.until > now && current(h));
        for row in scoped {
            let (scope, until, reason): (String, DateTime<Utc>, String) =
                (row.get(0), row.get(1), row.get(2));
            if m.get(&scope).is_none_or(|h| h.until < until) {
                m.insert(
                    scope,
                    Held {
                        until,
                        reason,
                        since,
                    },
                );
            }
        }
    }
    slots.freed.notify_waiters();
}

#[cfg(test)]
mod tests;
