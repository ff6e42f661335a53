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
pub(super) async fn whole<B>(response: http::Response<B>) -> Result<Answer, Broke>
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
pub(super) mod tests;
