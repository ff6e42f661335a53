//! What a test environment's services are started with, and the control plane started in
//! the test's process.

use super::{Options, TestEnv};
use aic_control_plane::config::ServeArgs;
use aic_control_plane::startup::Application;
use aic_core::config::{AmqpArgs, CredentialArgs, DatabaseArgs, EgressArgs};
use aic_worker::config::WorkerArgs;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// What the environment's services share: its database, its namespace on the broker, a fresh
/// credentials key, and egress to the sandbox only.
pub(super) struct Settings {
    db: DatabaseArgs,
    amqp: AmqpArgs,
    credentials: CredentialArgs,
    egress: EgressArgs,
}

impl Settings {
    pub(super) fn new(
        db_url: SecretString,
        amqp_url: &str,
        namespace: &str,
        sandbox: &str,
    ) -> Self {
        Self {
            db: DatabaseArgs {
                database_url: db_url,
                database_pool_size: 8,
            },
            amqp: AmqpArgs {
                amqp_url: SecretString::from(amqp_url.to_string()),
                amqp_namespace: namespace.to_string(),
            },
            credentials: CredentialArgs {
                credential_keys: SecretString::from(
                    aic_core::credentials::Keyring::generate_entry("test"),
                ),
                credential_active_key: None,
            },
            egress: EgressArgs {
                egress_allow_hosts: vec!["127.0.0.1".into()],
                // Atlassian's fixed OAuth and gateway hosts are served by the sandbox too.
                vendor_endpoint_overrides: vec![
                    format!("https://auth.atlassian.com={sandbox}"),
                    format!("https://api.atlassian.com={sandbox}"),
                ],
            },
        }
    }

    /// The control plane's settings: its defaults, on port 0.
    pub(super) fn serve(&self) -> ServeArgs {
        ServeArgs {
            listen: "127.0.0.1:0".parse().expect("addr"),
            log_json: false,
            db: self.db.clone(),
            amqp: self.amqp.clone(),
            credentials: self.credentials.clone(),
            egress: self.egress.clone(),
            audit_keep_days: None,
            executions_keep_days: None,
            http_read_timeout_secs: aic_core::http::READ_TIMEOUT.as_secs(),
            shutdown_grace_secs: aic_control_plane::config::SHUTDOWN_GRACE_SECS,
            http_max_connections: aic_core::http::MAX_CONNECTIONS,
        }
    }

    /// A worker's settings: `opts`' own, and short retries and grace for tests.
    pub(super) fn worker(&self, opts: &Options) -> WorkerArgs {
        WorkerArgs {
            admin_listen: "127.0.0.1:0".parse().expect("addr"),
            prefetch: opts.prefetch,
            vendor_timeout_secs: opts.vendor_timeout_secs,
            vendor_idle_connections: opts.vendor_idle_connections,
            vendor_http2_streams: opts
                .vendor_http2_streams
                .unwrap_or(aic_core::vendor::HTTP2_STREAMS_PER_CONNECTION),
            vendor_http2_prior_knowledge: opts.vendor_http2_streams.is_some(),
            max_attempts: 3,
            retry_base_ms: 10,
            retry_cap_ms: opts.retry_cap_ms,
            retry_budget_ms: 120_000,
            retry_inline_max_ms: opts.retry_inline_max_ms,
            cooldown_recheck_ms: opts.cooldown_recheck_ms,
            connection_concurrency: opts.connection_concurrency,
            quota_reserve_percent: 2.0,
            shutdown_grace_secs: 10,
            log_json: false,
            threads: 1,
            db: self.db.clone(),
            amqp: self.amqp.clone(),
            credentials: self.credentials.clone(),
            egress: self.egress.clone(),
        }
    }
}

/// The environment variables of what a service process shares with the environment: its
/// database, broker namespace, credential keys and egress.
pub(super) fn shared_env(
    db: &DatabaseArgs,
    amqp: &AmqpArgs,
    credentials: &CredentialArgs,
    egress: &EgressArgs,
) -> Vec<(&'static str, String)> {
    vec![
        (
            "AIC_DATABASE_URL",
            db.database_url.expose_secret().to_string(),
        ),
        ("AIC_AMQP_URL", amqp.amqp_url.expose_secret().to_string()),
        ("AIC_AMQP_NAMESPACE", amqp.amqp_namespace.clone()),
        (
            "AIC_CREDENTIAL_KEYS",
            credentials.credential_keys.expose_secret().to_string(),
        ),
        (
            "AIC_EGRESS_ALLOW_HOSTS",
            egress.egress_allow_hosts.join(","),
        ),
    ]
}

/// Starts the control plane in this process: its API's base URL, its database pool, and what
/// stops it.
pub(super) async fn control_plane(
    serve: &ServeArgs,
) -> (
    String,
    deadpool_postgres::Pool,
    (oneshot::Sender<()>, JoinHandle<()>),
) {
    let app = Application::build(serve)
        .await
        .expect("control plane builds (RabbitMQ must be running)");
    let api = format!("http://{}", app.local_addr().expect("bound"));
    let pool = app.state().pool.clone();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let _ = app
            .run_until_stopped(async {
                let _ = rx.await;
            })
            .await;
    });
    (api, pool, (tx, handle))
}

/// A control plane more on a test environment, stopped (at once) when dropped.
#[derive(Debug)]
pub struct RunningApi {
    /// Its base URL.
    pub api: String,
    /// Its stop signal (as SIGTERM's).
    pub stop: Option<oneshot::Sender<()>>,
    /// Its task: it ends once the control plane has stopped.
    pub handle: JoinHandle<()>,
}

impl Drop for RunningApi {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl TestEnv {
    /// The environment variables a control plane process runs on this environment with (its
    /// listen address apart).
    pub fn control_plane_env(&self) -> Vec<(&'static str, String)> {
        let a = &self.serve_args;
        let mut env = shared_env(&a.db, &a.amqp, &a.credentials, &a.egress);
        env.extend([
            (
                "AIC_DATABASE_POOL_SIZE",
                a.db.database_pool_size.to_string(),
            ),
            (
                "AIC_VENDOR_ENDPOINT_OVERRIDES",
                a.egress.vendor_endpoint_overrides.join(","),
            ),
        ]);
        if let Some(key) = &a.credentials.credential_active_key {
            env.push(("AIC_CREDENTIAL_ACTIVE_KEY", key.clone()));
        }
        env
    }

    /// Starts one more control plane on this environment (its database, its broker
    /// namespace), with its settings adjusted by `tweak`.
    pub async fn start_control_plane(&self, tweak: impl FnOnce(&mut ServeArgs)) -> RunningApi {
        let mut args = self.serve_args.clone();
        tweak(&mut args);
        let (api, _, (stop, handle)) = control_plane(&args).await;
        RunningApi {
            api,
            stop: Some(stop),
            handle,
        }
    }
}
