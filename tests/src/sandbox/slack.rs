//! Slack as the sandbox speaks it: bot-token auth, `chat.postMessage` and `auth.test`, every
//! logical answer at HTTP 200 with `ok`, and a per-channel rate limit (a burst, then about one
//! message a second) answered with 429 `ratelimited` and `Retry-After`.

use super::SandboxState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A channel of the workspace.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Id, e.g. `C0123ABCD`.
    pub id: String,
    /// Name without `#`.
    pub name: String,
    /// The bot is a member.
    pub member: bool,
    /// Archived.
    pub archived: bool,
}

/// One simulated workspace.
#[derive(Debug)]
pub struct Workspace {
    tokens: Mutex<HashMap<String, bool>>,
    channels: Mutex<Vec<Channel>>,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    messages: Mutex<Vec<Value>>,
    clock: AtomicU64,
    /// Messages a channel takes at once before the limit applies.
    pub burst: AtomicU64,
}

impl Default for Workspace {
    fn default() -> Self {
        let ch = |id: &str, name: &str, member, archived| Channel {
            id: id.into(),
            name: name.into(),
            member,
            archived,
        };
        Self {
            tokens: Mutex::default(),
            channels: Mutex::new(vec![
                ch("C0GENERAL1", "general", true, false),
                ch("C0ALERTS01", "alerts", true, false),
                ch("C0PRIVATE1", "leadership", false, false),
                ch("C0ARCHIVE1", "old-project", true, true),
            ]),
            buckets: Mutex::default(),
            messages: Mutex::default(),
            clock: AtomicU64::new(1_712_345_678_000_100),
            burst: AtomicU64::new(5),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Workspace {
    /// A bot token that authenticates.
    pub fn add_token(&self, token: &str) {
        lock(&self.tokens).insert(token.into(), true);
    }

    /// Revokes a token (`token_revoked` from then on).
    pub fn revoke(&self, token: &str) {
        lock(&self.tokens).insert(token.into(), false);
    }

    /// Messages posted.
    pub fn messages(&self) -> Vec<Value> {
        lock(&self.messages).clone()
    }
}

/// The vendor routes.
pub fn routes() -> Router<Arc<SandboxState>> {
    Router::new()
        .route("/api/chat.postMessage", post(post_message))
        .route("/api/auth.test", post(auth_test))
}

fn slack(status: StatusCode, body: Value) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

fn fail(error: &str) -> Response {
    slack(StatusCode::OK, json!({"ok": false, "error": error}))
}

fn auth(w: &Workspace, headers: &HeaderMap) -> Result<(), &'static str> {
    let Some(token) = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
    else {
        return Err("not_authed");
    };
    match lock(&w.tokens).get(token) {
        Some(true) => Ok(()),
        Some(false) => Err("token_revoked"),
        None => Err("invalid_auth"),
    }
}

async fn auth_test(State(s): State<Arc<SandboxState>>, headers: HeaderMap) -> Response {
    match auth(&s.slack, &headers) {
        Ok(()) => slack(
            StatusCode::OK,
            json!({"ok": true, "url": "https://acme.slack.com/", "team": "Acme", "user": "aicbot", "team_id": "T0ACME0001", "user_id": "U0AICBOT01", "bot_id": "B0AICBOT01"}),
        ),
        Err(e) => fail(e),
    }
}

const BLOCK_TYPES: &[&str] = &[
    "section",
    "divider",
    "header",
    "context",
    "actions",
    "image",
    "rich_text",
    "input",
];

async fn post_message(
    State(s): State<Arc<SandboxState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let w = &s.slack;
    if let Err(e) = auth(w, &headers) {
        return fail(e);
    }
    // The benchmark's fast mode (as Salesforce's): no channel's rate limit, the body unread,
    // nothing kept, the message's channel and timestamp answered.
    if s.fast.load(Ordering::Relaxed) {
        return slack(
            StatusCode::OK,
            json!({"ok": true, "channel": "C0GENERAL1", "ts": next_ts(w)}),
        );
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return fail("invalid_json"),
    };
    let channel = match postable_channel(w, &body) {
        Ok(channel) => channel,
        Err(refused) => return refused,
    };
    if let Some(refused) = refused_content(&body) {
        return refused;
    }
    let text = body["text"].as_str().unwrap_or("");
    let blocks = body.get("blocks").cloned();
    if let Some(wait) = rate_limited(w, &channel.id) {
        let mut resp = slack(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"ok": false, "error": "ratelimited"}),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            resp.headers_mut().insert("retry-after", v);
        }
        return resp;
    }
    let ts = next_ts(w);
    let mut message = json!({"type": "message", "subtype": "bot_message", "text": text, "ts": ts, "bot_id": "B0AICBOT01", "username": "aicbot"});
    if let Some(b) = blocks {
        message["blocks"] = b;
    }
    if let Some(t) = body["thread_ts"].as_str() {
        message["thread_ts"] = json!(t);
    }
    lock(&w.messages).push(json!({"channel": channel.id, "message": message}));
    slack(
        StatusCode::OK,
        json!({"ok": true, "channel": channel.id, "ts": ts, "message": message}),
    )
}

