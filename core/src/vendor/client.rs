//! The HTTP clients vendor calls go through, and how calls to an HTTP/2 host are spread over
//! connections.
//!
//! Over HTTP/1.1 a client opens one connection per call in flight. Over HTTP/2 (negotiated by
//! ALPN with every vendor that offers it over TLS) hyper's pool keeps **one** connection per
//! host and sends every call on it; calls beyond the server's limit of concurrent streams
//! (`SETTINGS_MAX_CONCURRENT_STREAMS`, commonly 100-256) wait inside that connection for a
//! stream to free (hyperium/hyper#2197). A worker allowed 2,000 calls in flight to one vendor
//! host would so have at most the server's limit at the vendor: against a 200 ms vendor with a
//! limit of 100, 500 calls/s instead of 10,000. So once a host has answered over HTTP/2, its
//! calls are spread over further clients — each with its own pool, so its own connection —
//! filling each to `streams` calls in flight before the next: connections grow with the calls
//! in flight, one per `streams`, as they grow one per call over HTTP/1.1.

use super::transport::Transport;
use crate::egress::EgressPolicy;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use url::Url;

/// Calls in flight on one HTTP/2 connection before the next one opens, unless configured
/// otherwise: the least a server should allow (RFC 9113 §6.5.2 recommends no less than 100).
pub const HTTP2_STREAMS_PER_CONNECTION: usize = 100;

/// How the worker and the control plane name themselves to vendors.
pub const USER_AGENT: &str = concat!("aic/", env!("CARGO_PKG_VERSION"));

/// Why the HTTP clients could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The token requests' client.
    #[error(transparent)]
    Client(#[from] reqwest::Error),
    /// The calls' TLS set-up.
    #[error("TLS set-up: {0}")]
    Tls(#[from] rustls::Error),
}

/// How the vendor HTTP clients are built.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Time limit of one call.
    pub timeout: Duration,
    /// Idle connections each client keeps per host.
    pub idle_per_host: usize,
    /// Calls in flight at most, over every host (a worker's prefetch): how many clients an
    /// HTTP/2 host may need.
    pub max_in_flight: usize,
    /// Calls in flight on one HTTP/2 connection before calls go to the next.
    pub http2_streams: usize,
    /// Speak HTTP/2 to every vendor without negotiating it (cleartext HTTP/2, as some egress
    /// proxies do); over TLS it is negotiated anyway.
    pub http2_prior_knowledge: bool,
    /// Where the calls' transports count the connections they open (not counted: calls through
    /// an outbound proxy, and token requests).
    pub connections_opened: Option<prometheus::IntCounter>,
}

impl HttpSettings {
    /// One client, no spreading: for services with few calls in flight (the control plane).
    pub fn single(timeout: Duration) -> Self {
        Self {
            timeout,
            idle_per_host: super::IDLE_CONNECTIONS_PER_HOST,
            max_in_flight: HTTP2_STREAMS_PER_CONNECTION,
            http2_streams: HTTP2_STREAMS_PER_CONNECTION,
            http2_prior_knowledge: false,
            connections_opened: None,
        }
    }
}

/// The vendor HTTP clients: one for token requests; for calls, the first transport for every
/// call to a host not known to speak HTTP/2, and further ones, built when first needed, for an
/// HTTP/2 host's calls past the first connection's `http2_streams`.
#[derive(Debug)]
pub struct VendorHttp {
    settings: HttpSettings,
    policy: EgressPolicy,
    tokens: reqwest::Client,
    clients: Box<[OnceLock<Transport>]>,
    /// Hosts (host and port) that answered over HTTP/2: calls in flight per client.
    http2: Mutex<HashMap<String, Arc<[AtomicUsize]>>>,
    any_http2: AtomicBool,
}

