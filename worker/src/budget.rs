//! Per-connection budgets across the fleet.
//!
//! - **Concurrency**: a connection allows at most `max_concurrency` vendor calls in flight over
//!   all workers. Each worker leases a share in Postgres (`connection_leases`) for a few seconds
//!   and renews it while in use; a share is what is left by the others' *actual* use, and a
//!   worker holding more than its fair share gives the excess back as its calls finish, so a
//!   busy worker cannot starve a newcomer. A crashed worker's lease simply expires.
//! - **Cool-down**: when a vendor says stop — a 429 with `Retry-After`, Salesforce's daily quota
//!   spent or nearly spent — the worker records `throttled_until` on the connection, and every
//!   worker holds that connection's calls until then. Where the vendor's limit applies to a
//!   part of the connection (Slack: per channel; the template's `rate_limit_scope`), the
//!   cool-down is recorded for that scope alone (`connection_cooldowns`) and holds only the
//!   calls in it: one busy channel does not stop the others.
//!
//! An execution that finds no free slot waits for one in the worker only while the connection's
//! waiters hold less than half of the worker's prefetch (the waiting room): slots freed by
//! finished calls go straight to them, so the cap stays in use through a burst. The rest are
//! handed to a delay queue (see the executor) rather than hold their prefetch slots, so a
//! burst on one connection never starves the others.

use aic_proto::ConnectionId;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a lease lasts unless renewed.
const LEASE: Duration = Duration::from_secs(10);
/// How often leases in use are renewed (and shares rebalanced).
const RENEW_EVERY: Duration = Duration::from_secs(2);
/// A worker whose share is full asks for more at most this often, and one that holds slots
/// other workers want gives them back at most this often.
const RENEW_ON_DEMAND: Duration = Duration::from_millis(50);
/// A worker that went idle holding several slots of a tight cap (which another worker may or
/// may not want) gives them back at most this often: at a moderate rate a connection goes idle
/// between most calls, and each give-back is a Postgres transaction.
const IDLE_GIVE_BACK_EVERY: Duration = Duration::from_millis(250);
/// An execution waiting in the worker for a slot looks again this often (a share may have
/// come free at another worker, which no local wake-up would say).
const WAITER_RECHECK: Duration = Duration::from_millis(200);

/// One connection's local state.
#[derive(Debug, Default)]
struct Slots {
    /// Calls this worker may have in flight (its lease).
    limit: AtomicUsize,
    in_use: AtomicUsize,
    waiting: AtomicUsize,
    freed: Notify,
    lease_until: Mutex<Option<Instant>>,
    renewed_at: Mutex<Option<Instant>>,
    renewing: std::sync::atomic::AtomicBool,
    throttle: Mutex<Option<(DateTime<Utc>, String)>>,
    /// Cool-downs of parts of the connection, by scope (`channel:C123`).
    scoped: Mutex<HashMap<String, (DateTime<Utc>, String)>>,
    /// At the last renewal, other workers wanted more of the connection than they held.
    contended: std::sync::atomic::AtomicBool,
    /// At the last renewal, the connection's cap could not give this worker its whole
    /// prefetch, or not every worker holding a lease on it theirs: a share left idle may be
    /// wanted elsewhere.
    tight: std::sync::atomic::AtomicBool,
    /// This worker holds slots it no longer needs while others want them: renew soon.
    give_back: std::sync::atomic::AtomicBool,
    /// Wakes the renewal task (shared by every connection of the worker).
    wake: Arc<Notify>,
}

/// A slot taken; dropping it gives it back.
#[derive(Debug)]
pub struct Permit(Arc<Slots>);

impl Drop for Permit {
    fn drop(&mut self) {
        let s = &self.0;
        let in_use = s.in_use.fetch_sub(1, Ordering::SeqCst) - 1;
        s.freed.notify_one();
        // Nobody here wants the slot, and another worker does (or may: this worker went idle
        // holding several of a tight cap it shares): hand the share back now rather than at
        // the next periodic renewal, or it sits idle under a cap others are waiting on. A
        // worker alone on a connection, or under a roomy cap, has nothing to give back.
        if s.waiting.load(Ordering::SeqCst) == 0
            && (s.contended.load(Ordering::SeqCst)
                || (in_use == 0
                    && s.limit.load(Ordering::SeqCst) > 1
                    && s.tight.load(Ordering::SeqCst)))
            && !s.give_back.swap(true, Ordering::SeqCst)
        {
            s.wake.notify_one();
        }
    }
}