/// The channel the message names (`#name` or id), if the app may post in it.
fn postable_channel(w: &Workspace, body: &Value) -> Result<Channel, Response> {
    let wanted = body["channel"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches('#')
        .to_string();
    let Some(channel) = lock(&w.channels)
        .iter()
        .find(|c| c.id == wanted || c.name == wanted)
        .cloned()
    else {
        return Err(fail("channel_not_found"));
    };
    if channel.archived {
        return Err(fail("is_archived"));
    }
    if !channel.member {
        return Err(fail("not_in_channel"));
    }
    Ok(channel)
}

/// Slack's answer to a message it refuses for what it says: no text nor blocks, text too long,
/// a block of an unknown type, or a thread timestamp that is not one.
fn refused_content(body: &Value) -> Option<Response> {
    let text = body["text"].as_str().unwrap_or("");
    let blocks = body.get("blocks");
    if text.is_empty() && blocks.is_none() {
        return Some(fail("no_text"));
    }
    if text.chars().count() > 40_000 {
        return Some(fail("msg_too_long"));
    }
    if let Some(b) = blocks {
        let bad = b
            .as_array()
            .map(|a| {
                a.iter()
                    .position(|x| !x["type"].as_str().is_some_and(|t| BLOCK_TYPES.contains(&t)))
            })
            .unwrap_or(Some(0));
        if let Some(i) = bad {
            return Some(slack(
                StatusCode::OK,
                json!({"ok": false, "error": "invalid_blocks", "response_metadata": {"messages": [format!("[ERROR] unsupported type [json-pointer:/blocks/{i}/type]")]}}),
            ));
        }
    }
    if let Some(ts) = body["thread_ts"].as_str() {
        let valid = ts.split_once('.').is_some_and(|(a, b)| {
            !a.is_empty() && !b.is_empty() && a.chars().chain(b.chars()).all(|c| c.is_ascii_digit())
        });
        if !valid {
            return Some(fail("thread_not_found"));
        }
    }
    None
}

/// A new message's timestamp (`seconds.micros`, unique in the workspace).
fn next_ts(w: &Workspace) -> String {
    let micros = w.clock.fetch_add(100, Ordering::SeqCst);
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// A token bucket per channel: `burst` at once, refilled at one a second. Returns the seconds
/// to wait when empty.
fn rate_limited(w: &Workspace, channel: &str) -> Option<u64> {
    let burst = w.burst.load(Ordering::Relaxed) as f64;
    let mut buckets = lock(&w.buckets);
    let now = Instant::now();
    let (tokens, last) = buckets.entry(channel.to_string()).or_insert((burst, now));
    *tokens = (*tokens + now.duration_since(*last).as_secs_f64()).min(burst);
    *last = now;
    if *tokens >= 1.0 {
        *tokens -= 1.0;
        None
    } else {
        Some(1)
    }
}
