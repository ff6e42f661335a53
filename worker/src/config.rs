//! The worker's command line and environment (every flag has an `AIC_*` variable).

use crate::retry::RetryPolicy;
use aic_core::config::{AmqpArgs, CredentialArgs, DatabaseArgs, EgressArgs};
use aic_core::vendor::HttpSettings;
use clap::{Args, Parser};
use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

/// How this binary was compiled: `profile-guided` when `deploy/local/pgo.sh` built it with a
/// profile of its own hot path (it sets `AIC_WORKER_BUILD` for the compiler), `standard`
/// otherwise. `--version` names it, so that a benchmark's report says which build it measured.
pub const BUILD: &str = match option_env!("AIC_WORKER_BUILD") {
    Some(build) => build,
    None => "standard",
};

/// The version and the build, as `--version` and the fleet say it.
pub static VERSION: LazyLock<String> =
    LazyLock::new(|| format!("{} ({BUILD} build)", env!("CARGO_PKG_VERSION")));

/// aic-worker: runs automations taken from RabbitMQ.
#[derive(Parser, Debug, Clone)]
#[command(version = VERSION.as_str(), about)]
pub struct Cli {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub worker: WorkerArgs,
}

/// Everything the worker is configured with.
#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    /// Address of the admin server (`/metrics`, `/healthz`, `/readyz`).
    #[arg(
        long,
        env = "AIC_WORKER_ADMIN_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    pub admin_listen: SocketAddr,
    /// Unacknowledged deliveries held at once: the worker's concurrency.
    #[arg(long, env = "AIC_WORKER_PREFETCH", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,
    /// Time limit of one vendor HTTP call, in seconds.
    #[arg(long, env = "AIC_WORKER_VENDOR_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub vendor_timeout_secs: u64,
    /// Idle connections kept open to each vendor host for the next call. Fewer than the calls
    /// in flight means each wave of answers closes the surplus and the next wave opens (and
    /// against a real vendor, TLS-handshakes) new ones; more keeps ~20-25 KiB of buffers per
    /// connection (BENCHMARKS.md).
    #[arg(long, env = "AIC_WORKER_VENDOR_IDLE_CONNECTIONS", default_value_t = aic_core::vendor::IDLE_CONNECTIONS_PER_HOST)]
    pub vendor_idle_connections: usize,
    /// Vendor calls in flight on one HTTP/2 connection before further calls to that host open
    /// another. Over HTTP/2 (negotiated with vendors that offer it) one connection would carry
    /// every call to a host, and a server holds calls past its own stream limit (commonly
    /// 100-256) waiting; keep this at or under the vendors' limit.
    #[arg(long, env = "AIC_WORKER_VENDOR_HTTP2_STREAMS", default_value_t = aic_core::vendor::HTTP2_STREAMS_PER_CONNECTION, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub vendor_http2_streams: usize,
    /// Speak HTTP/2 to every vendor without negotiating it: cleartext HTTP/2, for an egress
    /// proxy that speaks it. Every vendor host must then speak HTTP/2; over TLS it is
    /// negotiated without this.
    #[arg(
        long,
        env = "AIC_WORKER_VENDOR_HTTP2_PRIOR_KNOWLEDGE",
        default_value_t = false
    )]
    pub vendor_http2_prior_knowledge: bool,
    /// Vendor calls per execution for transient failures (including the first).
    #[arg(long, env = "AIC_WORKER_MAX_ATTEMPTS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub max_attempts: u32,
    /// First retry delay, in milliseconds (doubles each time, with jitter); the bounds of an
    /// automation's own `base_ms`.
    #[arg(long, env = "AIC_WORKER_RETRY_BASE_MS", default_value_t = 200, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub retry_base_ms: u64,
    /// Longest single retry delay, in milliseconds (also caps a vendor's Retry-After); at
    /// least the base delay.
    #[arg(long, env = "AIC_WORKER_RETRY_CAP_MS", default_value_t = 300_000, value_parser = clap::value_parser!(u64).range(10..=300_000))]
    pub retry_cap_ms: u64,
    /// Time for all of one execution's vendor attempts and waits, in milliseconds: no retry
    /// starts that would end past it. Automations may set their own.
    #[arg(long, env = "AIC_WORKER_RETRY_BUDGET_MS", default_value_t = 600_000, value_parser = clap::value_parser!(u64).range(1_000..=900_000))]
    pub retry_budget_ms: u64,
    /// Longest retry wait slept in the worker, in milliseconds; a retry due later is handed to
    /// a delay queue and its prefetch slot freed.
    #[arg(long, env = "AIC_WORKER_RETRY_INLINE_MAX_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub retry_inline_max_ms: u64,
    /// How long at most an execution parked to wait out its connection's cool-down stays in a
    /// delay queue before it looks at the cool-down again, in milliseconds: once an admin ends
    /// the cool-down (`DELETE /v1/connections/{id}/cooldowns`), the parked executions run
    /// within about this long. Each look costs every parked execution a ledger write and a
    /// publish. Served by the longest delay queue not past it; at least the shortest's 1 s.
    #[arg(long, env = "AIC_WORKER_COOLDOWN_RECHECK_MS", default_value_t = 120_000, value_parser = clap::value_parser!(u64).range(1_000..=600_000))]
    pub cooldown_recheck_ms: u64,
    /// Vendor calls in flight at once on one connection over the whole fleet, for connections
    /// without their own `max_concurrency`.
    #[arg(long, env = "AIC_WORKER_CONNECTION_CONCURRENCY", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connection_concurrency: u32,
    /// When a vendor reports its quota (Salesforce `Sforce-Limit-Info`) this close to the limit,
    /// in percent (0 to 50), the connection cools down for five minutes, leaving the rest to
    /// people.
    #[arg(long, env = "AIC_WORKER_QUOTA_RESERVE_PERCENT", default_value_t = 2.0, value_parser = percent)]
    pub quota_reserve_percent: f64,
    /// Seconds to let in-flight executions finish after SIGTERM before leaving them to
    /// redelivery.
    #[arg(long, env = "AIC_WORKER_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
    /// Runtime threads. 1 (the default) runs the worker on one thread: its work is waiting on
    /// the broker, Postgres and vendors, and one thread saves the wake-ups between threads
    /// (aic-bench: 12-20% less CPU per execution, same throughput); scale out with processes.
    /// 0 for one per core.
    #[arg(long, env = "AIC_WORKER_THREADS", default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1_024))]
    pub threads: usize,
    /// Log JSON lines instead of human-readable text.
    #[arg(long, env = "AIC_LOG_JSON", default_value_t = false)]
    pub log_json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DatabaseArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub amqp: AmqpArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub credentials: CredentialArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub egress: EgressArgs,
}

