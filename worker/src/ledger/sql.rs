//! The ledger's batched statements: each takes its inputs as arrays (`unnest`), one row per
//! execution, and finds its rows by primary key.

use crate::resolve;

/// Begins each delivery: inserts its row, or counts one more delivery of it. The parameters
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
       RETURNING id, tenant_id, automation_id, status, result, vendor_call_started_at, retry_seq, deliveries, started_at) \
     SELECT b.id, b.status, b.result, b.vendor_call_started_at, b.retry_seq, b.deliveries, b.started_at, ";

/// Sets the vendor-call mark of the rows given a version, takes it back from those given none.
pub(super) const MARK_SQL: &str = "UPDATE executions e SET \
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
pub(super) const FINISH_SQL: &str = "UPDATE executions e SET status = u.status, result = u.result::jsonb, \
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
