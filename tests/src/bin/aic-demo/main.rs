//! The demo: the whole system, locally, against the sandbox, with a visible result.
//!
//! Starts the sandbox, the control plane and one worker as separate processes on a fresh
//! `aic_demo` database; creates a tenant and an admin token; creates, tests and saves a
//! Salesforce connection; creates "Create Lead" from its template with a mapped parameter
//! table and publishes it; enqueues a batch through RabbitMQ exactly as an outside client would
//! (one with a blank Company, which Salesforce refuses); prints the results and the worker's
//! `/metrics` URL. Exits non-zero when the results are not what they should be.

mod procs;
mod steps;

use clap::Parser;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// aic-demo: runs the whole Action Integration Center locally against the vendor sandbox.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Stop everything and exit after printing the results (default: keep running until Ctrl-C).
    #[arg(long)]
    exit: bool,
    /// Executions in the batch (one of them is the deliberate failure).
    #[arg(long, default_value_t = 6)]
    batch: usize,
    /// Control plane port.
    #[arg(long, env = "AIC_DEMO_API_PORT", default_value_t = 18080)]
    api_port: u16,
    /// Worker admin port (`/metrics`).
    #[arg(long, env = "AIC_DEMO_WORKER_PORT", default_value_t = 19090)]
    worker_port: u16,
    /// Sandbox port.
    #[arg(long, env = "AIC_DEMO_SANDBOX_PORT", default_value_t = 18099)]
    sandbox_port: u16,
    /// A PostgreSQL URL allowed to create databases (the demo uses `aic_demo`).
    #[arg(
        long,
        env = "AIC_DEMO_POSTGRES_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    /// RabbitMQ URL.
    #[arg(
        long,
        env = "AIC_DEMO_AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    amqp_url: String,
}

fn step(text: &str) {
    println!("\n▸ {text}");
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("\naic-demo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let (bin_dir, logs) = folders()?;

    step("Preparing a fresh database `aic_demo`");
    let db_url = recreate_database(&args.postgres_url, "aic_demo").await?;
    let namespace = "aic-demo".to_string();
    let env = services_env(&args, db_url, &namespace);
    print!(
        "{}",
        procs::run(&bin_dir, "aic-control-plane", &["migrate"], &env).await?
    );

    step("Starting the vendor sandbox, the control plane and one worker");
    let client_id = format!("3MVG9demo{}", uuid::Uuid::new_v4().simple());
    let client_secret = format!("demo-secret-{}", uuid::Uuid::new_v4().simple());
    let sandbox_url = format!("http://127.0.0.1:{}", args.sandbox_port);
    let api = format!("http://127.0.0.1:{}", args.api_port);
    let metrics_url = format!("http://127.0.0.1:{}/metrics", args.worker_port);
    let salesforce_client = format!("{client_id}:{client_secret}");
    let mut procs = spawn_all(&args, (&bin_dir, &logs), &env, &salesforce_client)?;

    let outcome = async {
        let http = reqwest::Client::new();
        wait_ready(
            &http,
            &mut procs,
            &[
                format!("{api}/readyz"),
                format!("http://127.0.0.1:{}/readyz", args.worker_port),
                format!("{sandbox_url}/__sandbox/requests"),
            ],
        )
        .await?;
        println!(
            "  control plane {api}   worker admin http://127.0.0.1:{}   sandbox {sandbox_url}",
            args.worker_port
        );
        println!("  logs in {}", logs.display());
        steps::drive(&steps::System {
            args: &args,
            env: &env,
            bin_dir: &bin_dir,
            logs: &logs,
            http,
            api,
            sandbox_url,
            metrics_url,
            namespace,
            salesforce: (client_id, client_secret),
        })
        .await
    }
    .await;

    if outcome.is_ok() && !args.exit {
        println!("\nEverything is still running. Press Ctrl-C to stop.");
        aic_core::shutdown::signal().await;
    }
    step("Stopping (SIGTERM)");
    for p in procs.into_iter().rev() {
        p.terminate().await;
    }
    outcome
}

/// The folder of the binaries (this one's) and the services' log folder in it, created.
fn folders() -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let exe = std::env::current_exe()?;
    let bin_dir = exe
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no binary directory"))?
        .to_path_buf();
    let logs = bin_dir.join("aic-demo-logs");
    std::fs::create_dir_all(&logs)?;
    Ok((bin_dir, logs))
}

/// The services' environment: the demo's database and namespace, a fresh credential key, and
/// egress to the sandbox only.
fn services_env(args: &Args, db_url: String, namespace: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AIC_DATABASE_URL", db_url),
        ("AIC_AMQP_URL", args.amqp_url.clone()),
        ("AIC_AMQP_NAMESPACE", namespace.to_string()),
        (
            "AIC_CREDENTIAL_KEYS",
            aic_core::credentials::Keyring::generate_entry("demo"),
        ),
        ("AIC_EGRESS_ALLOW_HOSTS", "127.0.0.1".into()),
        ("RUST_LOG", "info".into()),
    ]
}

/// Spawns the sandbox (knowing the Salesforce client `salesforce_client`, `id:secret`), the
/// control plane and one worker from `bin_dir`, each logging into `logs`.
fn spawn_all(
    args: &Args,
    (bin_dir, logs): (&std::path::Path, &std::path::Path),
    env: &[(&str, String)],
    salesforce_client: &str,
) -> anyhow::Result<Vec<procs::Proc>> {
    let sandbox_listen = format!("127.0.0.1:{}", args.sandbox_port);
    let sandbox_args = [
        "--listen",
        &sandbox_listen,
        "--salesforce-client",
        salesforce_client,
    ];
    let mut procs = vec![procs::spawn(
        bin_dir,
        logs,
        "aic-sandbox",
        &sandbox_args,
        env,
    )?];
    let mut cp_env = env.to_vec();
    cp_env.push(("AIC_LISTEN", format!("127.0.0.1:{}", args.api_port)));
    procs.push(procs::spawn(
        bin_dir,
        logs,
        "aic-control-plane",
        &["serve"],
        &cp_env,
    )?);
    let mut w_env = env.to_vec();
    w_env.push((
        "AIC_WORKER_ADMIN_LISTEN",
        format!("127.0.0.1:{}", args.worker_port),
    ));
    procs.push(procs::spawn(bin_dir, logs, "aic-worker", &[], &w_env)?);
    Ok(procs)
}

async fn recreate_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let client = aic_core::db::connect(&secrecy::SecretString::from(admin_url.to_string()))
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach PostgreSQL at {admin_url}: {e} (is it running? bash deploy/local/services.sh)"))?;
    // Two statements: a multi-statement batch runs in one transaction, which DROP DATABASE refuses.
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await?;
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    let mut url = url::Url::parse(admin_url)?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

async fn wait_ready(
    http: &reqwest::Client,
    procs: &mut [procs::Proc],
    urls: &[String],
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for url in urls {
        loop {
            for p in procs.iter_mut() {
                p.check_alive()?;
            }
            if http
                .get(url)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
            {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "{url} not ready within 60 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}
