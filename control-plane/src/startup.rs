//! Building and running the control plane: `Application::build` connects to Postgres and
//! RabbitMQ, declares the topology and binds the listener (port 0 in tests).

use crate::config::ServeArgs;
use crate::state::AppState;
use aic_core::catalog::Catalog;
use aic_core::db::Planning;
use aic_proto::topology::Names;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A built, bound, not yet serving control plane.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
    retention: crate::retention::Retention,
    bounds: aic_core::http::Bounds,
}

impl Application {
    /// Connects everything and binds the listener. Fails with a readable message when the
    /// configuration is bad or the broker cannot be reached.
    pub async fn build(args: &ServeArgs) -> anyhow::Result<Self> {
        let catalog = Catalog::load()?;
        let keyring = args.credentials.keyring()?;
        let pool = aic_core::db::pool_with(
            &args.db.database_url,
            args.db.database_pool_size,
            Planning::PerExecution,
            Some(crate::error::LOCK_WAIT),
        )?;
        let names = Names::new(&args.amqp.amqp_namespace);
        let broker = Arc::new(
            aic_core::amqp::Broker::connect(&args.amqp.amqp_url, "aic-control-plane", &names)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("could not connect to RabbitMQ (AIC_AMQP_URL): {e}")
                })?,
        );
        let replies = crate::replies::Replies::start(broker.clone());
        let listener = TcpListener::bind(args.listen).await.map_err(|e| {
            anyhow::anyhow!("could not listen on {} (AIC_LISTEN): {e}", args.listen)
        })?;
        let state = AppState {
            pool,
            catalog: Arc::new(catalog),
            keyring: Arc::new(keyring),
            http: Arc::new(
                aic_core::vendor::VendorHttp::new(
                    aic_core::vendor::HttpSettings::single(Duration::from_secs(20)),
                    &args.egress.policy(),
                )
                .map_err(|e| anyhow::anyhow!("could not build the vendor HTTP client: {e}"))?,
            ),
            egress: args.egress.policy(),
            broker,
            names: Arc::new(names),
            replies,
        };
        Ok(Self {
            listener,
            state,
            retention: args.retention(),
            bounds: args.http_bounds(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The state handlers share (tests use its pool).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then answers the requests in flight within the
    /// shutdown grace (`AIC_SHUTDOWN_GRACE_SECS`).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let metrics = crate::metrics::HttpMetrics::new(self.state.keyring.active_id());
        metrics.connection_limit.set(self.bounds.connections as i64);
        let open = metrics.open_connections.clone();
        let app = crate::routes::router(self.state.clone(), Arc::new(metrics));
        tracing::info!(addr = %self.listener.local_addr()?, "control plane listening");
        let retention = self.retention.any().then(|| {
            let pool = self.state.pool.clone();
            let every = crate::retention::EVERY;
            tokio::spawn(crate::retention::retain(pool, self.retention, every))
        });
        let version = env!("CARGO_PKG_VERSION").to_string();
        let pool = self.state.pool.clone();
        let fleet = aic_core::fleet::report(pool, "control-plane", version, &self.state.keyring);
        let resend = tokio::spawn(crate::resend::run(
            self.state.pool.clone(),
            self.state.broker.clone(),
            self.state.names.clone(),
            crate::resend::EVERY,
        ));
        let replies = self.state.replies.clone();
        let stop = async move {
            shutdown.await;
            // Callers waiting for results are answered (202) rather than waited out.
            replies.stop();
        };
        aic_core::http::serve(self.listener, app, self.bounds, Some(open), stop).await;
        resend.abort();
        fleet.stop().await;
        if let Some(task) = retention {
            task.abort();
        }
        self.state.broker.close().await;
        Ok(())
    }
}
