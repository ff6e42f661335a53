//! Results are published by one task, not by each execution's own.
//!
//! lapin's I/O loop is a thread of its own: it resolves a publish twice — once its frames are
//! written, once the broker confirms it — and each time wakes the task awaiting it. A task
//! woken from another thread goes through the runtime's inject queue, and the runtime's I/O
//! driver is woken with a write to its eventfd: two system calls per execution when every
//! execution awaited its own publish, and as many wakes of lapin's thread to send its frames
//! (`strace`, twenty-eighth session: 2.0 eventfd writes and 1.5 futex wakes per execution,
//! 0.12 and 0.16 through this task). Here every result's publish is a future of one task, so
//! the wakes of a burst of results (a group commit finishes many executions at once, and the
//! broker confirms many publishes in one ack) find the task already woken. Each execution still
//! waits for its own confirm, and every publish is confirmed as before.
//!
//! Should the task end (it runs nothing but lapin's publishes), a publish it had taken fails
//! with [`PublishError::Abandoned`] — retried in place like any failed publish — and every
//! publish after it goes out from the caller's own task.

use aic_core::amqp::{Broker, PublishError, publish_confirmed_to};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lapin::BasicProperties;
use lapin::types::ShortString;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// A handle on the publishing task; the task ends once every handle is gone and every publish
/// it took has finished.
#[derive(Clone, Debug)]
pub struct Funnel {
    jobs: mpsc::UnboundedSender<(Job, Reply)>,
    broker: Arc<Broker>,
}

/// One message to publish: to `exchange` with `key`, then to the `reply_to` queue if any.
#[derive(Debug)]
pub struct Job {
    /// The exchange.
    pub exchange: ShortString,
    /// The routing key.
    pub key: ShortString,
    /// A reply queue, published to (through the default exchange) after the exchange.
    pub reply_to: Option<ShortString>,
    /// The body.
    pub body: Arc<[u8]>,
    /// Its properties.
    pub properties: BasicProperties,
}

type Reply = oneshot::Sender<Result<(), PublishError>>;

impl Funnel {
    /// Starts the publishing task on the current runtime.
    pub fn start(broker: Arc<Broker>) -> Self {
        let (jobs, mut taken) = mpsc::unbounded_channel::<(Job, Reply)>();
        let on = broker.clone();
        tokio::spawn(async move {
            let broker = &*on;
            let mut running = FuturesUnordered::new();
            loop {
                tokio::select! {
                    job = taken.recv() => match job {
                        Some(job) => {
                            running.push(run(broker, job));
                            // The rest of a burst goes out with it, in one wake of lapin's thread.
                            while let Ok(job) = taken.try_recv() {
                                running.push(run(broker, job));
                            }
                        }
                        None => break,
                    },
                    Some(()) = running.next(), if !running.is_empty() => {}
                }
            }
            while running.next().await.is_some() {}
        });
        Self { jobs, broker }
    }

    /// Publishes `job` and waits for the broker's confirm.
    pub async fn publish(&self, job: Job) -> Result<(), PublishError> {
        let (reply, answer) = oneshot::channel();
        match self.jobs.send((job, reply)) {
            Ok(()) => answer.await.unwrap_or(Err(PublishError::Abandoned)),
            // The task is gone: publish from here.
            Err(mpsc::error::SendError((job, _))) => send(&self.broker, job).await,
        }
    }
}

async fn run(broker: &Broker, (job, reply): (Job, Reply)) {
    let published = send(broker, job).await;
    // Nobody waits if the execution was aborted (the shutdown's grace ran out): its result is
    // published all the same, and its redelivery is answered from the ledger.
    let _ = reply.send(published);
}

async fn send(broker: &Broker, job: Job) -> Result<(), PublishError> {
    let ch = broker.channel().await?;
    let body = &job.body[..];
    match job.reply_to {
        None => publish_confirmed_to(&ch, job.exchange, job.key, body, job.properties, false).await,
        // The properties are copied only for a second publish.
        Some(reply_to) => {
            let properties = job.properties.clone();
            publish_confirmed_to(&ch, job.exchange, job.key, body, properties, false).await?;
            publish_confirmed_to(&ch, "".into(), reply_to, body, job.properties, false).await
        }
    }
}
