//! The connection's side of a vendor call: before it, a slot within the fleet-wide cap and no
//! cool-down in force; after it, a cool-down when the vendor said stop or its quota is nearly
//! spent (see [`crate::budget`]), and the connection's status and auth breaker.

use crate::budget::{Admission, Permit};
use crate::executor::Ctx;
use crate::invoke::Target;
use crate::ledger::Mark;
use crate::resolve::{ConnectionRow, Resolved};
use crate::retry::RetryPolicy;
use aic_core::vendor::{CallSuccess, VendorFailure};
use aic_proto::{ConnectionId, ExecutionErrorCode};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// How long an execution waits in the worker for a slot before leaving through a delay queue,
/// when the connection's waiting room is full (see [`crate::budget`]); within the room it may
/// wait as long as a retry may sleep in the worker (`AIC_WORKER_RETRY_INLINE_MAX_MS`).
const SLOT_WAIT: Duration = Duration::from_millis(250);
/// The next look at a connection whose slots are all taken.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// Why a call cannot go now.
#[derive(Debug)]
pub enum Hold {
    /// Try again after this long (through a delay queue), for this reason.
    Wait(Duration, String),
    /// The connection's cool-down holds the call this long, for this reason: wait (through a
    /// delay queue), looking at it again now and then, since an admin may end it early.
    CoolDown(Duration, String),
    /// Give up, with this code and reason: waiting would overrun the execution's retry
    /// budget, or there is nothing left to call on.
    Fail(ExecutionErrorCode, String),
}

/// The part of the connection a rate limit on this call applies to (see
/// [`aic_core::cooldown::scope`]). `None`: the whole connection.
pub fn scope(
    catalog: &aic_core::catalog::Catalog,
    def: &aic_proto::AutomationDefinition,
    body: &serde_json::Value,
) -> Option<String> {
    aic_core::cooldown::scope(catalog.template(&def.app, &def.action)?, body)
}

/// Takes a slot on the connection for a call in `scope` (the part of the connection the
/// vendor's rate limit applies to, if it is not the whole), sleeping out a short cool-down in
/// the worker.
pub async fn admit(
    ctx: &Ctx,
    conn: &ConnectionRow,
    scope: Option<&str>,
    policy: &RetryPolicy,
    since_first: Duration,
) -> Result<Permit, Hold> {
    loop {
        match ctx
            .budgets
            .admit(
                conn.id,
                scope,
                conn.max_concurrency,
                SLOT_WAIT,
                policy.inline_max,
            )
            .await
        {
            Admission::Go(permit) => return Ok(permit),
            Admission::Busy => {
                return Err(Hold::Wait(
                    BUSY_RETRY,
                    "every slot of the connection is in use across the workers".into(),
                ));
            }
            Admission::Gone => {
                // Only with its automations, which reference it: the automation is gone too.
                return Err(Hold::Fail(
                    ExecutionErrorCode::UnknownAutomation,
                    format!(
                        "the connection {} was deleted while this execution waited to call the vendor",
                        conn.id
                    ),
                ));
            }
            Admission::Throttled(until, why) => {
                tokio::time::sleep(cool_down(until, &why, policy, since_first)?).await;
            }
        }
    }
}

/// How long to sleep out the connection's cool-down until `until` in the worker; a hold when
/// the automation fails rather than waits, when the wait would end past the execution's retry
/// budget, or when it is too long to sleep (a delay queue takes it).
fn cool_down(
    until: DateTime<Utc>,
    why: &str,
    policy: &RetryPolicy,
    since_first: Duration,
) -> Result<Duration, Hold> {
    let wait = (until - Utc::now()).to_std().unwrap_or_default();
    if !policy.wait_on_throttle {
        return Err(Hold::Fail(
            ExecutionErrorCode::ConnectionThrottled,
            format!(
                "the connection is cooling down until {until} ({why}), and this automation fails rather than waits"
            ),
        ));
    }
    if since_first + wait > policy.budget {
        return Err(Hold::Fail(
            ExecutionErrorCode::ConnectionThrottled,
            format!(
                "the connection is cooling down until {until} ({why}), past this execution's retry budget"
            ),
        ));
    }
    if wait > policy.inline_max {
        return Err(Hold::CoolDown(
            wait,
            format!("the connection is cooling down until {until}: {why}"),
        ));
    }
    Ok(wait)
}

