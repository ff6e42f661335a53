//! Group commit for the ledger: concurrent executions hand their row operations to a batcher,
//! which runs them as one statement per batch and answers each caller once that statement has
//! committed. Nothing waits for a batch to fill — a batch is whatever queued up while the
//! previous ones ran — so an idle worker pays no extra latency and a busy one pays one Postgres
//! round-trip for many executions. Every caller still gets its own committed answer before it
//! goes on, so batching weakens no guarantee of the ledger.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

type Job<I, O> = (I, oneshot::Sender<Result<O, String>>);

/// Runs operations of one kind in batches.
#[derive(Debug)]
pub struct Batcher<I, O> {
    tx: mpsc::UnboundedSender<Job<I, O>>,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the batching task. `run` executes one batch and returns one output per input, in
    /// order; `key` names the row an input touches: two inputs on the same row never share a
    /// batch (one statement cannot update a row twice), the later one waits for the next.
    /// At most `concurrency` batches run at once, each of at most `max` inputs.
    pub fn spawn<K, F, Fut>(max: usize, concurrency: usize, key: fn(&I) -> K, run: F) -> Self
    where
        K: Eq + Hash + 'static,
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<O>, String>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job<I, O>>();
        let run = Arc::new(run);
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        tokio::spawn(async move {
            let mut deferred: VecDeque<Job<I, O>> = VecDeque::new();
            loop {
                // Take a permit before collecting: while all batches are busy, work piles up
                // in the channel and the next batch is larger.
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let first = match deferred.pop_front() {
                    Some(job) => job,
                    None => match rx.recv().await {
                        Some(job) => job,
                        None => return,
                    },
                };
                let mut keys = HashSet::new();
                keys.insert(key(&first.0));
                let mut batch = vec![first];
                let mut again = Vec::new();
                while batch.len() < max {
                    let Some(job) = deferred.pop_front().or_else(|| rx.try_recv().ok()) else {
                        break;
                    };
                    if keys.insert(key(&job.0)) {
                        batch.push(job);
                    } else {
                        again.push(job);
                    }
                }
                deferred.extend(again);
                let run = run.clone();
                tokio::spawn(async move {
                    let (inputs, replies): (Vec<I>, Vec<_>) = batch.into_iter().unzip();
                    let n = inputs.len();
                    match run(inputs).await {
                        Ok(outputs) if outputs.len() == n => {
                            for (reply, out) in replies.into_iter().zip(outputs) {
                                let _ = reply.send(Ok(out));
                            }
                        }
                        Ok(outputs) => {
                            let e = format!("a batch of {n} returned {} answers", outputs.len());
                            for reply in replies {
                                let _ = reply.send(Err(e.clone()));
                            }
                        }
                        Err(e) => {
                            for reply in replies {
                                let _ = reply.send(Err(e.clone()));
                            }
                        }
                    }
                    drop(permit);
                });
            }
        });
        Self { tx }
    }

    /// Queues `input` and waits for its batch to commit.
    pub async fn call(&self, input: I) -> Result<O, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((input, tx))
            .map_err(|_| "the ledger batcher has stopped".to_string())?;
        rx.await
            .map_err(|_| "the ledger batch was abandoned".to_string())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn answers_each_caller_in_order_and_never_puts_one_key_twice_in_a_batch() {
        let seen: Arc<Mutex<Vec<Vec<u32>>>> = Arc::default();
        let log = seen.clone();
        let b = Arc::new(Batcher::spawn(
            8,
            1,
            |i: &u32| *i % 5,
            move |items: Vec<u32>| {
                log.lock().unwrap().push(items.clone());
                async move {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    Ok(items.into_iter().map(|i| i * 10).collect())
                }
            },
        ));
        let calls: Vec<_> = (0..40u32)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move { (i, b.call(i).await) })
            })
            .collect();
        for c in calls {
            let (i, out) = c.await.unwrap();
            assert_eq!(out, Ok(i * 10));
        }
        let batches = seen.lock().unwrap();
        assert!(batches.len() < 40, "no batching happened: {batches:?}");
        for batch in batches.iter() {
            assert!(batch.len() <= 8);
            let keys: HashSet<u32> = batch.iter().map(|i| i % 5).collect();
            assert_eq!(keys.len(), batch.len(), "a key repeated in {batch:?}");
        }
    }

    #[tokio::test]
    async fn a_failed_batch_fails_every_caller_in_it() {
        let b = Batcher::spawn(
            4,
            2,
            |i: &u32| *i,
            |_items: Vec<u32>| async { Err::<Vec<u32>, _>("Postgres went away".to_string()) },
        );
        assert_eq!(b.call(1).await, Err("Postgres went away".to_string()));
    }
}
