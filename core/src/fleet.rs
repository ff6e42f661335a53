//! The fleet: every running worker and control plane reports itself in PostgreSQL
//! (`processes`) — kind, host, version, the ids of the credential keys it holds — every
//! [`BEAT`], and deletes its row when it stops cleanly. What is seen within [`ALIVE`] is
//! running; a crashed process's row stops being renewed and is deleted after a day by the
//! others, and so are its connections' concurrency leases an hour after they expired. Before sealing rows under a key, `reseal-credentials` checks every running process
//! holds it ([`lacking`]); `aic-control-plane fleet` lists them.

use crate::credentials::Keyring;
use deadpool_postgres::Pool;
use serde::Serialize;
use std::time::Duration;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How often a process reports itself.
pub const BEAT: Duration = Duration::from_secs(15);

/// A process seen within this long is running.
pub const ALIVE: Duration = Duration::from_secs(60);

/// How the holder of a concurrency lease that the control plane's own call takes (an admin's
/// connection test, test run or field picker) begins, in `connection_leases.worker_id`. The
/// workers make room for such a call first: an admin waits for one vendor call, not a backlog.
pub const CONTROL_PLANE_LEASE: &str = "control-plane/";

/// What every process sweeps at each beat: the rows of processes gone — its own report not
/// renewed for a day, its connections' concurrency leases (which a crashed or killed worker
/// leaves behind: each renewal reads a connection's leases, expired ones included) expired for
/// an hour. Several processes sweeping at once delete each row once.
const SWEEP: &str = "DELETE FROM processes WHERE seen_at < now() - interval '1 day'; \
     DELETE FROM connection_leases WHERE expires_at < now() - interval '1 hour'";

/// One process, as it reports itself.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Process {
    /// Its own id, new at each start.
    pub id: Uuid,
    /// `worker` or `control-plane`.
    pub kind: String,
    /// The host (a pod's name) it runs on.
    pub host: String,
    /// Its version and build.
    pub version: String,
    /// The ids of the credential keys it holds.
    pub key_ids: Vec<String>,
    /// The key it seals new credentials under.
    pub active_key: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it last reported itself (RFC 3339).
    pub seen_at: String,
}

impl Process {
    /// Whether it holds the credential key `key_id` (could open what is sealed under it).
    pub fn holds(&self, key_id: &str) -> bool {
        self.key_ids.iter().any(|k| k == key_id)
    }
}

/// The host name: `HOSTNAME` (a pod's name), else the kernel's.
fn host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A process reporting itself until [`Reporting::stop`].
#[derive(Debug)]
pub struct Reporting {
    id: Uuid,
    pool: Pool,
    task: JoinHandle<()>,
}

/// Starts reporting this process (`kind`, `version`, `keyring`'s key ids) every [`BEAT`],
/// the first report at once. A report that fails (PostgreSQL away) is tried at the next beat.
pub fn report(pool: Pool, kind: &'static str, version: String, keyring: &Keyring) -> Reporting {
    let id = Uuid::now_v7();
    let (keys, active, host) = (keyring.key_ids(), keyring.active_id().to_string(), host());
    let beat = pool.clone();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(BEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let client = match beat.get().await {
                Ok(client) => client,
                Err(e) => {
                    tracing::debug!(error = %crate::with_causes(&e), "could not report this process");
                    continue;
                }
            };
            let reported = client
                .execute(
                    "INSERT INTO processes (id, kind, host, version, key_ids, active_key) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (id) DO UPDATE SET seen_at = now(), key_ids = $5, active_key = $6",
                    &[&id, &kind, &host, &version, &keys, &active],
                )
                .await;
            let swept = client.batch_execute(SWEEP).await;
            if let Err(e) = reported.and(swept) {
                tracing::debug!(error = %crate::with_causes(&e), "could not report this process");
            }
        }
    });
    Reporting { id, pool, task }
}

impl Reporting {
    /// Stops reporting and deletes the process's row: it is no longer running.
    pub async fn stop(self) {
        self.task.abort();
        let gone = match self.pool.get().await {
            Ok(client) => client
                .execute("DELETE FROM processes WHERE id = $1", &[&self.id])
                .await
                .map(|_| ())
                .map_err(|e| crate::with_causes(&e)),
            Err(e) => Err(crate::with_causes(&e)),
        };
        if let Err(why) = gone {
            tracing::debug!(error = %why, "could not remove this process from the fleet; it ages out");
        }
    }
}

/// The processes running now (seen within [`ALIVE`]), by kind, host and start.
pub async fn running(
    client: &tokio_postgres::Client,
) -> Result<Vec<Process>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT id, kind, host, version, key_ids, active_key, \
               to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
               to_char(seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
             FROM processes WHERE seen_at > now() - make_interval(secs => $1) \
             ORDER BY kind, host, started_at",
            &[&(ALIVE.as_secs_f64())],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Process {
            id: r.get(0),
            kind: r.get(1),
            host: r.get(2),
            version: r.get(3),
            key_ids: r.get(4),
            active_key: r.get(5),
            started_at: r.get(6),
            seen_at: r.get(7),
        })
        .collect())
}

/// The running processes that do not hold the key `key_id`: they could not open a row sealed
/// under it.
pub async fn lacking(
    client: &tokio_postgres::Client,
    key_id: &str,
) -> Result<Vec<Process>, tokio_postgres::Error> {
    let mut all = running(client).await?;
    all.retain(|p| !p.holds(key_id));
    Ok(all)
}