/// [`admit`] for an execution in `mark`'s state of the vendor-call mark. When begin set it,
/// a slot free now lets the call go under it; one that must be waited for (or asked of the
/// fleet) is waited for with the mark taken back — `mark` becomes [`Mark::Unset`] —, so that a
/// crash meanwhile leaves a request that never left to be sent, not reported in doubt.
pub async fn admit_marked(
    ctx: &Ctx,
    execution: uuid::Uuid,
    conn: &ConnectionRow,
    scope: Option<&str>,
    (policy, since_first): (&RetryPolicy, Duration),
    mark: &mut Mark,
) -> Result<Permit, Hold> {
    if *mark == Mark::SetByBegin {
        if let Some(permit) = ctx.budgets.try_admit(conn.id, scope) {
            return Ok(permit);
        }
        match ctx.ledger.unmark(execution).await {
            Ok(()) => *mark = Mark::Unset,
            // It stays: a crash while waiting then ends the execution in doubt, never sent
            // twice.
            Err(e) => {
                tracing::warn!(error = %e, "could not take back the vendor-call mark before waiting for the connection")
            }
        }
    }
    admit(ctx, conn, scope, policy, since_first).await
}

/// Starts a cool-down when the vendor's answer to the call on `t` calls for one (see
/// [`aic_core::cooldown::called_for`]; a `Retry-After` counts up to `cap`, as for the
/// execution's own retries).
pub async fn after_call(
    ctx: &Ctx,
    t: &Target<'_>,
    cap: Duration,
    result: &Result<CallSuccess, VendorFailure>,
) {
    let now = Utc::now();
    if let Some(c) = aic_core::cooldown::called_for(result, t.scope, cap, ctx.quota_reserve, now) {
        hold_connection(ctx, t, c, now).await;
    }
}

/// The same for a request made beside the call (a create's dedupe lookup), given up on or left
/// to a delay queue with `f`: a vendor's refusal that says when to come back holds the
/// connection as a refused call would.
pub async fn after_refusal(ctx: &Ctx, t: &Target<'_>, cap: Duration, f: &VendorFailure) {
    if let Some(c) = aic_core::cooldown::refused(f, t.scope, cap) {
        hold_connection(ctx, t, c, Utc::now()).await;
    }
}

/// Holds `t`'s connection (or the cool-down's scope of it) for `c`'s wait from `now`, across
/// the fleet, while it stays on the domain called.
async fn hold_connection(
    ctx: &Ctx,
    t: &Target<'_>,
    c: aic_core::cooldown::CoolDown<'_>,
    now: chrono::DateTime<Utc>,
) {
    let until = now + chrono::Duration::from_std(c.wait).unwrap_or_default();
    let conn = t.key.0;
    ctx.budgets
        .throttle(conn, t.domain, c.scope, until, &c.reason)
        .await;
}

