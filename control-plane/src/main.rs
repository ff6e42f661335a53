//! The control plane binary: parse configuration, start telemetry, run.

use aic_control_plane::config::{Cli, Command};
use aic_control_plane::startup::Application;
use aic_core::db::Planning;
use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aic-control-plane: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let _telemetry = aic_core::telemetry::init("aic-control-plane", args.log_json);
            let app = Application::build(&args).await?;
            app.run_until_stopped(aic_core::shutdown::signal()).await?;
        }
        Command::Migrate(args) => {
            let n = aic_control_plane::migrate::run(&args.db.database_url).await?;
            println!("migrations applied: {n}");
        }
        Command::CreateTenant(args) => {
            let pool = aic_core::db::pool(&args.db.database_url, 2, Planning::PerExecution)?;
            let issued = aic_control_plane::tenants::create_tenant(&pool, &args.name).await?;
            println!("{}", serde_json::to_string(&issued)?);
        }
        Command::CreateToken(args) => {
            let pool = aic_core::db::pool(&args.db.database_url, 2, Planning::PerExecution)?;
            let issued = aic_control_plane::tenants::create_token(
                &pool,
                &args.tenant,
                &args.role,
                &args.name,
                &args.automations,
            )
            .await?;
            println!("{}", serde_json::to_string(&issued)?);
        }
        Command::DlqList(args) => {
            let conn = aic_core::amqp::connect(&args.amqp.amqp_url, "aic-dlq").await?;
            let names = aic_proto::topology::Names::new(&args.amqp.amqp_namespace);
            for d in aic_control_plane::dlq::list(&conn, &names, args.limit).await? {
                println!("{}", serde_json::to_string(&d)?);
            }
        }
        Command::DlqReplay(args) => dlq_replay(&args).await?,
        Command::PruneAudit(args) => {
            let pool = aic_core::db::pool(&args.db.database_url, 2, Planning::PerExecution)?;
            let n = aic_control_plane::retention::prune_audit(&pool, args.keep_days).await?;
            println!("audit events deleted: {n}");
        }
        Command::PruneExecutions(args) => {
            let pool = aic_core::db::pool(&args.db.database_url, 2, Planning::PerExecution)?;
            let n = aic_control_plane::retention::prune_executions(&pool, args.keep_days).await?;
            println!("executions deleted: {n}");
        }
        Command::ResealCredentials(args) => reseal(&args).await?,
        Command::Fleet(args) => {
            let client = aic_core::db::connect(&args.db.database_url).await?;
            for process in aic_core::fleet::running(&client).await? {
                println!("{}", serde_json::to_string(&process)?);
            }
        }
        Command::Keygen { id } => {
            println!("{}", aic_core::credentials::Keyring::generate_entry(&id))
        }
    }
    Ok(())
}

/// Re-publishes the dead-lettered messages the arguments select.
async fn dlq_replay(args: &aic_control_plane::config::DlqReplayArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.all || args.reason.is_some() || args.execution_id.is_some(),
        "say what to replay: --reason REASON, --execution-id ID, or --all"
    );
    let conn = aic_core::amqp::connect(&args.amqp.amqp_url, "aic-dlq").await?;
    let names = aic_proto::topology::Names::new(&args.amqp.amqp_namespace);
    let n = aic_control_plane::dlq::replay(&conn, &names, |d| {
        args.reason.as_ref().is_none_or(|r| &d.reason == r)
            && args
                .execution_id
                .as_ref()
                .is_none_or(|e| d.execution_id.as_ref() == Some(e))
    })
    .await?;
    println!("replayed: {n}");
    Ok(())
}

/// Re-seals every connection's secrets under the active key, and says which processes could
/// not open them.
async fn reseal(args: &aic_control_plane::config::ResealArgs) -> anyhow::Result<()> {
    let keyring = args.credentials.keyring()?;
    let pool = aic_core::db::pool(&args.db.database_url, 2, Planning::PerExecution)?;
    let report = aic_control_plane::keys::reseal(&pool, &keyring, args.dry_run, args.force).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    let lacking: Vec<String> = report
        .lacking_key
        .iter()
        .map(|p| format!("{} on {} ({})", p.kind, p.host, p.id))
        .collect();
    anyhow::ensure!(
        lacking.is_empty() || args.force,
        "{} running process(es) do not hold the active key '{}' and could not open \
         what is sealed under it: {}; give each the key (AIC_CREDENTIAL_KEYS) and restart \
         it, or pass --force; {}",
        lacking.len(),
        report.active_key,
        lacking.join(", "),
        if args.dry_run {
            "a dry run"
        } else {
            "nothing was re-sealed"
        }
    );
    anyhow::ensure!(
        report.unopened.is_empty(),
        "{} connection(s) did not open and keep their old key; see `unopened`",
        report.unopened.len()
    );
    Ok(())
}
