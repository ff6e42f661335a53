//! Cool-downs: when a vendor says stop — a `Retry-After`, Salesforce's API quota spent or
//! within the reserve — no call of ours goes to the connection until the time it gave; where
//! the vendor's limit applies to a part of the connection (the template's `rate_limit_scope`:
//! a Slack channel), only the calls in that part are held.
//!
//! One record for the whole fleet: the connection's `throttled_until` and `throttle_reason`,
//! and `connection_cooldowns` by scope. The workers keep what they read of it in their
//! budgets; the control plane's own calls on a saved connection (a draft's test run, a
//! connection test, the field picker) read it before calling and record what the vendor
//! answers, so an admin's call neither ignores a vendor's `Retry-After` nor hides one from the
//! workers.

use crate::catalog::Template;
use crate::vendor::{CallSuccess, RetryClass, VendorFailure};
use aic_proto::ConnectionId;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Cool-down when the vendor's quota is within the reserve and it does not say when its
/// window resets.
pub const QUOTA_RESERVE_COOL_DOWN: Duration = Duration::from_secs(300);
/// Cool-down when the vendor says the quota is spent.
pub const QUOTA_SPENT_COOL_DOWN: Duration = Duration::from_secs(900);
/// The longest `Retry-After` a call outside the workers honours (the workers' default
/// `AIC_WORKER_RETRY_CAP_MS`).
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(300);
/// The longest wait for a vendor's quota window to reset: a day, the longest window vendors
/// count in. A reset said to be further (`X-RateLimit-Reset: 9999-12-31T23:59:59Z`) would
/// otherwise hold the connection for millennia, and again after every admin ended it.
pub const QUOTA_WINDOW_LONGEST: Duration = Duration::from_secs(24 * 3600);

/// The part of the connection a rate limit on a call of `template` applies to, where the
/// vendor limits the action by a value of the request (Slack: per channel): `channel:C0123`.
/// `None`: the whole connection.
pub fn scope(template: &Template, body: &serde_json::Value) -> Option<String> {
    let pointer = template.rate_limit_scope.as_deref()?;
    let value: String = crate::pointer::lookup(body, pointer)?
        .as_str()?
        .chars()
        .take(200)
        .collect();
    Some(format!("{}:{value}", pointer.trim_start_matches('/')))
}

/// A cool-down a vendor's answer calls for: how long, why, and on which part of the
/// connection (`None`: all of it).
#[derive(Debug, PartialEq)]
pub struct CoolDown<'a> {
    /// How long from now.
    pub wait: Duration,
    /// Why, as recorded in the connection's status.
    pub reason: String,
    /// The part of the connection held, if not the whole.
    pub scope: Option<&'a str>,
}

/// The cool-down the answer to a call in `scope` calls for, if any: a refusal's (see
/// [`refused`]), or a success's that leaves the vendor's quota within `reserve` (the share kept
/// back), until the vendor's window resets.
pub fn called_for<'a>(
    result: &Result<CallSuccess, VendorFailure>,
    scope: Option<&'a str>,
    cap: Duration,
    reserve: f64,
    now: DateTime<Utc>,
) -> Option<CoolDown<'a>> {
    let s = match result {
        Ok(s) => s,
        Err(f) => return refused(f, scope, cap),
    };
    let (used, limit) = s.quota?;
    if limit == 0 || (used as f64) < limit as f64 * (1.0 - reserve) {
        return None;
    }
    Some(CoolDown {
        // Until the vendor's window resets, when it says when.
        wait: s
            .quota_resets_at
            .and_then(|at| (at - now).to_std().ok())
            .map_or(QUOTA_RESERVE_COOL_DOWN, |wait| {
                wait.min(QUOTA_WINDOW_LONGEST)
            }),
        reason: format!(
            "the vendor reports {used} of {limit} API requests used, within the {:.0}% kept in reserve",
            reserve * 100.0
        ),
        scope: None,
    })
}