/// A connection whose credentials the vendor refused says so in its status, so admins see it
/// and, once it needs re-authorisation, executions on it fail fast without a vendor call.
/// Refusals in a row also count towards the breaker: at the third, executions on the
/// connection fail fast for a minute instead of presenting refused credentials again. A
/// refusal of credentials since replaced (an admin re-authorised while the call was under way)
/// is not held against the new ones.
pub async fn record_auth_failure(ctx: &Ctx, r: &Resolved, f: &VendorFailure) {
    let status = match f.code {
        ExecutionErrorCode::ConnectionNeedsReauthorization => "needs_reauthorization",
        ExecutionErrorCode::VendorAuthFailed => "failing",
        _ => return,
    };
    let updated = match ctx.pool.get().await {
        Ok(client) => client
            .execute(
                "UPDATE connections SET status = $2, status_detail = $3, status_checked_at = now(), \
                 auth_failures = auth_failures + 1, \
                 breaker_open_until = CASE WHEN $2 = 'failing' AND auth_failures + 1 >= 3 \
                   THEN now() + interval '60 seconds' ELSE breaker_open_until END \
                 WHERE id = $1 AND secret_version = $4",
                &[
                    &r.connection.id.0,
                    &status,
                    &aic_proto::text::without_nul(&f.message),
                    &r.connection.secret_version,
                ],
            )
            .await
            .map(|_| ()),
        Err(e) => {
            tracing::warn!(error = %aic_core::with_causes(&e), "could not record the connection's status");
            return;
        }
    };
    if let Err(e) = updated {
        tracing::warn!(error = %aic_core::with_causes(&e), "could not record the connection's status");
    }
}

/// The connections, versions of their secrets and statuses this process already recorded as
/// working. A new connection's first burst of executions all resolved it `untested`: only the
/// first success records that it works, instead of each of them queueing on its row (and on the
/// database pool) with the same update. Not shared and not needed for correctness: another
/// worker records it once too, and a restart once more.
#[derive(Debug, Default)]
pub struct Proven(std::sync::Mutex<std::collections::HashSet<ProvenKey>>);

/// A connection as resolved: its id, secrets' version, status and when that status was
/// written — a connection test that fails it again is a new spell to clear.
type ProvenKey = (
    ConnectionId,
    i32,
    String,
    Option<chrono::DateTime<chrono::Utc>>,
);

impl Proven {
    /// True for the first success on `c` as resolved (its secrets' version, status and that
    /// status's time), false after: the update is on its way or done. Emptied when it grows past a bound.
    pub fn first(&self, c: &ConnectionRow) -> bool {
        let Ok(mut seen) = self.0.lock() else {
            return true;
        };
        if seen.len() >= 10_000 {
            seen.clear();
        }
        seen.insert((
            c.id,
            c.secret_version,
            c.status.clone(),
            c.status_checked_at,
        ))
    }
}

/// Whether a success on the connection has something to record: refusals counted (always), or
/// a status other than `connected` not yet recorded by this process.
#[inline]
pub fn success_changes(ctx: &Ctx, c: &ConnectionRow) -> bool {
    c.auth_failures > 0 || (c.status != "connected" && ctx.proven.first(c))
}

/// The credentials work: the refusal count and the breaker start over, and a connection that
/// was `untested` (new, or given new credentials) or `failing` is `connected`. One that needs
/// re-authorisation stays so: a call that still succeeds on a cached token proves the token,
/// not the grant the vendor revoked. Nor does a success on credentials since replaced prove
/// the new ones.
pub async fn close_breaker(ctx: &Ctx, r: &Resolved) {
    let closed = async {
        ctx.pool
            .get()
            .await?
            .execute(
                "UPDATE connections SET auth_failures = 0, breaker_open_until = NULL, \
                 status = CASE WHEN status IN ('failing', 'untested') THEN 'connected' ELSE status END, \
                 status_detail = CASE WHEN status IN ('failing', 'untested') THEN NULL ELSE status_detail END, \
                 status_checked_at = now() WHERE id = $1 AND secret_version = $2 \
                 AND (auth_failures > 0 OR breaker_open_until IS NOT NULL OR status IN ('failing', 'untested'))",
                &[&r.connection.id.0, &r.connection.secret_version],
            )
            .await?;
        anyhow::Ok(())
    };
    if let Err(e) = closed.await {
        tracing::warn!(error = %aic_core::with_causes(&*e), "could not record that the connection works again");
    }
}