/// A call counted against one client's connection to an HTTP/2 host, until dropped.
#[derive(Debug)]
pub struct InFlight {
    counts: Arc<[AtomicUsize]>,
    index: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.counts[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

impl VendorHttp {
    /// Builds the token requests' client and the first transport. An error (the TLS backend
    /// would not start) stops the service: a default client in its place would follow
    /// redirects and resolve any address, bypassing the egress policy.
    pub fn new(settings: HttpSettings, policy: &EgressPolicy) -> Result<Self, BuildError> {
        let streams = settings.http2_streams.max(1);
        let n = settings.max_in_flight.max(1).div_ceil(streams).max(1);
        let clients: Box<[OnceLock<Transport>]> = (0..n).map(|_| OnceLock::new()).collect();
        let _ = clients[0].set(Transport::new(&settings, policy)?);
        Ok(Self {
            tokens: build(&settings, policy)?,
            settings: HttpSettings {
                http2_streams: streams,
                ..settings
            },
            policy: policy.clone(),
            clients,
            http2: Mutex::default(),
            any_http2: AtomicBool::new(false),
        })
    }

    /// The client of token requests.
    pub fn tokens(&self) -> &reqwest::Client {
        &self.tokens
    }

    /// Sends `request`, built on [`Self::tokens`], and reads the answer's status and body, up
    /// to [`MAX_ANSWER_BYTES`](super::MAX_ANSWER_BYTES) as a call's. A token request changes
    /// nothing at the vendor: any transport failure but a too large answer is retryable.
    pub async fn token_answer(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, bytes::Bytes), super::VendorFailure> {
        let resp = request
            .send()
            .await
            .map_err(|e| super::transport_failure(&e, false))?;
        // A host that answers the token request over HTTP/2 has its first calls spread already.
        self.answered(resp.url(), resp.version());
        let answer = super::transport::whole(http::Response::from(resp))
            .await
            .map_err(|how| super::broke(how, false))?;
        Ok((answer.status, answer.body))
    }

    /// The first transport: every call to a host that speaks HTTP/1.1.
    pub fn primary(&self) -> &Transport {
        self.clients[0].get().expect("built in new")
    }

    /// The transport for a call to `url`, and for an HTTP/2 host the call's place on it (hold
    /// it until the answer is read): the first transport with fewer than `http2_streams` calls
    /// in flight to that host, else the least busy.
    pub fn for_call(&self, url: &Url) -> (&Transport, Option<InFlight>) {
        if !self.any_http2.load(Ordering::Relaxed) {
            return (self.primary(), None);
        }
        let counts = match lock(&self.http2).get(origin(url)) {
            Some(counts) => counts.clone(),
            None => return (self.primary(), None),
        };
        let streams = self.settings.http2_streams;
        let (mut index, mut least) = (0, usize::MAX);
        for (i, count) in counts.iter().enumerate() {
            let n = count.load(Ordering::Relaxed);
            if n < streams {
                index = i;
                break;
            }
            if n < least {
                (index, least) = (i, n);
            }
        }
        let client = self.client(index);
        let index = if std::ptr::eq(client, self.primary()) {
            0
        } else {
            index
        };
        counts[index].fetch_add(1, Ordering::Relaxed);
        (client, Some(InFlight { counts, index }))
    }

    /// Notes the protocol a host answered in: from an HTTP/2 answer on, its calls are spread.
    pub fn answered(&self, url: &Url, version: reqwest::Version) {
        if version != reqwest::Version::HTTP_2 || self.clients.len() < 2 {
            return;
        }
        let key = origin(url);
        let mut hosts = lock(&self.http2);
        if !hosts.contains_key(key) {
            let counts: Arc<[AtomicUsize]> = (0..self.clients.len())
                .map(|_| AtomicUsize::new(0))
                .collect();
            hosts.insert(key.to_string(), counts);
            self.any_http2.store(true, Ordering::Relaxed);
            tracing::info!(
                host = key,
                streams_per_connection = self.settings.http2_streams,
                "vendor host speaks HTTP/2: its calls spread over connections"
            );
        }
    }

    /// Transport `index`, built when first needed; the first if building it fails (its calls
    /// then share one connection, as without spreading).
    fn client(&self, index: usize) -> &Transport {
        if let Some(client) = self.clients[index].get() {
            return client;
        }
        match Transport::new(&self.settings, &self.policy) {
            Ok(client) => self.clients[index].get_or_init(|| client),
            Err(e) => {
                tracing::warn!(error = %e, "could not build another vendor HTTP client");
                self.primary()
            }
        }
    }
}

/// The host and port of `url`, as a connection pool tells hosts apart (without any user
/// information a URL could carry, so that it can be logged).
fn origin(url: &Url) -> &str {
    &url[url::Position::BeforeHost..url::Position::AfterPort]
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The token requests' client: bounded timeouts, no redirects (a redirect could lead a
/// credential to a host the egress policy never saw), a resolver that refuses private
/// addresses, and idle connections kept for reuse.
pub(super) fn build(
    settings: &HttpSettings,
    policy: &EgressPolicy,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .dns_resolver(policy.resolver())
        .connect_timeout(super::transport::CONNECT_TIMEOUT)
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .pool_max_idle_per_host(settings.idle_per_host);
    if settings.http2_prior_knowledge {
        builder = builder.http2_prior_knowledge();
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(max_in_flight: usize, streams: usize) -> VendorHttp {
        let settings = HttpSettings {
            max_in_flight,
            http2_streams: streams,
            ..HttpSettings::single(Duration::from_secs(5))
        };
        VendorHttp::new(settings, &EgressPolicy::default()).expect("client")
    }

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    fn index(held: &Option<InFlight>) -> Option<usize> {
        held.as_ref().map(|h| h.index)
    }

    /// A token endpoint answering more than a call may read is refused as a call's answer
    /// would be, rather than read whole into the worker's memory.
    #[tokio::test]
    async fn a_token_answer_is_read_no_further_than_a_calls() {
        let len = super::super::MAX_ANSWER_BYTES + 1;
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
        );
        let port = super::super::transport::tests::answering(head, len).await;
        let settings = HttpSettings::single(Duration::from_secs(10));
        let http = VendorHttp::new(settings, &EgressPolicy::new(vec!["localhost".into()]))
            .expect("client");
        let token = http
            .tokens()
            .post(format!("http://localhost:{port}/services/oauth2/token"))
            .form(&[("grant_type", "client_credentials")]);
        let failure = match http.token_answer(token).await {
            Ok((status, body)) => panic!("read whole: {status}, {} bytes", body.len()),
            Err(failure) => failure,
        };
        assert_eq!(failure.class, super::super::RetryClass::Permanent);
        assert!(
            failure.message.contains("larger than the 16 MiB"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn an_http1_host_uses_the_first_client_uncounted() {
        let http = http(300, 100);
        let (client, held) = http.for_call(&url("https://a.example.com/x"));
        assert!(std::ptr::eq(client, http.primary()));
        assert!(held.is_none());
        http.answered(&url("https://a.example.com/x"), reqwest::Version::HTTP_11);
        assert!(http.for_call(&url("https://a.example.com/y")).1.is_none());
    }

    #[test]
    fn an_http2_host_fills_each_connection_to_its_streams_then_the_least_busy() {
        let http = http(250, 100);
        assert_eq!(http.clients.len(), 3);
        let host = url("https://b.example.com/services/data");
        http.answered(&host, reqwest::Version::HTTP_2);
        let mut held = Vec::new();
        for _ in 0..250 {
            held.push(http.for_call(&host).1);
        }
        let on =
            |held: &Vec<Option<InFlight>>, i| held.iter().filter(|h| index(h) == Some(i)).count();
        assert_eq!((on(&held, 0), on(&held, 1), on(&held, 2)), (100, 100, 50));
        // A finished call frees its place: the first connection with room takes the next.
        let first = held
            .iter()
            .position(|h| index(h) == Some(0))
            .expect("a call on the first");
        held.remove(first);
        held.push(http.for_call(&host).1);
        assert_eq!((on(&held, 0), on(&held, 1), on(&held, 2)), (100, 100, 50));
        // Past every connection's streams, the least busy takes each next call.
        for _ in 0..53 {
            held.push(http.for_call(&host).1);
        }
        assert_eq!((on(&held, 0), on(&held, 1), on(&held, 2)), (101, 101, 101));
        // Every client the calls went to was built, each its own pool.
        assert!(http.clients.iter().all(|c| c.get().is_some()));
        // Another host, on HTTP/1.1, is not counted; nor the same host on another port.
        assert!(http.for_call(&url("https://c.example.com/")).1.is_none());
        assert!(
            http.for_call(&url("https://b.example.com:8443/"))
                .1
                .is_none()
        );
        drop(held);
        let counts = lock(&http.http2)
            .get("b.example.com")
            .cloned()
            .expect("known");
        assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn a_worker_within_one_connection_never_spreads() {
        let http = http(64, 100);
        let host = url("https://d.example.com/");
        http.answered(&host, reqwest::Version::HTTP_2);
        assert!(http.for_call(&host).1.is_none());
    }
}
