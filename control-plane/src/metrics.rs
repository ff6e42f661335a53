//! The control plane's metrics, at `GET /metrics` on the API's listener: every request by
//! route template (`/v1/automations/{id}/executions`, never the ids themselves), method and
//! status, and how long it took. Labels are bounded: an unknown path is `unmatched`, an unusual
//! method `other`. And, read from PostgreSQL at each scrape, every tenant's connections by
//! status and those a vendor's cool-down holds: what needs an admin (every control plane
//! reports the same counts, so dashboards take the `max`, not the `sum`). And the connections
//! open to the API, against its limit.

use aic_core::metrics::{LATENCY_BUCKETS, gauges, histogram, register, render};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::sync::Arc;
use std::time::Instant;

/// The control plane's metrics.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    registry: Registry,
    /// Requests answered, by route, method and status code.
    requests: IntCounterVec,
    /// Time to answer, by route and method (a synchronous execution waits up to 30 s).
    duration: HistogramVec,
    /// Connections of every tenant, by status ([`STATUSES`]).
    connections: IntGaugeVec,
    /// Connections a vendor's cool-down holds now, as a whole or in a part.
    cooling_down: IntGauge,
    /// Running processes, by kind, as the fleet reports itself ([`aic_core::fleet`]).
    processes: IntGaugeVec,
    /// Running processes that do not hold this control plane's active credential key: they
    /// cannot open credentials saved since, nor any row `reseal-credentials` moved to it.
    without_key: IntGauge,
    /// This control plane's active credential key id.
    active_key: String,
    /// Connections to the API open now.
    pub open_connections: IntGauge,
    /// The most connections the API keeps open at once (`AIC_HTTP_MAX_CONNECTIONS`).
    pub connection_limit: IntGauge,
}

/// The fleet's kinds of process.
const KINDS: [&str; 2] = ["worker", "control-plane"];

/// A connection's statuses, in the order the scrape's query counts them.
const STATUSES: [&str; 4] = ["untested", "connected", "failing", "needs_reauthorization"];

impl HttpMetrics {
    /// Registers everything in a fresh registry; `active_key` is the id of the key this control
    /// plane seals new credentials with.
    pub fn new(active_key: &str) -> Self {
        let registry = Registry::new();
        let name = "aic_http_requests_total";
        let requests = register(
            &registry,
            name,
            IntCounterVec::new(
                Opts::new(name, "API requests answered, by route, method and status."),
                &["route", "method", "status"],
            ),
        );
        let duration = histogram(
            &registry,
            "aic_http_request_duration_seconds",
            "Time to answer an API request, by route and method.",
            &["route", "method"],
            &LATENCY_BUCKETS,
        );
        let connections = gauges(
            &registry,
            "aic_connections",
            "Connections of every tenant, by status (read at each scrape).",
            "status",
            &STATUSES,
        );
        let name = "aic_connections_cooling_down";
        let cooling_down = register(
            &registry,
            name,
            IntGauge::new(
                name,
                "Connections a vendor's cool-down holds now, whole or in part (read at each scrape).",
            ),
        );
        let processes = gauges(
            &registry,
            "aic_processes",
            "Running workers and control planes, as each reports itself (read at each scrape).",
            "kind",
            &KINDS,
        );
        let name = "aic_processes_without_active_key";
        let without_key = register(
            &registry,
            name,
            IntGauge::new(
                name,
                "Running processes that do not hold the active credential key: they cannot open \
                 credentials sealed under it (read at each scrape).",
            ),
        );
        let name = "aic_http_connections_open";
        let open_connections = register(
            &registry,
            name,
            IntGauge::new(name, "Connections to the API open now."),
        );
        let name = "aic_http_connections_limit";
        let connection_limit = register(
            &registry,
            name,
            IntGauge::new(
                name,
                "The most connections the API keeps open at once (AIC_HTTP_MAX_CONNECTIONS); \
                 at it, new ones wait.",
            ),
        );
        Self {
            open_connections,
            connection_limit,
            registry,
            requests,
            duration,
            connections,
            cooling_down,
            processes,
            without_key,
            active_key: active_key.to_string(),
        }
    }

    /// Reads the connection and fleet gauges from the database.
    async fn read_gauges(&self, pool: &deadpool_postgres::Pool) -> anyhow::Result<()> {
        let client = pool.get().await?;
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE status = 'untested'), \
                 count(*) FILTER (WHERE status = 'connected'), \
                 count(*) FILTER (WHERE status = 'failing'), \
                 count(*) FILTER (WHERE status = 'needs_reauthorization'), \
                 count(*) FILTER (WHERE throttled_until > now() OR EXISTS (SELECT 1 FROM \
                   connection_cooldowns d WHERE d.connection_id = c.id AND d.until > now())) \
                 FROM connections c",
                &[],
            )
            .await?;
        for (i, status) in STATUSES.iter().enumerate() {
            self.connections
                .with_label_values(&[status])
                .set(row.get(i));
        }
        self.cooling_down.set(row.get(4));
        let running = aic_core::fleet::running(&client).await?;
        for kind in KINDS {
            let n = running.iter().filter(|p| p.kind == kind).count();
            self.processes.with_label_values(&[kind]).set(n as i64);
        }
        let without = running
            .iter()
            .filter(|p| !p.key_ids.contains(&self.active_key));
        self.without_key.set(without.count() as i64);
        Ok(())
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: counts and times every request.
pub async fn track(State(m): State<Arc<HttpMetrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = method_label(req.method());
    let started = Instant::now();
    let response = next.run(req).await;
    m.duration
        .with_label_values(&[&route, method])
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .with_label_values(&[&route, method, response.status().as_str()])
        .inc();
    response
}

/// `GET /metrics`. Without the database the connection gauges keep their last reading (the
/// readiness probe says why).
pub async fn serve(
    State((m, pool)): State<(Arc<HttpMetrics>, deadpool_postgres::Pool)>,
) -> impl IntoResponse {
    if let Err(e) = m.read_gauges(&pool).await {
        tracing::warn!(error = %aic_core::with_causes(&*e), "could not read the connection and fleet gauges");
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&m.registry),
    )
}
