//! The control plane's command line and environment (every flag has an `AIC_*` variable).

use aic_core::config::{AmqpArgs, CredentialArgs, DatabaseArgs, EgressArgs};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;

/// aic-control-plane: the Action Integration Center's HTTP API.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the HTTP API.
    Serve(ServeArgs),
    /// Apply pending SQL migrations, then exit.
    Migrate(MigrateArgs),
    /// Create a tenant and its first admin token (printed once, as JSON).
    CreateTenant(CreateTenantArgs),
    /// Create an API token for an existing tenant (printed once, as JSON).
    CreateToken(CreateTokenArgs),
    /// List the dead-letter queue (reason, execution id, body) without removing anything.
    DlqList(DlqArgs),
    /// Replay dead letters to the executions exchange (all, or those of one reason or execution).
    DlqReplay(DlqReplayArgs),
    /// Delete audit events older than a retention period (every tenant's), then exit.
    PruneAudit(PruneAuditArgs),
    /// Delete executions finished longer ago than a retention period (every tenant's; never one
    /// unfinished), then exit.
    PruneExecutions(PruneAuditArgs),
    /// Seal every connection's secrets again under the active credential key, so that an old
    /// key can leave AIC_CREDENTIAL_KEYS (prints a JSON report; fails if a row does not open).
    ResealCredentials(ResealArgs),
    /// List the running workers and control planes (JSON lines: kind, host, version, the ids of
    /// the credential keys each holds), as each reports itself in PostgreSQL.
    Fleet(MigrateArgs),
    /// Print a fresh credential key entry for AIC_CREDENTIAL_KEYS.
    Keygen {
        /// Key id to print (1 to 64 letters, digits, '.', '_' or '-').
        #[arg(long, default_value = "k1", value_parser = key_id)]
        id: String,
    },
}

/// A key id `keygen` may print: one `AIC_CREDENTIAL_KEYS` reads back as it was given.
fn key_id(raw: &str) -> Result<String, String> {
    aic_core::credentials::check_key_id(raw).map(|()| raw.to_string())
}

/// `AIC_SHUTDOWN_GRACE_SECS` unless set: within the pod's 30 s termination grace, after its
/// 5 s pause (`deploy/kubernetes/control-plane.yaml`).
pub const SHUTDOWN_GRACE_SECS: u64 = 20;

/// `serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address the HTTP API listens on.
    #[arg(long, env = "AIC_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
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
    /// Keep this many days of audit events (1 to 36,500), deleting older ones at start-up and
    /// every hour (unset: kept until `prune-audit` deletes them).
    #[arg(long, env = "AIC_AUDIT_KEEP_DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub audit_keep_days: Option<u32>,
    /// Keep this many days (1 to 36,500) of finished executions (their parameter values and
    /// results), deleting older ones at start-up and every hour (unset: kept until
    /// `prune-executions` deletes them). Also the window in which a repeated execution id or
    /// idempotency key is answered with the first execution.
    #[arg(long, env = "AIC_EXECUTIONS_KEEP_DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub executions_keep_days: Option<u32>,
    /// Seconds a connection may take to send a request's head — an idle kept-alive one is
    /// closed past them — and a request its body, from the end of its head (408 past them).
    #[arg(long, env = "AIC_HTTP_READ_TIMEOUT_SECS", default_value_t = aic_core::http::READ_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub http_read_timeout_secs: u64,
    /// Seconds the requests in flight at a stop (SIGTERM) have to be answered; a caller
    /// waiting for its result (`wait_ms`) is answered 202 at once. Keep it below the pod's
    /// termination grace.
    #[arg(long, env = "AIC_SHUTDOWN_GRACE_SECS", default_value_t = SHUTDOWN_GRACE_SECS,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub shutdown_grace_secs: u64,
    /// Connections the API keeps open at once; at the limit a new one waits (in the listen
    /// backlog, unanswered) until one closes. Keep it below the process's file limit
    /// (`ulimit -n`), less the database pool's and the broker's connections.
    #[arg(long, env = "AIC_HTTP_MAX_CONNECTIONS", default_value_t = aic_core::http::MAX_CONNECTIONS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub http_max_connections: usize,
}

impl ServeArgs {
    /// How long a connection may keep the API waiting.
    pub fn http_bounds(&self) -> aic_core::http::Bounds {
        let read = std::time::Duration::from_secs(self.http_read_timeout_secs);
        aic_core::http::Bounds {
            head: read,
            body: read,
            drain: std::time::Duration::from_secs(self.shutdown_grace_secs),
            connections: self.http_max_connections,
        }
    }

    /// What it keeps.
    pub fn retention(&self) -> crate::retention::Retention {
        crate::retention::Retention {
            audit_days: self.audit_keep_days,
            executions_days: self.executions_keep_days,
        }
    }
}

