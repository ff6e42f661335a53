//! The test environment: a vendor sandbox, the real control plane and worker (in this process,
//! on port 0), a fresh Postgres database and a unique AMQP namespace per test, torn down on drop
//! even when the test fails. Logs only with `TEST_LOG=1`.

use crate::sandbox::Sandbox;
use aic_control_plane::config::ServeArgs;
use aic_proto::TenantId;
use aic_proto::topology::Names;
use aic_worker::config::WorkerArgs;
use lapin::Connection;
use secrecy::{ExposeSecret, SecretString};
use std::net::SocketAddr;
use std::sync::{Arc, Once};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod api;
mod broker;
mod cleanup;
mod fixtures;
mod recovery;
mod requests;
mod scratch;
mod settings;
mod workers;
pub use broker::{Listener, dead_letter_header};
use cleanup::{Cleanup, Declared};
pub use recovery::{Tally, infrastructure_retries, readiness};
pub use requests::{assert_failed_with, reply_properties};
pub use scratch::ScratchDatabase;
pub use settings::RunningApi;
use settings::Settings;
pub use workers::{RunningWorker, binary, sigterm, stop_worker, stop_worker_process};

/// Postgres server URL the tests create their databases on.
pub fn pg_admin_url() -> String {
    std::env::var("AIC_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// RabbitMQ URL the tests use.
pub fn amqp_url() -> String {
    std::env::var("AIC_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
                .with_test_writer()
                .try_init();
        }
    });
}

/// Creates an empty database and returns its URL.
pub async fn fresh_database(name: &str) -> anyhow::Result<String> {
    fresh_database_on(&pg_admin_url(), name).await
}

