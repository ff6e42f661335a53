//! Whether the worker's consumer is still fed. RabbitMQ (3.10) does not cancel the consumers
//! of a quorum queue that is deleted and at once declared again — by a control plane whose
//! enqueue found it gone, say: it counts them on the new queue and checks messages out to them,
//! up to their prefetch, that never reach the worker; the rest wait, ready, beside an idle
//! worker, and nothing says so. While it consumes, a worker looks every [`EVERY`]: when the
//! queue held ready messages at two looks in a row, the worker had prefetch slots free at
//! both, and nothing was delivered to it in between, its consumer is not being fed. It closes
//! the consumer's channel — the messages checked out to it return to the queue — and consumes
//! again on a new one.

use aic_core::amqp::Broker;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use prometheus::IntGauge;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// How often a consuming worker looks.
pub const EVERY: Duration = Duration::from_secs(15);

/// What the watch reads of the consume loop.
#[derive(Debug)]
pub struct Feed {
    /// The queue consumed.
    pub queue: String,
    /// Unacknowledged deliveries the worker may hold.
    pub prefetch: u16,
    /// Deliveries in flight (the worker's gauge).
    pub in_flight: IntGauge,
    /// Deliveries received, counted by the consume loop.
    pub delivered: AtomicU64,
    /// Set while a consumer is subscribed.
    pub consuming: Arc<AtomicBool>,
    /// Woken when the consumer is found starved.
    pub starved: Notify,
}

/// Looks every [`EVERY`] and wakes whoever waits on `feed.starved` when the consumer is not
/// being fed. Runs until aborted.
pub async fn watch(broker: Arc<Broker>, feed: Arc<Feed>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    // The deliveries counted at the last look that found messages waiting and slots free.
    let mut waiting_since: Option<u64> = None;
    loop {
        tick.tick().await;
        let delivered = feed.delivered.load(Ordering::Relaxed);
        let free = feed.in_flight.get() < i64::from(feed.prefetch);
        let waiting = feed.consuming.load(Ordering::SeqCst)
            && free
            && ready(&broker, &feed.queue).await.is_some_and(|n| n > 0);
        if waiting && waiting_since == Some(delivered) {
            feed.starved.notify_waiters();
            waiting_since = None;
        } else {
            waiting_since = waiting.then_some(delivered);
        }
    }
}

/// The messages ready in `queue`, when the broker says within a few seconds.
async fn ready(broker: &Broker, queue: &str) -> Option<u32> {
    let read = async {
        let ch = broker.new_channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let declared = ch
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await;
        if ch.status().connected() {
            let _ = ch.close(200, "messages counted".into()).await;
        }
        Ok::<_, lapin::Error>(declared?.message_count())
    };
    let wait = aic_core::amqp::BROKER_ANSWER_WAIT;
    tokio::time::timeout(wait, read).await.ok()?.ok()
}
