//! Per-connection budgets across the fleet.
//!
//! - **Concurrency**: a connection allows at most `max_concurrency` vendor calls in flight over
//!   all workers. Each worker leases a share in Postgres (`connection_leases`) for a few seconds
//!   and renews it while in use; a share is what is left by the others' *actual* use, and a
//!   worker holding more than its fair share gives the excess back as its calls finish, so a
//!   busy worker cannot starve a newcomer. A crashed worker's lease simply expires. The
//!   control plane's own calls on a connection (its tests, the field picker) lease a slot the
//!   same way, one per call, and count among the others.
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
use foldhash::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

mod count;
mod held;
mod lease;

use held::{Held, hold, throttled, unhold};
use lease::Renewed;

/// How long a lease lasts unless renewed.
const LEASE: Duration = Duration::from_secs(10);
/// How often leases in use are renewed (and shares rebalanced). A connection on which no call
/// started since the last renewal is idle, and its lease is given back at this one. (Given back
/// whenever no call happened to be in flight at a renewal, a lease went every 2 s at any rate
/// under about one call in flight on average, and the next call paid a renewal transaction —
/// and, for a create, two ledger marks — before it could go.)
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
    /// Calls this worker may have in flight (its lease), and those in flight.
    count: count::Count,
    /// Executions waiting in this worker for a slot.
    waiting: AtomicUsize,
    /// A call started since the last periodic renewal (see [`Budgets::renew_all`]).
    used: AtomicBool,
    freed: Notify,
    lease_until: Mutex<Option<Instant>>,
    renewed_at: Mutex<Option<Instant>>,
    /// A renewal of the lease is under way (see [`Slots::begin_renewal`]).
    renewing: AtomicBool,
    throttle: Mutex<Option<Held>>,
    /// Cool-downs of parts of the connection, by scope (`channel:C123`).
    scoped: Mutex<HashMap<String, Held>>,
    /// At the last renewal, other workers wanted more of the connection than they held.
    contended: AtomicBool,
    /// At the last renewal, the connection's cap could not give this worker its whole
    /// prefetch, or not every worker holding a lease on it theirs: a share left idle may be
    /// wanted elsewhere.
    tight: AtomicBool,
    /// This worker holds slots it no longer needs while others want them: renew soon.
    give_back: AtomicBool,
    /// Wakes the renewal task (shared by every connection of the worker).
    wake: Arc<Notify>,
}

impl Slots {
    /// Takes a slot if the share has one free, for a call that starts now.
    fn take(self: &Arc<Self>) -> Option<Permit> {
        if !self.count.take() {
            return None;
        }
        self.used.store(true, Ordering::Relaxed);
        Some(Permit(self.clone()))
    }

    /// This worker holds a lease on the connection that has not run out.
    fn lease_live(&self) -> bool {
        self.lease_until
            .lock()
            .map(|l| l.is_some_and(|at| at > Instant::now()))
            .unwrap_or(false)
    }

    /// Starts a renewal of the lease, unless one is under way. One at a time: two renewals
    /// of one worker, committed in one order and applied here in the other, would leave this
    /// worker a share larger than its lease records. Dropping the guard (the renewal done or
    /// abandoned) lets the next one start.
    fn begin_renewal(&self) -> Option<Renewal<'_>> {
        // Built only when started: a guard built and dropped on refusal would end the renewal
        // under way.
        if self.renewing.swap(true, Ordering::SeqCst) {
            None
        } else {
            Some(Renewal(&self.renewing))
        }
    }
}

/// A renewal under way; see [`Slots::begin_renewal`].
struct Renewal<'a>(&'a AtomicBool);

impl Drop for Renewal<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// An execution counted as waiting for a slot; dropping it — admitted, refused, or abandoned
/// mid-wait — ends the count, which would otherwise keep the connection's lease wanted for good.
struct Waiting<'a>(&'a Slots);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A slot taken; dropping it gives it back.
#[derive(Debug)]
pub struct Permit(Arc<Slots>);

