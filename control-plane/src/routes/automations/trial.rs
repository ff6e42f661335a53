//! "Test automation": the draft, run once against the vendor before it is published.
//!
//! The call is real — a create creates a record — and goes out as an execution's would: the
//! same parameter checks, the same request (an upsert keyed by a fresh id where the draft
//! deduplicates), the draft's connection and credential, the egress policy, the connection's
//! cool-downs (none is made while the vendor asked for none; its "stop" is recorded for the
//! workers). It is made once, without retries or a slot of the connection's concurrency, and
//! answered at once; nothing is recorded in the ledger and no result event is published.
//! Credentials never appear in the answer.

use super::definition_of;
use crate::audit::{self, Action, Target};
use crate::auth::{CONFIGURE, Caller};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::routes::connections::{Opened, after_refusal, clear_to_call, credential, saved};
use crate::routes::parse_id;
use crate::state::AppState;
use aic_core::vendor::{self, Call};
use aic_proto::{AutomationId, ExecutionError, ExecutionId};
use axum::Json;
use axum::extract::{Path, State};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Instant;

/// Body of `POST /v1/automations/{id}/test`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRunInput {
    /// Parameter values, by the draft's parameter names.
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

/// What the vendor made of the draft's call.
#[derive(Serialize, JsonSchema)]
pub struct TestRun {
    /// Whether the vendor accepted the call.
    pub ok: bool,
    /// `succeeded` or `failed`, as an execution would end.
    pub status: String,
    /// The request sent: its method and path under the instance.
    pub request: String,
    /// The output the template maps from the vendor's answer (on success).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Map<String, Value>>,
    /// Why it failed: the code an execution would get, and what the vendor said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ExecutionError>,
    /// The vendor's time, credential included, in milliseconds.
    pub duration_ms: u64,
}

/// `POST /v1/automations/{id}/test`: runs the draft once. Parameter mistakes are refused (422
/// naming `parameters.<name>`) before anything is sent; a vendor's refusal is a 200 with
/// `ok: false`, like a connection test.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, automation = %id))]
pub async fn test(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<TestRunInput>,
) -> Result<Json<TestRun>, ApiError> {
    caller.require(CONFIGURE)?;
    let id: AutomationId = parse_id(&id, "automation")?;
    let client = state.pool.get().await?;
    let row = super::draft_row(&client, caller.tenant, id, false).await?;
    let (definition, template) = definition_of(&state.catalog, &row)?;
    let request = aic_core::params::request(&definition, &input.parameters, ExecutionId::new())
        .map_err(|e| ApiError::invalid(format!("parameters.{}", e.parameter), e.message))?;
    let connection = definition.connection_id;
    let Opened {
        checked: opened,
        auth_type,
        domain,
        ..
    } = saved(&state, &client, caller.tenant, connection).await?;
    let scope = aic_core::cooldown::scope(template, &request.body);
    let slot = clear_to_call(&state, client, connection, scope.as_deref()).await?;
    let output: &BTreeMap<String, String> = &template.output;
    let call = Call {
        method: request.method,
        path: &request.path,
        body: &request.body,
        output,
    };
    let started = Instant::now();
    let result = async {
        let token = credential(
            &state,
            &opened,
            &auth_type,
            Some((caller.tenant, connection)),
        )
        .await?;
        vendor::call(&state.http, &state.egress, opened.vendor, &token, &call).await
    }
    .await;
    drop(slot);
    if let Err(f) = &result {
        after_refusal(&state, (connection, &domain), scope.as_deref(), f).await;
    }
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(ok = result.is_ok(), duration_ms, "draft tested");
    let request = format!("{} {}", request.method.as_str(), request.path);
    let run = answer(result, request, duration_ms);
    let name: String = row.get(6);
    recorded(&state, &caller, id, &name, &run).await;
    Ok(Json(run))
}

/// Records a test run in the audit trail: a real call reached the vendor, whatever its outcome.
/// The call cannot be undone, so a record that fails is logged and the outcome still answered.
async fn recorded(state: &AppState, caller: &Caller, id: AutomationId, name: &str, run: &TestRun) {
    let detail = serde_json::json!({"ok": run.ok, "request": run.request,
        "error_code": run.error.as_ref().map(|e| &e.code)});
    let target = Target { id: id.0, name };
    let written = match state.pool.get().await {
        Ok(client) => {
            audit::record(&client, caller, Action::AutomationTested, target, detail).await
        }
        Err(e) => Err(e.into()),
    };
    if let Err(e) = written {
        tracing::error!(error = ?e, "a test run's audit event was not recorded");
    }
}

/// The answer to a test run: the vendor's mapped output, or the failure an execution would end
/// with.
fn answer(
    result: Result<vendor::CallSuccess, vendor::VendorFailure>,
    request: String,
    duration_ms: u64,
) -> TestRun {
    match result {
        Ok(success) => TestRun {
            ok: true,
            status: "succeeded".into(),
            request,
            output: Some(success.output),
            error: None,
            duration_ms,
        },
        Err(f) => TestRun {
            ok: false,
            status: "failed".into(),
            request,
            output: None,
            error: Some(ExecutionError {
                code: f.code,
                message: f.message,
                parameter: None,
                vendor: f.vendor,
            }),
            duration_ms,
        },
    }
}
