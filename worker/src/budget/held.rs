//! The cool-downs a worker keeps in memory for a connection: the whole connection's and its
//! scopes', each with when this worker learnt of it.

use super::Slots;
use chrono::{DateTime, Utc};

/// A cool-down this worker keeps: until when, why, and since when this worker knows of it, by
/// the database's clock (an admin's clearing, stamped by that clock, drops those known from
/// before it; see the lease's renewal).
#[derive(Debug, Clone)]
pub(super) struct Held {
    pub(super) until: DateTime<Utc>,
    pub(super) reason: String,
    pub(super) since: DateTime<Utc>,
}

/// Keeps `held` on `slots` (for `scope`, when given) unless a later one is kept already.
pub(super) fn hold(slots: &Slots, scope: Option<&str>, held: Held) {
    let later = |t: Option<&Held>| t.is_none_or(|h| h.until < held.until);
    match scope {
        None => {
            if let Ok(mut t) = slots.throttle.lock()
                && later(t.as_ref())
            {
                *t = Some(held);
            }
        }
        Some(scope) => {
            if let Ok(mut m) = slots.scoped.lock()
                && later(m.get(scope))
            {
                m.insert(scope.to_string(), held);
            }
        }
    }
}

/// Drops the hold [`hold`] kept `since` then (for `scope`, when given), if it is still kept.
pub(super) fn unhold(slots: &Slots, scope: Option<&str>, since: DateTime<Utc>) {
    let ours = |h: &Held| h.since == since;
    match scope {
        None => {
            if let Ok(mut t) = slots.throttle.lock()
                && t.as_ref().is_some_and(ours)
            {
                *t = None;
            }
        }
        Some(scope) => {
            if let Ok(mut m) = slots.scoped.lock()
                && m.get(scope).is_some_and(ours)
            {
                m.remove(scope);
            }
        }
    }
    slots.freed.notify_waiters();
}

/// The cool-down in force on `slots`' connection for a call in `scope`: the connection's own,
/// or its scope's, whichever ends later.
pub(super) fn throttled(slots: &Slots, scope: Option<&str>) -> Option<(DateTime<Utc>, String)> {
    let now = Utc::now();
    let live = |h: &Held| (h.until > now).then(|| (h.until, h.reason.clone()));
    let whole = slots
        .throttle
        .lock()
        .ok()
        .and_then(|t| t.as_ref().and_then(live));
    let part = scope.and_then(|s| {
        let m = slots.scoped.lock().ok()?;
        m.get(s).and_then(live)
    });
    match (whole, part) {
        (Some(w), Some(p)) => Some(if p.0 > w.0 { p } else { w }),
        (w, p) => w.or(p),
    }
}
