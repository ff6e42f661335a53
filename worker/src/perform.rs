//! The vendor side of one execution whose ledger row is begun: check the connection, build the
//! request from the parameters, ask the vendor first when a previous delivery may have sent
//! it, pass the connection's gate, mark the vendor call (unless begin did), invoke (opening the
//! credentials only if a token must be fetched), and turn the answer into an outcome. Phases
//! are boxed as `executor`'s module note says.

use crate::dedupe::Landed;
use crate::executor::Ctx;
use crate::ledger::{LedgerError, Mark};
use crate::outcome::{self, Outcome, deduplicated, failed, from_failure};
use crate::resolve::{Refusal, Resolved};
use crate::{invoke, publish};
use aic_core::vendor::{Call, Vendor, VendorFailure};
use aic_proto::{ExecutionErrorCode, ExecutionRequestV1, ExecutionStatus};
use chrono::Utc;
use serde_json::Value;
use tracing::Instrument;

/// Resolves, validates and invokes. `Err` only for infrastructure failures.
pub(crate) async fn perform(
    ctx: &Ctx,
    req: &ExecutionRequestV1,
    resolved: Result<Resolved, Refusal>,
    mark: Mark,
    handoff: publish::Handoff,
) -> Result<Outcome, LedgerError> {
    let resolved = match resolved {
        Ok(r) => r,
        Err(refusal) => return Ok(failed(refusal.code, refusal.message, None)),
    };
    let mut outcome = execute(ctx, req, &resolved, mark, handoff).await?;
    outcome.attempts += handoff.attempts;
    outcome.version = Some(resolved.version_id);
    outcome.series = Some(resolved.series.clone());
    Ok(outcome)
}

