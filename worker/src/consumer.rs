//! The consume loop: one task per delivery (the prefetch bounds how many), acks (batched by
//! `crate::acks`) after the executor is done, reconnection with backoff when the broker goes
//! away, and a drain bounded by the grace period on shutdown.

use crate::acks::{AckHandle, Acks, Settle};
use crate::executor::{self, Ctx, Disposition};
use crate::metrics::Step;
use aic_core::amqp::Broker;
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;

/// How the consumer runs.
#[derive(Debug, Clone)]
pub struct ConsumeSettings {
    /// Queue to consume.
    pub queue: String,
    /// Unique consumer tag.
    pub tag: String,
    /// Unacknowledged deliveries at once.
    pub prefetch: u16,
    /// Drain time on shutdown.
    pub grace: Duration,
}

/// Processes one delivery to its end. A failure of Postgres or the broker before the vendor was
/// called is retried here, from the start, with backoff — not handed back to the broker, whose
/// delivery limit would otherwise dead-letter good work during an outage.
async fn process(ctx: Arc<Ctx>, delivery: Delivery, acks: AckHandle) {
    ctx.metrics.in_flight.inc();
    if delivery.redelivered {
        ctx.metrics.redelivered.inc();
    }
    let mut delay = Duration::from_millis(100);
    let disposition = loop {
        // Boxed: the task's own future stays small (`a_delivery_task_is_smaller_still`).
        let handled = match guarded(Box::pin(executor::handle(&ctx, &delivery))).await {
            Ok(handled) => handled,
            Err(panic) => break Box::pin(crate::refuse::panicked(&ctx, &delivery, &panic)).await,
        };
        match handled {
            Disposition::Requeue(reason) if !ctx.stopping.load(Ordering::SeqCst) => {
                ctx.metrics.retried(Step::Delivery);
                tracing::warn!(
                    reason,
                    delay_ms = delay.as_millis() as u64,
                    "infrastructure unavailable; retrying the delivery"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => break other,
        }
    };
    ctx.metrics.in_flight.dec();
    match disposition {
        Disposition::Ack => acks.settle(delivery.delivery_tag, Settle::Ack),
        Disposition::Requeue(reason) => {
            tracing::warn!(reason, "left for redelivery");
            acks.settle(delivery.delivery_tag, Settle::Requeue);
        }
    }
}

/// `work`'s outcome, or what it panicked with: a defect met processing one delivery ends that
/// delivery (`crate::refuse::panicked`), not silently its task — which left the delivery
/// unacknowledged, its prefetch slot and its caller held until the channel closed.
async fn guarded<T>(work: impl Future<Output = T>) -> Result<T, String> {
    std::panic::AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .map_err(|panic| aic_core::panics::message(&*panic))
}

/// Consumes until `shutdown` resolves, reconnecting whenever the broker goes away, then drains
/// in-flight work for at most the grace period.
pub async fn run(
    ctx: Arc<Ctx>,
    broker: Arc<Broker>,
    s: ConsumeSettings,
    consuming: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut tasks = JoinSet::new();
    // The acker of the channel being consumed (a channel's delivery tags are its own).
    let mut acker: Option<Acks> = None;
    let feed = Arc::new(crate::attached::Feed {
        queue: s.queue.clone(),
        prefetch: s.prefetch,
        in_flight: ctx.metrics.in_flight.clone(),
        delivered: AtomicU64::new(0),
        consuming: consuming.clone(),
        starved: tokio::sync::Notify::new(),
    });
    let watch = tokio::spawn(crate::attached::watch(broker.clone(), feed.clone()));
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(200);
    loop {
        let (ch, mut consumer) = tokio::select! {
            _ = &mut shutdown => break,
            r = subscribe(&broker, &s) => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot consume; RabbitMQ unavailable");
                    // Refused, perhaps for want of the queue — deleted under the running
                    // worker, its consumer cancelled by the broker: declared again before the
                    // next attempt.
                    let again = async {
                        let _ = broker.declare_again().await;
                        tokio::time::sleep(backoff).await;
                    };
                    tokio::select! {
                        _ = &mut shutdown => break,
                        () = again => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            }
        };
        // The previous channel's acker ends by itself once its deliveries' tasks have.
        let acks = acker.insert(Acks::start(ch.clone())).handle();
        consuming.store(true, Ordering::SeqCst);
        backoff = Duration::from_millis(200);
        tracing::info!(queue = %s.queue, tag = %s.tag, "consuming");
        let ended = consume(
            &ctx,
            &mut consumer,
            &acks,
            &mut tasks,
            shutdown.as_mut(),
            &feed,
        )
        .await;
        consuming.store(false, Ordering::SeqCst);
        match ended {
            // In-flight deliveries of the dead channel will be redelivered; the ledger answers
            // those that finished.
            Ended::Lost(why) => tracing::warn!(reason = %why, "consumer lost; reconnecting"),
            // Its deliveries not yet acked return to the queue with the channel; the ledger
            // answers those that finished.
            Ended::Starved => {
                tracing::warn!(queue = %s.queue, "RabbitMQ has delivered nothing to this consumer for a while, with messages ready and prefetch slots free (its queue deleted and declared again?); consuming again");
                let closed = ch.close(200, "starved".into());
                let _ = tokio::time::timeout(aic_core::amqp::BROKER_ANSWER_WAIT, closed).await;
            }
            Ended::Shutdown => {
                // Stop receiving first, so nothing new starts while we drain — unless the
                // broker blocks the connection (a resource alarm: it reads nothing until the
                // alarm clears, so the cancel's answer would never come); bounded all the same.
                if !broker.blocked() {
                    let cancel =
                        ch.basic_cancel(s.tag.as_str().into(), BasicCancelOptions::default());
                    let wait = aic_core::amqp::BROKER_ANSWER_WAIT;
                    let _ = tokio::time::timeout(wait, cancel).await;
                }
                break;
            }
        }
        // The channel and its consumer are dropped here, as the next session starts.
    }
    consuming.store(false, Ordering::SeqCst);
    watch.abort();
    ctx.stopping.store(true, Ordering::SeqCst);
    drain(tasks, s.grace).await;
    if let Some(acker) = acker {
        // Acks cannot go out while the broker blocks the connection: the deliveries return to
        // the queue once the alarm clears, and the ledger answers them.
        let limit = if broker.blocked() {
            Duration::ZERO
        } else {
            Duration::from_secs(5)
        };
        acker.finish(limit).await;
    }
    Ok(())
}

/// Why a channel's consuming ended.
enum Ended {
    /// `shutdown` resolved: the consumer is to be cancelled and the work drained.
    Shutdown,
    /// The consumer's stream failed or the broker closed it: consume again on a new channel.
    Lost(String),
    /// The broker feeds the consumer nothing though messages wait ([`crate::attached`]):
    /// close the channel and consume again on a new one.
    Starved,
}

/// Spawns a task per delivery of `consumer` until `shutdown` resolves, the consumer is lost, or
/// the broker is found to feed it nothing (`feed.starved`).
async fn consume(
    ctx: &Arc<Ctx>,
    consumer: &mut lapin::Consumer,
    acks: &AckHandle,
    tasks: &mut JoinSet<()>,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    feed: &crate::attached::Feed,
) -> Ended {
    loop {
        // Deliveries first: the shutdown signal (two signal streams) is then polled once per
        // wake-up, when no delivery is left, not once per delivery, and no random branch order
        // is drawn. At most a prefetch of deliveries comes before it.
        tokio::select! {
            biased;
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    // Finished tasks are reaped here rather than in a select branch of their
                    // own: that branch woke this loop once more per execution to join one task
                    // (~2 k instructions of a ~143 k execution). Until the next delivery at
                    // most a prefetch of them wait, each its task's allocation with the future
                    // already dropped.
                    while tasks.try_join_next().is_some() {}
                    feed.delivered.fetch_add(1, Ordering::Relaxed);
                    tasks.spawn(process(ctx.clone(), delivery, acks.clone()));
                }
                Some(Err(e)) => return Ended::Lost(e.to_string()),
                None => return Ended::Lost("the broker closed the consumer".into()),
            },
            _ = &mut shutdown => return Ended::Shutdown,
            () = feed.starved.notified() => return Ended::Starved,
        }
    }
}

