//! Whether a create whose answer was lost has landed at the vendor, asked through the vendor's
//! dedupe handle. Without a handle the answer is "unknown", and the execution finishes as
//! `unknown_outcome` rather than risk a duplicate; a lookup the vendor asks to wait for longer
//! than the worker sleeps in process is made later, through a delay queue. And what an
//! execution in doubt comes to: found, sent again, in doubt, or looked up later.

use crate::executor::Ctx;
use crate::invoke::{self, Target};
use crate::ledger::Mark;
use crate::outcome::{self, Defer, Outcome, deduplicated, from_failure};
use aic_core::vendor::{self, RetryClass, VendorFailure};
use aic_proto::{Dedupe, ExecutionId};
use chrono::Utc;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// What the vendor says about a create in doubt.
#[derive(Debug)]
pub enum Landed {
    /// It is there: the mapped output of the existing record.
    Yes(Map<String, Value>),
    /// It is not there: sending it is safe.
    No,
    /// No way to tell (no handle, or the lookup failed): why.
    Unknown(String),
    /// Not yet: the lookup's retry is due in this long, later than the worker waits in process
    /// (the vendor's `Retry-After`, say); the failure it retries.
    Later(std::time::Duration, VendorFailure),
}

/// Looks the execution's record up at the vendor, retrying a lookup that fails for a moment
/// under `policy`.
pub async fn check(
    ctx: &Ctx,
    t: &Target<'_>,
    dedupe: Option<&Dedupe>,
    path: &str,
    id: ExecutionId,
    output: &BTreeMap<String, String>,
    policy: crate::retry::RetryPolicy,
) -> Landed {
    match dedupe {
        Some(Dedupe::ServicenowCorrelationId) => {}
        // The create is an upsert keyed by the execution id: sending it again finds the record
        // a previous attempt made, if any, and says so (`created: false`).
        Some(Dedupe::SalesforceExternalId { .. }) => return Landed::No,
        None => {
            return Landed::Unknown(
                "this vendor action has no dedupe handle, so it was not re-sent, to avoid a duplicate"
                    .into(),
            );
        }
    }
    let correlation = &id.to_string();
    let lookup = || {
        invoke::with_token(ctx, t, |token| async move {
            vendor::servicenow::find_by_correlation(
                &ctx.http,
                &ctx.egress,
                &token,
                path,
                correlation,
            )
            .await
        })
    };
    // A lookup is safe to repeat: one failing for a moment (a 503, a broken connection) is
    // retried as the call would be, within the execution's policy, and one refused for its
    // token is made again with a fresh one, before it says "unknown".
    let (found, later) = crate::retry::run(policy, lookup, |f, delay| {
        invoke::hold_while_waiting(ctx, t, f, delay);
        tracing::info!(execution = %id, class = f.class.as_str(), delay_ms = delay.as_millis() as u64, reason = %f.message, "retrying the dedupe lookup");
    })
    .await;
    // A refusal that says when to come back holds the connection, as a refused call's would.
    if let Err(f) = &found {
        crate::gate::after_refusal(ctx, t, policy.cap, f).await;
    }
    match found {
        Ok(Some(record)) => {
            tracing::info!(execution = %id, "a create in doubt had landed; answered from the vendor's record");
            Landed::Yes(vendor::map_output(&json!({"result": record}), output))
        }
        Ok(None) => Landed::No,
        Err(f) if let Some(wait) = later => Landed::Later(wait, f),
        Err(f) => Landed::Unknown(format!(
            "the dedupe lookup failed ({}: {}), so it was not re-sent",
            if f.class == RetryClass::Retryable {
                "transient"
            } else {
                "refused"
            },
            f.message
        )),
    }
}

/// `outcome`, reached on this delivery before anything was sent or looked up — unless a previous
/// delivery may have sent the request: then the record may exist, and the outcome is in doubt
/// (saying why it could not be looked up), never `failed`.
pub(crate) fn in_doubt_or(mark: Mark, outcome: Outcome) -> Outcome {
    match (mark, &outcome.error) {
        (Mark::InDoubt(at), Some(e)) => outcome::unknown(
            sent_unrecorded(at, format_args!("it could not be looked up: {}", e.message)),
            outcome.attempts,
        ),
        _ => outcome,
    }
}

/// The outcome of a create a previous delivery sent at `at` without recording what came of it,
/// from what its dedupe handle found at the vendor: `None` when it did not land (send it). A
/// lookup due later is handed to a delay queue (the first attempt at `first_ms`), in doubt.
pub(crate) fn sent_before(
    landed: Landed,
    at: chrono::DateTime<Utc>,
    first_ms: i64,
) -> Option<Outcome> {
    match landed {
        Landed::Yes(output) => Some(deduplicated(output, 0)),
        Landed::No => None,
        Landed::Unknown(why) => Some(outcome::unknown(
            sent_unrecorded(at, format_args!("{why}")),
            0,
        )),
        Landed::Later(wait, mut f) => {
            f.message = format!("the dedupe lookup was refused for now: {}", f.message);
            Some(in_doubt_later(f, 0, wait, first_ms))
        }
    }
}

/// A failure whose retry leaves through a delay queue in `wait` while the create may have
/// landed: the copy looks it up again (its vendor-call mark kept) before it sends.
pub(crate) fn in_doubt_later(
    f: VendorFailure,
    attempts: u32,
    wait: std::time::Duration,
    first_ms: i64,
) -> Outcome {
    Outcome {
        defer: Some(Defer {
            wait,
            first_ms,
            held: false,
            in_doubt: true,
        }),
        ..from_failure(f, attempts)
    }
}

/// The in-doubt message of a request a previous delivery sent at `at` without recording an
/// outcome, and then `why` it stays in doubt.
fn sent_unrecorded(at: chrono::DateTime<Utc>, why: std::fmt::Arguments<'_>) -> String {
    format!("a previous delivery sent the vendor request at {at} and recorded no outcome; {why}")
}
