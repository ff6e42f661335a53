//! One execution's vendor interaction: a cached token, the call, one refresh on a refused
//! token (for any request made with the token: [`with_token`]), and retries of transient
//! failures under the policy.

use crate::executor::Ctx;
use crate::tokens::TokenKey;
use aic_core::credentials::{Sealed, SecretFields, connection_aad};
use aic_core::vendor::rotation;
use aic_core::vendor::{
    self, AccessToken, Call, CallSuccess, ConnectionTarget, RetryClass, Vendor, VendorFailure,
};
use aic_proto::ExecutionErrorCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use url::Url;

/// The connection side of an invocation.
#[derive(Debug)]
pub struct Target<'a> {
    /// Connector.
    pub vendor: Vendor,
    /// App id (metric label).
    pub app: &'a str,
    /// The action's metric series.
    pub series: &'a crate::metrics::ActionSeries,
    /// Token cache key: the connection and the version of its secrets.
    pub key: TokenKey,
    /// Instance base URL.
    pub instance: &'a Url,
    /// The connection's domain as read, whence `instance` (a cool-down the vendor asks for
    /// holds the connection only while it stays on that domain).
    pub domain: &'a str,
    /// Auth type.
    pub auth_type: &'a str,
    /// The connection's secrets, still sealed: opened only when a token must be fetched.
    pub sealed: &'a Sealed,
    /// Owner (bound into the sealed secrets; for re-sealing a rotated refresh token).
    pub tenant: aic_proto::TenantId,
    /// The part of the connection a rate limit on this call applies to (`channel:C0123`), when
    /// the vendor limits less than the whole connection.
    pub scope: Option<&'a str>,
}

/// Opens the connection's sealed secrets — only to fetch a token (a cache miss, an expiry, a
/// refused token): an execution served from the token cache never holds its connection's
/// plaintext secrets, and does not pay for the decryption and the parse of the opened fields
/// (~3% of a worker's instructions per execution when every execution opened them). A row
/// that does not open is the execution's permanent failure; the reason goes to the log, never
/// the key material or the fields.
fn open_secrets(ctx: &Ctx, t: &Target<'_>) -> Result<SecretFields, VendorFailure> {
    let connection = t.key.0;
    ctx.keyring
        .open(t.sealed, &connection_aad(t.tenant, connection))
        .map_err(|e| {
            tracing::error!(connection = %connection, error = %e, "connection secrets do not open");
            VendorFailure {
                class: RetryClass::Permanent,
                code: ExecutionErrorCode::Internal,
                message: "the connection's credentials could not be opened".into(),
                vendor: None,
                retry_after: None,
            }
        })
}

/// The connection's cached credential (fetched once for all concurrent executions; renewed
/// from the one it replaces where the vendor allows).
pub(crate) async fn token(ctx: &Ctx, t: &Target<'_>) -> Result<Arc<AccessToken>, VendorFailure> {
    ctx.tokens
        .get(t.key, |previous| async move {
            // A rotating connection reads and opens its latest sealed secrets itself.
            let r = if t.vendor.rotates_refresh_token(t.auth_type) {
                rotate(ctx, t).await
            } else {
                let secrets = open_secrets(ctx, t)?;
                let target = ConnectionTarget {
                    vendor: t.vendor,
                    instance: t.instance,
                    auth_type: t.auth_type,
                    secrets: &secrets,
                };
                match previous {
                    Some(previous) => {
                        vendor::renew(&ctx.http, &ctx.egress, &target, &previous).await
                    }
                    None => vendor::authenticate(&ctx.http, &ctx.egress, &target).await,
                }
            };
            let outcome = match &r {
                Ok(_) => "ok",
                Err(f)
                    if matches!(
                        f.code,
                        ExecutionErrorCode::VendorAuthFailed
                            | ExecutionErrorCode::ConnectionNeedsReauthorization
                    ) =>
                {
                    "refused"
                }
                Err(_) => "error",
            };
            ctx.metrics
                .token_requests
                .with_label_values(&[t.app, outcome])
                .inc();
            r
        })
        .await
}

