//! The execution ledger: one row per execution id, driven to exactly one final state. A
//! redelivered execution that already finished is answered from here, and one whose vendor call
//! may already have been sent is not blindly sent again.
//!
//! An execution costs two ledger statements — begin (which also resolves the automation and
//! its connection, and on a request's first delivery sets the vendor-call mark) and finish —,
//! and a third, the mark on its own, only when its call could not go straight after begin (see
//! [`Mark`]). Each runs group-committed with those of other in-flight executions
//! (`crate::batch`). A caller goes on only once its own row is committed, exactly as with one
//! statement per execution.

mod sql;

pub use sql::statements;
use sql::{begin_batch, begin_sql, finish_batch, mark_batch};

use crate::batch::{Batcher, Blame, Failure};
use crate::metrics::Metrics;
use crate::resolve::{self, Refusal, Resolved};
use aic_proto::{ExecutionRequestV1, ExecutionResultV1, VersionId};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// Why the ledger could not be used: the delivery is retried later, unless the database refused
/// its own values (`Refused`).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// No connection.
    #[error("no Postgres connection: {}", aic_core::with_causes(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A query failed.
    #[error("Postgres query failed: {}", aic_core::with_causes(.0))]
    Query(#[from] tokio_postgres::Error),
    /// The batch this operation ran in failed.
    #[error("{0}")]
    Batch(String),
    /// The database refused this request's own values (bad data, a violated constraint):
    /// running it again cannot succeed.
    #[error("the execution ledger refused it: {0}")]
    Refused(String),
}

impl From<Failure> for LedgerError {
    fn from(f: Failure) -> Self {
        if f.blame == Blame::Input {
            Self::Refused(f.message)
        } else {
            Self::Batch(f.message)
        }
    }
}

/// Where a delivery that may call the vendor stands with the vendor-call mark, which says that
/// the request may have left: a delivery that finds it set with no outcome does not send the
/// request blindly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Begin set it (the request's first delivery): the call goes without another statement if
    /// it can go straight away; before any wait the mark is taken back
    /// ([`Ledger::unmark`]), so that a crash while waiting leaves a request that was not sent
    /// to be sent, not reported in doubt.
    SetByBegin,
    /// Not set: it is set ([`Ledger::mark_vendor_call`]) just before the call.
    Unset,
    /// A previous delivery set it at this time and recorded no outcome.
    InDoubt(DateTime<Utc>),
}

/// What the ledger says about a delivery.
#[derive(Debug)]
// Returned once per delivery and taken apart at once: boxing `Run` would cost an allocation for
// nothing.
#[allow(clippy::large_enum_variant)]
pub enum Begin {
    /// First run, a rerun of one that never reached the vendor, or one in doubt: here is what
    /// it runs (or why it cannot), and where it stands with the vendor-call mark.
    Run(Result<Resolved, Refusal>, Mark),
    /// Not this delivery's to run.
    Not(NotRun),
}

