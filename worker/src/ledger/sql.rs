//! The ledger's batched statements, and how a batch of each runs: each takes its inputs as
//! arrays (`unnest`), one row per execution, and finds its rows by primary key.

use super::{BeginInput, FinishInput, LedgerError, NotRun};
use crate::batch::{Blame, Failure};
use crate::resolve;
use aic_proto::ExecutionRequestV1;
use deadpool_postgres::Pool;
use foldhash::{HashMap, HashMapExt, HashSet};
use serde_json::Value;
use uuid::Uuid;

/// Begins each delivery: inserts its row, or counts one more delivery of it — of the same
/// request only: a row of another tenant, automation or parameter values is neither counted
/// nor returned (an execution id sent again with another request). The parameters
/// come as JSON text, cast to jsonb as the results are in [`FINISH_SQL`]. A row it starts
/// (inserted, or `queued` by the API) records the version it runs — the one the
/// joins of [`resolve::JOINS`] resolve in the same snapshot —, so that a running execution
/// shows it (a later delivery's mark or finish records the version that delivery resolved).
const BEGIN_SQL: &str = "WITH input AS ( \
       SELECT t.*, a.published_version_id AS version_id \
       FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[]) \
         AS t(id, tenant_id, automation_id, parameters, source) \
       LEFT JOIN automations a ON a.tenant_id = t.tenant_id AND a.id = t.automation_id), \
     b AS ( \
       INSERT INTO executions (id, tenant_id, automation_id, version_id, status, parameters, source, deliveries, started_at, vendor_call_started_at) \
       SELECT id, tenant_id, automation_id, version_id, 'running', parameters::jsonb, source, 1, now(), now() FROM input \
       ON CONFLICT (id) DO UPDATE SET deliveries = executions.deliveries + 1, \
         status = CASE WHEN executions.status = 'queued' THEN 'running' ELSE executions.status END, \
         started_at = coalesce(executions.started_at, now()), \
         vendor_call_started_at = CASE WHEN executions.status = 'queued' THEN now() ELSE executions.vendor_call_started_at END, \
         version_id = CASE WHEN executions.status = 'queued' THEN EXCLUDED.version_id ELSE executions.version_id END \
       WHERE executions.tenant_id = EXCLUDED.tenant_id \
         AND executions.automation_id = EXCLUDED.automation_id \
         AND executions.parameters = EXCLUDED.parameters \
       RETURNING id, tenant_id, automation_id, status, result, vendor_call_started_at, retry_seq, deliveries, started_at) \
     SELECT b.id, b.status, b.result, b.vendor_call_started_at, b.retry_seq, b.deliveries, b.started_at, ";

/// Sets the vendor-call mark of the rows given a version, takes it back from those given none.
const MARK_SQL: &str = "UPDATE executions e SET \
       vendor_call_started_at = CASE WHEN u.version_id IS NULL THEN NULL \
         ELSE coalesce(e.vendor_call_started_at, now()) END, \
       version_id = coalesce(u.version_id, e.version_id) \
     FROM unnest($1::uuid[], $2::uuid[]) AS u(id, version_id) \
     WHERE e.id = u.id AND e.status = 'running'";

/// Records each execution's final state, with the version its result names: none for a
/// request refused before it ran (the automation paused, say), though begin recorded the
/// published one — so the row and the result always agree.
// The results come as text, which the cast parses as a jsonb parameter would be: the worker
// wrote them itself (`published`), and checking them on its side cost as much again.
const FINISH_SQL: &str = "UPDATE executions e SET status = u.status, result = u.result::jsonb, \
       error_code = u.error_code, attempts = u.attempts, \
       version_id = u.version_id, finished_at = now() \
     FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::uuid[]) \
       AS u(id, status, result, error_code, attempts, version_id) \
     WHERE e.id = u.id AND e.status IN ('queued', 'running') \
     RETURNING e.id";

pub(super) fn begin_sql() -> String {
    format!("{BEGIN_SQL}{} FROM b {}", resolve::COLUMNS, resolve::JOINS)
}

