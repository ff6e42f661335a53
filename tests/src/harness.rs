//! The test environment: a vendor sandbox, the real control plane and worker (in this process,
//! on port 0), a fresh Postgres database and a unique AMQP namespace per test, torn down on drop
//! even when the test fails. Logs only with `TEST_LOG=1`.

use crate::sandbox::Sandbox;
use aic_control_plane::config::ServeArgs;
use aic_control_plane::startup::Application;
use aic_core::config::{AmqpArgs, CredentialArgs, DatabaseArgs, EgressArgs};
use aic_proto::TenantId;
use aic_proto::topology::Names;
use aic_worker::config::WorkerArgs;
use aic_worker::startup::Worker;
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Once;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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
    let (client, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    let mut url = url::Url::parse(admin_url)?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
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
    /// Workers started (when `worker` is set); several compete on the same queue.
    pub workers: usize,
    /// Time limit of one vendor call.
    pub vendor_timeout_secs: u64,
    /// A private RabbitMQ instead of the shared one.
    pub amqp_url: Option<String>,
    /// A private PostgreSQL (a URL allowed to create databases) instead of the shared one.
    pub pg_admin_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            worker: true,
            prefetch: 32,
            retry_cap_ms: 200,
            retry_inline_max_ms: 5_000,
            workers: 1,
            vendor_timeout_secs: 10,
            amqp_url: None,
            pg_admin_url: None,
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
    stops: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
    cleanup: Cleanup,
}

#[derive(Debug, Clone)]
struct Cleanup {
    database: String,
    names: Names,
    amqp_url: String,
    pg_admin_url: String,
}

