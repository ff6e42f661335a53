//! What the control plane and the worker share: infrastructure set-up (Postgres pool, AMQP
//! topology), credential sealing, the catalogue of apps and automation templates, parameter
//! validation, and the vendor connectors that both test connections and run executions.
#![forbid(unsafe_code)]

pub mod amqp;
pub mod catalog;
pub mod config;
pub mod cooldown;
pub mod credentials;
pub mod db;
pub mod egress;
pub mod fleet;
pub mod http;
pub mod metrics;
pub mod panics;
pub mod params;
pub mod pointer;
pub mod shutdown;
pub mod telemetry;
pub mod vendor;

/// An error and its causes, `: `-separated: tokio-postgres says "db error" or "error performing
/// TLS handshake" and leaves what the server said, or why the certificate was refused, to
/// its source; anyhow's `Display` shows only the outermost context. What PostgreSQL said is
/// given as its severity, message and SQLSTATE, without the detail, which may quote a whole
/// row (a request's parameters, a sealed secret).
pub fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let say = |e: &(dyn std::error::Error + 'static)| match e
        .downcast_ref::<tokio_postgres::error::DbError>()
    {
        Some(db) => format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => e.to_string(),
    };
    let mut text = say(e);
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = say(c);
        if !text.ends_with(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}