impl Drop for Permit {
    fn drop(&mut self) {
        let s = &self.0;
        let in_use = s.count.give();
        s.freed.notify_one();
        // Nobody here wants the slot, and another worker does (or may: this worker went idle
        // holding several of a tight cap it shares): hand the share back now rather than at
        // the next periodic renewal, or it sits idle under a cap others are waiting on. A
        // worker alone on a connection, or under a roomy cap, has nothing to give back.
        if s.waiting.load(Ordering::SeqCst) == 0
            && (s.contended.load(Ordering::SeqCst)
                || (in_use == 0 && s.count.limit() > 1 && s.tight.load(Ordering::SeqCst)))
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
    /// The connection no longer exists: it was deleted since the execution resolved it.
    Gone,
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
    /// How far the database's clock is ahead of this host's, in milliseconds, at the last
    /// renewal: what this worker learns by itself is stamped on the database's clock too.
    clock_skew_ms: AtomicI64,
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
            clock_skew_ms: AtomicI64::new(0),
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

    /// How many executions may wait in this worker for one connection's slots: half of what it
    /// holds, so the other half always serves other connections.
    fn waiting_room(&self) -> usize {
        (self.capacity as usize / 2).max(1)
    }

    fn slots(&self, conn: ConnectionId) -> Arc<Slots> {
        self.slots_then(conn, |_| ())
    }

    /// `conn`'s local state, after `then` has run on it under the lock that also guards its
    /// removal (see `renew_all`).
    fn slots_then(&self, conn: ConnectionId, then: impl FnOnce(&Slots)) -> Arc<Slots> {
        let mut m = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let slots = m.entry(conn).or_insert_with(|| {
            Arc::new(Slots {
                wake: self.wake.clone(),
                ..Slots::default()
            })
        });
        then(slots);
        slots.clone()
    }

    /// A slot on `conn` for a call in `scope` if one is free now, without waiting or asking the
    /// fleet: `None` when the lease is due for renewal, a cool-down holds the call, others here
    /// already wait, or the share is full — [`Self::admit`] then decides.
    pub fn try_admit(&self, conn: ConnectionId, scope: Option<&str>) -> Option<Permit> {
        let slots = self.slots(conn);
        if !slots.lease_live()
            || slots.waiting.load(Ordering::SeqCst) > 0
            || throttled(&slots, scope).is_some()
        {
            return None;
        }
        slots.take()
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
        // Counted as waiting under the map's lock, so that an idle connection is never dropped
        // from the map between this look-up and the count.
        let mut ahead = 0;
        let slots = self.slots_then(conn, |s| ahead = s.waiting.fetch_add(1, Ordering::SeqCst));
        let _waiting = Waiting(&slots);
        let wait = if ahead < self.waiting_room() {
            room_wait.max(wait)
        } else {
            wait
        };
        self.admit_inner(conn, scope, cap, wait, &slots).await
    }

    async fn admit_inner(
        &self,
        conn: ConnectionId,
        scope: Option<&str>,
        cap: Option<i32>,
        wait: Duration,
        slots: &Arc<Slots>,
    ) -> Admission {
        if !slots.lease_live() {
            match self.renew(conn, cap, slots).await {
                Ok(Renewed::Gone) => return Admission::Gone,
                Ok(Renewed::Done | Renewed::UnderWay) => {}
                // Without Postgres nothing else works either; the ledger will say so. Run on
                // the last known share rather than fail here.
                Err(e) => {
                    tracing::warn!(error = %aic_core::with_causes(&*e), "could not renew the connection's lease")
                }
            }
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((until, why)) = throttled(slots, scope) {
                return Admission::Throttled(until, why);
            }
            if let Some(permit) = slots.take() {
                return Admission::Go(permit);
            }
            // The share is full: ask the fleet for more (demand grew), unless a renewal is
            // under way or has just run.
            let stale = slots
                .renewed_at
                .lock()
                .map(|r| r.is_none_or(|at| at.elapsed() >= RENEW_ON_DEMAND))
                .unwrap_or(true);
            if stale {
                match self.renew(conn, cap, slots).await {
                    Ok(Renewed::Done) => continue,
                    Ok(Renewed::Gone) => return Admission::Gone,
                    // Another renewal is under way; it wakes the waiters when done.
                    Ok(Renewed::UnderWay) => {}
                    Err(e) => {
                        tracing::warn!(error = %aic_core::with_causes(&*e), "could not renew the connection's lease");
                        slots.freed.notify_waiters();
                    }
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
    /// connection's status) — or, with a `scope`, only the calls in that scope. `domain` is the
    /// connection's domain the refused call went to: a refusal from an instance the connection
    /// has been moved away from meanwhile holds nothing (see [`aic_core::cooldown::record`]).
    pub async fn throttle(
        &self,
        conn: ConnectionId,
        domain: &str,
        scope: Option<&str>,
        until: DateTime<Utc>,
        reason: &str,
    ) {
        let slots = self.slots(conn);
        let skew = chrono::Duration::milliseconds(self.clock_skew_ms.load(Ordering::Relaxed));
        let since = Utc::now() + skew;
        let held = Held {
            until,
            reason: reason.to_string(),
            since,
        };
        // Held here at once; the fleet's record follows.
        hold(&slots, scope, held);
        let recorded = async {
            let client = self.pool.get().await?;
            let kept =
                aic_core::cooldown::record(&client, conn, domain, scope, until, reason).await?;
            anyhow::Ok(kept)
        };
        match recorded.await {
            Ok(true) => {
                tracing::warn!(connection = %conn, scope, %until, %reason, "connection cooling down")
            }
            Ok(false) => {
                unhold(&slots, scope, since);
                tracing::info!(connection = %conn, scope, "a refusal from the connection's former instance holds nothing: the connection was moved or deleted");
            }
            Err(e) => {
                tracing::warn!(connection = %conn, scope, %until, %reason, "connection cooling down");
                tracing::warn!(error = %aic_core::with_causes(&*e), "could not record the connection's cool-down");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;

    #[test]
    fn one_renewal_at_a_time_and_a_refused_start_leaves_it_running() {
        let s = Slots::default();
        let first = s.begin_renewal().expect("the first renewal starts");
        assert!(s.begin_renewal().is_none(), "a second alongside the first");
        assert!(
            s.begin_renewal().is_none(),
            "the refused start ended the renewal under way"
        );
        drop(first);
        assert!(s.begin_renewal().is_some(), "none after the first ended");
    }
}