impl TestEnv {
    /// Starts everything with default options.
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// Starts everything. Panics (failing the test) when a shared service is unreachable.
    pub async fn start_with(opts: Options) -> Self {
        init_logs();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("aic_test_{id}");
        let namespace = format!("aic-test-{id}");
        let pg_admin = opts.pg_admin_url.clone().unwrap_or_else(pg_admin_url);
        let amqp_base = opts.amqp_url.clone().unwrap_or_else(amqp_url);
        let db_url = fresh_database_on(&pg_admin, &database)
            .await
            .expect("Postgres must be running (bash deploy/local/services.sh start)");
        let db_url = SecretString::from(db_url);
        aic_control_plane::migrate::run(&db_url)
            .await
            .expect("migrations apply");
        let sandbox = Sandbox::start("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("sandbox starts");
        let db = DatabaseArgs {
            database_url: db_url.clone(),
            database_pool_size: 8,
        };
        let amqp = AmqpArgs {
            amqp_url: SecretString::from(amqp_base.clone()),
            amqp_namespace: namespace.clone(),
        };
        let credentials = CredentialArgs {
            credential_keys: SecretString::from(aic_core::credentials::Keyring::generate_entry(
                "test",
            )),
            credential_active_key: None,
        };
        let egress = EgressArgs {
            egress_allow_hosts: vec!["127.0.0.1".into()],
            // Atlassian's fixed OAuth and gateway hosts are served by the sandbox too.
            vendor_endpoint_overrides: vec![
                format!("https://auth.atlassian.com={}", sandbox.url()),
                format!("https://api.atlassian.com={}", sandbox.url()),
            ],
        };
        let serve = ServeArgs {
            listen: "127.0.0.1:0".parse().expect("addr"),
            log_json: false,
            db: db.clone(),
            amqp: amqp.clone(),
            credentials: credentials.clone(),
            egress: egress.clone(),
        };
        let app = Application::build(&serve)
            .await
            .expect("control plane builds (RabbitMQ must be running)");
        let api = format!("http://{}", app.local_addr().expect("bound"));
        let pool = app.state().pool.clone();
        let mut stops = Vec::new();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let _ = app
                .run_until_stopped(async {
                    let _ = rx.await;
                })
                .await;
        });
        stops.push((tx, handle));
        let mut worker_admin = None;
        let worker_args = WorkerArgs {
            admin_listen: "127.0.0.1:0".parse().expect("addr"),
            prefetch: opts.prefetch,
            vendor_timeout_secs: opts.vendor_timeout_secs,
            max_attempts: 3,
            retry_base_ms: 10,
            retry_cap_ms: opts.retry_cap_ms,
            retry_budget_ms: 120_000,
            retry_inline_max_ms: opts.retry_inline_max_ms,
            connection_concurrency: 50,
            quota_reserve_percent: 2.0,
            shutdown_grace_secs: 10,
            log_json: false,
            threads: 1,
            db: db.clone(),
            amqp: amqp.clone(),
            credentials: credentials.clone(),
            egress: egress.clone(),
        };
        for _ in 0..if opts.worker { opts.workers.max(1) } else { 0 } {
            let args = WorkerArgs {
                admin_listen: "127.0.0.1:0".parse().expect("addr"),
                prefetch: opts.prefetch,
                vendor_timeout_secs: opts.vendor_timeout_secs,
                max_attempts: 3,
                retry_base_ms: 10,
                retry_cap_ms: opts.retry_cap_ms,
                retry_budget_ms: 120_000,
                retry_inline_max_ms: opts.retry_inline_max_ms,
                connection_concurrency: 50,
                quota_reserve_percent: 2.0,
                shutdown_grace_secs: 10,
                log_json: false,
                threads: 1,
                db: db.clone(),
                amqp: amqp.clone(),
                credentials: credentials.clone(),
                egress: egress.clone(),
            };
            let worker = Worker::build(&args).await.expect("worker builds");
            worker_admin.get_or_insert(worker.admin_addr().expect("bound"));
            let (tx, rx) = oneshot::channel::<()>();
            let handle = tokio::spawn(async move {
                if let Err(e) = worker
                    .run_until_stopped(async {
                        let _ = rx.await;
                    })
                    .await
                {
                    eprintln!("worker stopped with an error: {e:#}");
                }
            });
            stops.push((tx, handle));
        }
        let issued = aic_control_plane::tenants::create_tenant(&pool, "acme")
            .await
            .expect("tenant");
        let conn =
            aic_core::amqp::connect(&SecretString::from(amqp_base.clone()), "aic-test-client")
                .await
                .expect("broker");
        let names = Names::new(&namespace);
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
            stops,
            cleanup: Cleanup {
                database,
                names,
                amqp_url: amqp_base,
                pg_admin_url: pg_admin,
            },
        }
    }

    /// Calls the API with the admin token.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(&self.admin_token, method, path, body).await
    }

    /// Calls the API with a given token.
    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("control plane answers");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A token of another role for this tenant.
    pub async fn token(&self, role: aic_control_plane::auth::Role) -> String {
        aic_control_plane::tenants::issue(&self.pool, self.tenant, role, "test")
            .await
            .expect("token")
            .token
    }

    /// Registers a connected app in the sandbox and creates a connection to it.
    pub async fn salesforce_connection(
        &self,
        name: &str,
        secret_in_sandbox: &str,
        secret_given: &str,
    ) -> Value {
        let client_id = format!("3MVG9{}", uuid::Uuid::new_v4().simple());
        self.sandbox
            .state
            .salesforce
            .add_client(&client_id, secret_in_sandbox);
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/connections",
                Some(json!({
                    "name": name, "app": "salesforce", "domain": self.sandbox.url(),
                    "auth_type": "oauth2_client_credentials",
                    "secrets": {"client_id": client_id, "client_secret": secret_given}
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Creates a connection to the sandbox for any app; returns the connection.
    pub async fn connection(
        &self,
        name: &str,
        app: &str,
        auth_type: &str,
        secrets: Value,
    ) -> Value {
        let (status, body) = self
            .call(Method::POST, "/v1/connections", Some(json!({"name": name, "app": app, "domain": self.sandbox.url(), "auth_type": auth_type, "secrets": secrets})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Creates and publishes an automation from a template; returns its id.
    pub async fn published_automation(
        &self,
        template: &str,
        connection_id: &str,
        name: &str,
        parameters: Option<Value>,
    ) -> String {
        let mut body = json!({"template": template, "connection_id": connection_id, "name": name});
        if let Some(p) = parameters {
            body["parameters"] = p;
        }
        self.automation(body).await
    }

    /// Creates an automation from a full `POST /v1/automations` body and publishes it; returns
    /// its id.
    pub async fn automation(&self, body: Value) -> String {
        let (status, created) = self.call(Method::POST, "/v1/automations", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().expect("id").to_string();
        let (status, version) = self
            .call(Method::POST, &format!("/v1/automations/{id}/publish"), None)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{version}");
        id
    }

    /// A Slack connection with bot token `token` and a published Send Message on it; returns
    /// the automation's id.
    pub async fn slack_automation(&self, name: &str, token: &str) -> String {
        self.sandbox.state.slack.add_token(token);
        let conn = self
            .connection(name, "slack", "bot_token", json!({"bot_token": token}))
            .await;
        self.published_automation(
            "slack.send_message",
            conn["id"].as_str().expect("id"),
            name,
            None,
        )
        .await
    }

    /// A Salesforce connection (right secret) with a published Create Lead automation.
    pub async fn lead_automation(&self) -> String {
        let conn = self
            .salesforce_connection("Sales org", "s3cret-value", "s3cret-value")
            .await;
        self.published_automation(
            "salesforce.create_lead",
            conn["id"].as_str().expect("id"),
            "Create lead",
            None,
        )
        .await
    }

    /// Enqueues over HTTP; returns the execution id.
    pub async fn enqueue(&self, automation: &str, parameters: Value) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/v1/automations/{automation}/executions"),
                Some(json!({"parameters": parameters})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["execution_id"]
            .as_str()
            .expect("execution id")
            .to_string()
    }

    /// Enqueues over HTTP and waits for the final state.
    pub async fn run(&self, automation: &str, parameters: Value) -> Value {
        let id = self.enqueue(automation, parameters).await;
        self.wait_final(&id).await
    }

    /// Polls the API until the execution is final.
    pub async fn wait_final(&self, execution: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self
                .call(Method::GET, &format!("/v1/executions/{execution}"), None)
                .await;
            if status == StatusCode::OK
                && ["succeeded", "failed", "unknown_outcome"]
                    .contains(&body["status"].as_str().unwrap_or(""))
            {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "execution {execution} not final in 30 s: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An exclusive queue bound to `exchange` with `key`, consumed into a stream.
    pub async fn listen(&self, exchange: &str, key: &str) -> Listener {
        let ch = self.amqp.create_channel().await.expect("channel");
        let q = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("queue");
        let name = q.name().to_string();
        if !exchange.is_empty() {
            ch.queue_bind(
                name.as_str().into(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        }
        let consumer = ch
            .basic_consume(
                name.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume");
        Listener {
            _channel: ch,
            queue: name,
            consumer,
        }
    }

    /// Publishes raw bytes to the executions exchange, as an outside client would.
    pub async fn publish_raw(&self, body: &[u8], props: BasicProperties) {
        let ch = aic_core::amqp::confirm_channel(&self.amqp)
            .await
            .expect("channel");
        ch.basic_publish(
            self.names.executions_exchange.as_str().into(),
            "execute".into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    }

    /// Reads the worker's `/metrics`.
    pub async fn metrics(&self) -> String {
        let addr = self.worker_admin.expect("a worker runs");
        self.http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// Starts one more worker on this environment, with its settings adjusted by `tweak`.
    pub async fn start_worker(&self, tweak: impl FnOnce(&mut WorkerArgs)) -> RunningWorker {
        let mut args = self.worker_args.clone();
        tweak(&mut args);
        let worker = Worker::build(&args).await.expect("worker builds");
        let admin = worker.admin_addr().expect("bound");
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            if let Err(e) = worker
                .run_until_stopped(async {
                    let _ = rx.await;
                })
                .await
            {
                eprintln!("worker stopped with an error: {e:#}");
            }
        });
        RunningWorker {
            admin,
            stop: Some(tx),
            handle,
        }
    }

    /// Starts the real `aic-worker` binary (built by `cargo test --workspace --all-targets` or
    /// `cargo build --bins`) against this environment, as a separate process.
    pub fn spawn_worker_process(&self, prefetch: u16) -> std::process::Child {
        let a = &self.worker_args;
        let exe = std::env::current_exe().expect("test binary path");
        // Test binaries live in target/<profile>/deps, other binaries in target/<profile>.
        let dir = exe.parent().expect("binary directory");
        let bin = [
            dir.join("aic-worker"),
            dir.parent()
                .map(|d| d.join("aic-worker"))
                .unwrap_or_default(),
        ]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| dir.join("aic-worker"));
        assert!(
            bin.exists(),
            "{} is missing: run `cargo build --bins` (the test command builds it)",
            bin.display()
        );
        std::process::Command::new(bin)
            .env("AIC_DATABASE_URL", a.db.database_url.expose_secret())
            .env("AIC_AMQP_URL", a.amqp.amqp_url.expose_secret())
            .env("AIC_AMQP_NAMESPACE", &a.amqp.amqp_namespace)
            .env(
                "AIC_CREDENTIAL_KEYS",
                a.credentials.credential_keys.expose_secret(),
            )
            .env(
                "AIC_EGRESS_ALLOW_HOSTS",
                a.egress.egress_allow_hosts.join(","),
            )
            .env("AIC_WORKER_ADMIN_LISTEN", "127.0.0.1:0")
            .env("AIC_WORKER_PREFETCH", prefetch.to_string())
            .env("AIC_WORKER_RETRY_BASE_MS", "10")
            .env("AIC_WORKER_RETRY_CAP_MS", "200")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("aic-worker starts")
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
    fn drop(&mut self) {
        for (_, handle) in &self.stops {
            handle.abort();
        }
        let c = self.cleanup.clone();
        // Runs on its own thread and runtime so it works from any context, including a panic.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(conn) = aic_core::amqp::connect(
                    &SecretString::from(c.amqp_url.clone()),
                    "aic-test-cleanup",
                )
                .await
                {
                    if let Ok(ch) = conn.create_channel().await {
                        let delay = c.names.delay_queues.iter().map(|(_, q)| q);
                        for q in [&c.names.executions_queue, &c.names.dead_letter_queue]
                            .into_iter()
                            .chain(delay)
                        {
                            let _ = ch
                                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                                .await;
                        }
                        for e in [
                            &c.names.executions_exchange,
                            &c.names.results_exchange,
                            &c.names.definitions_exchange,
                            &c.names.dead_letter_exchange,
                        ] {
                            let _ = ch
                                .exchange_delete(
                                    e.as_str().into(),
                                    ExchangeDeleteOptions::default(),
                                )
                                .await;
                        }
                    }
                    let _ = conn.close(200, "cleanup".into()).await;
                }
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&c.pg_admin_url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!(
                            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                            c.database
                        ))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A worker started by [`TestEnv::start_worker`].
#[derive(Debug)]
pub struct RunningWorker {
    /// Its admin address.
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<()>,
}

impl RunningWorker {
    /// Sends the shutdown signal (what SIGTERM does) and waits for the worker to exit;
    /// returns how long that took.
    pub async fn shutdown(mut self) -> Duration {
        let started = Instant::now();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.handle).await;
        started.elapsed()
    }
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Messages arriving on a test queue.
#[derive(Debug)]
pub struct Listener {
    _channel: Channel,
    /// The queue's name (usable as `reply_to`).
    pub queue: String,
    consumer: lapin::Consumer,
}

impl Listener {
    /// The next message, or `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<lapin::message::Delivery> {
        match tokio::time::timeout(timeout, self.consumer.next()).await {
            Ok(Some(Ok(d))) => Some(d),
            _ => None,
        }
    }

    /// The next message body as JSON.
    pub async fn next_json(&mut self, timeout: Duration) -> Option<Value> {
        self.next(timeout)
            .await
            .map(|d| serde_json::from_slice(&d.data).unwrap_or(Value::Null))
    }
}

/// Redacts nothing, but checks that `haystack` contains no secret: used on API bodies and logs.
pub fn assert_no_secret(haystack: &str, secret: &SecretString) {
    assert!(
        !haystack.contains(secret.expose_secret()),
        "a secret leaked into: {haystack}"
    );
}