/// `migrate` and `fleet`.
#[derive(Args, Debug, Clone)]
pub struct MigrateArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DatabaseArgs,
}

/// A name given on the command line, as the API takes names.
fn cli_name(name: &str) -> Result<String, String> {
    crate::routes::name_in("the name", name).map(str::to_string)
}

/// `create-tenant`.
#[derive(Args, Debug, Clone)]
pub struct CreateTenantArgs {
    /// Unique tenant name (1 to 200 characters, no control characters).
    #[arg(long, value_parser = cli_name)]
    pub name: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DatabaseArgs,
}

/// `create-token`.
#[derive(Args, Debug, Clone)]
pub struct CreateTokenArgs {
    /// Tenant name.
    #[arg(long)]
    pub tenant: String,
    /// `admin`, `editor`, `viewer` or `service`.
    #[arg(long)]
    pub role: String,
    /// A label for the token (as a tenant's name).
    #[arg(long, default_value = "cli", value_parser = cli_name)]
    pub name: String,
    /// Limit a service token to this automation (repeat for several); every automation of the
    /// tenant when absent.
    #[arg(long = "automation", value_name = "ID")]
    pub automations: Vec<uuid::Uuid>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DatabaseArgs,
}

/// `dlq-list`.
#[derive(Args, Debug, Clone)]
pub struct DlqArgs {
    /// Most messages to show.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub amqp: AmqpArgs,
}

/// `dlq-replay`.
#[derive(Args, Debug, Clone)]
pub struct DlqReplayArgs {
    /// Only messages dead-lettered for this reason (e.g. `delivery_limit`).
    #[arg(long)]
    pub reason: Option<String>,
    /// Only the message of this execution id.
    #[arg(long)]
    pub execution_id: Option<String>,
    /// Replay everything (required when no filter is given).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub amqp: AmqpArgs,
}

/// `reseal-credentials`.
#[derive(Args, Debug, Clone)]
pub struct ResealArgs {
    /// Open every row that would be re-sealed and report, writing nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Re-seal even while a running process does not hold the active key (its executions on
    /// the re-sealed connections will fail until it is given the key).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DatabaseArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub credentials: CredentialArgs,
}

/// `prune-audit` and `prune-executions`.
#[derive(Args, Debug, Clone)]
pub struct PruneAuditArgs {
    /// Keep this many days of them (1 to 36,500).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub keep_days: u32,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DatabaseArgs,
}

#[cfg(test)]
mod tests {
    use super::{Cli, Command};
    use clap::Parser;

    fn serve(extra: &[&str]) -> Result<Cli, clap::Error> {
        let base = [
            "aic-control-plane",
            "serve",
            "--database-url",
            "postgres://localhost/aic",
            "--amqp-url",
            "amqp://localhost",
            "--credential-keys",
            "k1:AAAA",
        ];
        Cli::try_parse_from(base.iter().chain(extra))
    }

    #[test]
    fn each_retention_is_optional_and_at_least_a_day() {
        let kept = |cli: Cli| match cli.command {
            Command::Serve(args) => args.retention(),
            _ => panic!("not serve"),
        };
        assert!(!kept(serve(&[]).expect("parses")).any());
        let both = serve(&["--audit-keep-days", "365", "--executions-keep-days", "30"]);
        let both = kept(both.expect("parses"));
        assert_eq!(
            (both.audit_days, both.executions_days),
            (Some(365), Some(30))
        );
        for flag in ["--audit-keep-days", "--executions-keep-days"] {
            let e = serve(&[flag, "0"]).expect_err("0 days").to_string();
            assert!(e.contains(flag), "{e}");
        }
    }

    #[test]
    fn the_http_bounds_default_to_half_a_minute_a_grace_within_the_pods_and_ten_thousand_connections()
     {
        let bounds = |cli: Cli| match cli.command {
            Command::Serve(args) => args.http_bounds(),
            _ => panic!("not serve"),
        };
        let default = bounds(serve(&[]).expect("parses"));
        assert_eq!(
            (
                default.head.as_secs(),
                default.body.as_secs(),
                default.drain.as_secs(),
                default.connections
            ),
            (30, 30, 20, 10_000)
        );
        let set = serve(&[
            "--http-read-timeout-secs",
            "5",
            "--shutdown-grace-secs",
            "3",
            "--http-max-connections",
            "64",
        ]);
        let set = bounds(set.expect("parses"));
        assert_eq!(
            (
                set.head.as_secs(),
                set.body.as_secs(),
                set.drain.as_secs(),
                set.connections
            ),
            (5, 5, 3, 64)
        );
        for flag in [
            "--http-read-timeout-secs",
            "--shutdown-grace-secs",
            "--http-max-connections",
        ] {
            let e = serve(&[flag, "0"]).expect_err("0 s").to_string();
            assert!(e.contains(flag), "{e}");
        }
    }
}
