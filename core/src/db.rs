//! The Postgres pool both services use, over TLS as the URL's `sslmode` asks ([`tls`]).

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

pub mod tls;

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    /// The URL did not parse (the URL itself is not echoed: it may hold a password; the
    /// cause names the option, never its value).
    #[error("AIC_DATABASE_URL is not a valid PostgreSQL URL: {}", crate::with_causes(.0))]
    BadUrl(tokio_postgres::Error),
    /// The pool could not be built.
    #[error("could not build the Postgres pool: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
    /// The URL's TLS settings (`sslmode`, `sslrootcert`) cannot be followed.
    #[error("AIC_DATABASE_URL: {0}")]
    Tls(String),
    /// A connection of its own ([`connect`]) could not be opened: why, with its causes.
    #[error("{0}")]
    Connect(String),
}

/// How a pool's connections plan the statements they prepare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Planning {
    /// A custom plan at every execution: right for any statement, at the price of planning it
    /// each time.
    PerExecution,
    /// One generic plan per prepared statement, made with sequential scans, hash joins and
    /// merge joins priced out, so that it looks rows up by index whatever the tables held when
    /// it was made. Only for a pool whose statements all find their rows by key (the worker's
    /// ledger batches): planning them at every execution was a third of Postgres's CPU at
    /// moderate rates (aic-bench, BENCHMARKS.md).
    KeyLookups,
}

/// How soon a connection to a PostgreSQL that stopped answering — its host gone, a failover
/// that moved its address, a network cut — fails rather than holds its statement. By default
/// TCP retransmits unacknowledged data for about 15 minutes (`tcp_retries2`) and probes an idle
/// connection only after 2 hours, so a pooled connection to a vanished server held every
/// statement given to it, and its caller, that long (measured: a call not answered within 60 s
/// of the cut). Now a statement sent and not acknowledged within [`UNACKNOWLEDGED`], or a
/// connection waiting on an answer whose peer misses [`KEEPALIVE_PROBES`] probes
/// [`KEEPALIVE_INTERVAL`] apart after [`KEEPALIVE_IDLE`] of silence, fails; the services then
/// answer or retry as for any database error. A URL's own `tcp_user_timeout` or `keepalives_*`
/// settings are kept.
fn detect_dead_peers(config: &mut tokio_postgres::Config, url: &str) {
    let set_by_url = |name: &str| url.contains(&format!("{name}="));
    if !set_by_url("tcp_user_timeout") {
        config.tcp_user_timeout(UNACKNOWLEDGED);
    }
    if !set_by_url("keepalives_idle") {
        config.keepalives_idle(KEEPALIVE_IDLE);
    }
    if !set_by_url("keepalives_interval") {
        config.keepalives_interval(KEEPALIVE_INTERVAL);
    }
    if !set_by_url("keepalives_retries") {
        config.keepalives_retries(KEEPALIVE_PROBES);
    }
}

/// See [`detect_dead_peers`].
pub const UNACKNOWLEDGED: Duration = Duration::from_secs(15);
/// See [`detect_dead_peers`].
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
/// See [`detect_dead_peers`].
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// See [`detect_dead_peers`].
pub const KEEPALIVE_PROBES: u32 = 3;

/// Builds a lazily-connecting pool: a database that is down makes `/readyz` fail, not start-up.
pub fn pool(url: &SecretString, size: usize, planning: Planning) -> Result<Pool, DbSetupError> {
    pool_with(url, size, planning, None)
}

