//! The worker processes the benchmark starts, and a run of the pipeline through them with
//! where the time went inside them.

use crate::report::Row;
use crate::workload::Workload;
use crate::{pipeline, stages};
use aic_tests::harness::{TestEnv, binary, stop_worker};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The worker binary a run measures, as its report names it.
pub struct Build {
    pub binary: PathBuf,
    /// What it answers to `--version`: its version and how it was compiled (`standard`, or
    /// `profile-guided` from `deploy/local/pgo.sh`).
    pub version: String,
}

/// The worker binary `path` names (`--worker`), by default the one built beside this
/// benchmark, and what it says it is: asked before anything runs, so that a wrong path is
/// refused at once rather than after the ceiling's minutes.
pub fn identify(path: Option<&Path>) -> Result<Build, String> {
    let binary = path.map_or_else(|| binary("aic-worker"), Path::to_path_buf);
    let out = std::process::Command::new(&binary)
        .arg("--version")
        .output()
        .map_err(|e| {
            let hint = if path.is_none() {
                " (build it: cargo build --release --bins)"
            } else {
                ""
            };
            format!("cannot run {}: {e}{hint}", binary.display())
        })?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || !version.starts_with("aic-worker ") {
        return Err(format!(
            "{} is not an aic-worker binary: `--version` answered {version:?} ({})",
            binary.display(),
            out.status
        ));
    }
    Ok(Build { binary, version })
}

/// A worker process with the admin address its `/metrics` are read from. Killed if dropped
/// before [`Worker::stop`]: a run that panics leaves no worker behind (one left running kept
/// taking CPU from the next runs on the same cores).
pub struct Worker {
    pub process: std::process::Child,
    pub admin: SocketAddr,
}

impl Worker {
    /// Stops the process as an orchestrator would (SIGTERM, then SIGKILL after 10 s).
    pub async fn stop(mut self) {
        stop_worker(&mut self.process).await;
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Nothing to do once it was reaped (`stop`): std signals only a child not yet waited for.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Starts a worker process and waits until it says it is ready (consuming, with Postgres and
/// RabbitMQ up). The admin port is picked free just before the worker binds it: one taken
/// meanwhile makes the worker exit, and another port is tried.
pub async fn start_worker(env: &TestEnv, prefetch: u16) -> Worker {
    start_worker_noting(env, prefetch, &AtomicU32::new(0)).await
}

/// [`start_worker`], storing each process's id in `spawned` as soon as it is spawned: a
/// worker given a filled queue works before it is seen to be ready.
pub async fn start_worker_noting(env: &TestEnv, prefetch: u16, spawned: &AtomicU32) -> Worker {
    start_worker_noting_with(env, prefetch, spawned, &[]).await
}

/// [`start_worker`] with more environment variables (settings of the worker's own).
pub async fn start_worker_with(env: &TestEnv, prefetch: u16, extra: &[(&str, &str)]) -> Worker {
    start_worker_noting_with(env, prefetch, &AtomicU32::new(0), extra).await
}

async fn start_worker_noting_with(
    env: &TestEnv,
    prefetch: u16,
    spawned: &AtomicU32,
    extra: &[(&str, &str)],
) -> Worker {
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let admin = stages::free_admin_address();
        let listen = admin.to_string();
        let mut vars = vec![("AIC_WORKER_ADMIN_LISTEN", listen.as_str())];
        vars.extend_from_slice(extra);
        // Owned by a `Worker` from the start, so that a run stopped while it starts (its future
        // dropped) kills it too: a bare `Child` dropped leaves the process running.
        let mut worker = Worker {
            process: env.spawn_worker_process_with(prefetch, &vars),
            admin,
        };
        spawned.store(worker.process.id(), Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = worker.process.try_wait() {
                eprintln!("the worker exited at start ({status}); trying another admin port");
                break;
            }
            let ready = http
                .get(format!("http://{admin}/readyz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return worker;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if worker.process.try_wait().ok().flatten().is_none() {
            worker.stop().await;
            panic!("the worker was not ready within 30 s");
        }
    }
    panic!("the worker could not start (three tries)");
}

/// [`pipeline::run`] through worker processes, with where the time went inside them.
pub async fn through(
    env: &TestEnv,
    workload: &Workload,
    n: usize,
    workers: &[&Worker],
    rate: Option<f64>,
    label: &str,
) -> Row {
    let pids: Vec<u32> = workers.iter().map(|w| w.process.id()).collect();
    let admins: Vec<SocketAddr> = workers.iter().map(|w| w.admin).collect();
    let before = stages::snapshot(&admins).await;
    let wal_before = stages::wal_position(&env.pool).await;
    let mut row = pipeline::run(env, workload, n, &pids, rate, label).await;
    let wal_after = stages::wal_position(&env.pool).await;
    let after = stages::snapshot(&admins).await;
    row.stages = before.zip(after).map(|(b, a)| stages::between(&b, &a));
    row.wal_bytes_per_execution =
        stages::wal_per_execution(wal_before, wal_after, row.executions - row.lost);
    row
}