/// A channel consuming the queue, at most a prefetch of deliveries unacked: the worker's
/// concurrency.
async fn subscribe(
    broker: &Broker,
    s: &ConsumeSettings,
) -> anyhow::Result<(lapin::Channel, lapin::Consumer)> {
    let ch = broker.new_channel().await?;
    ch.basic_qos(s.prefetch, BasicQosOptions::default()).await?;
    let consumer = ch
        .basic_consume(
            s.queue.as_str().into(),
            s.tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((ch, consumer))
}

/// Waits for the deliveries in flight for at most `grace`, then aborts what is left: their
/// requests, unacked, return to the queue.
async fn drain(mut tasks: JoinSet<()>, grace: Duration) {
    while tasks.try_join_next().is_some() {}
    let in_flight = tasks.len();
    if in_flight > 0 {
        tracing::info!(
            in_flight,
            grace_secs = grace.as_secs(),
            "draining in-flight executions"
        );
    }
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "grace period over; unfinished executions return to the queue"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an async fn of three owned arguments returns, without calling it.
    fn future_size<A, B, C, F, Fut>(_: F) -> usize
    where
        F: FnOnce(A, B, C) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    /// The size of the future [`executor::handle`] returns, without calling it.
    fn handle_size<'a, Fut>(_: fn(&'a Ctx, &'a Delivery) -> Fut) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// One task per delivery, prefetch-many at once: each byte of its execution's future counts
    /// 2,000 times with the slow vendor's calls in flight. Unboxed phases made it 21 KiB (see
    /// `executor`'s module note); boxed, ~3 KiB.
    #[test]
    fn an_execution_future_is_small() {
        let size = handle_size(executor::handle);
        assert!(
            size <= 4096,
            "an execution's future is {size} bytes; box the phase that grew it"
        );
    }

    /// The task itself holds the execution's future boxed: tokio moves a task's future into
    /// place on spawn and its whole stage again on completion and join — four copies of ~3 KiB
    /// per execution (~2 k instructions) while the execution's own future stayed inline. What
    /// is left (~1 KiB in a debug build) is mostly the delivery itself.
    #[test]
    fn a_delivery_task_is_smaller_still() {
        let size = future_size(process);
        assert!(
            size <= 1536,
            "a delivery's task future is {size} bytes; box what grew it"
        );
    }

    /// A panic met processing a delivery comes back as its message, whatever its payload; a
    /// delivery processed as usual comes back as it ended.
    #[tokio::test]
    async fn a_panic_processing_a_delivery_is_caught_with_its_message() {
        assert_eq!(guarded(async { 7 }).await, Ok(7));
        let fixed = guarded(async { panic!("a fixed message") }).await;
        assert_eq!(fixed, Err::<(), _>("a fixed message".to_string()));
        let at = 3;
        let formatted = guarded(async move {
            let values: Vec<u8> = Vec::new();
            values[at]
        })
        .await;
        let message = formatted.expect_err("index out of bounds");
        assert!(
            message.contains("the len is 0 but the index is 3"),
            "{message}"
        );
        let payload = guarded(async { std::panic::panic_any(42_u8) }).await;
        assert_eq!(
            payload,
            Err::<(), _>("a panic without a message".to_string())
        );
    }
}