/// Why a delivery is not run, by what the ledger holds of its execution.
#[derive(Debug)]
pub enum NotRun {
    /// Already finished: re-publish this result, call nobody.
    Finished(Value),
    /// Another copy of this request (its client published it twice) is running it now: this
    /// one steps back and is answered from the ledger once that one is done.
    RunningElsewhere,
    /// The id belongs to another tenant.
    ForeignTenant,
    /// The id was first sent with another request of this tenant's: what differs ("another
    /// automation", "other parameter values").
    Reused(&'static str),
    /// An older copy of a request since handed to a delay queue (the original redelivered
    /// after a crash): the newer copy runs it, this one is dropped.
    Superseded,
}

#[derive(Debug)]
struct BeginInput {
    id: Uuid,
    tenant: Uuid,
    automation: Uuid,
    /// Written once, as JSON text the statement casts to the row's jsonb: no copy of the
    /// parameters' tree per execution.
    parameters: String,
    source: Option<String>,
}

#[derive(Debug)]
struct FinishInput {
    id: Uuid,
    status: &'static str,
    /// The result as published: the same text goes into the row and onto the results exchange.
    result: Arc<str>,
    code: Option<String>,
    attempts: i32,
    version: Option<Uuid>,
}

/// The group-committed ledger.
#[derive(Debug)]
pub struct Ledger {
    begin: Batcher<BeginInput, Option<tokio_postgres::Row>>,
    /// Sets the mark (`Some(version)`), or takes it back (`None`).
    mark: Batcher<(Uuid, Option<Uuid>), ()>,
    /// Answers `Some` with the stored result when another delivery finished first.
    finish: Batcher<FinishInput, Option<Value>>,
    definitions: resolve::Definitions,
    pool: Pool,
}

/// Largest batch of one statement.
const MAX_BATCH: usize = 256;
/// Batches of one kind in flight at once (each holds a pooled connection). One is best here:
/// while it runs the next batch fills, and fewer, larger commits cost Postgres far less CPU
/// (aic-bench: 3 → 1 took one worker from 4,957 to 5,873 exec/s and 98 → 86 µs CPU each).
const CONCURRENT_BATCHES: usize = 1;
/// Connections the batches hold at most: one per statement kind in flight.
pub const CONNECTIONS: usize = 3 * CONCURRENT_BATCHES;

/// The pool the ledger's batches run on: `size` connections (more than [`CONNECTIONS`] would
/// sit unused), each planning its statements for key lookups
/// ([`aic_core::db::Planning::KeyLookups`]), as every batched statement finds its rows by
/// primary key.
pub fn batch_pool(
    url: &secrecy::SecretString,
    size: usize,
) -> Result<Pool, aic_core::db::DbSetupError> {
    aic_core::db::pool(url, size, aic_core::db::Planning::KeyLookups)
}

/// Where [`resolve::COLUMNS`] start in a begin row.
const RESOLVED_AT: usize = 7;

/// Longest a copy of a request is taken to be running elsewhere (see [`NotRun::RunningElsewhere`]):
/// past the default retry budget (10 minutes) of one delivery's attempts and waits.
const ELSEWHERE_LIMIT: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

impl Ledger {
    /// Starts the batchers (needs a Tokio runtime): they run on `batches`, a pool of up to
    /// [`CONNECTIONS`] planned for key lookups ([`aic_core::db::Planning::KeyLookups`]: every
    /// batched statement finds its rows by primary key); `pool` serves the rest. Each batch is
    /// timed in `metrics`.
    pub fn new(pool: Pool, batches: Pool, metrics: &Metrics) -> Self {
        let sql: Arc<str> = begin_sql().into();
        let [begin_timer, mark_timer, finish_timer] =
            crate::metrics::LEDGER_STATEMENTS.map(|s| metrics.ledger_batch(s));
        let [begin_waits, mark_waits, finish_waits] =
            crate::metrics::LEDGER_STATEMENTS.map(|s| metrics.ledger_wait(s));
        let p = batches.clone();
        let begin = Batcher::spawn(
            MAX_BATCH,
            CONCURRENT_BATCHES,
            |i: &BeginInput| i.id,
            move |items: Arc<Vec<BeginInput>>| {
                let pool = p.clone();
                let sql = sql.clone();
                let timer = begin_timer.start(items.len());
                async move {
                    let _timer = timer;
                    begin_batch(&pool, &sql, &items).await
                }
            },
        )
        .timed(begin_waits);
        let p = batches.clone();
        let mark = Batcher::spawn(
            MAX_BATCH,
            CONCURRENT_BATCHES,
            |i: &(Uuid, Option<Uuid>)| i.0,
            move |items: Arc<Vec<(Uuid, Option<Uuid>)>>| {
                let pool = p.clone();
                let timer = mark_timer.start(items.len());
                async move {
                    let _timer = timer;
                    mark_batch(&pool, &items).await
                }
            },
        )
        .timed(mark_waits);
        let p = batches.clone();
        let finish = Batcher::spawn(
            MAX_BATCH,
            CONCURRENT_BATCHES,
            |i: &FinishInput| i.id,
            move |items: Arc<Vec<FinishInput>>| {
                let pool = p.clone();
                let timer = finish_timer.start(items.len());
                async move {
                    let _timer = timer;
                    finish_batch(&pool, &items).await
                }
            },
        )
        .timed(finish_waits);
        Self {
            begin,
            mark,
            finish,
            definitions: resolve::Definitions::new(metrics),
            pool,
        }
    }

    /// Records the delivery and says how to proceed. `seq` is the hand-off number the delivery
    /// carries (0 for a request as clients publish it); `given_back` says the delivery came
    /// back — the broker's `redelivered` flag (its worker crashed, stopped or requeued it) or an
    /// operator's replay — so that it settles the row rather than wait for another copy.
    pub async fn begin(
        &self,
        req: &ExecutionRequestV1,
        seq: i32,
        given_back: bool,
    ) -> Result<Begin, LedgerError> {
        let row = self
            .begin
            .call(BeginInput {
                id: req.execution_id.0,
                tenant: req.tenant_id.0,
                automation: req.automation_id.0,
                parameters: json_text(&req.parameters)?,
                source: req.source.clone(),
            })
            .await
            .map_err(LedgerError::from)?;
        let Some(row) = row else {
            return Ok(Begin::Not(sql::holder(&self.pool, req).await?));
        };
        let status: String = row.get(1);
        let result: Option<Value> = row.get(2);
        let vendor_call: Option<DateTime<Utc>> = row.get(3);
        let stored_seq: i32 = row.get(4);
        let deliveries: i32 = row.get(5);
        let started: Option<DateTime<Utc>> = row.get(6);
        // A client's copy of the request, not given back, finding the row begun by an earlier
        // delivery: another copy holds it — one running now, or one whose worker died, which
        // the broker gives back (flagged) to settle it. Unless it has been at it for longer
        // than any execution runs in one delivery.
        let elsewhere = seq == 0
            && !given_back
            && deliveries > 1
            && started.is_some_and(|at| Utc::now() - at < ELSEWHERE_LIMIT);
        // Only what may run needs its definition.
        if (status == "running" && !elsewhere) || result.is_none() {
            self.definitions
                .load_for(&self.pool, &row, RESOLVED_AT)
                .await?;
        }
        let resolved = || resolve::from_row(&row, RESOLVED_AT, req, &self.definitions);
        Ok(match (status.as_str(), result, vendor_call) {
            ("running", _, _) if seq < stored_seq => Begin::Not(NotRun::Superseded),
            ("running", _, _) if elsewhere => Begin::Not(NotRun::RunningElsewhere),
            // This statement set the mark: the request's first delivery.
            ("running", _, Some(_)) if deliveries == 1 => Begin::Run(resolved(), Mark::SetByBegin),
            ("running", _, Some(at)) => Begin::Run(resolved(), Mark::InDoubt(at)),
            ("running", _, None) => Begin::Run(resolved(), Mark::Unset),
            (_, Some(result), _) => Begin::Not(NotRun::Finished(result)),
            // A final status without a stored result cannot be produced by this code; run again
            // rather than answer with nothing.
            (_, None, _) => Begin::Run(resolved(), Mark::Unset),
        })
    }

