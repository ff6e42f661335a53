//! Resolving an execution request to what it runs: the automation's published version (its
//! definition) and the connection that version is pinned to. The columns are read in the
//! ledger's begin statement (one round-trip for both), tenant-scoped by the joins below. A
//! version's definition is immutable: it is read once per worker, when first seen, not with
//! every execution.

use crate::metrics::{ActionSeries, Metrics};
use aic_core::credentials::Sealed;
use aic_proto::{
    AutomationDefinition, ConnectionId, ExecutionErrorCode, ExecutionRequestV1, VersionId,
};
use foldhash::HashMap;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio_postgres::Row;

/// What an execution runs.
#[derive(Debug)]
pub struct Resolved {
    /// The immutable version.
    pub version_id: VersionId,
    /// Its definition.
    pub definition: Arc<AutomationDefinition>,
    /// Output mapping.
    pub output: Arc<BTreeMap<String, String>>,
    /// The metric series of its app and action.
    pub series: Arc<ActionSeries>,
    /// The connection.
    pub connection: ConnectionRow,
}

/// A connection as the worker needs it.
#[derive(Debug)]
pub struct ConnectionRow {
    /// Id.
    pub id: ConnectionId,
    /// Instance base URL.
    pub domain: String,
    /// Auth type.
    pub auth_type: String,
    /// Sealed secrets.
    pub sealed: Sealed,
    /// Version of the secrets (token cache key).
    pub secret_version: i32,
    /// `needs_reauthorization` makes executions fail fast.
    pub status: String,
    /// Fleet-wide cap of calls in flight (default: the worker's).
    pub max_concurrency: Option<i32>,
    /// Credential refusals in a row.
    pub auth_failures: i32,
    /// While set and in the future, executions fail fast.
    pub breaker_open_until: Option<chrono::DateTime<chrono::Utc>>,
    /// Why the status is what it is.
    pub status_detail: Option<String>,
    /// When the status was last written (a test, an execution): two `failing` spells differ.
    pub status_checked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Why a request cannot run.
#[derive(Debug)]
pub struct Refusal {
    /// Machine code.
    pub code: ExecutionErrorCode,
    /// Explanation.
    pub message: String,
    /// A paused automation's definition and connection, as it would run: a create a previous
    /// delivery may have sent is still looked up (a read) before the pause is answered.
    pub paused: Option<Box<Resolved>>,
}

/// The columns resolution reads, after the ledger's own; `a` is `NULL` when the automation does
/// not exist in the tenant.
pub const COLUMNS: &str = "a.id, a.status, v.id, c.id, c.domain, \
    c.auth_type, c.secret_key_id, c.secret_nonce, c.secret_ciphertext, c.secret_version, c.status, \
    c.max_concurrency, c.auth_failures, c.breaker_open_until, c.status_detail, c.status_checked_at";

/// Joins from the ledger row `b` (with `tenant_id` and `automation_id`) to what it runs.
pub const JOINS: &str = "LEFT JOIN automations a ON a.tenant_id = b.tenant_id AND a.id = b.automation_id \
    LEFT JOIN automation_versions v ON v.id = a.published_version_id \
    LEFT JOIN connections c ON c.tenant_id = a.tenant_id AND c.id = (v.definition->>'connection_id')::uuid";

/// A version's definition, its output mapping and its action's metric series.
type Parsed = (
    Arc<AutomationDefinition>,
    Arc<BTreeMap<String, String>>,
    Arc<ActionSeries>,
);

/// One version's definition: read once, however many executions ask for it at once.
type Slot = Arc<tokio::sync::OnceCell<Option<Parsed>>>;

/// Parsed definitions by version. Versions are immutable, so an entry never goes stale; the map
/// is emptied when it grows past a bound, so it never grows without limit either.
#[derive(Debug)]
pub struct Definitions {
    slots: Mutex<HashMap<uuid::Uuid, Slot>>,
    metrics: Metrics,
}

const MAX_DEFINITIONS: usize = 4096;

impl Definitions {
    /// No definition read yet; each one's series are registered in `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            slots: Mutex::default(),
            metrics: metrics.clone(),
        }
    }

    fn get(&self, version: uuid::Uuid) -> Option<Parsed> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.get(&version)?.get()?.clone()
    }

    /// Makes sure the version named in a begin row (column `at` + 2 of [`COLUMNS`]) is known,
    /// reading it from Postgres the first time. A definition that does not parse is left out:
    /// [`from_row`] then refuses the execution.
    pub async fn load_for(
        &self,
        pool: &deadpool_postgres::Pool,
        row: &Row,
        at: usize,
    ) -> Result<(), crate::ledger::LedgerError> {
        let Some(version) = row.get::<_, Option<uuid::Uuid>>(at + 2) else {
            return Ok(());
        };
        self.load(version, || read_definition(pool, version, &self.metrics))
            .await
    }

    /// Runs `read` for `version` unless it already ran, or is running for another execution
    /// (a new version's first batch would otherwise read it once per execution in the batch).
    /// A failed read is not kept: the next execution tries again.
    async fn load<F, Fut>(
        &self,
        version: uuid::Uuid,
        read: F,
    ) -> Result<(), crate::ledger::LedgerError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<Parsed>, crate::ledger::LedgerError>>,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            if slots.len() >= MAX_DEFINITIONS && !slots.contains_key(&version) {
                slots.clear();
            }
            slots.entry(version).or_default().clone()
        };
        slot.get_or_try_init(read).await?;
        Ok(())
    }
}

