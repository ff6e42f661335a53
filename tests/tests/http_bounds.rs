//! What a connection to the API may hold, and for how long: half a request's head, an idle
//! kept-alive connection, a body sent a byte at a time, a stop with requests in flight; and how
//! many connections it keeps at once.

use aic_tests::harness::{Options, TestEnv};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn connect(api: &str) -> TcpStream {
    TcpStream::connect(api.trim_start_matches("http://"))
        .await
        .expect("connects")
}

/// Reads until the server closes the connection: what it sent, and when it closed — `None`
/// when it was still open after `wait`.
async fn read_until_closed(
    conn: &mut (impl AsyncRead + Unpin),
    wait: Duration,
) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        let left = wait.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, conn.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break Some(started.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => break None,
        }
    };
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

/// Sends the head of a request announcing a body of 1,000 bytes, and its first bytes, then a
/// byte every 200 ms for up to 20 s; returns what reads the server's side of it.
async fn trickling(api: &str, path: &str, token: &str) -> tokio::net::tcp::OwnedReadHalf {
    let conn = connect(api).await;
    let (read, mut write) = conn.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: aic\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"name\": "
    );
    write.write_all(head.as_bytes()).await.expect("head sent");
    tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if write.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    read
}

/// Half a request's head, or nothing after an answered request: the connection is closed once
/// the read timeout passes, and the API goes on answering.
#[tokio::test]
async fn a_connection_that_sends_half_a_head_or_idles_is_closed() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let own = env
        .start_control_plane(|a| a.http_read_timeout_secs = 1)
        .await;
    let mut half = connect(&own.api).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: aic\r\n")
        .await
        .expect("sent");
    let mut idle = connect(&own.api).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: aic\r\n\r\n")
        .await
        .expect("sent");
    let (half_said, half_closed) = read_until_closed(&mut half, Duration::from_secs(10)).await;
    let (idle_said, idle_closed) = read_until_closed(&mut idle, Duration::from_secs(10)).await;
    // Behaviour, not speed: without the bound both stay open for as long as the client likes.
    let half_closed = half_closed.expect("half a head still held after 10 s");
    assert!(
        half_closed >= Duration::from_millis(900),
        "closed after {half_closed:?}, before its timeout"
    );
    assert!(
        !half_said.contains("200"),
        "answered half a head: {half_said}"
    );
    assert!(
        idle_said.starts_with("HTTP/1.1 200"),
        "the request before the idling was answered: {idle_said}"
    );
    assert!(
        idle_closed.is_some(),
        "an idle connection still held after 10 s"
    );
    let healthz = reqwest::get(format!("{}/healthz", own.api))
        .await
        .expect("answered");
    assert_eq!(healthz.status(), 200);
    env.stop().await;
}

/// At its limit of connections the API accepts no more: a new one waits, unanswered, until
/// one of those open closes, and is then served.
#[tokio::test]
async fn at_its_connection_limit_a_new_connection_waits_for_one_to_close() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let own = env
        .start_control_plane(|a| a.http_max_connections = 2)
        .await;
    let first = connect(&own.api).await;
    let _second = connect(&own.api).await;
    let mut third = connect(&own.api).await;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: aic\r\n\r\n")
        .await
        .expect("sent");
    let mut answer = [0u8; 12];
    let held = tokio::time::timeout(Duration::from_millis(800), third.read(&mut answer)).await;
    assert!(held.is_err(), "answered beyond the limit: {held:?}");
    drop(first);
    let served = tokio::time::timeout(Duration::from_secs(5), third.read_exact(&mut answer))
        .await
        .expect("served within 5 s of a connection closing")
        .expect("read");
    assert_eq!(served, 12);
    assert_eq!(
        &answer,
        b"HTTP/1.1 200",
        "{}",
        String::from_utf8_lossy(&answer)
    );
    env.stop().await;
}

/// A body sent a byte at a time is refused with 408 `body_timeout` once the read timeout
/// passes, rather than holding its handler for as long as it trickles.
#[tokio::test]
async fn a_body_that_trickles_is_refused_in_time() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let own = env
        .start_control_plane(|a| a.http_read_timeout_secs = 1)
        .await;
    let mut slow = trickling(&own.api, "/v1/connections", &env.admin_token).await;
    let (said, closed) = read_until_closed(&mut slow, Duration::from_secs(10)).await;
    assert!(closed.is_some(), "a trickling body still read after 10 s");
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    assert!(
        said.contains("\"body_timeout\"") && said.contains("did not arrive within 1 s"),
        "{said}"
    );
    let (status, listed) = env
        .call(reqwest::Method::GET, "/v1/connections", None)
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed, json!([]), "nothing was created");
    env.stop().await;
}

/// Stopped while a caller waits for its result and a body still trickles: the caller is
/// answered 202 at once, and the stop ends within its grace, closing the trickling connection.
#[tokio::test]
async fn a_stop_answers_waiting_callers_and_ends_within_its_grace() {
    let env = TestEnv::start_with(Options::api_only()).await;
    let lead = env.lead_automation().await;
    let mut own = env
        .start_control_plane(|a| {
            a.http_read_timeout_secs = 120;
            a.shutdown_grace_secs = 2;
        })
        .await;
    let url = format!("{}/v1/automations/{lead}/executions", own.api);
    let body = json!({"parameters": {"LastName": "Stop", "Company": "Grace"}, "wait_ms": 30000});
    let waiting = reqwest::Client::new()
        .post(url)
        .bearer_auth(&env.admin_token)
        .json(&body)
        .send();
    let waiting = tokio::spawn(async move {
        let answer = waiting.await.expect("answered");
        let at = Instant::now();
        (answer.status(), answer.text().await.unwrap_or_default(), at)
    });
    let mut slow = trickling(&own.api, "/v1/connections", &env.admin_token).await;
    // No worker: the caller waits, and the body is still arriving.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let stopping = Instant::now();
    let _ = own.stop.take().expect("not stopped yet").send(());

    let (status, answer, at) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting caller answered within 10 s of the stop")
        .expect("caller task");
    let answered = at.duration_since(stopping);
    assert_eq!(status, 202, "{answer}");
    assert!(answer.contains("\"queued\""), "{answer}");
    assert!(
        answered < Duration::from_secs(1),
        "the waiting caller was answered {answered:?} after the stop"
    );
    let handle = &mut own.handle;
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("stopped within 10 s, its grace being 2 s")
        .expect("control plane task");
    let stopped = stopping.elapsed();
    assert!(
        stopped >= Duration::from_millis(1900),
        "stopped after {stopped:?}, before the trickling request's grace ran out"
    );
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(2)).await;
    assert!(closed.is_some(), "the trickling connection left open");
    // The waiting caller's execution stands, as queued.
    let (status, history) = env
        .call(
            reqwest::Method::GET,
            &format!("/v1/automations/{lead}/executions"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["executions"][0]["status"], "queued", "{history}");
    env.stop().await;
}
