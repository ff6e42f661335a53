//! The retry policy: exponential backoff with jitter (backon), honouring the vendor's
//! `Retry-After` up to the cap, and retrying only what the classifier called retryable.

use aic_core::vendor::{RetryClass, VendorFailure};
use backon::{ExponentialBuilder, Retryable};
use std::future::Future;
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
}

impl RetryPolicy {
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.base)
            .with_max_delay(self.cap)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
    }
}

/// Runs `op` until it succeeds, fails non-retryably, or the policy is spent. `on_retry` sees
/// each retry before its sleep.
pub async fn run<T, F, Fut>(
    policy: RetryPolicy,
    op: F,
    mut on_retry: impl FnMut(&VendorFailure, Duration),
) -> Result<T, VendorFailure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, VendorFailure>>,
{
    let cap = policy.cap;
    op.retry(policy.backoff())
        .sleep(tokio::time::sleep)
        .when(|e: &VendorFailure| e.class == RetryClass::Retryable)
        .adjust(move |e: &VendorFailure, planned: Option<Duration>| {
            match (planned, e.retry_after) {
                // The vendor knows best when it will take more, within our cap.
                (Some(_), Some(after)) => Some(after.min(cap)),
                (planned, _) => planned,
            }
        })
        .notify(|e: &VendorFailure, d: Duration| on_retry(e, d))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use aic_proto::ExecutionErrorCode;
    use std::sync::atomic::{AtomicU32, Ordering};

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
    };

    #[tokio::test]
    async fn retryable_failures_are_retried_until_the_attempts_run_out() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = run(
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
        let r: Result<(), _> = run(
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
        let _: Result<(), _> = run(
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
}