/// [`pool`], whose statements give up waiting for a lock after `lock_wait` (SQLSTATE 55P03,
/// `lock_not_available`): a table or row held elsewhere — a migration, a maintenance command,
/// a session left idle in its transaction — fails the statement rather than holding its caller,
/// and the pooled connection, for as long as it is held.
pub fn pool_with(
    url: &SecretString,
    size: usize,
    planning: Planning,
    lock_wait: Option<std::time::Duration>,
) -> Result<Pool, DbSetupError> {
    let (mut config, tls) = tls::connector(url.expose_secret())?;
    detect_dead_peers(&mut config, url.expose_secret());
    // Statements are prepared once per pooled connection, and Postgres would soon settle on one
    // generic plan for each — planned while `executions` was still small, so a batch update
    // joined to it by a sequential scan stays a sequential scan as the table grows to millions
    // of rows (aic-bench: 400 scans of the whole ledger in 20 s). Either every execution gets
    // a custom plan that sees the current table and the batch's real size, or, for key
    // lookups, the generic plan is made without the scans and joins that would go stale.
    // Set once per new connection rather than as the startup packet's `options`, which
    // PgBouncer and other poolers refuse ("unsupported startup parameter: options").
    let mut settings = match planning {
        Planning::PerExecution => "SET plan_cache_mode = force_custom_plan",
        Planning::KeyLookups => {
            "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off; \
             SET enable_hashjoin = off; SET enable_mergejoin = off"
        }
    }
    .to_string();
    if let Some(wait) = lock_wait {
        settings.push_str(&format!("; SET lock_timeout = {}", wait.as_millis()));
    }
    let manager = Manager::from_config(
        config,
        tls,
        ManagerConfig {
            // Verified recycling costs a round-trip per checkout; Fast relies on the
            // connection's own closed flag, and a broken query is retried by the caller.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(std::time::Duration::from_secs(5)))
        .create_timeout(Some(std::time::Duration::from_secs(5)))
        .recycle_timeout(Some(std::time::Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .post_create(deadpool_postgres::Hook::async_fn(move |client, _| {
            let settings = settings.clone();
            Box::pin(async move {
                client
                    .batch_execute(&settings)
                    .await
                    .map_err(deadpool_postgres::HookError::Backend)
            })
        }))
        .build()?)
}

/// One connection of its own (a migration's), TLS as the URL asks; its connection task runs
/// until the client is dropped.
pub async fn connect(url: &SecretString) -> Result<tokio_postgres::Client, DbSetupError> {
    let (mut config, tls) = tls::connector(url.expose_secret())?;
    detect_dead_peers(&mut config, url.expose_secret());
    let (client, connection) = config
        .connect(tls)
        .await
        .map_err(|e| DbSetupError::Connect(crate::with_causes(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "a PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// True when Postgres answers a trivial query. When it does not, says why in the log (at most
/// every 30 s: readiness probes ask every few seconds) — a refused certificate, a password, a
/// host — which `/readyz` itself keeps to a `false`.
pub async fn ping(pool: &Pool) -> bool {
    let why = match pool.get().await {
        Ok(client) => match client.simple_query("SELECT 1").await {
            Ok(_) => return true,
            Err(e) => crate::with_causes(&e),
        },
        Err(e) => crate::with_causes(&e),
    };
    static LAST: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(30)) {
        *last = Some(std::time::Instant::now());
        tracing::warn!(error = %why, "PostgreSQL does not answer");
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_peer_is_detected_within_seconds_unless_the_url_says_otherwise() {
        let url = "postgres://aic@db.internal/aic";
        let (mut config, _) = tls::connector(url).expect("parses");
        detect_dead_peers(&mut config, url);
        assert_eq!(config.get_tcp_user_timeout(), Some(&UNACKNOWLEDGED));
        assert_eq!(config.get_keepalives_idle(), KEEPALIVE_IDLE);
        assert_eq!(config.get_keepalives_interval(), Some(KEEPALIVE_INTERVAL));
        assert_eq!(config.get_keepalives_retries(), Some(KEEPALIVE_PROBES));
        // 0 is the OS's own timeout, as in libpq.
        let url = "postgres://aic@db.internal/aic?tcp_user_timeout=0&keepalives_idle=60";
        let (mut config, _) = tls::connector(url).expect("parses");
        detect_dead_peers(&mut config, url);
        assert_eq!(config.get_tcp_user_timeout(), None);
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(60));
        assert_eq!(config.get_keepalives_interval(), Some(KEEPALIVE_INTERVAL));
    }
}
