//! The demo: the whole system, locally, against the sandbox, with a visible result.
//!
//! Starts the sandbox, the control plane and one worker as separate processes on a fresh
//! `aic_demo` database; creates a tenant and an admin token; creates, tests and saves a
//! Salesforce connection; creates "Create Lead" from its template with a mapped parameter
//! table and publishes it; enqueues a batch through RabbitMQ exactly as an outside client would
//! (one with a blank Company, which Salesforce refuses); prints the results and the worker's
//! `/metrics` URL. Exits non-zero when the results are not what they should be.

mod procs;

use aic_proto::topology::{EXECUTE_ROUTING_KEY, EXECUTION_REQUEST_TYPE, Names};
use aic_proto::{AutomationId, ExecutionId, ExecutionRequestV1, TenantId};
use clap::Parser;
use futures_util::StreamExt;
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
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
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    /// RabbitMQ URL.
    #[arg(
        long,
        env = "AIC_DEMO_AMQP_URL",
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
    let exe = std::env::current_exe()?;
    let bin_dir = exe
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no binary directory"))?
        .to_path_buf();
    let logs = bin_dir.join("aic-demo-logs");
    std::fs::create_dir_all(&logs)?;

    step("Preparing a fresh database `aic_demo`");
    let db_url = recreate_database(&args.postgres_url, "aic_demo").await?;
    let namespace = "aic-demo".to_string();
    let env: Vec<(&str, String)> = vec![
        ("AIC_DATABASE_URL", db_url.clone()),
        ("AIC_AMQP_URL", args.amqp_url.clone()),
        ("AIC_AMQP_NAMESPACE", namespace.clone()),
        (
            "AIC_CREDENTIAL_KEYS",
            aic_core::credentials::Keyring::generate_entry("demo"),
        ),
        ("AIC_EGRESS_ALLOW_HOSTS", "127.0.0.1".into()),
        ("RUST_LOG", "info".into()),
    ];
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
    let mut procs = vec![procs::spawn(
        &bin_dir,
        &logs,
        "aic-sandbox",
        &[
            "--listen",
            &format!("127.0.0.1:{}", args.sandbox_port),
            "--salesforce-client",
            &format!("{client_id}:{client_secret}"),
        ],
        &env,
    )?];
    let mut cp_env = env.clone();
    cp_env.push(("AIC_LISTEN", format!("127.0.0.1:{}", args.api_port)));
    procs.push(procs::spawn(
        &bin_dir,
        &logs,
        "aic-control-plane",
        &["serve"],
        &cp_env,
    )?);
    let mut w_env = env.clone();
    w_env.push((
        "AIC_WORKER_ADMIN_LISTEN",
        format!("127.0.0.1:{}", args.worker_port),
    ));
    procs.push(procs::spawn(&bin_dir, &logs, "aic-worker", &[], &w_env)?);

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
        drive(
            &args,
            &env,
            &bin_dir,
            &http,
            &api,
            &sandbox_url,
            &client_id,
            &client_secret,
            &namespace,
            &metrics_url,
        )
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

