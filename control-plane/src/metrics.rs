//! The control plane's metrics, at `GET /metrics` on the API's listener: every request by
//! route template (`/v1/automations/{id}/executions`, never the ids themselves), method and
//! status, and how long it took. Labels are bounded: an unknown path is `unmatched`, an unusual
//! method `other`.

use aic_core::metrics::{LATENCY_BUCKETS, histogram, register, render};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{HistogramVec, IntCounterVec, Opts, Registry};
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
}

impl HttpMetrics {
    /// Registers everything in a fresh registry.
    pub fn new() -> Self {
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
        Self {
            registry,
            requests,
            duration,
        }
    }
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self::new()
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

/// `GET /metrics`.
pub async fn serve(State(m): State<Arc<HttpMetrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&m.registry),
    )
}
