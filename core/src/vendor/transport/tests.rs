use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn transport(timeout: Duration, http2_prior_knowledge: bool) -> Transport {
    let settings = HttpSettings {
        timeout,
        http2_prior_knowledge,
        ..HttpSettings::single(timeout)
    };
    Transport::direct(&settings, &EgressPolicy::new(vec!["localhost".into()])).expect("built")
}

/// reqwest's transport, its proxy the listener on `port`.
fn through_proxy(port: u16) -> Transport {
    let proxy = reqwest::Proxy::all(format!("http://127.0.0.1:{port}")).expect("proxy");
    Transport::Proxied(
        reqwest::Client::builder()
            .proxy(proxy)
            .build()
            .expect("built"),
    )
}

#[test]
fn a_proxy_in_the_environment_is_seen() {
    let env = |set: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            set.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| std::ffi::OsString::from(*v))
        }
    };
    assert!(!proxy_in(env(&[])));
    assert!(!proxy_in(env(&[("HTTPS_PROXY", "")])));
    assert!(!proxy_in(env(&[("NO_PROXY", "example.com")])));
    assert!(proxy_in(env(&[("https_proxy", "http://proxy:3128")])));
    assert!(proxy_in(env(&[("ALL_PROXY", "socks5://proxy:1080")])));
}

#[tokio::test]
async fn through_a_proxy_the_call_goes_to_the_proxy() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (request, _) = first_bytes(
        |_| "http://vendor.example/services/data".into(),
        through_proxy(port),
        listener,
    )
    .await;
    assert!(
        request.starts_with(b"GET http://vendor.example/services/data HTTP/1.1\r\n"),
        "{}",
        String::from_utf8_lossy(&request)
    );
}

#[tokio::test]
async fn through_a_proxy_an_answer_is_read_whole_up_to_the_limit() {
    let body = r#"{"ok":true}"#;
    let port = answering(
        format!(
            "HTTP/1.1 200 OK\r\nx-ratelimit-remaining: 9\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ),
        0,
    )
    .await;
    let answer = through_proxy(port)
        .send(get("http://vendor.example/"))
        .await
        .expect("answered");
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["x-ratelimit-remaining"], "9");
    assert_eq!(answer.body, body.as_bytes());
    let len = MAX_ANSWER_BYTES + 1;
    let port = answering(
        format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n"),
        len,
    )
    .await;
    let broke = through_proxy(port)
        .send(get("http://vendor.example/"))
        .await
        .expect_err("too large");
    assert_eq!(broke, Broke::TooLarge);
}

fn get(url: &str) -> Request<Body> {
    Request::get(url).body(Body::default()).expect("request")
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The first bytes a client sends to `listener`, which then hangs up, and the call's end.
async fn first_bytes(
    url: impl Fn(u16) -> String,
    transport: Transport,
    listener: TcpListener,
) -> (Vec<u8>, Broke) {
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut buf = vec![0; 4096];
        let n = socket.read(&mut buf).await.expect("read");
        buf.truncate(n);
        buf
    });
    let broke = transport
        .send(get(&url(port)))
        .await
        .expect_err("the listener never answers");
    (server.await.expect("server"), broke)
}

#[tokio::test]
async fn https_speaks_tls_offering_http2_then_http1_with_the_host_name() {
    let (hello, broke) = first_bytes(
        |port| format!("https://localhost:{port}/x"),
        transport(Duration::from_secs(5), false),
        listener().await,
    )
    .await;
    // A TLS handshake record carrying a ClientHello, never the request in clear.
    assert_eq!(hello.first(), Some(&0x16), "{hello:02x?}");
    assert_eq!(hello.get(5), Some(&0x01), "{hello:02x?}");
    assert!(!holds(&hello, b"GET /x"));
    assert!(holds(&hello, b"localhost"), "SNI names the host");
    assert!(holds(&hello, b"\x02h2\x08http/1.1"), "ALPN offers h2 first");
    assert_eq!(broke, Broke::Connect, "a failed handshake sent nothing");
}

#[tokio::test]
async fn with_prior_knowledge_https_offers_http2_only() {
    let (hello, _) = first_bytes(
        |port| format!("https://localhost:{port}/x"),
        transport(Duration::from_secs(5), true),
        listener().await,
    )
    .await;
    assert!(holds(&hello, b"\x02h2"));
    assert!(!holds(&hello, b"http/1.1"));
}

#[tokio::test]
async fn cleartext_http2_with_prior_knowledge_opens_with_its_preface() {
    let (preface, _) = first_bytes(
        |port| format!("http://localhost:{port}/x"),
        transport(Duration::from_secs(5), true),
        listener().await,
    )
    .await;
    assert!(preface.starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
}

#[tokio::test]
async fn a_name_resolving_to_a_private_address_is_never_reached() {
    let listener = listener().await;
    let port = listener.local_addr().expect("addr").port();
    let settings = HttpSettings::single(Duration::from_secs(5));
    let strict = Transport::direct(&settings, &EgressPolicy::default()).expect("built");
    let broke = strict
        .send(get(&format!("http://localhost:{port}/")))
        .await
        .expect_err("egress refused at resolution");
    assert_eq!(broke, Broke::Connect);
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "no connection reached the listener");
}

#[tokio::test]
async fn no_listener_is_a_connect_failure() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let broke = transport(Duration::from_secs(5), false)
        .send(get(&format!("http://127.0.0.1:{port}/")))
        .await
        .expect_err("nobody listens");
    assert_eq!(broke, Broke::Connect);
}

#[tokio::test]
async fn a_silent_vendor_runs_out_the_time_limit() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let _server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("accept");
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(socket);
    });
    let started = std::time::Instant::now();
    let broke = transport(Duration::from_millis(300), false)
        .send(get(&format!("http://127.0.0.1:{port}/")))
        .await
        .expect_err("no answer");
    assert_eq!(broke, Broke::Timeout);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Answers one request with `head` and then `body_len` bytes of body.
pub(in crate::vendor) async fn answering(head: String, body_len: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut buf = vec![0; 4096];
        let _ = socket.read(&mut buf).await;
        let _ = socket.write_all(head.as_bytes()).await;
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = body_len;
        while left > 0 {
            let n = left.min(chunk.len());
            if socket.write_all(&chunk[..n]).await.is_err() {
                return;
            }
            left -= n;
        }
    });
    port
}

#[tokio::test]
async fn an_answer_is_read_whole_with_its_status_headers_and_protocol() {
    let body = r#"{"id":"00Q1","success":true}"#;
    let port = answering(
        format!(
            "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nsforce-limit-info: api-usage=3/100\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ),
        0,
    )
    .await;
    let answer = transport(Duration::from_secs(5), false)
        .send(get(&format!("http://127.0.0.1:{port}/")))
        .await
        .expect("answered");
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.version, Version::HTTP_11);
    assert_eq!(answer.headers["sforce-limit-info"], "api-usage=3/100");
    assert_eq!(answer.body, body.as_bytes());
}

#[tokio::test]
async fn an_answer_past_the_limit_is_refused_unread() {
    let len = MAX_ANSWER_BYTES + 1;
    let port = answering(
        format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n"),
        len,
    )
    .await;
    let broke = transport(Duration::from_secs(20), false)
        .send(get(&format!("http://127.0.0.1:{port}/")))
        .await
        .expect_err("too large");
    assert_eq!(broke, Broke::TooLarge);
}
