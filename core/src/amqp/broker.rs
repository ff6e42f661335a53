//! [`Broker`]: the one connection a process publishes on, healing itself.

use super::{PublishError, confirm_channel, connect, declare_topology, publish_confirmed};
use aic_proto::topology::Names;
use lapin::{BasicProperties, Channel, Connection};
use secrecy::SecretString;

/// A broker connection that heals itself: callers ask for the confirm channel, and a dead
/// connection is replaced (topology re-declared) on the next ask. One reconnect at a time.
#[derive(Debug)]
pub struct Broker {
    url: SecretString,
    name: String,
    names: Names,
    current: tokio::sync::Mutex<Option<(Connection, Channel)>>,
    /// The current connection's status, readable without waiting for a reconnect.
    status: std::sync::Mutex<lapin::ConnectionStatus>,
}

impl Broker {
    /// Connects once now (so start-up fails loudly on a bad URL), healing later.
    pub async fn connect(
        url: &SecretString,
        name: &str,
        names: &Names,
    ) -> Result<Self, lapin::Error> {
        let b = Self {
            url: url.clone(),
            name: name.into(),
            names: names.clone(),
            current: tokio::sync::Mutex::new(None),
            status: std::sync::Mutex::default(),
        };
        b.channel().await?;
        Ok(b)
    }

    /// The live confirm channel, reconnecting first when the old one died.
    pub async fn channel(&self) -> Result<Channel, lapin::Error> {
        let mut current = self.current.lock().await;
        if let Some((conn, ch)) = current.as_ref() {
            if conn.status().connected() && ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        let conn = connect(&self.url, &self.name).await?;
        let ch = confirm_channel(&conn).await?;
        declare_topology(&ch, &self.names).await?;
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = conn.status().clone();
        *current = Some((conn, ch.clone()));
        tracing::info!(connection = %self.name, "connected to RabbitMQ");
        Ok(ch)
    }

    /// A new channel on the live connection (for consuming).
    pub async fn new_channel(&self) -> Result<Channel, lapin::Error> {
        self.channel().await?;
        let current = self.current.lock().await;
        match current.as_ref() {
            Some((conn, _)) => conn.create_channel().await,
            None => {
                Err(lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed).into())
            }
        }
    }

    /// True while the last known connection is open (readiness).
    pub async fn is_up(&self) -> bool {
        let current = self.current.lock().await;
        current
            .as_ref()
            .is_some_and(|(c, ch)| c.status().connected() && ch.status().connected())
    }

    /// Publishes to `(exchange, routing_key)` on the live confirm channel ([`publish_confirmed`])
    /// and waits at most `wait` for the broker's ack. Nothing is written while the broker blocks
    /// the connection's publishing (`connection.blocked`: a memory or disk alarm, until it
    /// clears): [`PublishError::Blocked`]. A confirm that does not come in time — the broker
    /// stopped reading after this was written — is [`PublishError::Unanswered`]: the message
    /// may still go out, from the connection's buffer, once the alarm clears.
    pub async fn publish_within(
        &self,
        (exchange, routing_key): (&str, &str),
        body: &[u8],
        properties: BasicProperties,
        mandatory: bool,
        wait: std::time::Duration,
    ) -> Result<(), PublishError> {
        let channel = self.channel().await?;
        if self.blocked() {
            return Err(PublishError::Blocked);
        }
        let confirmed =
            publish_confirmed(&channel, exchange, routing_key, body, properties, mandatory);
        tokio::time::timeout(wait, confirmed)
            .await
            .unwrap_or(Err(PublishError::Unanswered(wait)))
    }

    /// Whether the broker blocks the connection's publishing (a memory or disk alarm raised
    /// since the connection last published: RabbitMQ says so only to a publisher).
    /// Never waits: a reconnect in progress holds the connection, not its status.
    pub fn blocked(&self) -> bool {
        let status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.connected() && status.blocked()
    }

    /// Closes the connection: at most 2 s for the broker's answer, and none asked while the
    /// broker blocks the connection (a resource alarm: it reads nothing until the alarm
    /// clears) — the connection is dropped then, which the broker sees as its end.
    pub async fn close(&self) {
        let blocked = self.blocked();
        if let Some((conn, _)) = self.current.lock().await.take()
            && !blocked
        {
            let closed = conn.close(200, "shutdown".into());
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), closed).await;
        }
    }
}
