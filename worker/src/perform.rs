//! The vendor side of one execution whose ledger row is begun: check the connection, build the
//! request from the parameters, ask the vendor first when a previous delivery may have sent
//! it, pass the connection's gate, mark the vendor call (unless begin did), invoke (opening the
//! credentials only if a token must be fetched), and turn the answer into an outcome. Phases
//! are boxed as `executor`'s module note says. The steps that do not await are plain fns, the
//! ones called once per execution `#[inline(always)]`: as calls of their own, and as nested async
//! fns, the same steps cost ~0.5 k instructions more per execution (callgrind, thirty-ninth
//! session in `BENCHMARKS.md`).

use crate::dedupe::{self, Landed};
use crate::executor::Ctx;
use crate::ledger::{LedgerError, Mark};
use crate::outcome::{Defer, Outcome, deduplicated, failed, from_failure, succeeded};
use crate::resolve::{Refusal, Resolved};
use crate::{invoke, publish};
use aic_core::vendor::{Call, Vendor, VendorFailure};
use aic_proto::{ExecutionErrorCode, ExecutionRequestV1};
use chrono::Utc;
use serde_json::Value;
use std::ops::ControlFlow;
use std::time::Duration;
use tracing::Instrument;

/// Resolves, validates and invokes. `Err` only for infrastructure failures.
pub(crate) async fn perform(
    ctx: &Ctx,
    req: &ExecutionRequestV1,
    resolved: Result<Resolved, Refusal>,
    mark: Mark,
    handoff: publish::Handoff,
) -> Result<Outcome, LedgerError> {
    let (resolved, paused) = match resolved {
        Ok(r) => (r, None),
        // Paused while a create a previous delivery sent is in doubt: it is looked up all the
        // same (a read), and the pause answered only if it had not landed.
        Err(Refusal {
            paused: Some(r),
            code,
            message,
        }) if matches!(mark, Mark::InDoubt(_)) => (*r, Some(Box::new(failed(code, message, None)))),
        Err(refusal) => {
            let refused = failed(refusal.code, refusal.message, None);
            return Ok(dedupe::in_doubt_or(mark, refused));
        }
    };
    let mut outcome = execute(ctx, req, &resolved, (mark, paused), handoff).await?;
    outcome.attempts += handoff.attempts;
    outcome.version = Some(resolved.version_id);
    outcome.series = Some(resolved.series.clone());
    Ok(outcome)
}

/// Fails an execution before anything is built or sent: its connection needs re-authorising, or
/// its breaker (the vendor refusing its credentials time after time) is open.
#[inline(always)]
fn refused_connection(r: &Resolved) -> Option<Outcome> {
    if r.connection.status == "needs_reauthorization" {
        return Some(failed(
            ExecutionErrorCode::ConnectionNeedsReauthorization,
            "the connection needs to be re-authorised by an admin".into(),
            None,
        ));
    }
    let until = r
        .connection
        .breaker_open_until
        .filter(|u| *u > Utc::now())?;
    Some(failed(
        ExecutionErrorCode::VendorAuthFailed,
        format!(
            "the vendor refused this connection's credentials {} times in a row ({}); executions fail fast until {until}, or until a connection test passes",
            r.connection.auth_failures,
            r.connection.status_detail.as_deref().unwrap_or("no detail")
        ),
        None,
    ))
}

/// The vendor request of one execution, before it is sent.
struct Prepared {
    vendor: Vendor,
    method: aic_proto::HttpMethod,
    path: String,
    body: Value,
    /// The connection's instance, as egress allows it.
    instance: url::Url,
    /// The part of the connection a rate limit on this call applies to.
    scope: Option<String>,
}

impl Prepared {
    /// Where the call goes, and with which connection's credentials.
    #[inline(always)]
    fn target<'a>(&'a self, req: &ExecutionRequestV1, r: &'a Resolved) -> invoke::Target<'a> {
        invoke::Target {
            vendor: self.vendor,
            app: &r.definition.app,
            series: &r.series,
            key: (r.connection.id, r.connection.secret_version),
            instance: &self.instance,
            domain: &r.connection.domain,
            auth_type: &r.connection.auth_type,
            sealed: &r.connection.sealed,
            tenant: req.tenant_id,
            scope: self.scope.as_deref(),
        }
    }
}

/// Builds the request from the definition and the request's parameters, keyed by the execution
/// where the action deduplicates. `Err` is the execution's outcome: a parameter refused, an app
/// without connector, an instance egress does not allow.
#[inline(always)]
fn prepare(ctx: &Ctx, req: &ExecutionRequestV1, r: &Resolved) -> Result<Prepared, Outcome> {
    let def = &r.definition;
    let aic_core::params::Request { method, path, body } =
        aic_core::params::request(def, &req.parameters, req.execution_id)
            .map_err(|e| failed(e.code, e.message, Some(e.parameter)))?;
    let Some(vendor) = Vendor::for_app(&def.app) else {
        return Err(failed(
            ExecutionErrorCode::Internal,
            format!("no connector for app '{}'", def.app),
            None,
        ));
    };
    let patterns = ctx
        .catalog
        .app(&def.app)
        .map(|a| a.host_patterns.as_slice())
        .unwrap_or_default();
    let instance = ctx
        .egress
        .app_instance_url(&r.connection.domain, patterns)
        .map_err(|e| from_failure(VendorFailure::egress(e), 0))?;
    let scope = crate::gate::scope(&ctx.catalog, def, &body);
    Ok(Prepared {
        vendor,
        method,
        path,
        body,
        instance,
        scope,
    })
}