/// Whether a call may go now.
#[derive(Debug)]
pub enum Admission {
    /// Go; hold the permit for the call.
    Go(Permit),
    /// The connection is cooling down until then, for this reason.
    Throttled(DateTime<Utc>, String),
    /// Every slot of the connection is in use in the fleet.
    Busy,
}

/// The worker's view of every connection's budget.
#[derive(Debug)]
pub struct Budgets {
    pool: Pool,
    worker: String,
    default_cap: u32,
    /// The most calls this worker could want on one connection (its prefetch).
    capacity: u32,
    conns: Mutex<HashMap<ConnectionId, Arc<Slots>>>,
    /// Wakes the renewal task when a connection has slots to give back.
    wake: Arc<Notify>,
}

impl Budgets {
    /// Budgets for worker `worker` (unique per process), which holds at most `capacity`
    /// deliveries at once; `default_cap` applies to connections without their own
    /// `max_concurrency`. Starts the renewal task.
    pub fn start(pool: Pool, worker: String, default_cap: u32, capacity: u32) -> Arc<Self> {
        let b = Arc::new(Self {
            pool,
            worker,
            default_cap: default_cap.max(1),
            capacity: capacity.max(1),
            conns: Mutex::default(),
            wake: Arc::default(),
        });
        let weak = Arc::downgrade(&b);
        let wake = b.wake.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RENEW_EVERY);
            loop {
                let periodic = tokio::select! {
                    _ = tick.tick() => true,
                    () = wake.notified() => false,
                };
                let Some(b) = weak.upgrade() else { return };
                if periodic {
                    b.renew_all().await;
                } else {
                    b.give_back().await;
                }
            }
        });
        b
    }

    /// Renews the connections that hold slots other workers want and this one does not. One
    /// renewed too recently (see RENEW_ON_DEMAND, IDLE_GIVE_BACK_EVERY) is looked at again
    /// later (a burst of finished calls gives back in one go), through a wake-up rather than a
    /// sleep here:
    /// the periodic renewals that keep every lease alive must never wait behind this.
    async fn give_back(&self) {
        let flagged: Vec<(ConnectionId, Arc<Slots>)> = {
            let m = self.conns.lock().unwrap_or_else(|e| e.into_inner());
            m.iter()
                .filter(|(_, s)| s.give_back.load(Ordering::SeqCst))
                .map(|(k, v)| (*k, v.clone()))
                .collect()
        };
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
            if slots.renewing.swap(true, Ordering::SeqCst) {
                // A renewal under way counts what is in use now.
                continue;
            }
            if let Err(e) = self.renew(conn, None, &slots).await {
                tracing::warn!(error = %e, "could not give back a connection's unused share");
            }
            slots.renewing.store(false, Ordering::SeqCst);
        }
        if !later.is_zero() {
            let wake = self.wake.clone();
            tokio::spawn(async move {
                tokio::time::sleep(later).await;
                wake.notify_one();
            });
        }
    }

    /// How many executions may wait in this worker for one connection's slots: half of what it
    /// holds, so the other half always serves other connections.
    fn waiting_room(&self) -> usize {
        (self.capacity as usize / 2).max(1)
    }

    fn slots(&self, conn: ConnectionId) -> Arc<Slots> {
        let mut m = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(conn)
            .or_insert_with(|| {
                Arc::new(Slots {
                    wake: self.wake.clone(),
                    ..Slots::default()
                })
            })
            .clone()
    }

    /// Asks for a slot on `conn` (whose own cap is `cap`) for a call in `scope` (see
    /// [`Self::throttle`]), waiting at most `room_wait` for one when the connection's waiting
    /// room has space, `wait` otherwise.
    pub async fn admit(
        &self,
        conn: ConnectionId,
        scope: Option<&str>,
        cap: Option<i32>,
        wait: Duration,
        room_wait: Duration,
    ) -> Admission {
        let slots = self.slots(conn);
        let ahead = slots.waiting.fetch_add(1, Ordering::SeqCst);
        let wait = if ahead < self.waiting_room() {
            room_wait.max(wait)
        } else {
            wait
        };
        let admission = self.admit_inner(conn, scope, cap, wait, &slots).await;
        slots.waiting.fetch_sub(1, Ordering::SeqCst);
        admission
    }

    async fn admit_inner(
        &self,
        conn: ConnectionId,
        scope: Option<&str>,
        cap: Option<i32>,
        wait: Duration,
        slots: &Arc<Slots>,
    ) -> Admission {
        let expired = slots
            .lease_until
            .lock()
            .map(|l| l.is_none_or(|at| at <= Instant::now()))
            .unwrap_or(true);
        if expired && !slots.renewing.swap(true, Ordering::SeqCst) {
            if let Err(e) = self.renew(conn, cap, slots).await {
                // Without Postgres nothing else works either; the ledger will say so. Run on
                // the last known share rather than fail here.
                tracing::warn!(error = %e, "could not renew the connection's lease");
            }
            slots.renewing.store(false, Ordering::SeqCst);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((until, why)) = throttled(slots, scope) {
                return Admission::Throttled(until, why);
            }
            let limit = slots.limit.load(Ordering::SeqCst);
            let used = slots.in_use.load(Ordering::SeqCst);
            if used < limit
                && slots
                    .in_use
                    .compare_exchange(used, used + 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                return Admission::Go(Permit(slots.clone()));
            }
            if used < limit {
                continue;
            }
            // The share is full: ask the fleet for more (demand grew), unless a renewal is
            // under way or has just run.
            let stale = slots
                .renewed_at
                .lock()
                .map(|r| r.is_none_or(|at| at.elapsed() >= RENEW_ON_DEMAND))
                .unwrap_or(true);
            if stale && !slots.renewing.swap(true, Ordering::SeqCst) {
                let renewed = self.renew(conn, cap, slots).await;
                slots.renewing.store(false, Ordering::SeqCst);
                if let Err(e) = renewed {
                    tracing::warn!(error = %e, "could not renew the connection's lease");
                    slots.freed.notify_waiters();
                } else {
                    continue;
                }
            }
            let recheck = tokio::time::Instant::now() + WAITER_RECHECK;
            if tokio::time::timeout_at(deadline.min(recheck), slots.freed.notified())
                .await
                .is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return Admission::Busy;
            }
        }
    }

    /// Holds every worker's calls on `conn` until `until`, saying why (kept in the
    /// connection's status) — or, with a `scope`, only the calls in that scope.
    pub async fn throttle(
        &self,
        conn: ConnectionId,
        scope: Option<&str>,
        until: DateTime<Utc>,
        reason: &str,
    ) {
        let slots = self.slots(conn);
        let later = |t: Option<&(DateTime<Utc>, String)>| t.is_none_or(|(u, _)| *u < until);
        match scope {
            None => {
                if let Ok(mut t) = slots.throttle.lock()
                    && later(t.as_ref())
                {
                    *t = Some((until, reason.to_string()));
                }
            }
            Some(scope) => {
                if let Ok(mut m) = slots.scoped.lock()
                    && later(m.get(scope))
                {
                    m.insert(scope.to_string(), (until, reason.to_string()));
                }
            }
        }
        let reason = aic_proto::text::without_nul(reason);
        let updated = async {
            let client = self.pool.get().await?;
            match scope {
                None => {
                    client
                        .execute(
                            "UPDATE connections SET throttled_until = $2, throttle_reason = $3 \
                             WHERE id = $1 AND (throttled_until IS NULL OR throttled_until < $2)",
                            &[&conn.0, &until, &reason],
                        )
                        .await?
                }
                Some(scope) => client
                    .execute(
                        "INSERT INTO connection_cooldowns (connection_id, scope, until, reason) \
                             VALUES ($1, $4, $2, $3) ON CONFLICT (connection_id, scope) DO UPDATE \
                             SET until = EXCLUDED.until, reason = EXCLUDED.reason \
                             WHERE connection_cooldowns.until < EXCLUDED.until",
                        &[
                            &conn.0,
                            &until,
                            &reason,
                            &aic_proto::text::without_nul(scope),
                        ],
                    )
                    .await?,
            };
            anyhow::Ok(())
        };
        if let Err(e) = updated.await {
            tracing::warn!(error = %e, "could not record the connection's cool-down");
        }
        tracing::warn!(connection = %conn, scope, %until, %reason, "connection cooling down");
    }

    /// Leases this worker's share of `conn` and reads its cool-down.
    async fn renew(
        &self,
        conn: ConnectionId,
        cap: Option<i32>,
        slots: &Slots,
    ) -> anyhow::Result<()> {
        let in_use = slots.in_use.load(Ordering::SeqCst) as i64;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // The row lock serialises the fleet's renewals of one connection.
        let Some(row) = tx
            .query_opt(
                "SELECT max_concurrency, throttled_until, throttle_reason FROM connections WHERE id = $1 FOR UPDATE",
                &[&conn.0],
            )
            .await?
        else {
            return Ok(());
        };
        let cap = i64::from(
            row.get::<_, Option<i32>>(0)
                .or(cap)
                .unwrap_or(self.default_cap as i32),
        );
        let throttle: Option<DateTime<Utc>> = row.get(1);
        let reason: Option<String> = row.get(2);
        // The scoped cool-downs other workers recorded (and the expired ones cleared away).
        let scoped = tx
            .query(
                "WITH gone AS (DELETE FROM connection_cooldowns WHERE connection_id = $1 AND until <= now()) \
                 SELECT scope, until, reason FROM connection_cooldowns WHERE connection_id = $1 AND until > now()",
                &[&conn.0],
            )
            .await?;
        let others = tx
            .query_one(
                "SELECT coalesce(sum(slots), 0)::int8, coalesce(sum(wanted), 0)::int8, \
                 count(*) FILTER (WHERE wanted > 0), count(*) FROM connection_leases \
                 WHERE connection_id = $1 AND worker_id <> $2 AND expires_at > now()",
                &[&conn.0, &self.worker],
            )
            .await?;
        let (others_slots, others_wanted, others_active, others_leases): (i64, i64, i64, i64) =
            (others.get(0), others.get(1), others.get(2), others.get(3));
        // Alone on the connection, or when the cap has room for every worker's whole prefetch,
        // ask for every delivery this worker may hold, so that its share never lags its load.
        // When workers compete for a tight cap, ask for what this worker's calls in flight and
        // waiting need, and let the fair-share rule split it: a share asked for but unused
        // would sit idle while another worker's executions wait.
        let capacity = i64::from(self.capacity);
        let wanted = if others_wanted == 0 || others_wanted + capacity <= cap {
            capacity
        } else {
            (in_use + slots.waiting.load(Ordering::SeqCst) as i64).min(capacity)
        };
        let grant = share(cap, wanted, others_slots, others_wanted, others_active);
        slots
            .contended
            .store(others_wanted > others_slots, Ordering::SeqCst);
        slots.tight.store(
            capacity > cap || (others_leases > 0 && others_wanted + capacity > cap),
            Ordering::SeqCst,
        );
        // What is in use stays counted until it finishes: the cap holds while shares shrink.
        let recorded = grant.max(in_use);
        tx.execute(
            "INSERT INTO connection_leases (connection_id, worker_id, slots, wanted, expires_at) \
             VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) \
             ON CONFLICT (connection_id, worker_id) DO UPDATE SET slots = EXCLUDED.slots, \
             wanted = EXCLUDED.wanted, expires_at = EXCLUDED.expires_at",
            &[
                &conn.0,
                &self.worker,
                &(recorded as i32),
                &(wanted as i32),
                &LEASE.as_secs_f64(),
            ],
        )
        .await?;
        tx.commit().await?;
        slots.limit.store(grant as usize, Ordering::SeqCst);
        if let Ok(mut l) = slots.lease_until.lock() {
            // Renewed well before the database's expiry, so the two never disagree.
            *l = Some(Instant::now() + LEASE / 2);
        }
        if let Ok(mut r) = slots.renewed_at.lock() {
            *r = Some(Instant::now());
        }
        if let (Ok(mut t), Some(until)) = (slots.throttle.lock(), throttle) {
            // Another worker's cool-down; a later local one (not yet written) stands.
            if t.as_ref().is_none_or(|(u, _)| *u < until) {
                *t = Some((until, reason.unwrap_or_default()));
            }
        }
        if let Ok(mut m) = slots.scoped.lock() {
            let now = Utc::now();
            m.retain(|_, (until, _)| *until > now);
            for row in scoped {
                let (scope, until, why): (String, DateTime<Utc>, String) =
                    (row.get(0), row.get(1), row.get(2));
                if m.get(&scope).is_none_or(|(u, _)| *u < until) {
                    m.insert(scope, (until, why));
                }
            }
        }
        slots.freed.notify_waiters();
        Ok(())
    }

    async fn renew_all(&self) {
        let conns: Vec<(ConnectionId, Arc<Slots>)> = {
            let m = self.conns.lock().unwrap_or_else(|e| e.into_inner());
            m.iter().map(|(k, v)| (*k, v.clone())).collect()
        };
        for (conn, slots) in conns {
            let idle = slots.in_use.load(Ordering::SeqCst) == 0
                && slots.waiting.load(Ordering::SeqCst) == 0;
            if idle {
                // Give the share back at once rather than at expiry.
                if let Ok(client) = self.pool.get().await {
                    let _ = client
                        .execute(
                            "DELETE FROM connection_leases WHERE connection_id = $1 AND worker_id = $2",
                            &[&conn.0, &self.worker],
                        )
                        .await;
                }
                let mut m = self.conns.lock().unwrap_or_else(|e| e.into_inner());
                if slots.in_use.load(Ordering::SeqCst) == 0
                    && slots.waiting.load(Ordering::SeqCst) == 0
                {
                    m.remove(&conn);
                }
                continue;
            }
            if let Err(e) = self.renew(conn, None, &slots).await {
                tracing::warn!(error = %e, "could not renew a connection lease");
            }
        }
    }
}

