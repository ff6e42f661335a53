//! What every handler can reach.

use aic_core::catalog::Catalog;
use aic_core::credentials::Keyring;
use aic_core::egress::EgressPolicy;
use aic_proto::topology::Names;
use deadpool_postgres::Pool;
use std::sync::Arc;

/// Shared application state.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Postgres.
    pub pool: Pool,
    /// Apps and templates.
    pub catalog: Arc<Catalog>,
    /// Seals connection secrets.
    pub keyring: Arc<Keyring>,
    /// Which vendor URLs may be called.
    pub egress: EgressPolicy,
    /// For connection tests.
    pub http: Arc<aic_core::vendor::VendorHttp>,
    /// The broker: a confirm channel for definition events and execution requests, reconnected
    /// on demand.
    pub broker: Arc<aic_core::amqp::Broker>,
    /// Exchange and queue names.
    pub names: Arc<Names>,
    /// Waiters of synchronous executions.
    pub replies: Arc<crate::replies::Replies>,
}
