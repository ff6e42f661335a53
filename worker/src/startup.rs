//! Building and running a worker: connect, declare the topology, bind the admin server, consume
//! (reconnecting as needed) until told to stop.

use crate::admin::{self, AdminState};
use crate::config::WorkerArgs;
use crate::consumer::ConsumeSettings;
use crate::executor::Ctx;
use crate::metrics::Metrics;
use crate::tokens::TokenCache;
use aic_core::amqp::Broker;
use aic_core::config::DatabaseArgs;
use aic_core::db::Planning;
use aic_proto::topology::Names;
use deadpool_postgres::Pool;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a connection to the admin server (`/metrics`, the probes) may keep it waiting;
/// its requests carry no body worth the name, and it stops with the worker. Its callers are
/// Prometheus and the kubelet: a few connections at a time; a flood of others holds the
/// probes, not the worker's file descriptors.
const ADMIN_BOUNDS: aic_core::http::Bounds = aic_core::http::Bounds {
    head: aic_core::http::READ_TIMEOUT,
    body: aic_core::http::READ_TIMEOUT,
    drain: Duration::ZERO,
    connections: 256,
};

/// The worker's two pools of Postgres connections: the ledger's batched statements get
/// connections of their own, planned once for key lookups; the rest serve everything else.
fn pools(db: &DatabaseArgs) -> anyhow::Result<(Pool, Pool)> {
    let size = db.database_pool_size.max(2);
    let batches = crate::ledger::CONNECTIONS.min(size - 1);
    let pool = aic_core::db::pool(&db.database_url, size - batches, Planning::PerExecution)?;
    Ok((pool, crate::ledger::batch_pool(&db.database_url, batches)?))
}

/// A connected worker, not yet consuming.
#[derive(Debug)]
pub struct Worker {
    ctx: Arc<Ctx>,
    broker: Arc<Broker>,
    admin: TcpListener,
    settings: ConsumeSettings,
}

impl Worker {
    /// Connects to RabbitMQ (Postgres connects lazily) and binds the admin listener.
    pub async fn build(args: &WorkerArgs) -> anyhow::Result<Self> {
        let keyring = args.credentials.keyring()?;
        let catalog = aic_core::catalog::Catalog::load()?;
        let (pool, batches) = pools(&args.db)?;
        let names = Names::new(&args.amqp.amqp_namespace);
        let tag = format!("aic-worker-{}", uuid::Uuid::new_v4());
        let broker = Arc::new(
            Broker::connect(&args.amqp.amqp_url, &tag, &names)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("could not connect to RabbitMQ (AIC_AMQP_URL): {e}")
                })?,
        );
        let admin = TcpListener::bind(args.admin_listen).await.map_err(|e| {
            let at = args.admin_listen;
            anyhow::anyhow!("could not listen on {at} (AIC_WORKER_ADMIN_LISTEN): {e}")
        })?;
        let settings = ConsumeSettings {
            queue: names.executions_queue.clone(),
            tag,
            prefetch: args.prefetch,
            grace: Duration::from_secs(args.shutdown_grace_secs),
        };
        let metrics = Metrics::new();
        let egress = args.egress.policy();
        metrics.zero(&catalog);
        let ctx = Ctx {
            catalog,
            ledger: crate::ledger::Ledger::new(pool.clone(), batches, &metrics),
            budgets: crate::budget::Budgets::start(
                pool.clone(),
                settings.tag.clone(),
                args.connection_concurrency,
                u32::from(args.prefetch),
            ),
            quota_reserve: args.quota_reserve_percent.clamp(0.0, 50.0) / 100.0,
            pool,
            keyring,
            http: aic_core::vendor::VendorHttp::new(
                args.http_settings(metrics.vendor_connections_opened.clone()),
                &egress,
            )
            .map_err(|e| anyhow::anyhow!("could not build the vendor HTTP client: {e}"))?,
            egress,
            tokens: TokenCache::default(),
            metrics,
            funnel: crate::funnel::Funnel::start(broker.clone()),
            broker: broker.clone(),
            stopping: AtomicBool::new(false),
            names,
            retry: args.retry_policy(),
            held_recheck: Duration::from_millis(args.cooldown_recheck_ms),
            proven: crate::gate::Proven::default(),
        };
        Ok(Self {
            ctx: Arc::new(ctx),
            broker,
            admin,
            settings,
        })
    }

    /// The admin server's address.
    pub fn admin_addr(&self) -> std::io::Result<SocketAddr> {
        self.admin.local_addr()
    }

    /// Consumes until `shutdown` resolves, drains, and closes the connection.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let consuming = Arc::new(AtomicBool::new(false));
        let admin_state = AdminState {
            metrics: self.ctx.metrics.clone(),
            pool: self.ctx.pool.clone(),
            broker: self.broker.clone(),
            consuming: consuming.clone(),
            names: self.ctx.names.clone(),
        };
        tracing::info!(
            addr = %self.admin.local_addr()?,
            version = env!("CARGO_PKG_VERSION"),
            build = crate::config::BUILD,
            "worker admin server listening"
        );
        // Scrapes and probes get the API's bounds: a connection left idle or half-sent is
        // closed rather than kept. The server is aborted with the worker.
        let admin = tokio::spawn(aic_core::http::serve(
            self.admin,
            admin::router(admin_state),
            ADMIN_BOUNDS,
            None,
            std::future::pending(),
        ));
        let version = crate::config::VERSION.clone();
        let fleet =
            aic_core::fleet::report(self.ctx.pool.clone(), "worker", version, &self.ctx.keyring);
        let result = crate::consumer::run(
            self.ctx.clone(),
            self.broker.clone(),
            self.settings,
            consuming,
            shutdown,
        )
        .await;
        admin.abort();
        fleet.stop().await;
        self.broker.close().await;
        tracing::info!("worker stopped");
        result
    }
}
