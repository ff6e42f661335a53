//! The retry policy: exponential backoff with full jitter (backon), honouring the vendor's
//! `Retry-After` up to the cap, within a total time budget, and retrying only what the
//! classifier called retryable. Each automation may override the worker's defaults.

use aic_core::vendor::{RetryClass, VendorFailure};
use backon::{ExponentialBuilder, Retryable};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How hard to try.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Calls in all, including the first.
    pub max_attempts: u32,
    /// First delay.
    pub base: Duration,
    /// Longest delay (also caps `Retry-After`).
    pub cap: Duration,
    /// No retry starts whose wait would end later than this after the first call.
    pub budget: Duration,
    /// Longest wait slept in the worker; a retry due later leaves through a delay queue.
    pub inline_max: Duration,
    /// Wait out a connection's cool-down (within the budget) rather than fail at once.
    pub wait_on_throttle: bool,
}

impl RetryPolicy {
    /// This policy with an automation's overrides applied.
    pub fn with(self, spec: Option<&aic_proto::RetrySpec>) -> Self {
        let Some(s) = spec else { return self };
        let ms = Duration::from_millis;
        let base = s.base_ms.map(ms).unwrap_or(self.base);
        Self {
            max_attempts: s.max_attempts.unwrap_or(self.max_attempts).max(1),
            base,
            cap: s.cap_ms.map(ms).unwrap_or(self.cap).max(base),
            budget: s.budget_ms.map(ms).unwrap_or(self.budget),
            inline_max: self.inline_max,
            wait_on_throttle: s.on_throttle.map_or(self.wait_on_throttle, |p| {
                p == aic_proto::ThrottlePolicy::Wait
            }),
        }
    }

    /// What is left of this policy after `done` vendor calls that began `elapsed` ago (an
    /// execution resumed from a delay queue): fewer attempts, a later backoff step, less budget.
    pub fn resume(self, done: u32, elapsed: Duration) -> Self {
        if done == 0 {
            return self;
        }
        let step = 2u32.saturating_pow(done.saturating_sub(1).min(20));
        Self {
            max_attempts: self.max_attempts.saturating_sub(done).max(1),
            base: self.base.saturating_mul(step).min(self.cap),
            budget: self.budget.saturating_sub(elapsed),
            ..self
        }
    }

    fn backoff(&self) -> ExponentialBuilder {
        // No backon jitter: it adds up to one delay on top, where full jitter draws the whole
        // delay from [0, delay] (see `run`), which spreads a fleet's retries best.
        ExponentialBuilder::default()
            .with_min_delay(self.base)
            .with_max_delay(self.cap)
            .with_factor(2.0)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
    }
}

/// Runs `op` until it succeeds, fails non-retryably, or the policy is spent. `on_retry` sees
/// each retry before its sleep. When the next retry is due later than `inline_max`, it stops
/// with the last failure and the wait (the caller hands the retry to a delay queue).
pub async fn run<T, F, Fut>(
    policy: RetryPolicy,
    op: F,
    mut on_retry: impl FnMut(&VendorFailure, Duration),
) -> (Result<T, VendorFailure>, Option<Duration>)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, VendorFailure>>,
{
    let cap = policy.cap;
    let started = std::time::Instant::now();
    let budget = policy.budget;
    let inline_max = policy.inline_max;
    // Milliseconds of a retry left to a delay queue; u64::MAX while there is none.
    let deferred = &AtomicU64::new(u64::MAX);
    let result = op
        .retry(policy.backoff())
        .sleep(tokio::time::sleep)
        .when(|e: &VendorFailure| e.class == RetryClass::Retryable)
        .adjust(move |e: &VendorFailure, planned: Option<Duration>| {
            let delay = match (planned, e.retry_after) {
                // The vendor knows best when it will take more, within our cap.
                (Some(_), Some(after)) => after.min(cap),
                (Some(d), None) => d.mul_f64(fastrand::f64()),
                (None, _) => return None,
            };
            // A retry that would start past the budget is not worth starting.
            if started.elapsed() + delay > budget {
                return None;
            }
            if delay > inline_max {
                deferred.store(delay.as_millis() as u64, Ordering::SeqCst);
                return None;
            }
            Some(delay)
        })
        .notify(|e: &VendorFailure, d: Duration| on_retry(e, d))
        .await;
    let deferred = match deferred.load(Ordering::SeqCst) {
        u64::MAX => None,
        ms => Some(Duration::from_millis(ms)),
    };
    match result {
        Ok(v) => (Ok(v), None),
        Err(e) => (Err(e), deferred),
    }
}

