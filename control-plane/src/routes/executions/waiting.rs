//! A caller's wait for its result (`wait_ms`), taken once the handler gave its database
//! connection back: callers waiting out their budget hold no pooled connection, so that a
//! burst of them against a slow vendor cannot take the pool — and with it every other call,
//! and `/readyz` — for as long as they wait.
//!
//! A newly published execution's result comes to its waiter on the reply queue
//! (`crate::replies`). A retried call finds its execution already known, and maybe still
//! queued or running: its result goes to the reply queue of the call that published it, if
//! that call asked for one — maybe another control plane's — so the retry reads the ledger
//! instead, a little less often each time.

use super::Enqueued;
use crate::auth::Caller;
use crate::state::AppState;
use aic_proto::ExecutionId;
use axum::Json;
use axum::http::StatusCode;
use serde_json::Value;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// The first and the longest pause between two reads of a running execution's status.
const FIRST_READ: Duration = Duration::from_millis(20);
const LONGEST_READ: Duration = Duration::from_millis(250);

/// What an enqueue came to.
pub(super) enum Submitted {
    /// Answered at once.
    Now(StatusCode, Enqueued),
    /// Published: its result comes to the waiter within the caller's wait, if it waits.
    Published(ExecutionId, Option<(oneshot::Receiver<Value>, Duration)>),
    /// Already known and not finished, for a caller that waits (a retried call).
    Running(Enqueued, Duration),
}

impl Submitted {
    /// The execution enqueued, or found already known.
    pub(super) fn execution(&self) -> ExecutionId {
        match self {
            Self::Now(_, e) | Self::Running(e, _) => e.execution_id,
            Self::Published(execution, _) => *execution,
        }
    }

    /// The answer: the result if it came within the caller's wait (200), else the execution
    /// to follow (202). Call it with no database connection held.
    pub(super) async fn answer(
        self,
        state: &AppState,
        caller: &Caller,
    ) -> (StatusCode, Json<Enqueued>) {
        match self {
            Self::Now(status, enqueued) => (status, Json(enqueued)),
            Self::Published(execution, waiting) => published(state, execution, waiting).await,
            Self::Running(known, wait) => finished_within(state, caller, known, wait).await,
        }
    }
}

/// Whether an execution of `status` is finished (its result recorded).
pub(super) fn finished(status: &str) -> bool {
    !matches!(status, "queued" | "running")
}

/// The answer to a published execution: its result if it came to the waiter in time.
async fn published(
    state: &AppState,
    execution: ExecutionId,
    waiting: Option<(oneshot::Receiver<Value>, Duration)>,
) -> (StatusCode, Json<Enqueued>) {
    let mut answer = Enqueued {
        execution_id: execution,
        status: "queued".into(),
        status_url: format!("/v1/executions/{execution}"),
        result: None,
    };
    if let Some((rx, budget)) = waiting {
        let came = tokio::select! {
            came = tokio::time::timeout(budget, rx) => came.ok().and_then(Result::ok),
            () = state.replies.stopping() => None,
        };
        match came {
            Some(result) => {
                answer.status = result["status"].as_str().unwrap_or("failed").to_string();
                answer.result = Some(result);
                return (StatusCode::OK, Json(answer));
            }
            // Past the budget, or at a stop, the caller gets the id; the result still arrives
            // as usual.
            None => state.replies.forget(&execution.to_string()),
        }
    }
    (StatusCode::ACCEPTED, Json(answer))
}

/// Reads a known execution's status from the ledger until it finished or `wait` ran out (or
/// the control plane stops): 200 with its result, else 202 with the status it last had. A database that fails meanwhile
/// ends the wait with the 202 (the caller follows the execution as usual).
async fn finished_within(
    state: &AppState,
    caller: &Caller,
    mut known: Enqueued,
    wait: Duration,
) -> (StatusCode, Json<Enqueued>) {
    let deadline = Instant::now() + wait;
    let mut pause = FIRST_READ;
    while let Some(left) = deadline
        .checked_duration_since(Instant::now())
        .filter(|l| !l.is_zero())
    {
        tokio::select! {
            () = tokio::time::sleep(pause.min(left)) => {}
            () = state.replies.stopping() => break,
        }
        pause = (pause * 2).min(LONGEST_READ);
        match status(state, caller, known.execution_id).await {
            Ok(Some((status, result))) => {
                let done = finished(&status);
                (known.status, known.result) = (status, result.filter(|_| done));
                if done {
                    return (StatusCode::OK, Json(known));
                }
            }
            // Gone meanwhile (retention, or undone): answered as it last stood.
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, execution = %known.execution_id, "could not read a waited-for execution's status; answering 202");
                break;
            }
        }
    }
    (StatusCode::ACCEPTED, Json(known))
}

/// The execution's status and result, each read with a connection taken for it alone.
async fn status(
    state: &AppState,
    caller: &Caller,
    execution: ExecutionId,
) -> Result<Option<(String, Option<Value>)>, String> {
    let client = state
        .pool
        .get()
        .await
        .map_err(|e| aic_core::with_causes(&e))?;
    let row = client
        .query_opt(
            "SELECT status, result FROM executions WHERE tenant_id = $1 AND id = $2",
            &[&caller.tenant.0, &execution.0],
        )
        .await
        .map_err(|e| aic_core::with_causes(&e))?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}