/// The cool-down in force on `slots`' connection for a call in `scope`: the connection's own,
/// or its scope's, whichever ends later.
fn throttled(slots: &Slots, scope: Option<&str>) -> Option<(DateTime<Utc>, String)> {
    let now = Utc::now();
    let whole = slots
        .throttle
        .lock()
        .ok()
        .and_then(|t| t.as_ref().filter(|(until, _)| *until > now).cloned());
    let part = scope.and_then(|s| {
        let m = slots.scoped.lock().ok()?;
        m.get(s).filter(|(until, _)| *until > now).cloned()
    });
    match (whole, part) {
        (Some(w), Some(p)) => Some(if p.0 > w.0 { p } else { w }),
        (w, p) => w.or(p),
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

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn a_lone_worker_gets_what_it_wants_within_the_cap() {
        assert_eq!(share(10, 4, 0, 0, 0), 4);
        assert_eq!(share(10, 40, 0, 0, 0), 10);
    }

    #[test]
    fn busy_workers_converge_to_fair_shares_that_never_exceed_the_cap() {
        // Worker A holds all 10; B arrives wanting 50 and gets nothing yet.
        let b = share(10, 50, 10, 50, 1);
        assert_eq!(b, 0);
        // A renews: B wants slots, so A's share drops to its fair half…
        let a = share(10, 50, b, 50, 1);
        assert_eq!(a, 5);
        // …and once A's calls above 5 finish, B gets the rest.
        let b = share(10, 50, a, 50, 1);
        assert_eq!(b, 5);
        assert!(a + b <= 10);
    }

    #[test]
    fn a_small_demand_leaves_the_rest_to_a_big_one() {
        // A wants 2, B wants 50: A takes 2, B gets 8, not a "fair" 5.
        let a = share(10, 2, 0, 50, 1);
        assert_eq!(a, 2);
        assert_eq!(share(10, 50, a, 2, 1), 8);
    }
}