/// See [`aic_core::vendor::rotation`].
async fn rotate(ctx: &Ctx, t: &Target<'_>) -> Result<AccessToken, VendorFailure> {
    let c = rotation::Rotating {
        vendor: t.vendor,
        instance: t.instance,
        auth_type: t.auth_type,
        tenant: t.tenant,
        connection: t.key.0,
    };
    rotation::refresh(&ctx.pool, &ctx.keyring, &ctx.http, &ctx.egress, &c).await
}

async fn call_once(
    ctx: &Ctx,
    t: &Target<'_>,
    token: &AccessToken,
    call: &Call<'_>,
    attempts: &AtomicU32,
) -> Result<CallSuccess, VendorFailure> {
    attempts.fetch_add(1, Ordering::Relaxed);
    let timer = t.series.vendor_request_duration.start_timer();
    let r = vendor::call(&ctx.http, &ctx.egress, t.vendor, token, call).await;
    drop(timer);
    t.series.vendor_request(match &r {
        // Only a 2xx answer is a success (redirects are never followed).
        Ok(_) => Some(200),
        Err(f) => f.vendor.as_ref().and_then(|v| v.http_status),
    });
    r
}

/// One attempt: call with the cached token; if the vendor refuses the token, refresh it once
/// and call once more.
async fn attempt(
    ctx: &Ctx,
    t: &Target<'_>,
    call: &Call<'_>,
    attempts: &AtomicU32,
) -> Result<CallSuccess, VendorFailure> {
    with_token(ctx, t, |token| async move {
        call_once(ctx, t, &token, call, attempts).await
    })
    .await
}

/// Runs `op` (a vendor request) with the connection's cached token; if the vendor refuses that
/// token, refreshes it once and runs `op` once more.
pub(crate) async fn with_token<T, Fut>(
    ctx: &Ctx,
    t: &Target<'_>,
    mut op: impl FnMut(Arc<AccessToken>) -> Fut,
) -> Result<T, VendorFailure>
where
    Fut: std::future::Future<Output = Result<T, VendorFailure>>,
{
    let first = token(ctx, t).await?;
    match op(first.clone()).await {
        Err(f) if f.class == RetryClass::RefreshAuth => {
            ctx.tokens.invalidate(t.key, &first).await;
            let fresh = token(ctx, t).await?;
            op(fresh).await.map_err(|mut f| {
                if f.class == RetryClass::RefreshAuth {
                    // A brand-new token refused too: the credentials lost their access.
                    f.class = RetryClass::Permanent;
                    f.code = ExecutionErrorCode::VendorAuthFailed;
                }
                f
            })
        }
        other => other,
    }
}

/// Runs the call under the retry policy; returns the outcome, the number of vendor calls, and
/// the wait of a retry left to a delay queue (see [`crate::retry::run`]).
pub async fn invoke(
    ctx: &Ctx,
    t: &Target<'_>,
    call: &Call<'_>,
    policy: crate::retry::RetryPolicy,
) -> (
    Result<CallSuccess, VendorFailure>,
    u32,
    Option<std::time::Duration>,
) {
    let attempts = AtomicU32::new(0);
    let (result, deferred) = crate::retry::run(policy, || attempt(ctx, t, call, &attempts), |f, delay| {
        t.series.retries.inc();
        hold_while_waiting(ctx, t, f, delay);
        tracing::info!(class = f.class.as_str(), delay_ms = delay.as_millis() as u64, reason = %f.message, "retrying vendor call");
    })
    .await;
    (result, attempts.load(Ordering::Relaxed), deferred)
}

/// A request on `t` refused with a `Retry-After`, retried in process after `delay`: the vendor
/// said when it will take more, so every worker holds the connection till then (for as long as
/// this execution itself waits: the vendor's wait within the cap).
pub(crate) fn hold_while_waiting(
    ctx: &Ctx,
    t: &Target<'_>,
    f: &VendorFailure,
    delay: std::time::Duration,
) {
    if let Some(after) = f.retry_after {
        let budgets = ctx.budgets.clone();
        let conn = t.key.0;
        let domain = t.domain.to_string();
        let scope = t.scope.map(str::to_string);
        let why = aic_core::cooldown::rate_limited(f, after, t.scope);
        let until = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        tokio::spawn(async move {
            budgets
                .throttle(conn, &domain, scope.as_deref(), until, &why)
                .await
        });
    }
}
