//! The broker, spelled out: connection, the whole topology with a reason beside every flag,
//! and publishing that waits for the broker's confirm.

use aic_proto::topology::Names;
use lapin::Confirmation;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use secrecy::{ExposeSecret, SecretString};

mod broker;
mod tls;

pub use broker::Broker;

/// How many times a quorum queue hands out the same message before dead-lettering it: enough
/// for a crash or two mid-flight, bounded so a message that kills workers cannot loop forever.
pub const DELIVERY_LIMIT: i64 = 5;

/// A publish that the broker did not take.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The channel or connection failed.
    #[error("AMQP error: {0}")]
    Amqp(#[from] lapin::Error),
    /// The broker refused to store it.
    #[error("the broker refused the message (nack)")]
    Nacked,
    /// The channel is not in confirm mode, so nothing was guaranteed.
    #[error("the channel is not in confirm mode")]
    NotConfirmed,
    /// `mandatory` publish with no queue bound to take it.
    #[error("no queue is bound to route the message to")]
    Unroutable,
    /// The task publishing on the caller's behalf ended before it answered: the message may or
    /// may not have gone out.
    #[error("the publishing task ended before the broker confirmed the message")]
    Abandoned,
    /// The broker blocks the connection's publishing (a memory or disk alarm), so nothing was
    /// written: it would only wait in the connection's buffer until the alarm clears.
    #[error("the broker is blocking publishers (a memory or disk alarm)")]
    Blocked,
    /// No connection could be had within the wait (a reconnect under way that does not end:
    /// the broker accepts connections and does not answer them): nothing was written.
    #[error("the broker could not be reached within {0:?}")]
    Unreachable(std::time::Duration),
    /// No confirm came within the wait: the message may still go out (and be confirmed) later.
    #[error("the broker did not confirm the message within {0:?}")]
    Unanswered(std::time::Duration),
}

/// The largest AMQP frame asked of the broker unless the URL says otherwise
/// (`?frame_max=`). lapin keeps a send and a receive buffer of 32 frames per connection, zeroed
/// up front: at RabbitMQ's default of 128 KiB that is 8 MiB resident per connection, at 32 KiB
/// 2 MiB. Our messages are a few KiB; a larger one is split into frames.
pub const FRAME_MAX: u32 = 32 * 1024;

/// Longest wait, at shutdown, for the broker's answer to a consumer's cancel or a connection's
/// close: past it the process goes on stopping, and the broker sees the connection end.
pub const BROKER_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The heartbeat asked of the broker, in seconds, unless the URL says otherwise
/// (`?heartbeat=`): a connection that hears nothing for twice as long is closed. At
/// RabbitMQ's default of 60 s a broker that stopped answering without closing anything (a
/// stalled host, a cut link) went unnoticed for two minutes, every publish on the connection
/// waiting on it.
pub const HEARTBEAT_SECS: u16 = 15;

/// How long a connection's handshake may take: as long as an open connection may stay silent
/// (twice its heartbeat), or twice [`HEARTBEAT_SECS`] when the URL turns heartbeats off.
fn handshake_wait(uri: &lapin::uri::AMQPUri) -> std::time::Duration {
    let heartbeat = match uri.query.heartbeat {
        Some(0) | None => HEARTBEAT_SECS,
        Some(secs) => secs,
    };
    std::time::Duration::from_secs(2 * u64::from(heartbeat))
}

/// The URL's URI, with [`FRAME_MAX`] and [`HEARTBEAT_SECS`] where it sets neither.
fn parsed(raw: &str) -> Result<lapin::uri::AMQPUri, std::io::Error> {
    let mut uri: lapin::uri::AMQPUri = raw.parse().map_err(|e: String| {
        // Some of the parser's messages quote the whole URL, password included.
        let why = if e.contains(raw) {
            "not of the form amqp[s]://user:password@host:port/vhost".to_string()
        } else {
            e
        };
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("invalid AMQP URL: {why}"),
        )
    })?;
    uri.query.frame_max.get_or_insert(FRAME_MAX);
    uri.query.heartbeat.get_or_insert(HEARTBEAT_SECS);
    Ok(uri)
}

