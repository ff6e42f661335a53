//! The test client's side of the broker: listening on an exchange, publishing as an outside
//! client would.

use super::TestEnv;
use futures_util::StreamExt;
use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, QueueBindOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use serde_json::Value;
use std::time::{Duration, Instant};

impl TestEnv {
    /// An exclusive queue bound to `exchange` with `key`, consumed into a stream.
    pub async fn listen(&self, exchange: &str, key: &str) -> Listener {
        let ch = self.amqp.create_channel().await.expect("channel");
        let (name, consumer) = aic_core::amqp::private_queue(&ch).await.expect("queue");
        if !exchange.is_empty() {
            ch.queue_bind(
                name.as_str().into(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        }
        Listener {
            _channel: ch,
            queue: name,
            consumer,
        }
    }

    /// The next message in the dead-letter queue (taken off it), waiting up to 15 s for one.
    pub async fn next_dead_letter(&self) -> BasicGetMessage {
        let ch = self.amqp.create_channel().await.expect("channel");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(m) = ch
                .basic_get(
                    self.names.dead_letter_queue.as_str().into(),
                    BasicGetOptions::default(),
                )
                .await
                .expect("get")
            {
                m.delivery
                    .acker
                    .ack(BasicAckOptions::default())
                    .await
                    .expect("ack");
                return m;
            }
            assert!(Instant::now() < deadline, "nothing dead-lettered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Publishes raw bytes to the executions exchange, as an outside client would.
    pub async fn publish_raw(&self, body: &[u8], props: BasicProperties) {
        let ch = aic_core::amqp::confirm_channel(&self.amqp)
            .await
            .expect("channel");
        ch.basic_publish(
            self.names.executions_exchange.as_str().into(),
            "execute".into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    }
}

/// A text header of a dead-lettered message (its reason, its detail).
pub fn dead_letter_header(m: &BasicGetMessage, name: &str) -> String {
    match m
        .delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(name))
    {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("header {name} missing: {other:?}"),
    }
}

/// Messages arriving on a test queue.
#[derive(Debug)]
pub struct Listener {
    _channel: Channel,
    /// The queue's name (usable as `reply_to`).
    pub queue: String,
    consumer: lapin::Consumer,
}

impl Listener {
    /// The next message, or `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<lapin::message::Delivery> {
        match tokio::time::timeout(timeout, self.consumer.next()).await {
            Ok(Some(Ok(d))) => Some(d),
            _ => None,
        }
    }

    /// The next message body as JSON.
    pub async fn next_json(&mut self, timeout: Duration) -> Option<Value> {
        self.next(timeout)
            .await
            .map(|d| serde_json::from_slice(&d.data).unwrap_or(Value::Null))
    }
}