/// A version's definition and output mapping from Postgres; `None` when it does not parse.
async fn read_definition(
    pool: &deadpool_postgres::Pool,
    version: uuid::Uuid,
    metrics: &Metrics,
) -> Result<Option<Parsed>, crate::ledger::LedgerError> {
    let Some(found) = pool
        .get()
        .await?
        .query_opt(
            "SELECT definition, output FROM automation_versions WHERE id = $1",
            &[&version],
        )
        .await?
    else {
        return Ok(None);
    };
    let Ok(definition) = serde_json::from_value::<AutomationDefinition>(found.get(0)) else {
        tracing::error!(%version, "a published definition does not parse");
        return Ok(None);
    };
    let output: BTreeMap<String, String> = serde_json::from_value(found.get(1)).unwrap_or_default();
    let series = metrics.action(&definition.app, &definition.action);
    Ok(Some((
        Arc::new(definition),
        Arc::new(output),
        Arc::new(series),
    )))
}

/// Reads [`COLUMNS`] starting at column `at`.
pub fn from_row(
    row: &Row,
    at: usize,
    req: &ExecutionRequestV1,
    definitions: &Definitions,
) -> Result<Resolved, Refusal> {
    let refuse = |code, message: String| {
        Err(Refusal {
            code,
            message,
            paused: None,
        })
    };
    if row.get::<_, Option<uuid::Uuid>>(at).is_none() {
        return refuse(
            ExecutionErrorCode::UnknownAutomation,
            format!(
                "automation {} does not exist in this tenant",
                req.automation_id
            ),
        );
    }
    let status: String = row.get(at + 1);
    let Some(version) = row.get::<_, Option<uuid::Uuid>>(at + 2) else {
        return refuse(
            ExecutionErrorCode::AutomationNotPublished,
            format!("automation {} has no published version", req.automation_id),
        );
    };
    if status == "paused" {
        return Err(Refusal {
            code: ExecutionErrorCode::AutomationPaused,
            message: format!("automation {} is paused", req.automation_id),
            paused: published(row, at, version, definitions).ok().map(Box::new),
        });
    }
    published(row, at, version, definitions)
}

/// The published `version` of the automation at column `at` and its connection.
#[inline(always)]
fn published(
    row: &Row,
    at: usize,
    version: uuid::Uuid,
    definitions: &Definitions,
) -> Result<Resolved, Refusal> {
    let refuse = |message: &str| {
        Err(Refusal {
            code: ExecutionErrorCode::Internal,
            message: message.into(),
            paused: None,
        })
    };
    let Some((definition, output, series)) = definitions.get(version) else {
        return refuse("the published definition could not be read");
    };
    let Some(conn_id) = row.get::<_, Option<uuid::Uuid>>(at + 3) else {
        return refuse("the automation's connection no longer exists");
    };
    Ok(Resolved {
        version_id: VersionId(version),
        definition,
        output,
        series,
        connection: ConnectionRow::at(row, ConnectionId(conn_id), at + 4),
    })
}

impl ConnectionRow {
    /// The connection `id`'s columns of [`COLUMNS`] after its id, starting at column `at`.
    #[inline(always)]
    fn at(row: &Row, id: ConnectionId, at: usize) -> Self {
        ConnectionRow {
            id,
            domain: row.get(at),
            auth_type: row.get(at + 1),
            sealed: Sealed {
                key_id: row.get(at + 2),
                nonce: row.get(at + 3),
                ciphertext: row.get(at + 4),
            },
            secret_version: row.get(at + 5),
            status: row.get(at + 6),
            max_concurrency: row.get(at + 7),
            auth_failures: row.get(at + 8),
            breaker_open_until: row.get(at + 9),
            status_detail: row.get(at + 10),
            status_checked_at: row.get(at + 11),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::LedgerError;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn parsed() -> Parsed {
        let definition: AutomationDefinition = serde_json::from_value(serde_json::json!({
            "app": "salesforce", "action": "create_lead", "connection_id": uuid::Uuid::nil(),
            "method": "POST", "path": "/services/data/v62.0/sobjects/Lead/", "parameters": []
        }))
        .expect("a definition");
        let series = Metrics::new().action(&definition.app, &definition.action);
        (
            Arc::new(definition),
            Arc::new(BTreeMap::new()),
            Arc::new(series),
        )
    }

    #[tokio::test]
    async fn a_new_version_is_read_once_however_many_executions_ask_at_once() {
        let defs = Arc::new(Definitions::new(&Metrics::new()));
        let reads = Arc::new(AtomicUsize::new(0));
        let version = uuid::Uuid::now_v7();
        let asks: Vec<_> = (0..50)
            .map(|_| {
                let (defs, reads) = (defs.clone(), reads.clone());
                tokio::spawn(async move {
                    defs.load(version, || async {
                        reads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        Ok(Some(parsed()))
                    })
                    .await
                })
            })
            .collect();
        for ask in asks {
            ask.await.expect("joined").expect("loaded");
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        assert_eq!(defs.get(version).expect("known").0.action, "create_lead");
    }

    #[tokio::test]
    async fn a_failed_read_is_tried_again_by_the_next_execution() {
        let defs = Definitions::new(&Metrics::new());
        let version = uuid::Uuid::now_v7();
        let failed = defs
            .load(version, || async {
                Err(LedgerError::Batch("Postgres went away".into()))
            })
            .await;
        assert!(failed.is_err());
        assert!(defs.get(version).is_none());
        defs.load(version, || async { Ok(Some(parsed())) })
            .await
            .expect("loaded");
        assert!(defs.get(version).is_some());
    }
}