#[allow(clippy::too_many_arguments)]
async fn drive(
    args: &Args,
    env: &[(&str, String)],
    bin_dir: &std::path::Path,
    http: &reqwest::Client,
    api: &str,
    sandbox_url: &str,
    client_id: &str,
    client_secret: &str,
    namespace: &str,
    metrics_url: &str,
) -> anyhow::Result<bool> {
    step("Creating tenant `demo` and its admin token");
    let issued: Value = serde_json::from_str(
        procs::run(
            bin_dir,
            "aic-control-plane",
            &["create-tenant", "--name", "demo"],
            env,
        )
        .await?
        .trim(),
    )?;
    let token = issued["token"].as_str().unwrap_or_default().to_string();
    let tenant: TenantId = issued["tenant_id"].as_str().unwrap_or_default().parse()?;
    println!("  tenant {tenant}, admin token aic_… (shown once, kept by the demo)");
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = http
            .request(method, format!("{api}{path}"))
            .bearer_auth(&token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let resp = req.send().await?;
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            anyhow::ensure!(status.is_success(), "{status}: {body}");
            anyhow::Ok(body)
        }
    };

    step("Salesforce connection (OAuth 2.0 client credentials, against the sandbox)");
    let connection = json!({"name": "Salesforce (sandbox)", "app": "salesforce", "domain": sandbox_url,
        "auth_type": "oauth2_client_credentials", "secrets": {"client_id": client_id, "client_secret": client_secret}});
    let test = call(
        reqwest::Method::POST,
        "/v1/connection-tests",
        Some(connection.clone()),
    )
    .await?;
    println!(
        "  test before saving: ok={} — {}",
        test["ok"],
        test["message"].as_str().unwrap_or("")
    );
    let saved = call(reqwest::Method::POST, "/v1/connections", Some(connection)).await?;
    let conn_id = saved["id"].as_str().unwrap_or_default().to_string();
    let tested = call(
        reqwest::Method::POST,
        &format!("/v1/connections/{conn_id}/test"),
        None,
    )
    .await?;
    println!(
        "  saved as {conn_id}; status after test: {}",
        tested["status"].as_str().unwrap_or("")
    );

    step(
        "Automation “Create Lead” from template salesforce.create_lead, parameters mapped, published",
    );
    let parameters = json!([
        {"name": "last_name", "type": "string", "target": "LastName", "required": true, "description": "Lead's last name", "max_length": 80},
        {"name": "company", "type": "string", "target": "Company", "required": true, "description": "Lead's company", "max_length": 255},
        {"name": "email", "type": "email", "target": "Email", "required": true, "description": "Work e-mail"},
        {"name": "title", "type": "string", "target": "Title", "required": false, "description": "Job title"},
        {"name": "employees", "type": "integer", "target": "NumberOfEmployees", "required": false, "description": "Head count"}
    ]);
    let automation = call(reqwest::Method::POST, "/v1/automations", Some(json!({"template": "salesforce.create_lead", "connection_id": conn_id,
        "name": "Create Lead", "description": "Creates a Salesforce lead from the onboarding flow", "parameters": parameters}))).await?;
    let automation_id: AutomationId = automation["id"].as_str().unwrap_or_default().parse()?;
    for p in automation["parameters"].as_array().into_iter().flatten() {
        println!(
            "  {:<10} {:<8} → {:<18} {}",
            p["name"].as_str().unwrap_or(""),
            p["type"].as_str().unwrap_or(""),
            p["target"].as_str().unwrap_or(""),
            if p["required"] == true {
                "required"
            } else {
                "optional"
            }
        );
    }
    let version = call(
        reqwest::Method::POST,
        &format!("/v1/automations/{automation_id}/publish"),
        Some(json!({"version_name": "First release"})),
    )
    .await?;
    println!(
        "  published version {} (“{}”)",
        version["number"],
        version["name"].as_str().unwrap_or("")
    );

    step(&format!(
        "Enqueuing {} executions through RabbitMQ (exchange {namespace}.executions, routing key execute)",
        args.batch
    ));
    let names = Names::new(namespace);
    let conn =
        aic_core::amqp::connect(&SecretString::from(args.amqp_url.clone()), "aic-demo").await?;
    let ch = aic_core::amqp::confirm_channel(&conn).await?;
    let (reply_queue, mut consumer) = aic_core::amqp::private_queue(&ch).await?;
    let people = [
        ("Lovelace", "Analytical Engines Ltd", "ada@engines.example"),
        ("Hopper", "Compilers Inc", "grace@compilers.example"),
        ("Turing", "Bletchley Systems", "alan@bletchley.example"),
        ("Hamilton", "Apollo Software", "margaret@apollo.example"),
        ("Liskov", "Substitution Labs", "barbara@labs.example"),
        ("Knuth", "Literate Programs", "don@tex.example"),
    ];
    let mut sent = HashMap::new();
    for i in 0..args.batch.max(2) {
        let (last, company, email) = people[i % people.len()];
        // The last one leaves Company blank, as a careless form would: Salesforce refuses it.
        let company = if i + 1 == args.batch.max(2) {
            ""
        } else {
            company
        };
        let mut params = Map::new();
        params.insert("last_name".into(), json!(last));
        params.insert("company".into(), json!(company));
        params.insert("email".into(), json!(email));
        params.insert("employees".into(), json!(10 * (i + 1)));
        let req = ExecutionRequestV1 {
            version: 1,
            execution_id: ExecutionId::new(),
            tenant_id: tenant,
            automation_id,
            parameters: params,
            requested_at: Some(chrono::Utc::now()),
            source: Some("flow:demo".into()),
        };
        let props = aic_core::amqp::json_properties(EXECUTION_REQUEST_TYPE)
            .with_reply_to(reply_queue.as_str().into())
            .with_correlation_id(req.execution_id.to_string().into());
        aic_core::amqp::publish_confirmed(
            &ch,
            &names.executions_exchange,
            EXECUTE_ROUTING_KEY,
            &serde_json::to_vec(&req)?,
            props,
            true,
        )
        .await?;
        sent.insert(req.execution_id.to_string(), (last, company));
    }
    println!(
        "  {} requests confirmed by the broker; results come back on reply queue {reply_queue}",
        sent.len()
    );

    step("Results");
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut ok, mut expected_failure, mut other) = (0, 0, 0);
    let mut received = 0;
    while received < sent.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(Ok(d))) = tokio::time::timeout(left, consumer.next()).await else {
            anyhow::bail!(
                "only {received} of {} results arrived within 60 s",
                sent.len()
            );
        };
        received += 1;
        let r: Value = serde_json::from_slice(&d.data)?;
        let id = r["execution_id"].as_str().unwrap_or("");
        let (last, company) = sent.get(id).copied().unwrap_or(("?", "?"));
        match r["status"].as_str() {
            Some("succeeded") => {
                ok += 1;
                println!(
                    "  ✔ {last:<9} {company:<24} lead {}",
                    r["output"]["id"].as_str().unwrap_or("?")
                );
            }
            _ => {
                let v = &r["error"]["vendor"];
                if v["code"] == "REQUIRED_FIELD_MISSING" {
                    expected_failure += 1
                } else {
                    other += 1
                }
                println!(
                    "  ✘ {last:<9} {:<24} {}: {} {} (fields {})",
                    format!("{company:?}"),
                    r["error"]["code"].as_str().unwrap_or(""),
                    v["code"].as_str().unwrap_or(""),
                    v["message"]
                        .as_str()
                        .unwrap_or(r["error"]["message"].as_str().unwrap_or("")),
                    v["fields"]
                );
            }
        }
    }
    let metrics = http.get(metrics_url).send().await?.text().await?;
    step(&format!("Worker metrics: {metrics_url}"));
    for line in metrics.lines().filter(|l| {
        l.starts_with("aic_executions_total")
            || l.starts_with("aic_vendor_requests_total")
            || l.starts_with("aic_execution_duration_seconds_count")
    }) {
        println!("  {line}");
    }
    let good = ok == sent.len() - 1 && expected_failure == 1 && other == 0;
    println!(
        "\n{} {ok} leads created, {expected_failure} refused by Salesforce with REQUIRED_FIELD_MISSING, {other} unexpected",
        if good { "✔" } else { "✘" }
    );
    let _ = conn.close(200, "done".into()).await;
    Ok(good)
}

async fn recreate_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let (client, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach PostgreSQL at {admin_url}: {e} (is it running? bash deploy/local/services.sh)"))?;
    tokio::spawn(conn);
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
