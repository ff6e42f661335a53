//! Counting the connections vendor calls open. Over HTTP/1.1 a pool opens one per call in
//! flight beyond the idle connections it keeps, and closes the surplus when a wave of answers
//! comes back: with many calls in flight and bursts of them, that churn costs the worker (and,
//! over TLS, a handshake per connection) what the idle pool's size would have saved
//! (`AIC_WORKER_VENDOR_IDLE_CONNECTIONS`; the thirty-seventh session in BENCHMARKS.md measured
//! 0.23-0.25 connections per execution at the default). The count lets an operator see it.

use http::Uri;
use prometheus::IntCounter;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower_service::Service;

/// A connector that counts each connection its inner connector opens (connected, before any
/// TLS handshake), in `opened` when there is one.
#[derive(Clone, Debug)]
pub struct Counted<C> {
    inner: C,
    opened: Option<IntCounter>,
}

impl<C> Counted<C> {
    /// `inner`, its connections counted in `opened`.
    pub fn new(inner: C, opened: Option<IntCounter>) -> Self {
        Self { inner, opened }
    }
}

/// What [`Counted`] answers: the inner connector's connection, once counted. Boxed: a
/// connection is opened far less often than a call is made.
type Connecting<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<C> Service<Uri> for Counted<C>
where
    C: Service<Uri>,
    C::Future: Send + 'static,
    C::Response: Send + 'static,
    C::Error: Send + 'static,
{
    type Response = C::Response;
    type Error = C::Error;
    type Future = Connecting<C::Response, C::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let opened = self.opened.clone();
        Box::pin(async move {
            let connection = connecting.await?;
            if let Some(opened) = opened {
                opened.inc();
            }
            Ok(connection)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::HttpSettings;
    use super::super::transport::Transport;
    use crate::egress::EgressPolicy;
    use prometheus::IntCounter;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server answering `200 ok` to every request on a connection, keeping it open; its
    /// address.
    async fn keep_alive_server() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while let Ok(n) = socket.read(&mut buffer).await {
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buffer[..n]);
                        // Requests without a body: each ends with its blank line.
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if socket.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        address
    }

    /// A transport keeping `idle` connections per host, and the count of those it opens.
    fn counting(idle: usize) -> (Transport, IntCounter) {
        let opened = IntCounter::new("opened", "connections opened").expect("counter");
        let settings = HttpSettings {
            idle_per_host: idle,
            connections_opened: Some(opened.clone()),
            ..HttpSettings::single(Duration::from_secs(5))
        };
        let transport = Transport::direct(&settings, &EgressPolicy::default()).expect("built");
        (transport, opened)
    }

    /// `calls` calls one after the other through a transport keeping `idle` connections per
    /// host: the connections it opened.
    async fn opened_by(calls: usize, idle: usize) -> u64 {
        let address = keep_alive_server().await;
        let (transport, opened) = counting(idle);
        for _ in 0..calls {
            let request = http::Request::get(format!("http://{address}/x"))
                .body(Default::default())
                .expect("request");
            let answer = transport.send(request).await.expect("answered");
            assert_eq!(&answer.body[..], b"ok");
        }
        opened.get()
    }

    #[tokio::test]
    async fn a_kept_connection_is_opened_once_for_every_call() {
        assert_eq!(opened_by(5, 8).await, 1);
    }

    #[tokio::test]
    async fn without_idle_connections_every_call_opens_one() {
        assert_eq!(opened_by(5, 0).await, 5);
    }

    #[tokio::test]
    async fn a_connection_refused_is_not_counted() {
        // A port nothing listens on: bound, then closed.
        let address = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("address");
        let (transport, opened) = counting(8);
        let request = http::Request::get(format!("http://{address}/x"))
            .body(Default::default())
            .expect("request");
        assert_eq!(
            transport.send(request).await.err(),
            Some(super::super::Broke::Connect)
        );
        assert_eq!(opened.get(), 0);
    }
}
