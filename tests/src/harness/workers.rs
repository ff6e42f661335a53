//! More workers on a test environment: in this process, or as the real `aic-worker` binary.

use super::TestEnv;
use aic_worker::config::WorkerArgs;
use aic_worker::startup::Worker;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Builds a worker in this process and runs it until the returned sender fires (or is
/// dropped): its admin address, the stop signal, its task.
pub(super) async fn launch(args: &WorkerArgs) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<()>) {
    let worker = Worker::build(args).await.expect("worker builds");
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
    (admin, tx, handle)
}

impl TestEnv {
    /// Starts one more worker on this environment, with its settings adjusted by `tweak`.
    pub async fn start_worker(&self, tweak: impl FnOnce(&mut WorkerArgs)) -> RunningWorker {
        let mut args = self.worker_args.clone();
        tweak(&mut args);
        let (admin, tx, handle) = launch(&args).await;
        RunningWorker {
            admin,
            stop: Some(tx),
            handle,
        }
    }

    /// The test database's URL.
    pub fn database_url(&self) -> &secrecy::SecretString {
        &self.worker_args.db.database_url
    }

    /// A pool on the test database like the one a worker's ledger batches run on (planned for
    /// key lookups), of `aic_worker::ledger::CONNECTIONS` connections.
    pub fn ledger_pool(&self) -> deadpool_postgres::Pool {
        aic_worker::ledger::batch_pool(
            &self.worker_args.db.database_url,
            aic_worker::ledger::CONNECTIONS,
        )
        .expect("pool")
    }

    /// Starts the real `aic-worker` binary (built by `cargo test --workspace --all-targets` or
    /// `cargo build --bins`, or the one [`super::Options::worker_binary`] names) against this
    /// environment, as a separate process.
    pub fn spawn_worker_process(&self, prefetch: u16) -> std::process::Child {
        self.spawn_worker_process_with(prefetch, &[])
    }

    /// [`Self::spawn_worker_process`] with more environment variables.
    pub fn spawn_worker_process_with(
        &self,
        prefetch: u16,
        env: &[(&str, &str)],
    ) -> std::process::Child {
        let a = &self.worker_args;
        std::process::Command::new(&self.worker_binary)
            .envs(super::settings::shared_env(
                &a.db,
                &a.amqp,
                &a.credentials,
                &a.egress,
            ))
            .env("AIC_WORKER_ADMIN_LISTEN", "127.0.0.1:0")
            .env("AIC_WORKER_PREFETCH", prefetch.to_string())
            .env("AIC_WORKER_RETRY_BASE_MS", "10")
            .env("AIC_WORKER_RETRY_CAP_MS", "200")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(if self.worker_warnings {
                std::process::Stdio::inherit()
            } else {
                std::process::Stdio::null()
            })
            .spawn()
            .expect("aic-worker starts")
    }
}

/// Sends SIGTERM to a worker process, as an orchestrator stopping it would; whether `kill`
/// delivered it.
pub fn sigterm(child: &std::process::Child) -> bool {
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs")
        .success()
}

/// Stops a worker process and reaps it: SIGTERM, which lets it send the acks it still holds
/// (batched for up to 10 ms), then SIGKILL after ten seconds. Killed at once, its unsent acks
/// would return those deliveries to the queue for whoever consumes it next.
pub async fn stop_worker_process(mut child: std::process::Child) {
    stop_worker(&mut child).await;
}

/// [`stop_worker_process`] for a process its owner keeps (to kill it when dropped, say).
pub async fn stop_worker(child: &mut std::process::Child) {
    sigterm(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The path of one of the workspace's binaries (built by `cargo test --workspace --all-targets`
/// or `cargo build --bins`), in the same build profile as the running test.
pub fn binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // Test binaries live in target/<profile>/deps, other binaries in target/<profile>.
    let dir = exe.parent().expect("binary directory");
    let bin = [
        dir.join(name),
        dir.parent().map(|d| d.join(name)).unwrap_or_default(),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or_else(|| dir.join(name));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bins` (the test command builds it)",
        bin.display()
    );
    bin
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
    /// Its `/metrics` text.
    pub async fn metrics(&self) -> String {
        metrics_at(&reqwest::Client::new(), self.admin).await
    }

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

/// The `/metrics` text of the worker whose admin server listens at `admin`.
pub(super) async fn metrics_at(http: &reqwest::Client, admin: SocketAddr) -> String {
    http.get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("the worker's metrics")
        .text()
        .await
        .expect("the metrics' text")
}
