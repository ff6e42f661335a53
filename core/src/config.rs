//! Configuration shared by both services, parsed by clap from flags or `AIC_*` environment
//! variables. Each field is documented here; `--help` prints the same text.

use crate::credentials::Keyring;
use crate::egress::EgressPolicy;
use clap::Args;
use secrecy::SecretString;

/// Where Postgres is.
#[derive(Args, Clone, Debug)]
pub struct DatabaseArgs {
    /// PostgreSQL URL, e.g. `postgres://aic@127.0.0.1:5432/aic` (`--help` never shows the
    /// environment's: it may hold a password).
    #[arg(
        long,
        env = "AIC_DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/aic"
    )]
    pub database_url: SecretString,
    /// Largest number of pooled Postgres connections (a worker keeps up to 3 of them for its
    /// ledger's batched statements, and holds at least 2).
    #[arg(long, env = "AIC_DATABASE_POOL_SIZE", default_value_t = 16, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000))]
    pub database_pool_size: usize,
}

/// Where RabbitMQ is and which names to use.
#[derive(Args, Clone, Debug)]
pub struct AmqpArgs {
    /// AMQP URL including the vhost, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`.
    #[arg(
        long,
        env = "AIC_AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: SecretString,
    /// Prefix of every exchange and queue name (`<ns>.executions`, …): 1 to 64 letters,
    /// digits, `.`, `_` or `-`, not `amq` (RabbitMQ keeps `amq.` names to itself).
    #[arg(long, env = "AIC_AMQP_NAMESPACE", default_value = "aic", value_parser = namespace)]
    pub amqp_namespace: String,
}

/// A namespace every exchange and queue name built on it can be declared with, and typed and
/// matched by an operator (`rabbitmqctl`, the management API's URLs, alert rules): plain
/// characters, short enough that the longest suffix stays within RabbitMQ's 255 bytes, and
/// not `amq.`, whose names the broker declares alone (a declaration is refused).
fn namespace(raw: &str) -> Result<String, String> {
    if !crate::credentials::is_plain_name(raw) {
        return Err("1 to 64 letters, digits, '.', '_' or '-'".into());
    }
    if raw == "amq" || raw.starts_with("amq.") {
        return Err("RabbitMQ keeps names beginning 'amq.' to itself".into());
    }
    Ok(raw.to_string())
}

/// The keys that seal connection credentials.
#[derive(Args, Clone, Debug)]
pub struct CredentialArgs {
    /// Comma-separated `key_id:base64(32 bytes)` pairs; old keys stay listed to open old rows.
    #[arg(long, env = "AIC_CREDENTIAL_KEYS", hide_env_values = true)]
    pub credential_keys: SecretString,
    /// The key id new credentials are sealed with (default: the first listed).
    #[arg(long, env = "AIC_CREDENTIAL_ACTIVE_KEY")]
    pub credential_active_key: Option<String>,
}

impl CredentialArgs {
    /// Parses the keys; a malformed list stops start-up with a message naming the entry.
    pub fn keyring(&self) -> Result<Keyring, crate::credentials::KeyringError> {
        Keyring::parse(&self.credential_keys, self.credential_active_key.as_deref())
    }
}

/// Which vendor hosts the services may call.
#[derive(Args, Clone, Debug, Default)]
pub struct EgressArgs {
    /// Comma-separated `host` or `host:port` the operator explicitly allows past the egress
    /// rules: outside the apps' host patterns, on private addresses, over plain http. Meant for
    /// the local sandbox and tests; leave empty in production.
    #[arg(long, env = "AIC_EGRESS_ALLOW_HOSTS", value_delimiter = ',')]
    pub egress_allow_hosts: Vec<String>,
    /// Comma-separated `from=to` URL prefixes replacing a vendor's fixed endpoints, e.g.
    /// `https://auth.atlassian.com=http://127.0.0.1:18099` to point Atlassian's OAuth service
    /// at the sandbox. Leave empty in production.
    #[arg(long, env = "AIC_VENDOR_ENDPOINT_OVERRIDES", value_delimiter = ',')]
    pub vendor_endpoint_overrides: Vec<String>,
}

impl EgressArgs {
    /// The policy these flags describe.
    pub fn policy(&self) -> EgressPolicy {
        EgressPolicy::new(self.egress_allow_hosts.clone())
            .with_overrides(&self.vendor_endpoint_overrides)
    }
}