/// The vendor side of an execution whose definition resolved, from the connection's checks to
/// the outcome of the call; with `paused`, the answer of a paused automation, given once a create
/// in doubt is found not to have landed. `Err` only when the ledger could not mark the vendor
/// call.
async fn execute(
    ctx: &Ctx,
    req: &ExecutionRequestV1,
    r: &Resolved,
    (mark, paused): (Mark, Option<Box<Outcome>>),
    handoff: publish::Handoff,
) -> Result<Outcome, LedgerError> {
    let def = &r.definition;
    if let Some(refused) = refused_connection(r) {
        return Ok(dedupe::in_doubt_or(mark, refused));
    }
    let p = match prepare(ctx, req, r) {
        Ok(p) => p,
        Err(outcome) => return Ok(dedupe::in_doubt_or(mark, outcome)),
    };
    let target = p.target(req, r);
    let (policy, first_ms, since_first) = retry_policy(ctx, def, handoff);
    // Whether this execution's create already landed at the vendor (by its dedupe handle).
    let landed = || {
        Box::pin(dedupe::check(
            ctx,
            &target,
            def.dedupe.as_ref(),
            &p.path,
            req.execution_id,
            &r.output,
            policy,
        ))
    };
    // A previous delivery may have sent this create: ask the vendor before sending again.
    if let Mark::InDoubt(at) = mark
        && let Some(sent) = dedupe::sent_before(landed().await, at, first_ms)
    {
        return Ok(sent);
    }
    if let Some(paused) = paused {
        return Ok(*paused);
    }
    // Held until the vendor interaction is over.
    let mut mark = mark;
    let _slot = match Box::pin(crate::gate::admit_marked(
        ctx,
        req.execution_id.0,
        &r.connection,
        p.scope.as_deref(),
        (&policy, since_first),
        &mut mark,
    ))
    .await
    {
        Ok(permit) => permit,
        Err(hold) => return Ok(held(hold, first_ms)),
    };
    if marks_call(mark, def) {
        ctx.ledger.mark_vendor_call(req, r.version_id).await?;
    }
    let call = Call {
        method: p.method,
        path: &p.path,
        body: &p.body,
        output: &r.output,
    };
    let mut round = Box::pin(call_vendor(ctx, &target, &call, &def.action, policy)).await;
    if matches!(&round.0, Err(f) if f.class == aic_core::vendor::RetryClass::UnknownOutcome)
        && def.dedupe.is_some()
    {
        let landed = landed().await;
        let timing = (policy, first_ms, since_first);
        let sent = (&target, &call, def.action.as_str());
        match Box::pin(after_lost_answer(ctx, sent, timing, landed, round)).await {
            ControlFlow::Continue(again) => round = again,
            ControlFlow::Break(outcome) => return Ok(outcome),
        }
    }
    let (result, attempts, defer) = round;
    Ok(match (result, defer) {
        (Err(f), Some(wait)) => deferred(f, wait, first_ms, attempts),
        (Ok(success), _) if !crate::gate::success_changes(ctx, &r.connection) => {
            succeeded(success, attempts)
        }
        (result, _) => Box::pin(settle(ctx, r, result, attempts)).await,
    })
}

/// Whether the vendor call is marked in the ledger before it is sent: not when begin marked
/// it already, nor for an upsert keyed by the execution id — a delivery finding the mark would
/// send it again anyway (`dedupe::check` answers `No` for it), and the vendor finds the record
/// a first send made (`deduplicated`).
#[inline(always)]
fn marks_call(mark: Mark, def: &aic_proto::AutomationDefinition) -> bool {
    mark != Mark::SetByBegin
        && !matches!(
            def.dedupe,
            Some(aic_proto::Dedupe::SalesforceExternalId { .. })
        )
}

