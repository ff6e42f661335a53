//! Injectable faults, per sandbox (so per test): added latency, a rate of 5xx answers, scripted
//! faults for the next calls (429 with a given Retry-After, 5xx, a connection reset after the
//! request was read, a hang past the client's timeout). Token endpoints are exempt, so a fault
//! test exercises the data call, not authentication.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this 5xx status (vendor-shaped body).
    ServerError(u16),
    /// Answer 429 with `Retry-After: secs` (vendor-shaped body).
    RateLimited {
        /// Seconds.
        retry_after: u64,
    },
    /// Read the request, then break the connection without an answer.
    ResetAfterRequest,
    /// Apply the request (the record is created), then break the connection before the answer:
    /// the hazard a vendor dedupe handle exists for.
    ResetAfterApply,
    /// Read the request, then stay silent for this long.
    Hang(Duration),
    /// Answer 401, as a vendor answers a token that expired or was revoked (vendor-shaped body).
    TokenRefused,
    /// Answer 200 with an HTML page, without passing the call on: a proxy's or a sign-in page
    /// in the vendor's place.
    HtmlPage,
    /// Answer this call as usual: holds a place in the script for a call that must go through
    /// (a lookup between two faulted creates, say).
    Pass,
}

/// The fault settings of one sandbox.
#[derive(Debug, Default)]
pub struct Faults {
    latency_ms: AtomicU64,
    /// Per-mille of calls answered with a 503.
    error_rate_permille: AtomicU32,
    script: Mutex<VecDeque<Fault>>,
    /// Faults served so far.
    pub injected: AtomicU64,
    /// Data calls being answered now, and the most at once so far.
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

/// Counts a data call in flight until dropped.
struct InFlight<'a>(&'a Faults);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Faults {
    /// Latency before every vendor answer.
    pub fn set_latency(&self, d: Duration) {
        self.latency_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// A share (0.0–1.0) of data calls answered with a 503.
    pub fn set_error_rate(&self, rate: f64) {
        self.error_rate_permille
            .store((rate.clamp(0.0, 1.0) * 1000.0) as u32, Ordering::SeqCst);
    }

    /// The most data calls the sandbox answered at once (a vendor's view of concurrency).
    pub fn max_in_flight(&self) -> u64 {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Queues faults for the next data calls, in order.
    pub fn push(&self, faults: impl IntoIterator<Item = Fault>) {
        self.script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(faults);
    }

    fn next(&self) -> Option<Fault> {
        if let Some(f) = self
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
        {
            return Some(f);
        }
        let rate = self.error_rate_permille.load(Ordering::Relaxed);
        (rate > 0 && rand::rng().random_range(0..1000) < rate).then_some(Fault::ServerError(503))
    }
}

fn is_token_endpoint(path: &str) -> bool {
    path.contains("/oauth2/token")
        || path.contains("/oauth_token.do")
        || path.contains("/oauth/token")
}

/// A vendor-shaped error body for an injected status.
fn body_for(path: &str, status: StatusCode) -> Response {
    let code = status.as_u16();
    let (content_type, body) = if path.starts_with("/services/") {
        let ec = if code == 503 {
            "SERVER_UNAVAILABLE"
        } else {
            "UNKNOWN_EXCEPTION"
        };
        (
            "application/json",
            format!(r#"[{{"message":"injected fault","errorCode":"{ec}"}}]"#),
        )
    } else if path.starts_with("/rest/api/") {
        (
            "application/json",
            r#"{"errorMessages":["injected fault"],"errors":{}}"#.to_string(),
        )
    } else if path.starts_with("/api/now/") {
        let msg = if code == 429 {
            "Rate limit exceeded"
        } else {
            "injected fault"
        };
        (
            "application/json",
            format!(r#"{{"error":{{"message":"{msg}","detail":"injected"}},"status":"failure"}}"#),
        )
    } else if code == 429 {
        (
            "application/json; charset=utf-8",
            r#"{"ok":false,"error":"ratelimited"}"#.to_string(),
        )
    } else {
        (
            "text/html",
            "<html><body>Service Unavailable</body></html>".to_string(),
        )
    };
    let mut resp = (status, body).into_response();
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    resp
}

/// The middleware.
pub async fn apply(State(faults): State<Arc<Faults>>, req: Request, next: Next) -> Response {
    let _counted = (!is_token_endpoint(req.uri().path())).then(|| {
        let now = faults.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        faults.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(&faults)
    });
    let latency = faults.latency_ms.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let path = req.uri().path().to_string();
    if is_token_endpoint(&path) {
        return next.run(req).await;
    }
    let Some(fault) = faults.next() else {
        return next.run(req).await;
    };
    if !matches!(fault, Fault::Pass) {
        faults.injected.fetch_add(1, Ordering::SeqCst);
    }
    match fault {
        Fault::ServerError(code) => body_for(
            &path,
            StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        ),
        Fault::TokenRefused => body_for(&path, StatusCode::UNAUTHORIZED),
        Fault::HtmlPage => {
            let page =
                "<html><body><form action=\"/login\">Sign in to continue</form></body></html>";
            let mut resp = (StatusCode::OK, page).into_response();
            resp.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            resp
        }
        Fault::RateLimited { retry_after } => {
            let mut resp = body_for(&path, StatusCode::TOO_MANY_REQUESTS);
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                resp.headers_mut().insert("retry-after", v);
            }
            resp
        }
        Fault::ResetAfterApply => {
            let _ = next.run(req).await;
            let stream = futures_util::stream::once(async {
                Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other("injected reset"))
            });
            (StatusCode::OK, Body::from_stream(stream)).into_response()
        }
        Fault::ResetAfterRequest => {
            // Headers go out, then the body stream fails: hyper aborts the connection.
            let stream = futures_util::stream::once(async {
                Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other("injected reset"))
            });
            (StatusCode::OK, Body::from_stream(stream)).into_response()
        }
        Fault::Hang(d) => {
            tokio::time::sleep(d).await;
            body_for(&path, StatusCode::GATEWAY_TIMEOUT)
        }
        Fault::Pass => next.run(req).await,
    }
}
