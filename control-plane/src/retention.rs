//! How long records are kept: the audit trail's events ([`prune_audit`]) and the
//! execution ledger's finished executions ([`prune_executions`]) — each execution's parameter
//! values and result, which hold the end users' data (names, e-mail addresses, the records
//! created). An operator sets the days each is kept; the control plane prunes to them at
//! start-up and every hour, and `prune-audit` / `prune-executions` do it once.

use deadpool_postgres::Pool;

/// Rows deleted per statement: a long backlog goes in short transactions, not one that holds
/// its locks and WAL for minutes.
const BATCH: i64 = 10_000;

/// The moment `keep_days` days ago, by the database's clock (the one its rows are stamped by),
/// refusing to keep less than a day of `what`.
async fn cutoff(
    client: &tokio_postgres::Client,
    keep_days: u32,
    what: &str,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    anyhow::ensure!(keep_days >= 1, "keep at least one day of {what}");
    let days = i32::try_from(keep_days)?;
    Ok(client
        .query_one("SELECT now() - make_interval(days => $1)", &[&days])
        .await?
        .get(0))
}

/// Deletes the audit events (of every tenant) older than `keep_days` days; how many went.
/// Events are never rewritten, only deleted whole, a batch at a time. Two control planes
/// pruning at once delete each event once (the second finds it gone).
pub async fn prune_audit(pool: &Pool, keep_days: u32) -> anyhow::Result<u64> {
    let client = pool.get().await?;
    let cutoff = cutoff(&client, keep_days, "audit events").await?;
    let mut deleted = 0;
    loop {
        let n = client
            .execute(
                "DELETE FROM audit_events WHERE id IN \
                 (SELECT id FROM audit_events WHERE at < $1 LIMIT $2)",
                &[&cutoff, &BATCH],
            )
            .await?;
        deleted += n;
        if n < BATCH as u64 {
            return Ok(deleted);
        }
    }
}

/// The (tenant, automation) pairs with executions in the ledger, read by walking the ledger's
/// `(tenant_id, automation_id, enqueued_at)` index one pair at a time (a loose index scan):
/// as many index probes as pairs, whatever the rows.
const PAIRS: &str = "WITH RECURSIVE pairs AS ( \
       (SELECT tenant_id, automation_id FROM executions ORDER BY tenant_id, automation_id LIMIT 1) \
       UNION ALL \
       SELECT n.tenant_id, n.automation_id FROM pairs p, LATERAL ( \
         SELECT e.tenant_id, e.automation_id FROM executions e \
         WHERE (e.tenant_id, e.automation_id) > (p.tenant_id, p.automation_id) \
         ORDER BY e.tenant_id, e.automation_id LIMIT 1) n \
     ) SELECT tenant_id, automation_id FROM pairs";

/// One pair's finished executions enqueued and finished before the cutoff, a batch of them,
/// found through the same index.
const DELETE: &str = "DELETE FROM executions WHERE id IN ( \
       SELECT id FROM executions \
       WHERE tenant_id = $1 AND automation_id = $2 AND enqueued_at < $3 \
         AND status IN ('succeeded', 'failed', 'unknown_outcome') AND finished_at < $3 \
       LIMIT $4)";

/// Deletes the executions (of every tenant) that finished — succeeded, failed or in doubt —
/// more than `keep_days` days ago; how many went.
///
/// An execution that never finished stays, whatever its age: a request whose vendor call may
/// have been sent (a crash, then the dead-letter queue) is kept so that replaying it finishes
/// it as `unknown_outcome` rather than sending it again. A request published again after its
/// execution was deleted — the same `execution_id` or `idempotency_key` — runs as a new one:
/// the retention is also the window in which a repeat is recognised. Two control planes
/// pruning at once delete each execution once.
pub async fn prune_executions(pool: &Pool, keep_days: u32) -> anyhow::Result<u64> {
    let client = pool.get().await?;
    let cutoff = cutoff(&client, keep_days, "executions").await?;
    let delete = client.prepare(DELETE).await?;
    let mut deleted = 0;
    for pair in client.query(PAIRS, &[]).await? {
        let (tenant, automation): (uuid::Uuid, uuid::Uuid) = (pair.get(0), pair.get(1));
        loop {
            let n = client
                .execute(&delete, &[&tenant, &automation, &cutoff, &BATCH])
                .await?;
            deleted += n;
            if n < BATCH as u64 {
                break;
            }
        }
    }
    Ok(deleted)
}

/// What the control plane keeps, in days (`None`: until deleted by a command).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Audit events (`AIC_AUDIT_KEEP_DAYS`).
    pub audit_days: Option<u32>,
    /// Finished executions (`AIC_EXECUTIONS_KEEP_DAYS`).
    pub executions_days: Option<u32>,
}

impl Retention {
    /// True when something is to be pruned.
    pub fn any(&self) -> bool {
        self.audit_days.is_some() || self.executions_days.is_some()
    }
}

/// How often a control plane given a retention prunes.
pub const EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Prunes to `retention` now and then every `every`, for as long as it runs. A failed run is
/// logged and tried again at the next.
pub async fn retain(pool: Pool, retention: Retention, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some(days) = retention.audit_days {
            logged("audit events", days, prune_audit(&pool, days).await);
        }
        if let Some(days) = retention.executions_days {
            logged("executions", days, prune_executions(&pool, days).await);
        }
    }
}

/// Logs what a prune of `what` to `days` did: nothing when nothing went.
fn logged(what: &str, days: u32, pruned: anyhow::Result<u64>) {
    match pruned {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, keep_days = days, "{what} pruned"),
        Err(e) => tracing::warn!(error = %aic_core::with_causes(&*e), "could not prune the {what}"),
    }
}