/// Creates an empty database on the server of `admin_url` and returns its URL.
pub async fn fresh_database_on(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let client = aic_core::db::connect(&SecretString::from(admin_url.to_string())).await?;
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    let mut url = url::Url::parse(admin_url)?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// Creates the database `name` on the server of `admin_url` and migrates it; panics (failing
/// the test) when the server is unreachable or a migration is refused.
async fn migrated_database(admin_url: &str, name: &str) -> SecretString {
    let db_url = fresh_database_on(admin_url, name)
        .await
        .expect("Postgres must be running (bash deploy/local/services.sh start)");
    let db_url = SecretString::from(db_url);
    aic_control_plane::migrate::run(&db_url)
        .await
        .expect("migrations apply");
    db_url
}

/// Whether the shared PostgreSQL server holds a database named `name` (an environment's, left
/// behind or not).
pub async fn database_exists(name: &str) -> bool {
    let client = aic_core::db::connect(&SecretString::from(pg_admin_url()))
        .await
        .expect("postgres");
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .expect("pg_database")
        .get(0);
    count > 0
}

/// Options of a test environment.
#[derive(Clone, Debug)]
pub struct Options {
    /// Start a worker (some tests want requests to wait in the queue).
    pub worker: bool,
    /// Worker prefetch.
    pub prefetch: u16,
    /// Longest retry delay, which also caps a vendor's Retry-After.
    pub retry_cap_ms: u64,
    /// Longest retry wait slept in the worker (longer ones go through the delay queues).
    pub retry_inline_max_ms: u64,
    /// The worker's `cooldown_recheck_ms`: how long an execution parked behind a cool-down
    /// waits before it looks again.
    pub cooldown_recheck_ms: u64,
    /// Workers started (when `worker` is set); several compete on the same queue.
    pub workers: usize,
    /// Time limit of one vendor call.
    pub vendor_timeout_secs: u64,
    /// Idle connections the worker keeps per vendor host.
    pub vendor_idle_connections: usize,
    /// The worker's `AIC_WORKER_CONNECTION_CONCURRENCY`: the cap of a connection without its
    /// own.
    pub connection_concurrency: u32,
    /// Speak cleartext HTTP/2 to the sandbox, with this many calls per connection.
    pub vendor_http2_streams: Option<usize>,
    /// A private RabbitMQ instead of the shared one.
    pub amqp_url: Option<String>,
    /// A private PostgreSQL (a URL allowed to create databases) instead of the shared one.
    pub pg_admin_url: Option<String>,
    /// Serve the sandbox from a runtime of its own, on its own thread (the benchmark's vendor
    /// stand-in), rather than from the caller's.
    pub sandbox_own_thread: bool,
    /// The `aic-worker` binary worker processes run (the benchmark's `--worker`); by default
    /// the workspace's, in the running binary's build profile.
    pub worker_binary: Option<std::path::PathBuf>,
    /// Worker processes write their warnings (`RUST_LOG=warn`) to this process's standard
    /// error, rather than nowhere: the benchmark's, to say why a row saw what it saw.
    pub worker_warnings: bool,
    /// The environment's id, which names its database (`aic_test_<id>`) and its AMQP namespace
    /// (`aic-test-<id>`); a fresh UUID by default.
    pub id: Option<String>,
}

impl Options {
    /// The control plane alone, no worker: the API's own behaviour.
    pub fn api_only() -> Self {
        Self {
            worker: false,
            ..Self::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            worker: true,
            prefetch: 32,
            retry_cap_ms: 200,
            retry_inline_max_ms: 5_000,
            cooldown_recheck_ms: 120_000,
            workers: 1,
            vendor_timeout_secs: 10,
            vendor_idle_connections: aic_core::vendor::IDLE_CONNECTIONS_PER_HOST,
            connection_concurrency: 50,
            vendor_http2_streams: None,
            amqp_url: None,
            pg_admin_url: None,
            sandbox_own_thread: false,
            worker_binary: None,
            worker_warnings: false,
            id: None,
        }
    }
}

/// One isolated environment.
#[derive(Debug)]
pub struct TestEnv {
    /// The vendor sandbox.
    pub sandbox: Sandbox,
    /// Control plane base URL.
    pub api: String,
    /// The tenant.
    pub tenant: TenantId,
    /// Its admin token.
    pub admin_token: String,
    /// Exchange and queue names of this test.
    pub names: Names,
    /// The worker's admin address (`/metrics`).
    pub worker_admin: Option<SocketAddr>,
    /// A pool on the test database.
    pub pool: deadpool_postgres::Pool,
    /// A broker connection for the test's own publishing and consuming.
    pub amqp: Connection,
    http: reqwest::Client,
    worker_args: WorkerArgs,
    serve_args: ServeArgs,
    worker_binary: std::path::PathBuf,
    worker_warnings: bool,
    stops: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
    cleanup: Cleanup,
}

impl TestEnv {
    /// The name of the environment's own database, dropped with it.
    pub fn database(&self) -> &str {
        &self.cleanup.database
    }

    /// The database and credential-key settings the environment's control plane and workers
    /// run with, for a test that runs an operator's command on the same data.
    pub fn settings(
        &self,
    ) -> (
        &aic_core::config::DatabaseArgs,
        &aic_core::config::CredentialArgs,
    ) {
        (&self.worker_args.db, &self.worker_args.credentials)
    }

    /// The RabbitMQ settings (URL, namespace) the environment's services run with.
    pub fn amqp(&self) -> &aic_core::config::AmqpArgs {
        &self.worker_args.amqp
    }

    /// The path of a workspace binary built beside the tests (`aic-control-plane`).
    pub fn binary(name: &str) -> std::path::PathBuf {
        workers::binary(name)
    }

    /// Has the environment's clean-up (when it is dropped, however the test ends) also delete
    /// `queue`, declared beside the contract's topology.
    pub fn owns_queue(&self, queue: &str) {
        self.cleanup.owns(Declared::Queue(queue.to_string()));
    }

    /// [`Self::owns_queue`] for an exchange.
    pub fn owns_exchange(&self, exchange: &str) {
        self.cleanup.owns(Declared::Exchange(exchange.to_string()));
    }

    /// Starts everything with default options.
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// Starts everything. Panics (failing the test) when a shared service is unreachable.
    pub async fn start_with(opts: Options) -> Self {
        init_logs();
        // Before anything is made: a missing binary fails the test with nothing to clean up.
        let worker_binary = opts
            .worker_binary
            .clone()
            .unwrap_or_else(|| workers::binary("aic-worker"));
        let id = opts
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let database = format!("aic_test_{id}");
        let namespace = format!("aic-test-{id}");
        let pg_admin = opts.pg_admin_url.clone().unwrap_or_else(pg_admin_url);
        let amqp_base = opts.amqp_url.clone().unwrap_or_else(amqp_url);
        let names = Names::new(&namespace);
        // Owns the database and the AMQP names from before they exist: a start-up that panics
        // midway (a service down, a migration refused) removes what it made as it unwinds.
        let cleanup = Cleanup {
            database: database.clone(),
            names: names.clone(),
            amqp_url: amqp_base.clone(),
            pg_admin_url: pg_admin.clone(),
            declared: Arc::default(),
        };
        let db_url = migrated_database(&pg_admin, &database).await;
        let listen = "127.0.0.1:0".parse().expect("addr");
        let sandbox = if opts.sandbox_own_thread {
            Sandbox::start_on_own_thread(listen).await
        } else {
            Sandbox::start(listen).await
        }
        .expect("sandbox starts");
        let settings = Settings::new(db_url, &amqp_base, &namespace, &sandbox.url());
        let serve_args = settings.serve();
        let (api, pool, control_plane) = settings::control_plane(&serve_args).await;
        let mut stops = vec![control_plane];
        let mut worker_admin = None;
        let worker_args = settings.worker(&opts);
        for _ in 0..if opts.worker { opts.workers.max(1) } else { 0 } {
            let (admin, tx, handle) = workers::launch(&worker_args).await;
            worker_admin.get_or_insert(admin);
            stops.push((tx, handle));
        }
        let issued = aic_control_plane::tenants::create_tenant(&pool, "acme")
            .await
            .expect("tenant");
        let conn =
            aic_core::amqp::connect(&SecretString::from(amqp_base.clone()), "aic-test-client")
                .await
                .expect("broker");
        Self {
            sandbox,
            api,
            tenant: issued.tenant_id,
            admin_token: issued.token,
            names: names.clone(),
            worker_admin,
            pool,
            amqp: conn,
            http: reqwest::Client::new(),
            worker_args,
            serve_args,
            worker_binary,
            worker_warnings: opts.worker_warnings,
            stops,
            cleanup,
        }
    }

    /// Stops the services, then removes the database and the AMQP names.
    pub async fn stop(mut self) {
        for (tx, handle) in self.stops.drain(..) {
            let _ = tx.send(());
            let _ = tokio::time::timeout(Duration::from_secs(15), handle).await;
        }
    }
}

impl Drop for TestEnv {
    /// Stops the services at once; the clean-up then runs as the environment's last field drops.
    fn drop(&mut self) {
        for (_, handle) in &self.stops {
            handle.abort();
        }
    }
}

/// Redacts nothing, but checks that `haystack` contains no secret: used on API bodies and logs.
pub fn assert_no_secret(haystack: &str, secret: &SecretString) {
    assert!(
        !haystack.contains(secret.expose_secret()),
        "a secret leaked into: {haystack}"
    );
}
