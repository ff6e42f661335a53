//! Synchronous executions: the control plane owns one exclusive reply queue; a caller that
//! wants to wait registers its execution id here, the request carries `reply_to` and the id as
//! `correlation_id`, and the worker's result is handed to the waiting request. No polling.
//! The queue is re-created after a broker reconnect; a wait that straddles one falls back to
//! the usual `202`, as does every wait once the control plane is stopping (its stop would
//! otherwise wait out each caller's budget).

use aic_core::amqp::Broker;
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// Waiters by execution id.
#[derive(Debug, Default)]
pub struct Replies {
    queue: Mutex<String>,
    waiters: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    stopping: watch::Sender<bool>,
}

impl Replies {
    /// Starts the reply consumer (it reconnects with the broker) and returns the waiter table.
    pub fn start(broker: Arc<Broker>) -> Arc<Self> {
        let replies = Arc::new(Self::default());
        let dispatch = replies.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = dispatch.consume(&broker).await {
                    tracing::warn!(error = %e, "reply queue lost; re-creating it");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        replies
    }

    async fn consume(&self, broker: &Broker) -> Result<(), lapin::Error> {
        let ch = broker.new_channel().await?;
        // Exclusive and server-named: it lives and dies with this process.
        let (name, mut consumer) = aic_core::amqp::private_queue(&ch).await?;
        *self.queue.lock().unwrap_or_else(|p| p.into_inner()) = name;
        while let Some(Ok(delivery)) = consumer.next().await {
            let Some(id) = delivery
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.to_string())
            else {
                continue;
            };
            let waiter = self
                .waiters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            if let (Some(tx), Ok(body)) = (waiter, serde_json::from_slice::<Value>(&delivery.data))
            {
                let _ = tx.send(body);
            }
        }
        Ok(())
    }

    /// The queue name to put in `reply_to`.
    pub fn queue(&self) -> String {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Registers a waiter for `execution` (before publishing, so no reply is missed).
    pub fn wait_for(&self, execution: &str) -> oneshot::Receiver<Value> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(execution.to_string(), tx);
        rx
    }

    /// Drops a waiter that gave up.
    pub fn forget(&self, execution: &str) {
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(execution);
    }

    /// Ends every wait, now and to come: the control plane is stopping.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once [`Self::stop`] was called: a waiter gives up then.
    pub async fn stopping(&self) {
        let _ = self.stopping.subscribe().wait_for(|s| *s).await;
    }
}
