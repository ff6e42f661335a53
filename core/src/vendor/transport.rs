//! The HTTP transport of vendor calls: hyper's pooled client over rustls, with the egress
//! policy's resolver, no redirects, a time limit on the whole exchange and the answer read whole
//! up to a size limit.
//!
//! reqwest builds on the same parts, and still makes the token requests; a vendor call skips
//! its layers because they cost the worker ~14% of its instructions per execution (callgrind,
//! BENCHMARKS.md): its redirect layer parses the request's URL twice more (once to strip
//! credentials on a redirect, once to report the final URL), even with redirects off, and its
//! retry and proxy layers copy and inspect every request. Where the environment names an
//! outbound proxy, calls go through reqwest as before: it speaks to proxies (tunnelling https
//! through them), which the direct client does not.

use super::client::{BuildError, HttpSettings, USER_AGENT};
use super::opened::Counted;
use crate::egress::{EgressPolicy, SafeDns};
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::Arc;
use std::time::Duration;

/// A request's body.
pub type Body = Full<Bytes>;

/// Time to open a connection (as for token requests).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle pooled connection is closed after this long (reqwest's default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// TCP keep-alive probes on open connections (reqwest's default).
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
/// The largest answer read: vendor answers are JSON documents of a few KiB; past this the
/// answer is refused rather than held in memory.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// What a vendor answered.
#[derive(Debug)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// The protocol it answered in.
    pub version: Version,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body, whole.
    pub body: Bytes,
}

/// Why a call got no whole answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broke {
    /// No connection: the request never left.
    Connect,
    /// The time limit ran out.
    Timeout,
    /// The connection failed during the exchange.
    Broken,
    /// The answer was larger than [`MAX_ANSWER_BYTES`].
    TooLarge,
}

/// One pool of connections to vendors.
#[derive(Clone, Debug)]
pub enum Transport {
    /// hyper's client.
    Direct {
        /// The pool (boxed: it is several times the size of reqwest's handle).
        client: Box<Client<HttpsConnector<Counted<HttpConnector<SafeDns>>>, Body>>,
        /// Time limit of one call.
        timeout: Duration,
    },
    /// reqwest's, built as the token requests' client is (it reads the proxy variables).
    Proxied(reqwest::Client),
}

/// The variables reqwest reads an outbound proxy from.
const PROXY_VARIABLES: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Whether `var` (the environment) names an outbound proxy.
fn proxy_in(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    PROXY_VARIABLES
        .iter()
        .any(|name| var(name).is_some_and(|v| !v.is_empty()))
}

impl Transport {
    /// A pool with `settings`' limits, resolving through `policy`: reqwest's where the
    /// environment names an outbound proxy, else hyper's ([`Self::direct`]).
    pub fn new(settings: &HttpSettings, policy: &EgressPolicy) -> Result<Self, BuildError> {
        if proxy_in(|name| std::env::var_os(name)) {
            return Ok(Self::Proxied(super::client::build(settings, policy)?));
        }
        Ok(Self::direct(settings, policy)?)
    }

    /// hyper's pooled client. TLS trusts the Web PKI's roots (as the token requests' client
    /// does) and offers HTTP/2 and HTTP/1.1 by ALPN (HTTP/2 alone with prior knowledge).
    pub fn direct(settings: &HttpSettings, policy: &EgressPolicy) -> Result<Self, rustls::Error> {
        let mut http = HttpConnector::new_with_resolver(SafeDns(policy.resolver()));
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        http.set_keepalive(Some(TCP_KEEPALIVE));
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let schemes = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let http = Counted::new(http, settings.connections_opened.clone());
        let connector = if settings.http2_prior_knowledge {
            schemes.enable_http2().wrap_connector(http)
        } else {
            schemes.enable_http1().enable_http2().wrap_connector(http)
        };
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(settings.idle_per_host)
            .http2_only(settings.http2_prior_knowledge)
            .build(connector);
        Ok(Self::Direct {
            client: Box::new(client),
            timeout: settings.timeout,
        })
    }

    /// Sends `request` (its `User-Agent` added) and reads the whole answer, within the time
    /// limit.
    pub async fn send(&self, mut request: Request<Body>) -> Result<Answer, Broke> {
        request.headers_mut().insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static(USER_AGENT),
        );
        let (client, timeout) = match self {
            Self::Direct { client, timeout } => (client, *timeout),
            Self::Proxied(client) => return proxied(client, request).await,
        };
        let exchange = async {
            let response = client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    Broke::Connect
                } else {
                    Broke::Broken
                }
            })?;
            whole(response).await
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(Broke::Timeout))
    }
}

impl Broke {
    /// How a reqwest call failed (token requests, and calls through a proxy).
    pub fn of(e: &reqwest::Error) -> Self {
        if e.is_connect() {
            Self::Connect
        } else if e.is_timeout() {
            Self::Timeout
        } else {
            Self::Broken
        }
    }
}

/// `response` with its body read whole, up to [`MAX_ANSWER_BYTES`].
async fn whole<B>(response: http::Response<B>) -> Result<Answer, Broke>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<LengthLimitError>() {
                Broke::TooLarge
            } else {
                e.downcast_ref::<reqwest::Error>()
                    .map_or(Broke::Broken, Broke::of)
            }
        })?
        .to_bytes();
    Ok(Answer {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body,
    })
}

/// [`Transport::send`] through reqwest (its time limit is the client's).
async fn proxied(client: &reqwest::Client, request: Request<Body>) -> Result<Answer, Broke> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let request =
        reqwest::Request::try_from(Request::from_parts(parts, body)).map_err(|e| Broke::of(&e))?;
    let response = client.execute(request).await.map_err(|e| Broke::of(&e))?;
    whole(http::Response::from(response)).await
}

#[cfg(test)]
mod tests {
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
    async fn answering(head: String, body_len: usize) -> u16 {
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
}
