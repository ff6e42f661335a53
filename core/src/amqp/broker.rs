//! [`Broker`]: the one connection a process publishes on, healing itself.

use super::{PublishError, confirm_channel, connect, declare_topology, publish_confirmed};
use aic_proto::topology::Names;
use lapin::{BasicProperties, Channel, Connection};
use secrecy::SecretString;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// A broker connection that heals itself: callers ask for the confirm channel, and a dead
/// connection is replaced (topology re-declared) on the next ask.
///
/// One reconnect at a time, in a task of its own that every caller needing it waits for: a
/// caller that stops waiting (its own bound, its request gone) neither cancels a handshake
/// midway — lapin leaves a cancelled one's I/O running — nor starts another; and nothing
/// waits behind a reconnect that does not end (a broker that accepts connections and never
/// answers, and lapin sets no handshake timeout) but those who ask for the channel: the
/// connection's state, readiness and alarms are read without waiting.
#[derive(Debug)]
pub struct Broker {
    inner: Arc<Inner>,
}

/// The outcome of a reconnect, once known.
type Outcome = Option<Result<(), lapin::Error>>;

#[derive(Debug)]
struct Inner {
    url: SecretString,
    name: String,
    names: Names,
    /// The connection and its confirm channel; never held across an await.
    current: Mutex<Option<(Arc<Connection>, Channel)>>,
    /// The reconnect under way or last made: its outcome, for every caller waiting for it.
    attempt: Mutex<Option<watch::Receiver<Outcome>>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Broker {
    /// Connects once now (so start-up fails loudly on a bad URL), healing later.
    pub async fn connect(
        url: &SecretString,
        name: &str,
        names: &Names,
    ) -> Result<Self, lapin::Error> {
        let b = Self {
            inner: Arc::new(Inner {
                url: url.clone(),
                name: name.into(),
                names: names.clone(),
                current: Mutex::new(None),
                attempt: Mutex::new(None),
            }),
        };
        b.channel().await?;
        Ok(b)
    }

    /// The live confirm channel, reconnecting first when the old one died.
    pub async fn channel(&self) -> Result<Channel, lapin::Error> {
        if let Some(ch) = self.inner.live() {
            return Ok(ch);
        }
        let mut attempt = self.inner.reconnecting();
        let outcome = match attempt.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone(),
            // The reconnect's task ended without a word (it panicked).
            Err(_) => None,
        };
        match outcome {
            Some(Err(e)) => Err(e),
            _ => self.inner.live().ok_or_else(closed),
        }
    }

    /// A new channel on the live connection (for consuming).
    pub async fn new_channel(&self) -> Result<Channel, lapin::Error> {
        self.channel().await?;
        let conn = locked(&self.inner.current).as_ref().map(|(c, _)| c.clone());
        match conn {
            Some(conn) => conn.create_channel().await,
            None => Err(closed()),
        }
    }

    /// True while the connection is open (readiness). Never waits.
    pub fn is_up(&self) -> bool {
        self.inner.live().is_some()
    }

    /// Publishes to `(exchange, routing_key)` on the live confirm channel ([`publish_confirmed`])
    /// and waits at most `wait` for the broker's ack. A connection that cannot be had within
    /// `wait` — a reconnect under way that does not end — is [`PublishError::Unreachable`],
    /// nothing written. Nothing is written while the broker blocks the connection's publishing
    /// (`connection.blocked`: a memory or disk alarm, until it clears): [`PublishError::Blocked`].
    /// A confirm that does not come in time — the broker stopped reading after this was
    /// written — is [`PublishError::Unanswered`]: the message may still go out, from the
    /// connection's buffer, once the alarm clears.
    pub async fn publish_within(
        &self,
        (exchange, routing_key): (&str, &str),
        body: &[u8],
        properties: BasicProperties,
        mandatory: bool,
        wait: std::time::Duration,
    ) -> Result<(), PublishError> {
        let channel = tokio::time::timeout(wait, self.channel())
            .await
            .map_err(|_| PublishError::Unreachable(wait))??;
        if self.blocked() {
            return Err(PublishError::Blocked);
        }
        let to = (exchange, routing_key);
        let confirmed = async {
            if mandatory {
                self.routed(&channel, to, body, properties).await
            } else {
                publish_confirmed(&channel, exchange, routing_key, body, properties, false).await
            }
        };
        tokio::time::timeout(wait, confirmed)
            .await
            .unwrap_or(Err(PublishError::Unanswered(wait)))
    }

