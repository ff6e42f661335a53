//! The control plane's metrics, at `GET /metrics` on the API's listener: every request by
//! route template (`/v1/automations/{id}/executions`, never the ids themselves), method and
//! status, and how long it took. Labels are bounded: an unknown path is `unmatched`, an unusual
//! method `other`.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
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
        let requests = IntCounterVec::new(
            Opts::new(
                "aic_http_requests_total",
                "API requests answered, by route, method and status.",
            ),
            &["route", "method", "status"],
        )
        .unwrap_or_else(|e| panic!("metric aic_http_requests_total: {e}"));
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "aic_http_request_duration_seconds",
                "Time to answer an API request, by route and method.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["route", "method"],
        )
        .unwrap_or_else(|e| panic!("metric aic_http_request_duration_seconds: {e}"));
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
        ] {
            registry
                .register(c)
                .unwrap_or_else(|e| panic!("control plane metric: {e}"));
        }
        Self {
            registry,
            requests,
            duration,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
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
        m.render(),
    )
}