/// Connects with a connection name that shows in the management UI; over TLS for `amqps://`,
/// with the CA and client certificate files the URL names ([`tls`]).
///
/// The handshake is given up after [`handshake_wait`]: lapin sets no bound of its own, and a
/// broker address that accepts connections and never answers — a stalled node, a proxy holding
/// the connection — would hold the caller, and every reconnect waiting on it, for good, even
/// once a broker answers there again. (lapin's I/O thread for the abandoned attempt lives on
/// until that socket ends.)
pub async fn connect(
    url: &SecretString,
    connection_name: &str,
) -> Result<Connection, lapin::Error> {
    let raw = url.expose_secret();
    let uri = parsed(raw)?;
    let wait = handshake_wait(&uri);
    let props = ConnectionProperties::default().with_connection_name(connection_name.into());
    let builder = lapin::DefaultConnectionBuilder::new()?
        .with_uri(uri)
        .with_properties(props)
        .with_tls_config(tls::config(raw)?);
    let connection = tokio::time::timeout(wait, builder.connect())
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "RabbitMQ accepted the connection but did not complete the AMQP handshake within {} s",
                    wait.as_secs()
                ),
            )
        })??;
    let events = connection.events_listener();
    tokio::spawn(report_blocking(events, connection_name.to_string()));
    Ok(connection)
}

/// Logs the broker blocking a connection's publishing (a memory or disk alarm: until it clears,
/// every publish on the connection waits) and unblocking it; ends with the connection.
async fn report_blocking(
    events: impl futures_util::Stream<Item = lapin::Event>,
    connection: String,
) {
    use futures_util::StreamExt;
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        match event {
            lapin::Event::ConnectionBlocked(reason) => tracing::warn!(
                connection,
                reason,
                "RabbitMQ blocks this connection's publishing (a resource alarm): its publishes wait until the alarm clears"
            ),
            lapin::Event::ConnectionUnblocked => {
                tracing::info!(
                    connection,
                    "RabbitMQ unblocked this connection's publishing"
                )
            }
            _ => {}
        }
    }
}