    /// Publishes with `mandatory` to `(exchange, routing_key)` on the live confirm channel and
    /// waits for the broker's ack, however long. A message the broker had no queue for — one
    /// deleted under the running services by an operator, a policy or a broker that lost its
    /// definitions while this connection stayed up — is not lost: the topology is declared
    /// again and the message published once more.
    pub async fn publish_routed(
        &self,
        to: (&str, &str),
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        let channel = self.channel().await?;
        self.routed(&channel, to, body, properties).await
    }

    async fn routed(
        &self,
        channel: &Channel,
        (exchange, routing_key): (&str, &str),
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        let first = publish_confirmed(
            channel,
            exchange,
            routing_key,
            body,
            properties.clone(),
            true,
        );
        match first.await {
            Err(PublishError::Unroutable) => {
                tracing::warn!(
                    exchange,
                    routing_key,
                    "RabbitMQ has no queue for this message (deleted under the running services?); declaring the topology again"
                );
                self.declare_again().await?;
                publish_confirmed(channel, exchange, routing_key, body, properties, true).await
            }
            other => other,
        }
    }

    /// Declares the contract's exchanges, queues and bindings again, on a channel of their
    /// own (a declare the broker refuses closes its channel, which must not be the one
    /// publishes are confirmed on): what a consumer or a publisher that found its queue gone
    /// needs before trying again.
    pub async fn declare_again(&self) -> Result<(), lapin::Error> {
        let ch = self.new_channel().await?;
        let declared = declare_topology(&ch, &self.inner.names).await;
        if ch.status().connected() {
            let _ = ch.close(200, "declared".into()).await;
        }
        declared
    }

    /// Whether the broker blocks the connection's publishing (a memory or disk alarm raised
    /// since the connection last published: RabbitMQ says so only to a publisher). Never
    /// waits.
    pub fn blocked(&self) -> bool {
        locked(&self.inner.current)
            .as_ref()
            .is_some_and(|(c, _)| c.status().connected() && c.status().blocked())
    }

    /// Closes the connection: at most 2 s for the broker's answer, and none asked while the
    /// broker blocks the connection (a resource alarm: it reads nothing until the alarm
    /// clears) — the connection is dropped then, which the broker sees as its end.
    pub async fn close(&self) {
        let blocked = self.blocked();
        let taken = locked(&self.inner.current).take();
        if let Some((conn, _)) = taken
            && !blocked
        {
            let closed = conn.close(200, "shutdown".into());
            let _ = tokio::time::timeout(super::BROKER_ANSWER_WAIT, closed).await;
        }
    }
}

impl Inner {
    /// The confirm channel while it and its connection are open.
    fn live(&self) -> Option<Channel> {
        locked(&self.current)
            .as_ref()
            .filter(|(c, ch)| c.status().connected() && ch.status().connected())
            .map(|(_, ch)| ch.clone())
    }

    /// The reconnect under way, or a new one started in a task of its own.
    fn reconnecting(self: &Arc<Self>) -> watch::Receiver<Outcome> {
        let mut attempt = locked(&self.attempt);
        // Under way: no outcome yet, and its task still there to give one.
        let under_way =
            |a: &&watch::Receiver<Outcome>| a.borrow().is_none() && a.has_changed().is_ok();
        if let Some(under_way) = attempt.as_ref().filter(under_way) {
            return under_way.clone();
        }
        let (tx, rx) = watch::channel(None);
        *attempt = Some(rx.clone());
        let inner = Arc::clone(self);
        tokio::spawn(async move {
            let outcome = inner.reconnect().await;
            let _ = tx.send(Some(outcome));
        });
        rx
    }

    async fn reconnect(&self) -> Result<(), lapin::Error> {
        if self.live().is_some() {
            return Ok(());
        }
        let conn = connect(&self.url, &self.name).await?;
        let ch = confirm_channel(&conn).await?;
        declare_topology(&ch, &self.names).await?;
        *locked(&self.current) = Some((Arc::new(conn), ch));
        tracing::info!(connection = %self.name, "connected to RabbitMQ");
        Ok(())
    }
}

/// What a caller gets when there is no connection to give.
fn closed() -> lapin::Error {
    lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed).into()
}