async fn execute(
    ctx: &Ctx,
    req: &ExecutionRequestV1,
    r: &Resolved,
    mark: Mark,
    handoff: publish::Handoff,
) -> Result<Outcome, LedgerError> {
    let def = &r.definition;
    if r.connection.status == "needs_reauthorization" {
        return Ok(failed(
            ExecutionErrorCode::ConnectionNeedsReauthorization,
            "the connection needs to be re-authorised by an admin".into(),
            None,
        ));
    }
    if let Some(until) = r.connection.breaker_open_until.filter(|u| *u > Utc::now()) {
        return Ok(failed(
            ExecutionErrorCode::VendorAuthFailed,
            format!(
                "the vendor refused this connection's credentials {} times in a row ({}); executions fail fast until {until}, or until a connection test passes",
                r.connection.auth_failures,
                r.connection.status_detail.as_deref().unwrap_or("no detail")
            ),
            None,
        ));
    }
    let built = match aic_core::params::build(&def.parameters, &req.parameters) {
        Ok(b) => b,
        Err(e) => return Ok(failed(e.code, e.message, Some(e.parameter))),
    };
    let mut path = aic_core::params::render_path(&def.path, &built.path);
    let mut method = def.method;
    // An upsert keyed by the execution id: whatever delivers it again finds the same record.
    if let Some(aic_proto::Dedupe::SalesforceExternalId { field }) = &def.dedupe {
        path = format!(
            "{}/{field}/{}",
            path.trim_end_matches('/'),
            req.execution_id
        );
        method = aic_proto::HttpMethod::Patch;
    }
    let mut body = built.body;
    if def.dedupe == Some(aic_proto::Dedupe::ServicenowCorrelationId) {
        body["correlation_id"] = Value::String(req.execution_id.to_string());
    }
    let Some(vendor) = Vendor::for_app(&def.app) else {
        return Ok(failed(
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
    let instance = match ctx.egress.app_instance_url(&r.connection.domain, patterns) {
        Ok(u) => u,
        Err(e) => return Ok(from_failure(VendorFailure::egress(e), 0)),
    };
    let scope = crate::gate::scope(&ctx.catalog, def, &body);
    let target = invoke::Target {
        vendor,
        app: &def.app,
        series: &r.series,
        key: (r.connection.id, r.connection.secret_version),
        instance: &instance,
        auth_type: &r.connection.auth_type,
        sealed: &r.connection.sealed,
        tenant: req.tenant_id,
        scope: scope.as_deref(),
    };
    // Whether this execution's create already landed at the vendor (by its dedupe handle).
    let landed = || {
        Box::pin(crate::dedupe::check(
            ctx,
            &target,
            def.dedupe.as_ref(),
            &path,
            req.execution_id,
            &r.output,
        ))
    };
    // A previous delivery may have sent this create: ask the vendor before sending again.
    if let Mark::InDoubt(at) = mark {
        match landed().await {
            Landed::Yes(output) => return Ok(deduplicated(output, 0)),
            Landed::No => {}
            Landed::Unknown(why) => {
                return Ok(outcome::unknown(
                    format!(
                        "a previous delivery sent the vendor request at {at} and recorded no outcome; {why}"
                    ),
                    0,
                ));
            }
        }
    }
    let first_ms = handoff
        .first_attempt_ms
        .unwrap_or_else(|| Utc::now().timestamp_millis());
    let since_first = std::time::Duration::from_millis(
        u64::try_from(Utc::now().timestamp_millis() - first_ms).unwrap_or(0),
    );
    let policy = ctx
        .retry
        .with(def.retry.as_ref())
        .resume(handoff.attempts, since_first);
    // Held until the vendor interaction is over.
    let mut mark = mark;
    let _slot = match Box::pin(crate::gate::admit_marked(
        ctx,
        req.execution_id.0,
        &r.connection,
        scope.as_deref(),
        (&policy, since_first),
        &mut mark,
    ))
    .await
    {
        Ok(permit) => permit,
        Err(crate::gate::Hold::Wait(wait, why)) => {
            return Ok(Outcome {
                defer: Some((wait, first_ms)),
                ..failed(ExecutionErrorCode::ConnectionThrottled, why, None)
            });
        }
        Err(crate::gate::Hold::Fail(code, why)) => {
            return Ok(failed(code, why, None));
        }
    };
    // An upsert keyed by the execution id goes without the mark: a delivery finding it would
    // send it again anyway (`dedupe::check` answers `No` for it), and the vendor finds the
    // record a first send made (`deduplicated`).
    if mark != Mark::SetByBegin
        && !matches!(
            def.dedupe,
            Some(aic_proto::Dedupe::SalesforceExternalId { .. })
        )
    {
        ctx.ledger.mark_vendor_call(req, r.version_id).await?;
    }
    let call = Call {
        method,
        path: &path,
        body: &body,
        output: &r.output,
    };
    let vendor_span = tracing::info_span!(
        "vendor.call",
        app = %def.app,
        action = %def.action,
        http.request.method = method.as_str(),
        otel.kind = "client",
        attempts = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let (mut result, mut attempts, defer) = Box::pin(invoke::invoke(ctx, &target, &call, policy))
        .instrument(vendor_span.clone())
        .await;
    vendor_span.record("attempts", attempts);
    if result.is_err() {
        vendor_span.record("otel.status_code", "ERROR");
    }
    Box::pin(crate::gate::after_call(
        ctx,
        r.connection.id,
        scope.as_deref(),
        policy.cap,
        &result,
    ))
    .await;
    if let (Err(f), Some(wait)) = (&result, defer) {
        return Ok(Outcome {
            defer: Some((wait, first_ms)),
            ..from_failure(f.clone(), attempts)
        });
    }
    // The answer to this create was lost: the dedupe handle tells whether it landed.
    if matches!(&result, Err(f) if f.class == aic_core::vendor::RetryClass::UnknownOutcome)
        && def.dedupe.is_some()
    {
        match landed().await {
            Landed::Yes(output) => return Ok(deduplicated(output, attempts)),
            Landed::No => {
                let (again, more, _) = Box::pin(invoke::invoke(ctx, &target, &call, policy)).await;
                result = again;
                attempts += more;
            }
            Landed::Unknown(_) => {}
        }
    }
    Ok(match result {
        Ok(success) => {
            if r.connection.auth_failures > 0 {
                Box::pin(crate::gate::close_breaker(ctx, r)).await;
            }
            Outcome {
                deduplicated: success.created == Some(false),
                status: ExecutionStatus::Succeeded,
                output: Some(success.output),
                error: None,
                attempts,
                ..failed(ExecutionErrorCode::Internal, String::new(), None)
            }
        }
        Err(f) => {
            Box::pin(crate::gate::record_auth_failure(ctx, r, &f)).await;
            from_failure(f, attempts)
        }
    })
}
