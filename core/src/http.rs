//! Serving an HTTP/1.1 router with the bounds a listener open to callers needs, which
//! `axum::serve` does not set: hyper times out a request's head only given a timer, so without
//! one a connection that sends half a head, or nothing after its last request, is kept for
//! good — and with it a task and a file descriptor; a body sent a byte at a time holds its
//! handler as long as it trickles; a stop waits for as long as any request is being read; and
//! nothing bounds how many connections are open at once, each a file descriptor the process
//! also needs for its database and broker connections.

use axum::Router;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Sleep;
use tower_service::Service;

/// The time a connection has to send a request's head, and a request its body, unless set
/// otherwise (the control plane's `AIC_HTTP_READ_TIMEOUT_SECS`).
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The most connections the control plane's API keeps open at once, unless set otherwise
/// (`AIC_HTTP_MAX_CONNECTIONS`).
pub const MAX_CONNECTIONS: usize = 10_000;

/// How long a connection may keep the server waiting, and how many it keeps.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// To send a request's head: the first one from when it is accepted, each later one from
    /// the end of the answer before (an idle kept-alive connection is closed past it).
    pub head: Duration,
    /// To send a request's whole body, from the end of its head.
    pub body: Duration,
    /// For the requests in flight when the stop comes to be answered; past it the connections
    /// still open are closed.
    pub drain: Duration,
    /// Connections open at once. At the limit no more is accepted until one closes: a new one
    /// waits in the listen backlog (its requests unanswered, not refused) rather than take a
    /// file descriptor the process may need for its database and broker.
    pub connections: usize,
}

/// Serves `router` on `listener` until `stop` resolves, then answers the requests in flight
/// (closing idle connections at once) within `bounds.drain`, and closes what is left. `open`,
/// when given, follows how many connections are open.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    bounds: Bounds,
    open: Option<prometheus::IntGauge>,
    stop: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(bounds.head);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut stop = std::pin::pin!(stop);
    let mut full = false;
    loop {
        if let Some(open) = &open {
            open.set(connections.len() as i64);
        }
        let room = connections.len() < bounds.connections;
        if room == full {
            full = !room;
            at_limit(full, bounds.connections);
        }
        tokio::select! {
            () = &mut stop => break,
            Some(_) = connections.join_next() => {}
            accepted = listener.accept(), if room => match accepted {
                Ok((stream, _)) => {
                    // Answers are small and written whole: sent at once, not held for an ack.
                    let _ = stream.set_nodelay(true);
                    let router = router.clone();
                    let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                        router.clone().call(req.map(|b| within(b, bounds.body)))
                    });
                    let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                    connections.spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "HTTP connection ended");
                        }
                    });
                }
                // Out of file descriptors, say: the listener is still good; wait a little
                // rather than spin on it.
                Err(e) => {
                    tracing::warn!(error = %e, "could not accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    if tokio::time::timeout(bounds.drain, graceful.shutdown())
        .await
        .is_err()
    {
        while connections.try_join_next().is_some() {}
        tracing::warn!(
            connections = connections.len(),
            drain_secs = bounds.drain.as_secs_f64(),
            "requests still unanswered when the stop's grace ran out; closing their connections"
        );
    }
    connections.shutdown().await;
}

/// Says that the server stopped accepting at its connection limit, or accepts again.
fn at_limit(full: bool, limit: usize) {
    if full {
        tracing::warn!(
            limit,
            "at the limit of connections open at once: new ones wait until one closes"
        );
    } else {
        tracing::info!(limit, "below the limit of connections again: accepting");
    }
}

/// The error a body that did not arrive in time ends with: the handler reading it finds it
/// among its error's sources.
#[derive(Debug, thiserror::Error)]
#[error("the request's body did not arrive within {} s", .0.as_secs_f64())]
pub struct BodyTimedOut(pub Duration);

/// `body`, failing with [`BodyTimedOut`] unless it ends within `bound`.
fn within(body: Incoming, bound: Duration) -> axum::body::Body {
    if body.is_end_stream() {
        return axum::body::Body::new(body);
    }
    let deadline = Box::pin(tokio::time::sleep(bound));
    axum::body::Body::new(Within {
        body,
        deadline,
        bound,
    })
}

struct Within {
    body: Incoming,
    deadline: Pin<Box<Sleep>>,
    bound: Duration,
}

impl Body for Within {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimedOut(self.bound).into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
