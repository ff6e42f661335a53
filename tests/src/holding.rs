//! A TCP proxy in front of a service, whose new connections a test can have held — accepted
//! and never answered, as a proxy with no node behind it or a node stalled for good holds them
//! — and whose forwarded connections it can cut. Everything it holds or forwards ends when it
//! is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The proxy, listening on [`HoldingProxy::addr`].
#[derive(Debug)]
pub struct HoldingProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct State {
    holding: AtomicBool,
    held: AtomicUsize,
    cut: watch::Sender<u64>,
}

impl HoldingProxy {
    /// Listens on a free local port, forwarding each connection to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("its address");
        let state = Arc::new(State {
            holding: AtomicBool::new(false),
            held: AtomicUsize::new(0),
            cut: watch::channel(0).0,
        });
        let task = tokio::spawn(serve(listener, target, Arc::clone(&state)));
        Self { addr, state, task }
    }

    /// From now on, new connections are held (`true`) or forwarded (`false`); held ones stay
    /// held.
    pub fn hold_new(&self, hold: bool) {
        self.state.holding.store(hold, Ordering::SeqCst);
    }

    /// Ends every connection forwarded so far (both sides closed at once).
    pub fn cut(&self) {
        self.state.cut.send_modify(|n| *n += 1);
    }

    /// How many connections it has held.
    pub fn held(&self) -> usize {
        self.state.held.load(Ordering::SeqCst)
    }
}

impl Drop for HoldingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, target: SocketAddr, state: Arc<State>) {
    // Owns every connection: aborted with the proxy.
    let mut connections = JoinSet::new();
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        if state.holding.load(Ordering::SeqCst) {
            state.held.fetch_add(1, Ordering::SeqCst);
            connections.spawn(async move {
                let _kept = inbound;
                std::future::pending::<()>().await
            });
            continue;
        }
        let mut cut = state.cut.subscribe();
        connections.spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(target).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = cut.changed() => {}
            }
        });
    }
}
