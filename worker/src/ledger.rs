//! The execution ledger: one row per execution id, driven to exactly one final state. A
//! redelivered execution that already finished is answered from here, and one whose vendor call
//! may already have been sent is not blindly sent again.

use aic_proto::{ExecutionRequestV1, ExecutionResultV1, ExecutionStatus, VersionId};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;

/// Why the ledger could not be used (the delivery is retried later).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// No connection.
    #[error("no Postgres connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A query failed.
    #[error("Postgres query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
}

/// What the ledger says about a delivery.
#[derive(Debug)]
pub enum Begin {
    /// First run, or a rerun of one that never reached the vendor.
    Run,
    /// Already finished: re-publish this result, call nobody.
    Finished(Value),
    /// A previous delivery started the vendor call at this time and recorded no outcome.
    VendorCallInDoubt(DateTime<Utc>),
    /// The id belongs to another tenant.
    ForeignTenant,
}

/// Records the delivery and says how to proceed.
pub async fn begin(pool: &Pool, req: &ExecutionRequestV1) -> Result<Begin, LedgerError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "INSERT INTO executions (id, tenant_id, automation_id, status, parameters, source, deliveries, started_at) \
             VALUES ($1, $2, $3, 'running', $4, $5, 1, now()) \
             ON CONFLICT (id) DO UPDATE SET deliveries = executions.deliveries + 1, \
               status = CASE WHEN executions.status = 'queued' THEN 'running' ELSE executions.status END, \
               started_at = coalesce(executions.started_at, now()) \
             WHERE executions.tenant_id = EXCLUDED.tenant_id \
             RETURNING status, result, vendor_call_started_at",
            &[
                &req.execution_id.0,
                &req.tenant_id.0,
                &req.automation_id.0,
                &Value::Object(req.parameters.clone()),
                &req.source,
            ],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Begin::ForeignTenant);
    };
    let status: String = row.get(0);
    let result: Option<Value> = row.get(1);
    let vendor_call: Option<DateTime<Utc>> = row.get(2);
    Ok(match (status.as_str(), result, vendor_call) {
        ("running", _, Some(at)) => Begin::VendorCallInDoubt(at),
        ("running", _, None) => Begin::Run,
        (_, Some(result), _) => Begin::Finished(result),
        // A final status without a stored result cannot be produced by this code; run again
        // rather than answer with nothing.
        (_, None, _) => Begin::Run,
    })
}

/// Notes, before the first vendor call, that the request is about to leave: from here on a
/// crash leaves the outcome in doubt.
pub async fn mark_vendor_call(
    pool: &Pool,
    req: &ExecutionRequestV1,
    version: VersionId,
) -> Result<(), LedgerError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE executions SET vendor_call_started_at = coalesce(vendor_call_started_at, now()), version_id = $2 WHERE id = $1",
            &[&req.execution_id.0, &version.0],
        )
        .await?;
    Ok(())
}

/// Records the final state. When another delivery finished first, returns that result instead,
/// so every publish of one execution carries the same outcome.
pub async fn finish(pool: &Pool, result: &ExecutionResultV1) -> Result<Value, LedgerError> {
    let client = pool.get().await?;
    let Some(id) = result.execution_id else {
        return Ok(serde_json::to_value(result).unwrap_or(Value::Null));
    };
    let json = serde_json::to_value(result).unwrap_or(Value::Null);
    let status = match result.status {
        ExecutionStatus::Succeeded => "succeeded",
        ExecutionStatus::Failed => "failed",
        ExecutionStatus::UnknownOutcome => "unknown_outcome",
    };
    let code = result.error.as_ref().map(|e| {
        serde_json::to_value(e.code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
    });
    let updated = client
        .execute(
            "UPDATE executions SET status = $2, result = $3, error_code = $4, attempts = $5, \
             version_id = coalesce($6, version_id), finished_at = now() \
             WHERE id = $1 AND status IN ('queued', 'running')",
            &[
                &id.0,
                &status,
                &json,
                &code.flatten(),
                &(result.attempts as i32),
                &result.automation_version_id.map(|v| v.0),
            ],
        )
        .await?;
    if updated == 1 {
        return Ok(json);
    }
    let stored: Option<Value> = client
        .query_opt("SELECT result FROM executions WHERE id = $1", &[&id.0])
        .await?
        .and_then(|r| r.get(0));
    Ok(stored.unwrap_or(json))
}