/// Retries an infrastructure operation (`op`: a ledger write, a publish) with backoff (100 ms
/// doubling to 5 s) until it succeeds, or returns `None` once `stopping` is set. Each retry is
/// logged and counted under `step` in `aic_infrastructure_retries_total`.
pub async fn in_place<T, E: std::fmt::Display, F, Fut>(
    stopping: &std::sync::atomic::AtomicBool,
    metrics: &crate::metrics::Metrics,
    step: crate::metrics::Step,
    mut op: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut delay = std::time::Duration::from_millis(100);
    loop {
        match op().await {
            Ok(v) => return Some(v),
            Err(e) => {
                if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    return None;
                }
                metrics.retried(step);
                tracing::warn!(error = %e, delay_ms = delay.as_millis() as u64, step = step.label(), "could not {}; retrying", step.what());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aic_proto::ExecutionErrorCode;
    use std::sync::atomic::AtomicU32;

    fn failure(class: RetryClass, retry_after: Option<Duration>) -> VendorFailure {
        VendorFailure {
            class,
            code: ExecutionErrorCode::VendorUnavailable,
            message: "x".into(),
            vendor: None,
            retry_after,
        }
    }

    const FAST: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(50),
        budget: Duration::from_secs(10),
        inline_max: Duration::from_secs(10),
        wait_on_throttle: true,
    };

    #[tokio::test]
    async fn a_retry_due_later_than_the_inline_limit_is_handed_back() {
        let policy = RetryPolicy {
            inline_max: Duration::from_millis(100),
            cap: Duration::from_secs(60),
            budget: Duration::from_secs(120),
            ..FAST
        };
        let calls = AtomicU32::new(0);
        let (r, deferred): (Result<(), _>, _) = run(
            policy,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(failure(
                    RetryClass::Retryable,
                    Some(Duration::from_secs(30)),
                ))
            },
            |_, _| {},
        )
        .await;
        assert!(r.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "no in-process wait of 30 s"
        );
        assert_eq!(deferred, Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_resumed_policy_has_what_is_left() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            budget: Duration::from_secs(60),
            inline_max: Duration::from_secs(5),
            wait_on_throttle: true,
        }
        .resume(3, Duration::from_secs(20));
        assert_eq!(p.max_attempts, 2);
        assert_eq!(p.base, Duration::from_millis(400));
        assert_eq!(p.budget, Duration::from_secs(40));
    }

    #[tokio::test]
    async fn delays_are_full_jitter_within_the_exponential_bound() {
        let policy = RetryPolicy {
            max_attempts: 6,
            base: Duration::from_millis(8),
            cap: Duration::from_millis(40),
            ..FAST
        };
        let mut delays = Vec::new();
        let _: (Result<(), _>, _) = run(
            policy,
            || async { Err(failure(RetryClass::Retryable, None)) },
            |_, d| delays.push(d),
        )
        .await;
        assert_eq!(delays.len(), 5);
        for (i, d) in delays.iter().enumerate() {
            let bound =
                Duration::from_millis(8 * 2u64.pow(i as u32)).min(Duration::from_millis(40));
            assert!(*d <= bound, "retry {i} waited {d:?}, above {bound:?}");
        }
    }

    #[tokio::test]
    async fn no_retry_starts_past_the_budget() {
        let policy = RetryPolicy {
            max_attempts: 10,
            budget: Duration::from_millis(100),
            ..FAST
        };
        let calls = AtomicU32::new(0);
        let started = std::time::Instant::now();
        let (r, _): (Result<(), _>, _) = run(
            policy,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                // Each call takes 40 ms and asks for a 30 ms wait: the second retry would
                // start at ~140 ms, past the 100 ms budget.
                tokio::time::sleep(Duration::from_millis(40)).await;
                Err(failure(
                    RetryClass::Retryable,
                    Some(Duration::from_millis(30)),
                ))
            },
            |_, _| {},
        )
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(started.elapsed() < Duration::from_millis(200));
    }

    #[test]
    fn an_automation_overrides_only_what_it_sets() {
        let spec = aic_proto::RetrySpec {
            max_attempts: Some(1),
            cap_ms: Some(5),
            ..Default::default()
        };
        let p = FAST.with(Some(&spec));
        assert_eq!(p.max_attempts, 1);
        assert_eq!(p.base, FAST.base);
        // A cap below the base would make no sense: the base wins.
        assert_eq!(p.cap, Duration::from_millis(5).max(FAST.base));
        assert_eq!(p.budget, FAST.budget);
        assert_eq!(FAST.with(None).max_attempts, FAST.max_attempts);
    }

    #[tokio::test]
    async fn retryable_failures_are_retried_until_the_attempts_run_out() {
        let calls = AtomicU32::new(0);
        let (r, _): (Result<(), _>, _) = run(
            FAST,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(failure(RetryClass::Retryable, None))
            },
            |_, _| {},
        )
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let calls = AtomicU32::new(0);
        let (r, _): (Result<(), _>, _) = run(
            FAST,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(failure(RetryClass::Permanent, None))
            },
            |_, _| {},
        )
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn retry_after_is_honoured_up_to_the_cap() {
        let mut delays = Vec::new();
        let calls = AtomicU32::new(0);
        let _: (Result<(), _>, _) = run(
            FAST,
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                let after = if n == 0 {
                    Duration::from_millis(20)
                } else {
                    Duration::from_secs(60)
                };
                Err(failure(RetryClass::Retryable, Some(after)))
            },
            |_, d| delays.push(d),
        )
        .await;
        assert_eq!(
            delays,
            vec![Duration::from_millis(20), Duration::from_millis(50)]
        );
    }

    #[tokio::test]
    async fn a_step_retried_in_place_is_counted_under_its_own_label() {
        use crate::metrics::{Metrics, Step};
        let metrics = Metrics::new();
        let stopping = std::sync::atomic::AtomicBool::new(false);
        let calls = AtomicU32::new(0);
        let got = in_place(&stopping, &metrics, Step::PublishResult, || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { if n < 2 { Err("not confirmed") } else { Ok(n) } }
        })
        .await;
        assert_eq!(got, Some(2));
        let text = metrics.render();
        assert!(
            text.contains(r#"aic_infrastructure_retries_total{step="publish_result"} 2"#),
            "{text}"
        );
        assert!(!text.contains(r#"step="record_result""#), "{text}");

        // Stopping: the failure is left to redelivery, neither retried nor counted.
        stopping.store(true, Ordering::SeqCst);
        let got: Option<()> = in_place(&stopping, &metrics, Step::RecordResult, || async {
            Err("database away")
        })
        .await;
        assert_eq!(got, None);
        assert!(!metrics.render().contains(r#"step="record_result""#));
    }
}
