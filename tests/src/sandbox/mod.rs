//! The sandbox server: shared state, request recording, and `/__sandbox/*` admin endpoints for
//! out-of-process users (the demo). Each vendor lives in its own module.

pub mod faults;
pub mod jira;
mod jira_auth;
mod jira_meta;
pub mod salesforce;
mod salesforce_schema;
pub mod servicenow;
mod servicenow_meta;
pub mod slack;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// One request as the sandbox received it.
#[derive(Clone, Debug, Serialize)]
pub struct Recorded {
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Query string.
    pub query: Option<String>,
    /// Headers, lower-cased names.
    pub headers: HashMap<String, String>,
    /// Raw body.
    pub body: String,
    /// The caller's address and port: one per TCP connection, so that tests can tell a
    /// reused connection from a new one.
    pub peer: Option<SocketAddr>,
    /// The HTTP version it came in (`HTTP/1.1`, `HTTP/2.0`).
    pub version: String,
}

impl Recorded {
    /// The body as JSON (Null when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// State shared by every vendor's routes.
#[derive(Debug, Default)]
pub struct SandboxState {
    /// The sandbox's own base URL (Salesforce's `instance_url`).
    pub base_url: Mutex<String>,
    /// Salesforce org state.
    pub salesforce: salesforce::Org,
    /// Jira site state.
    pub jira: jira::Site,
    /// ServiceNow instance state.
    pub servicenow: servicenow::Instance,
    /// Slack workspace state.
    pub slack: slack::Workspace,
    /// Injected faults.
    pub faults: Arc<faults::Faults>,
    requests: Mutex<Vec<Recorded>>,
    /// When set, validation is skipped and every create succeeds (benchmarks).
    pub fast: AtomicBool,
}

/// A running sandbox.
#[derive(Clone, Debug)]
pub struct Sandbox {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state, for tests in the same process.
    pub state: Arc<SandboxState>,
}

impl Sandbox {
    /// Starts a sandbox on `listen` (port 0 for tests) in the background.
    pub async fn start(listen: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SandboxState::default());
        *state.base_url.lock().unwrap_or_else(|p| p.into_inner()) = format!("http://{addr}");
        let app = router(state.clone());
        tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state })
    }

    /// Starts a sandbox on `listen` served by a runtime of its own: one thread, which lives
    /// as long as the process. A vendor stand-in under load (the benchmark's) then costs what
    /// serving its calls costs, not a multi-threaded runtime's hand-offs between its threads
    /// and the tasks of whoever else shares it.
    pub async fn start_on_own_thread(listen: SocketAddr) -> std::io::Result<Self> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("aic-sandbox".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let started = Self::start(listen).await;
                    let serving = started.is_ok();
                    let _ = tx.send(started);
                    if serving {
                        std::future::pending::<()>().await;
                    }
                });
            })?;
        rx.await.unwrap_or_else(|_| {
            Err(std::io::Error::other(
                "the sandbox's thread ended before it started",
            ))
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far (admin endpoints excluded).
    pub fn requests(&self) -> Vec<Recorded> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Requests whose path contains `fragment`.
    pub fn requests_to(&self, fragment: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.contains(fragment))
            .collect()
    }

    /// Waits until the sandbox has taken `n` requests whose path contains `fragment` in all;
    /// panics past 30 s.
    pub async fn until_requests_to(&self, fragment: &str, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.requests_to(fragment).len() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "fewer than {n} requests to {fragment} came"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The ServiceNow incidents asked to be created so far (`POST`s: not the lookups by
    /// correlation id, which `GET` the same path).
    pub fn incident_creates(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/api/now/table/incident")
            .count()
    }

    /// The Salesforce upserts of the Lead keyed by `execution` on the external id field
    /// `AIC_Execution_Id__c` received so far.
    pub fn lead_upserts(&self, execution: &str) -> usize {
        let path = format!("/sobjects/Lead/AIC_Execution_Id__c/{execution}");
        self.requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.path.ends_with(&path))
            .count()
    }

    /// Adds latency before every vendor answer.
    pub fn set_latency(&self, latency: Duration) {
        self.state.faults.set_latency(latency);
    }
}

/// The router: every vendor plus the admin endpoints.
/// `len` characters drawn from `alphabet`: the vendors' opaque tokens.
pub(super) fn random_text(len: usize, alphabet: &[u8]) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

pub fn router(state: Arc<SandboxState>) -> Router {
    // Faults run inside recording: a request that meets a fault is still recorded as received.
    let vendors = salesforce::routes()
        .merge(jira::routes())
        .merge(servicenow::routes())
        .merge(slack::routes())
        .layer(middleware::from_fn_with_state(
            state.faults.clone(),
            faults::apply,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), record));
    Router::new()
        .merge(vendors)
        .route(
            "/__sandbox/requests",
            get(admin_requests).delete(admin_clear),
        )
        .route(
            "/__sandbox/salesforce/clients",
            post(salesforce::admin_add_client),
        )
        .route(
            "/__sandbox/salesforce/expire-tokens",
            post(salesforce::admin_expire_tokens),
        )
        .with_state(state)
}

async fn record(State(state): State<Arc<SandboxState>>, req: Request, next: Next) -> Response {
    // The benchmark's fast mode records nothing: its vendor's cost is the harness's, not the
    // pipeline's, and buffering and copying every call only took cores from the rows.
    if state.fast.load(Ordering::Relaxed) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    state
        .requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Recorded {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            version: format!("{:?}", parts.version),
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            peer: parts
                .extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|info| info.0),
        });
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

async fn admin_requests(State(state): State<Arc<SandboxState>>) -> axum::Json<Vec<Recorded>> {
    axum::Json(
        state
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
    )
}

async fn admin_clear(State(state): State<Arc<SandboxState>>) -> &'static str {
    state
        .requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    "cleared"
}