/// A server-named, exclusive queue that lives and dies with `ch`'s connection, consumed
/// without acks (replies and listeners: a lost message is the reader's own loss). Returns its
/// name, for `reply_to` or a binding, and the consumer.
pub async fn private_queue(ch: &Channel) -> Result<(String, lapin::Consumer), lapin::Error> {
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let name = q.name().to_string();
    let consumer = ch
        .basic_consume(
            name.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok((name, consumer))
}

/// A channel in confirm mode: every publish on it is acknowledged by the broker.
pub async fn confirm_channel(conn: &Connection) -> Result<Channel, lapin::Error> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(ch)
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert(ShortString::from(*k), v.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// The arguments of a plain durable quorum queue: the dead-letter queue's, and a benchmark's
/// or test's own queue that must behave like the contract's.
pub fn quorum_queue_arguments() -> FieldTable {
    table(&[("x-queue-type", text("quorum"))])
}

/// The executions queue's arguments: a quorum queue whose requests redelivered too often go to
/// the dead-letter exchange.
pub fn executions_queue_arguments(names: &Names) -> FieldTable {
    table(&[
        ("x-queue-type", text("quorum")),
        // A message redelivered this often (a worker crashing on it) goes to the DLQ.
        ("x-delivery-limit", AMQPValue::LongLongInt(DELIVERY_LIMIT)),
        ("x-dead-letter-exchange", text(&names.dead_letter_exchange)),
        ("x-dead-letter-routing-key", text("executions")),
    ])
}

/// Declares every exchange, queue and binding of the contract. Idempotent: both services run
/// it at start-up, so whichever starts first leaves the broker ready for the other.
pub async fn declare_topology(ch: &Channel, names: &Names) -> Result<(), lapin::Error> {
    // Durable everywhere: the topology must outlive a broker restart.
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let exchanges = [
        // Topic, so later sharding by app (`execute.salesforce`) needs no client change.
        (&names.executions_exchange, ExchangeKind::Topic),
        // Topic: result consumers bind `<tenant_id>.#` or `#.failed`.
        (&names.results_exchange, ExchangeKind::Topic),
        (&names.definitions_exchange, ExchangeKind::Topic),
        // Direct: dead letters carry one fixed routing key.
        (&names.dead_letter_exchange, ExchangeKind::Direct),
    ];
    for (name, kind) in exchanges {
        ch.exchange_declare(
            name.as_str().into(),
            kind,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;
    }
    // Quorum queues replicate across a cluster and count deliveries, which bounds redelivery.
    bound_queue(
        ch,
        &names.dead_letter_queue,
        quorum_queue_arguments(),
        (&names.dead_letter_exchange, "executions"),
    )
    .await?;
    bound_queue(
        ch,
        &names.executions_queue,
        executions_queue_arguments(names),
        (&names.executions_exchange, "execute.#"),
    )
    .await?;
    // Long retry waits leave the worker: a request parked here expires after the tier's TTL and
    // is dead-lettered back to the executions exchange.
    for (secs, queue) in &names.delay_queues {
        ch.queue_declare(
            queue.as_str().into(),
            durable_queue(),
            delay_queue_arguments(names, *secs),
        )
        .await?;
    }
    Ok(())
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// Declares the durable `queue` with `arguments` and binds it to `exchange` with `key`.
async fn bound_queue(
    ch: &Channel,
    queue: &str,
    arguments: FieldTable,
    (exchange, key): (&str, &str),
) -> Result<(), lapin::Error> {
    ch.queue_declare(queue.into(), durable_queue(), arguments)
        .await?;
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    Ok(())
}

/// A delay tier's arguments: its requests expire after `secs` and go back to the executions
/// exchange — at least once, so a broker failure at expiry cannot drop one (which needs
/// reject-publish overflow).
fn delay_queue_arguments(names: &Names, secs: u64) -> FieldTable {
    table(&[
        ("x-queue-type", text("quorum")),
        (
            "x-message-ttl",
            AMQPValue::LongLongInt((secs * 1000) as i64),
        ),
        ("x-dead-letter-exchange", text(&names.executions_exchange)),
        (
            "x-dead-letter-routing-key",
            text(aic_proto::topology::EXECUTE_ROUTING_KEY),
        ),
        ("x-dead-letter-strategy", text("at-least-once")),
        ("x-overflow", text("reject-publish")),
    ])
}

/// Persistent JSON message properties with the contract's `type`.
pub fn json_properties(message_type: &str) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_type(message_type.into())
}

/// Publishes on a confirm channel and waits for the broker's ack. With `mandatory`, a message
/// no queue would take is an error instead of silently dropped.
pub async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
    mandatory: bool,
) -> Result<(), PublishError> {
    let (exchange, routing_key) = (exchange.into(), routing_key.into());
    publish_confirmed_to(ch, exchange, routing_key, body, properties, mandatory).await
}

/// [`publish_confirmed`], for names already in the protocol's type.
pub async fn publish_confirmed_to(
    ch: &Channel,
    exchange: ShortString,
    routing_key: ShortString,
    body: &[u8],
    properties: BasicProperties,
    mandatory: bool,
) -> Result<(), PublishError> {
    let confirm = ch
        .basic_publish(
            exchange,
            routing_key,
            BasicPublishOptions {
                mandatory,
                ..BasicPublishOptions::default()
            },
            body,
            properties,
        )
        .await?
        .await?;
    match confirm {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::NotRequested => Err(PublishError::NotConfirmed),
        Confirmation::Ack(Some(_)) => Err(PublishError::Unroutable),
        Confirmation::Nack(_) => Err(PublishError::Nacked),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_gets_small_frames_and_frequent_heartbeats_unless_it_says_otherwise() {
        let uri = super::parsed("amqp://guest:guest@127.0.0.1:5672/%2f").expect("parses");
        let query = (uri.query.frame_max, uri.query.heartbeat);
        assert_eq!(query, (Some(super::FRAME_MAX), Some(super::HEARTBEAT_SECS)));
        let uri = super::parsed("amqp://h/%2f?heartbeat=60&frame_max=131072").expect("parses");
        assert_eq!(
            (uri.query.frame_max, uri.query.heartbeat),
            (Some(131072), Some(60))
        );
        assert_eq!(super::handshake_wait(&uri).as_secs(), 120);
        let off = super::parsed("amqp://h/%2f?heartbeat=0").expect("parses");
        let default = super::parsed("amqp://h/%2f").expect("parses");
        let waits = [&off, &default].map(|u| super::handshake_wait(u).as_secs());
        assert_eq!(waits, [30, 30], "twice the default heartbeat");
    }
}