    /// Takes back the vendor-call mark begin set ([`Mark::SetByBegin`]) before the call waits
    /// (for a slot, out a cool-down, for the fleet's lease): the request has not left.
    /// Group-committed with the marks.
    pub async fn unmark(&self, id: Uuid) -> Result<(), LedgerError> {
        self.mark.call((id, None)).await.map_err(LedgerError::from)
    }

    /// Records that the execution's next retry was handed to a delay queue as copy number
    /// `seq`, and older copies of the request will be dropped. The failed call is known not to
    /// have landed (it was retryable), so the vendor-call mark is cleared — unless `in_doubt`:
    /// what is retried is the lookup of a create that may have landed, which the copy makes
    /// again, before it sends.
    pub async fn defer(
        &self,
        pool: &Pool,
        id: Uuid,
        (seq, attempts): (i32, u32),
        in_doubt: bool,
    ) -> Result<(), LedgerError> {
        pool.get()
            .await?
            .execute(
                "UPDATE executions SET vendor_call_started_at = CASE WHEN $4 THEN vendor_call_started_at END, \
                 retry_seq = greatest(retry_seq, $2), attempts = $3 \
                 WHERE id = $1 AND status = 'running'",
                &[&id, &seq, &(attempts as i32), &in_doubt],
            )
            .await?;
        Ok(())
    }

    /// Notes, before the first vendor call, that the request is about to leave: from here on a
    /// crash leaves the outcome in doubt. (Not for an upsert keyed by the execution id, which
    /// is safe to send again: see `perform`.)
    pub async fn mark_vendor_call(
        &self,
        req: &ExecutionRequestV1,
        version: VersionId,
    ) -> Result<(), LedgerError> {
        self.mark
            .call((req.execution_id.0, Some(version.0)))
            .await
            .map_err(LedgerError::from)
    }

    /// Records the final state and returns the result's JSON to publish. When another
    /// delivery finished first, returns that result instead, so every publish of one execution
    /// carries the same outcome.
    pub async fn finish(&self, result: &ExecutionResultV1) -> Result<Arc<str>, LedgerError> {
        let raw: Arc<str> = published(result)?.into();
        let Some(id) = result.execution_id else {
            return Ok(raw);
        };
        let status = result.status.as_str();
        let code = result.error.as_ref().and_then(|e| {
            serde_json::to_value(e.code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
        });
        let first = self
            .finish
            .call(FinishInput {
                id: id.0,
                status,
                result: raw.clone(),
                code,
                attempts: result.attempts as i32,
                version: result.automation_version_id.map(|v| v.0),
            })
            .await
            .map_err(LedgerError::from)?;
        match first {
            Some(stored) => Ok(json_text(&stored)?.into()),
            None => Ok(raw),
        }
    }
}

/// The result's JSON as published and stored. A vendor's answer may carry a NUL character,
/// which Postgres cannot store: the result is then stored, and published, with it replaced.
/// serde_json writes NUL as `\u0000`, so text without that sequence has none.
///
/// Text, not a `RawValue`: a `RawValue` made from text parses it again to check it (~3.9 k
/// instructions per result, more than writing it), and this text is JSON by construction.
pub(crate) fn published(result: &ExecutionResultV1) -> Result<String, LedgerError> {
    let text = result.to_json().map_err(not_json)?;
    if !aic_proto::text::may_hold_nul(text.as_bytes()) {
        return Ok(text);
    }
    let mut json = serde_json::to_value(result).unwrap_or(Value::Null);
    aic_proto::text::replace_nul(&mut json);
    json_text(&json)
}

/// A value as JSON text, as the ledger stores it (parameters, results) and the worker publishes
/// a result. Text, not a `RawValue`, for the reason [`published`] gives.
pub(crate) fn json_text<T: serde::Serialize + ?Sized>(v: &T) -> Result<String, LedgerError> {
    serde_json::to_string(v).map_err(not_json)
}

fn not_json(e: serde_json::Error) -> LedgerError {
    LedgerError::Batch(format!("not JSON: {e}"))
}