/// The cool-down a vendor's refusal of a call in `scope` calls for, if any: a `Retry-After`
/// counts up to `cap` and holds only `scope` when the call has one; a spent quota holds the
/// whole connection.
pub fn refused<'a>(
    f: &VendorFailure,
    scope: Option<&'a str>,
    cap: Duration,
) -> Option<CoolDown<'a>> {
    match (&f.vendor, f.retry_after) {
        (Some(v), _) if v.code == "REQUEST_LIMIT_EXCEEDED" && f.class == RetryClass::Permanent => {
            Some(CoolDown {
                wait: QUOTA_SPENT_COOL_DOWN,
                reason: format!(
                    "the vendor's API request quota is spent ({}: {})",
                    v.code, v.message
                ),
                scope: None,
            })
        }
        (_, Some(after)) => Some(CoolDown {
            wait: after.min(cap),
            reason: rate_limited(f, after, scope),
            scope,
        }),
        _ => None,
    }
}

/// The reason recorded for a vendor's `Retry-After` (on `scope`, when it holds only that).
pub fn rate_limited(f: &VendorFailure, after: Duration, scope: Option<&str>) -> String {
    let status = f
        .vendor
        .as_ref()
        .and_then(|v| v.http_status)
        .map(|s| format!("HTTP {s}, "))
        .unwrap_or_default();
    let on = scope.map(|s| format!(" on {s}")).unwrap_or_default();
    format!(
        "the vendor's rate limit ({status}Retry-After {} s){on}",
        after.as_secs_f64().ceil()
    )
}

/// Records a cool-down of `conn` (of `scope` alone, when given) until `until`, for the whole
/// fleet; a later one already recorded stands. `domain` is the connection's domain the refused
/// call went to: the vendor's limit is that instance's, so once an admin moved the connection
/// to another (ending its cool-downs) a refusal from the former is not recorded — `false`, as
/// for a connection deleted meanwhile. The record locks the connection's row (for share where
/// it writes a scope's row; to write it otherwise, so that two records never both wait to
/// upgrade a shared lock): it waits out a move under way, then sees its domain.
pub async fn record(
    client: &tokio_postgres::Client,
    conn: ConnectionId,
    domain: &str,
    scope: Option<&str>,
    until: DateTime<Utc>,
    reason: &str,
) -> Result<bool, tokio_postgres::Error> {
    let reason = aic_proto::text::without_nul(reason);
    let row = match scope {
        None => {
            client
                .query_one(
                    "WITH c AS (SELECT id FROM connections WHERE id = $1 AND domain = $4 \
                     FOR NO KEY UPDATE), \
                     w AS (UPDATE connections SET throttled_until = $2, throttle_reason = $3 \
                     WHERE id IN (SELECT id FROM c) \
                     AND (throttled_until IS NULL OR throttled_until < $2)) \
                     SELECT count(*) FROM c",
                    &[&conn.0, &until, &reason, &domain],
                )
                .await?
        }
        Some(scope) => client
            .query_one(
                "WITH c AS (SELECT id FROM connections WHERE id = $1 AND domain = $5 FOR SHARE), \
                 w AS (INSERT INTO connection_cooldowns (connection_id, scope, until, reason) \
                 SELECT id, $4, $2, $3 FROM c ON CONFLICT (connection_id, scope) DO UPDATE \
                 SET until = EXCLUDED.until, reason = EXCLUDED.reason \
                 WHERE connection_cooldowns.until < EXCLUDED.until) \
                 SELECT count(*) FROM c",
                &[
                    &conn.0,
                    &until,
                    &reason,
                    &aic_proto::text::without_nul(scope),
                    &domain,
                ],
            )
            .await?,
    };
    Ok(row.get::<_, i64>(0) > 0)
}

