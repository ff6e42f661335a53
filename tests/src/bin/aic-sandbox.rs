//! The vendor sandbox as a process, for the demo and for manual exploration.

use aic_tests::sandbox::Sandbox;
use clap::Parser;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// aic-sandbox: local stand-ins for the vendors' APIs.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "AIC_SANDBOX_LISTEN", default_value = "127.0.0.1:18099")]
    listen: SocketAddr,
    /// A Salesforce connected app as `client_id:client_secret` (repeatable).
    #[arg(long = "salesforce-client")]
    salesforce_clients: Vec<String>,
    /// Latency added to every vendor answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Skip validation and recording: every create succeeds (benchmarks).
    #[arg(long)]
    fast: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let sandbox = match Sandbox::start(args.listen).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("aic-sandbox: could not listen on {}: {e}", args.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    for c in &args.salesforce_clients {
        match c.split_once(':') {
            Some((id, secret)) => sandbox.state.salesforce.add_client(id, secret),
            None => {
                eprintln!("aic-sandbox: --salesforce-client must be client_id:client_secret");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    sandbox.set_latency(Duration::from_millis(args.latency_ms));
    sandbox.state.fast.store(args.fast, Ordering::SeqCst);
    println!("aic-sandbox listening on {}", sandbox.url());
    aic_core::shutdown::signal().await;
    std::process::ExitCode::SUCCESS
}
