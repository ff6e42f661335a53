//! A connection's slots in this worker: the share it may use (its lease) and its calls in
//! flight, kept in one atomic word. A call is admitted only under the share in force at that
//! very instant, so a share lowered for the fleet is never overrun by a call admitted under
//! the old one — the lease records what is in use at the instant the share drops, and nothing
//! beyond it starts afterwards.

use std::sync::atomic::{AtomicU64, Ordering};

/// The share (high half) and the calls in flight (low half).
#[derive(Debug, Default)]
pub(super) struct Count(AtomicU64);

fn split(word: u64) -> (usize, usize) {
    ((word >> 32) as usize, (word & u64::from(u32::MAX)) as usize)
}

fn join(limit: usize, in_use: usize) -> u64 {
    (limit.min(u32::MAX as usize) as u64) << 32 | in_use as u64
}

impl Count {
    /// The calls this worker may have in flight.
    pub(super) fn limit(&self) -> usize {
        split(self.0.load(Ordering::SeqCst)).0
    }

    /// The calls in flight.
    pub(super) fn in_use(&self) -> usize {
        split(self.0.load(Ordering::SeqCst)).1
    }

    /// Takes a slot if the share has one free.
    pub(super) fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                let (limit, used) = split(w);
                (used < limit).then(|| join(limit, used + 1))
            })
            .is_ok()
    }

    /// Gives a taken slot back; returns the calls still in flight.
    pub(super) fn give(&self) -> usize {
        let before = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                let (limit, used) = split(w);
                Some(join(limit, used.saturating_sub(1)))
            })
            .unwrap_or_default();
        split(before).1.saturating_sub(1)
    }

    /// Sets the share; returns the calls in flight at that instant.
    pub(super) fn set_limit(&self, limit: usize) -> usize {
        self.update_limit(|_| limit)
    }

    /// Lowers the share to at most `limit`; returns the calls in flight at that instant,
    /// which from then on only fall until the share is raised again.
    pub(super) fn lower(&self, limit: usize) -> usize {
        self.update_limit(|old| old.min(limit))
    }

    /// Closes the share (to nothing) when no call is in flight; says whether it did.
    pub(super) fn close_if_idle(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                (split(w).1 == 0).then_some(0)
            })
            .is_ok()
    }

    fn update_limit(&self, f: impl Fn(usize) -> usize) -> usize {
        let before = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                let (limit, used) = split(w);
                Some(join(f(limit), used))
            })
            .unwrap_or_default();
        split(before).1
    }
}

#[cfg(test)]
mod tests {
    use super::Count;

    #[test]
    fn takes_only_within_the_share_and_gives_back() {
        let c = Count::default();
        assert!(!c.take(), "no share yet");
        assert_eq!(c.set_limit(2), 0);
        assert!(c.take() && c.take());
        assert!(!c.take(), "a third call over a share of 2");
        assert_eq!((c.limit(), c.in_use()), (2, 2));
        assert!(!c.close_if_idle(), "closed with calls in flight");
        assert_eq!(c.lower(1), 2, "the calls in flight when the share dropped");
        assert_eq!(c.give(), 1);
        assert!(!c.take(), "a call over the lowered share");
        assert_eq!(c.give(), 0);
        assert!(c.take());
        assert_eq!(c.lower(5), 1, "lowering never raises");
        assert_eq!(c.limit(), 1);
        assert_eq!(c.give(), 0);
        assert!(c.close_if_idle());
        assert_eq!((c.limit(), c.in_use()), (0, 0));
        assert!(!c.take());
    }
}