/// The cool-down holding a call on `conn` in `scope` now, until when and why: the
/// connection's own or its scope's, whichever ends later.
pub async fn holding(
    client: &tokio_postgres::Client,
    conn: ConnectionId,
    scope: Option<&str>,
) -> Result<Option<(DateTime<Utc>, String)>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT until, reason FROM ( \
               SELECT throttled_until AS until, throttle_reason AS reason FROM connections \
                WHERE id = $1 AND throttled_until > now() \
               UNION ALL \
               SELECT until, reason FROM connection_cooldowns \
                WHERE connection_id = $1 AND scope = $2 AND until > now()) held \
             ORDER BY until DESC LIMIT 1",
            &[&conn.0, &scope.map(aic_proto::text::without_nul)],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aic_proto::ExecutionErrorCode;
    use reqwest::StatusCode;

    fn failure(code: &str, class: RetryClass, after: Option<u64>) -> VendorFailure {
        let mut f = VendorFailure::vendor(
            class,
            ExecutionErrorCode::VendorUnavailable,
            "refused".into(),
            StatusCode::TOO_MANY_REQUESTS,
            code.into(),
            "slow down".into(),
            vec![],
        );
        f.retry_after = after.map(Duration::from_secs);
        f
    }

    #[test]
    fn a_retry_after_holds_the_scope_up_to_the_cap() {
        let f = failure("ratelimited", RetryClass::Retryable, Some(900));
        let c = refused(&f, Some("channel:C1"), RETRY_AFTER_CAP).expect("a cool-down");
        assert_eq!(c.wait, RETRY_AFTER_CAP);
        assert_eq!(c.scope, Some("channel:C1"));
        assert_eq!(
            c.reason,
            "the vendor's rate limit (HTTP 429, Retry-After 900 s) on channel:C1"
        );
    }

    #[test]
    fn a_spent_quota_holds_the_whole_connection() {
        let f = failure("REQUEST_LIMIT_EXCEEDED", RetryClass::Permanent, None);
        let c = refused(&f, Some("channel:C1"), RETRY_AFTER_CAP).expect("a cool-down");
        assert_eq!((c.wait, c.scope), (QUOTA_SPENT_COOL_DOWN, None));
        assert!(c.reason.contains("quota is spent (REQUEST_LIMIT_EXCEEDED"));
    }

    #[test]
    fn a_refusal_without_a_wait_calls_for_none() {
        let f = failure("INVALID_FIELD", RetryClass::Permanent, None);
        let now = Utc::now();
        assert_eq!(called_for(&Err(f), None, RETRY_AFTER_CAP, 0.02, now), None);
    }

    #[test]
    fn a_success_within_the_reserve_waits_for_the_window() {
        let now = Utc::now();
        let ok = |used| {
            Ok(CallSuccess {
                quota: Some((used, 1000)),
                quota_resets_at: Some(now + chrono::Duration::seconds(60)),
                ..CallSuccess::default()
            })
        };
        assert_eq!(called_for(&ok(979), None, RETRY_AFTER_CAP, 0.02, now), None);
        let c = called_for(&ok(980), None, RETRY_AFTER_CAP, 0.02, now).expect("held");
        assert_eq!(c.wait, Duration::from_secs(60));
        assert!(c.reason.contains("980 of 1000"), "{}", c.reason);
        let untold = Ok(CallSuccess {
            quota: Some((990, 1000)),
            ..CallSuccess::default()
        });
        let c = called_for(&untold, None, RETRY_AFTER_CAP, 0.02, now).expect("held");
        assert_eq!(c.wait, QUOTA_RESERVE_COOL_DOWN);
        let far = chrono::DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z").expect("date");
        let never = Ok(CallSuccess {
            quota: Some((1000, 1000)),
            quota_resets_at: Some(far.with_timezone(&Utc)),
            ..CallSuccess::default()
        });
        let c = called_for(&never, None, RETRY_AFTER_CAP, 0.02, now).expect("held");
        assert_eq!(c.wait, QUOTA_WINDOW_LONGEST);
    }
}