/// What becomes of a create whose answer was lost (`round`), once its dedupe handle told
/// whether it `landed`: landed, its record is the outcome; not, it is sent again under what is
/// left of the policy, and that answer is taken as any other (a retry it asks for included);
/// still unknown, the failure says why the vendor could not tell; the lookup refused for now,
/// a copy still in doubt asks again later.
async fn after_lost_answer(
    ctx: &Ctx,
    (target, call, action): (&invoke::Target<'_>, &Call<'_>, &str),
    (policy, first_ms, since_first): (crate::retry::RetryPolicy, i64, Duration),
    landed: Landed,
    round: Round,
) -> ControlFlow<Outcome, Round> {
    let (mut result, attempts, defer) = round;
    match landed {
        Landed::Yes(output) => return ControlFlow::Break(deduplicated(output, attempts)),
        Landed::No => {
            // What this round took: the time since the first attempt, less what the policy had
            // already counted (`since_first`), read only on this rare path.
            let now = Utc::now().timestamp_millis();
            let spent = Duration::from_millis(u64::try_from(now - first_ms).unwrap_or(0));
            let left = policy.resume(attempts, spent.saturating_sub(since_first));
            let again = Box::pin(call_vendor(ctx, target, call, action, left)).await;
            return ControlFlow::Continue((again.0, attempts + again.1, again.2));
        }
        Landed::Unknown(why) => {
            if let Err(f) = &mut result {
                f.message = format!("{}; {why}", f.message);
            }
        }
        Landed::Later(wait, lookup) => {
            if let Err(f) = &result {
                let mut f = f.clone();
                f.message = format!(
                    "{}; the dedupe lookup was refused for now ({}), so it is made again later",
                    f.message, lookup.message
                );
                return ControlFlow::Break(dedupe::in_doubt_later(f, attempts, wait, first_ms));
            }
        }
    }
    ControlFlow::Continue((result, attempts, defer))
}

/// The outcome of a failed round whose retry waits in a delay queue (`wait`, counted from the
/// first attempt, `first_ms`): held, when it is the vendor's own wait, which `after_call` made
/// the connection's cool-down.
fn deferred(f: VendorFailure, wait: Duration, first_ms: i64, attempts: u32) -> Outcome {
    Outcome {
        defer: Some(Defer {
            wait,
            first_ms,
            held: f.retry_after.is_some(),
            in_doubt: false,
        }),
        ..from_failure(f, attempts)
    }
}

/// The outcome of a vendor call that was answered (or given up on), when the connection's
/// breaker has counted refusals, its status is not `connected` yet, or the call failed: a
/// success closes the breaker and records that the credentials work; a failure counts toward
/// the breaker when the vendor refused the credentials.
async fn settle(
    ctx: &Ctx,
    r: &Resolved,
    result: Result<aic_core::vendor::CallSuccess, VendorFailure>,
    attempts: u32,
) -> Outcome {
    match result {
        Ok(success) => {
            Box::pin(crate::gate::close_breaker(ctx, r)).await;
            succeeded(success, attempts)
        }
        Err(f) => {
            Box::pin(crate::gate::record_auth_failure(ctx, r, &f)).await;
            from_failure(f, attempts)
        }
    }
}

/// The retry policy of this delivery's attempts, resumed after those of the deliveries before
/// it; with when the first attempt was made (Unix milliseconds) and how long ago.
#[inline(always)]
fn retry_policy(
    ctx: &Ctx,
    def: &aic_proto::AutomationDefinition,
    handoff: publish::Handoff,
) -> (crate::retry::RetryPolicy, i64, Duration) {
    let now = Utc::now().timestamp_millis();
    let first_ms = handoff.first_attempt_ms.unwrap_or(now);
    let since_first = Duration::from_millis(u64::try_from(now - first_ms).unwrap_or(0));
    let policy = ctx
        .retry
        .with(def.retry.as_ref())
        .resume(handoff.attempts, since_first);
    (policy, first_ms, since_first)
}

/// The outcome of an execution its connection's gate held back: throttled, to be retried after
/// the wait (counted from the first attempt, `first_ms`), or failed.
fn held(hold: crate::gate::Hold, first_ms: i64) -> Outcome {
    use crate::gate::Hold;
    let (wait, why, held) = match hold {
        Hold::Wait(wait, why) => (wait, why, false),
        Hold::CoolDown(wait, why) => (wait, why, true),
        Hold::Fail(code, why) => return failed(code, why, None),
    };
    Outcome {
        defer: Some(Defer {
            wait,
            first_ms,
            held,
            in_doubt: false,
        }),
        ..failed(ExecutionErrorCode::ConnectionThrottled, why, None)
    }
}

/// A round of vendor calls: the result, the calls made, and the wait of a retry left to a
/// delay queue.
type Round = (
    Result<aic_core::vendor::CallSuccess, VendorFailure>,
    u32,
    Option<Duration>,
);

/// One round of vendor calls (`call` for `action`) under `policy`, in its client span, the
/// connection's gate told of the answer (a cool-down it asks for): the result, the calls made,
/// and the wait of a retry left to a delay queue.
async fn call_vendor(
    ctx: &Ctx,
    target: &invoke::Target<'_>,
    call: &Call<'_>,
    action: &str,
    policy: crate::retry::RetryPolicy,
) -> Round {
    let span = vendor_span(target, action, call);
    let (result, attempts, defer) = invoke::invoke(ctx, target, call, policy)
        .instrument(span.clone())
        .await;
    span.record("attempts", attempts);
    if result.is_err() {
        span.record("otel.status_code", "ERROR");
    }
    crate::gate::after_call(ctx, target, policy.cap, &result).await;
    (result, attempts, defer)
}

/// The client span a vendor call (with its retries) runs in.
fn vendor_span(target: &invoke::Target<'_>, action: &str, call: &Call<'_>) -> tracing::Span {
    tracing::info_span!(
        "vendor.call",
        app = %target.app,
        action = %action,
        http.request.method = call.method.as_str(),
        otel.kind = "client",
        attempts = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}