/// A quota reserve in percent: a number from 0 to 50.
fn percent(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(p) if (0.0..=50.0).contains(&p) => Ok(p),
        Ok(p) => Err(format!("{p} is not in 0..=50")),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

impl WorkerArgs {
    /// Settings that each parse but do not go together, named: the retry cap below its base.
    pub fn check(&self) -> Result<(), String> {
        if self.retry_cap_ms < self.retry_base_ms {
            return Err(format!(
                "AIC_WORKER_RETRY_CAP_MS ({}) must not be below AIC_WORKER_RETRY_BASE_MS ({})",
                self.retry_cap_ms, self.retry_base_ms
            ));
        }
        Ok(())
    }

    /// The retry policy of automations without their own.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            base: Duration::from_millis(self.retry_base_ms),
            cap: Duration::from_millis(self.retry_cap_ms),
            budget: Duration::from_millis(self.retry_budget_ms),
            inline_max: Duration::from_millis(self.retry_inline_max_ms),
            wait_on_throttle: true,
        }
    }

    /// The vendor HTTP client's settings, counting the connections it opens in `opened`.
    pub fn http_settings(&self, opened: prometheus::IntCounter) -> HttpSettings {
        HttpSettings {
            timeout: Duration::from_secs(self.vendor_timeout_secs),
            idle_per_host: self.vendor_idle_connections,
            max_in_flight: usize::from(self.prefetch),
            http2_streams: self.vendor_http2_streams,
            http2_prior_knowledge: self.vendor_http2_prior_knowledge,
            connections_opened: Some(opened),
        }
    }
}
