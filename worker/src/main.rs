//! The worker binary: parse configuration, start telemetry, run until SIGTERM.

use aic_worker::config::Cli;
use aic_worker::startup::Worker;
use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    aic_core::telemetry::init("aic-worker", cli.worker.log_json);
    let result = async {
        let worker = Worker::build(&cli.worker).await?;
        worker.run_until_stopped(aic_core::shutdown::signal()).await
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("worker failed: {e:#}");
            eprintln!("aic-worker: {e:#}");
            ExitCode::FAILURE
        }
    }
}