/// The batched statements as the batchers prepare them, by kind (the names of
/// [`crate::metrics::LEDGER_STATEMENTS`]): for checking their plans.
pub fn statements() -> [(&'static str, String); 3] {
    let [begin, mark, finish] = crate::metrics::LEDGER_STATEMENTS;
    [
        (begin, begin_sql()),
        (mark, MARK_SQL.to_string()),
        (finish, FINISH_SQL.to_string()),
    ]
}

/// One begin batch: inserts or reads back each execution's row with what resolving it needs
/// (`begin_sql`), prepared once per pooled connection (one round-trip per batch, not two); a
/// row per input, in order (`None` for an id the statement did not return).
pub(super) async fn begin_batch(
    pool: &Pool,
    sql: &str,
    items: &[BeginInput],
) -> Result<Vec<Option<tokio_postgres::Row>>, Failure> {
    let (client, statement) = prepared(pool, sql).await?;
    let ids: Vec<Uuid> = items.iter().map(|i| i.id).collect();
    let tenants: Vec<Uuid> = items.iter().map(|i| i.tenant).collect();
    let automations: Vec<Uuid> = items.iter().map(|i| i.automation).collect();
    let parameters: Vec<&str> = items.iter().map(|i| i.parameters.as_str()).collect();
    let sources: Vec<Option<&str>> = items.iter().map(|i| i.source.as_deref()).collect();
    let rows = client
        .query(
            &statement,
            &[&ids, &tenants, &automations, &parameters, &sources],
        )
        .await
        .map_err(failure)?;
    let mut by_id: HashMap<Uuid, tokio_postgres::Row> =
        rows.into_iter().map(|r| (r.get::<_, Uuid>(0), r)).collect();
    Ok(ids.iter().map(|id| by_id.remove(id)).collect())
}

/// Why begin returned no row for `req`: its execution id is held by another tenant's
/// execution, or by another request of this tenant's. A row gone meanwhile (deleted past the
/// retention) is an error: the delivery, given back, runs as a new execution.
pub(super) async fn holder(pool: &Pool, req: &ExecutionRequestV1) -> Result<NotRun, LedgerError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT tenant_id = $2, automation_id = $3 FROM executions WHERE id = $1",
            &[&req.execution_id.0, &req.tenant_id.0, &req.automation_id.0],
        )
        .await?
        .ok_or_else(|| LedgerError::Batch("the execution's row was deleted meanwhile".into()))?;
    Ok(match (row.get(0), row.get(1)) {
        (false, _) => NotRun::ForeignTenant,
        (true, false) => NotRun::Reused("another automation"),
        (true, true) => NotRun::Reused("other parameter values"),
    })
}

/// One mark batch: sets (or takes back) the vendor-call mark of each execution.
pub(super) async fn mark_batch(
    pool: &Pool,
    items: &[(Uuid, Option<Uuid>)],
) -> Result<Vec<()>, Failure> {
    let (client, statement) = prepared(pool, MARK_SQL).await?;
    let ids: Vec<Uuid> = items.iter().map(|i| i.0).collect();
    let versions: Vec<Option<Uuid>> = items.iter().map(|i| i.1).collect();
    client
        .execute(&statement, &[&ids, &versions])
        .await
        .map_err(failure)?;
    Ok(vec![(); items.len()])
}

/// One finish batch: records each execution's outcome; for one another delivery finished first,
/// answers the result it recorded.
pub(super) async fn finish_batch(
    pool: &Pool,
    items: &[FinishInput],
) -> Result<Vec<Option<Value>>, Failure> {
    let (client, statement) = prepared(pool, FINISH_SQL).await?;
    let ids: Vec<Uuid> = items.iter().map(|i| i.id).collect();
    let statuses: Vec<&str> = items.iter().map(|i| i.status).collect();
    let results: Vec<&str> = items.iter().map(|i| &*i.result).collect();
    let codes: Vec<Option<&str>> = items.iter().map(|i| i.code.as_deref()).collect();
    let attempts: Vec<i32> = items.iter().map(|i| i.attempts).collect();
    let versions: Vec<Option<Uuid>> = items.iter().map(|i| i.version).collect();
    let updated: HashSet<Uuid> = client
        .query(
            &statement,
            &[&ids, &statuses, &results, &codes, &attempts, &versions],
        )
        .await
        .map_err(failure)?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    // Another delivery finished first: every publish carries that first outcome.
    let lost: Vec<Uuid> = ids
        .iter()
        .filter(|id| !updated.contains(id))
        .copied()
        .collect();
    let mut stored: HashMap<Uuid, Value> = HashMap::new();
    if !lost.is_empty() {
        for row in client
            .query(
                "SELECT id, result FROM executions WHERE id = ANY($1) AND result IS NOT NULL",
                &[&lost],
            )
            .await
            .map_err(failure)?
        {
            stored.insert(row.get(0), row.get(1));
        }
    }
    Ok(items.iter().map(|i| stored.remove(&i.id)).collect())
}

/// A database error answers the statement (an input may be at fault: the batcher then runs
/// each input on its own); anything else is the connection's. Of a statement's errors, a data
/// exception or an integrity violation (SQLSTATE classes 22 and 23) is about the values it
/// wrote; the others (a deadlock, a serialisation failure, the server shutting down, a
/// timeout) would pass on another try.
fn failure(e: tokio_postgres::Error) -> Failure {
    let Some(db) = e.as_db_error() else {
        return Failure::infra(LedgerError::from(e));
    };
    let code = db.code().code();
    if code.starts_with("22") || code.starts_with("23") {
        Failure {
            // The server's message and code, without its detail (which quotes the whole row).
            message: format!("{} (SQLSTATE {code})", db.message()),
            blame: Blame::Input,
        }
    } else {
        Failure {
            message: LedgerError::from(e).to_string(),
            blame: Blame::Statement,
        }
    }
}

/// A pooled connection and `sql` prepared on it (cached per connection).
async fn prepared(
    pool: &Pool,
    sql: &str,
) -> Result<(deadpool_postgres::Object, tokio_postgres::Statement), Failure> {
    let client = pool
        .get()
        .await
        .map_err(|e| Failure::infra(LedgerError::from(e)))?;
    let statement = client.prepare_cached(sql).await.map_err(failure)?;
    Ok((client, statement))
}
