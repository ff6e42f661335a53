//! Group commit for the ledger: concurrent executions hand their row operations to a batcher,
//! which runs them as one statement per batch and answers each caller once that statement has
//! committed. Nothing waits for a batch to fill — a batch is whatever queued up while the
//! previous ones ran — so an idle worker pays no extra latency and a busy one pays one Postgres
//! round-trip for many executions. Every caller still gets its own committed answer before it
//! goes on, so batching weakens no guarantee of the ledger.

use foldhash::{HashSet, HashSetExt};
use std::collections::VecDeque;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

type Job<I, O> = (I, oneshot::Sender<Result<O, Failure>>);

/// Why a batch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub message: String,
    /// What it is down to.
    pub blame: Blame,
}

/// What a batch's failure is down to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The connection (none, a timeout): nothing to do with the inputs.
    Connection,
    /// The database refused the statement, which one input can cause: each input is then run
    /// again on its own, so that one bad input fails alone instead of failing, on every retry,
    /// whatever shares its batch.
    Statement,
    /// The database refused the input's own values (bad data, a violated constraint): running
    /// it again cannot succeed. Said only of a batch of one input; in a larger batch it is the
    /// statement's, and the batch is split.
    Input,
}

impl Failure {
    /// A failure that has nothing to do with the inputs (no connection, a timeout).
    pub fn infra(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            blame: Blame::Connection,
        }
    }

    /// The database refused the statement, for its own sake or an input's values
    /// ([`Blame::Statement`], [`Blame::Input`]): nothing in the batch took effect, and a batch
    /// of several inputs can be split to find which.
    fn refused(&self) -> bool {
        self.blame != Blame::Connection
    }
}

/// Runs operations of one kind in batches.
#[derive(Debug)]
pub struct Batcher<I, O> {
    tx: mpsc::UnboundedSender<Job<I, O>>,
    /// Where each caller's wait, from queueing its input to its answer, is observed.
    waits: Option<prometheus::Histogram>,
}

impl<I: Send + Sync + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the batching task. `run` executes one batch and returns one output per input, in
    /// order; `key` names the row an input touches: two inputs on the same row never share a
    /// batch (one statement cannot update a row twice), the later one waits for the next.
    /// At most `concurrency` batches run at once, each of at most `max` inputs.
    pub fn spawn<K, F, Fut>(max: usize, concurrency: usize, key: fn(&I) -> K, run: F) -> Self
    where
        K: Eq + Hash + 'static,
        F: Fn(Arc<Vec<I>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<O>, Failure>> + Send + 'static,
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
                let batch = collect(first, &mut deferred, &mut rx, max, key);
                let run = run.clone();
                tokio::spawn(async move {
                    run_batch(&*run, batch).await;
                    drop(permit);
                });
            }
        });
        Self { tx, waits: None }
    }

    /// Observes each caller's wait (behind the batch in flight, then in its own, until its
    /// answer reached it) in `waits`: a batch's own duration does not tell it, since the
    /// callers of a burst wait through several batches.
    pub fn timed(self, waits: prometheus::Histogram) -> Self {
        Self {
            waits: Some(waits),
            ..self
        }
    }

    /// Queues `input` and waits for its batch to commit.
    pub async fn call(&self, input: I) -> Result<O, Failure> {
        // Observed when dropped: on failure too.
        let _waiting = self.waits.as_ref().map(|h| h.start_timer());
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((input, tx))
            .map_err(|_| Failure::infra("the ledger batcher has stopped"))?;
        rx.await
            .map_err(|_| Failure::infra("the ledger batch was abandoned"))?
    }
}

/// A batch: `first`, then what waits (deferred jobs first, then the channel's), up to `max`
/// jobs; a job whose row is in the batch already is deferred to a later one.
fn collect<I, O, K: Eq + Hash>(
    first: Job<I, O>,
    deferred: &mut VecDeque<Job<I, O>>,
    rx: &mut mpsc::UnboundedReceiver<Job<I, O>>,
    max: usize,
    key: fn(&I) -> K,
) -> Vec<Job<I, O>> {
    // Sized for what is waiting, so that the set is not rehashed as it grows.
    let waiting = (deferred.len() + rx.len() + 1).min(max);
    let mut keys = HashSet::with_capacity(waiting);
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
    batch
}

/// Runs one batch and answers each of its callers. A batch the database refused took no
/// effect, and its inputs run again one by one, so that one bad input fails alone.
async fn run_batch<I, O, F, Fut>(run: &F, batch: Vec<Job<I, O>>)
where
    F: Fn(Arc<Vec<I>>) -> Fut,
    Fut: Future<Output = Result<Vec<O>, Failure>>,
{
    let (inputs, replies): (Vec<I>, Vec<_>) = batch.into_iter().unzip();
    let inputs = Arc::new(inputs);
    match run(inputs.clone()).await {
        Err(e) if e.refused() && replies.len() > 1 => match Arc::try_unwrap(inputs) {
            Ok(inputs) => {
                tracing::warn!(error = %e.message, inputs = replies.len(), "a batch was refused; running its inputs one by one");
                one_by_one(run, inputs, replies).await;
            }
            // Not one input's fault as far as anyone can tell.
            Err(_) => fail_all(replies, &Failure::infra(e.message)),
        },
        Err(e) => fail_all(replies, &e),
        Ok(outputs) if outputs.len() == replies.len() => {
            for (reply, out) in replies.into_iter().zip(outputs) {
                let _ = reply.send(Ok(out));
            }
        }
        Ok(outputs) => {
            let e = Failure::infra(format!(
                "a batch of {} returned {} answers",
                replies.len(),
                outputs.len()
            ));
            fail_all(replies, &e);
        }
    }
}

/// Runs each input of a refused batch on its own — until the connection itself fails: the rest
/// then fail with it at once, rather than each waiting for a connection in turn.
async fn one_by_one<I, O, F, Fut>(
    run: &F,
    inputs: Vec<I>,
    replies: Vec<oneshot::Sender<Result<O, Failure>>>,
) where
    F: Fn(Arc<Vec<I>>) -> Fut,
    Fut: Future<Output = Result<Vec<O>, Failure>>,
{
    let mut down: Option<Failure> = None;
    for (input, reply) in inputs.into_iter().zip(replies) {
        if let Some(why) = &down {
            let _ = reply.send(Err(why.clone()));
            continue;
        }
        let one = match run(Arc::new(vec![input])).await {
            Ok(mut out) if out.len() == 1 => Ok(out.remove(0)),
            Ok(out) => Err(Failure::infra(format!(
                "a batch of 1 returned {} answers",
                out.len()
            ))),
            Err(e) => {
                if !e.refused() {
                    down = Some(e.clone());
                }
                Err(e)
            }
        };
        let _ = reply.send(one);
    }
}

/// Answers every caller of a batch with the same failure.
fn fail_all<O>(replies: Vec<oneshot::Sender<Result<O, Failure>>>, e: &Failure) {
    for reply in replies {
        let _ = reply.send(Err(e.clone()));
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
            move |items: Arc<Vec<u32>>| {
                log.lock().unwrap().push(items.to_vec());
                async move {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    Ok(items.iter().map(|i| i * 10).collect())
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
            |_items: Arc<Vec<u32>>| async {
                Err::<Vec<u32>, _>(Failure::infra("Postgres went away"))
            },
        );
        assert_eq!(b.call(1).await, Err(Failure::infra("Postgres went away")));
    }

    #[tokio::test]
    async fn a_refused_batch_is_split_so_one_bad_input_fails_alone() {
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = runs.clone();
        let b = Arc::new(Batcher::spawn(
            64,
            1,
            |i: &u32| *i,
            move |items: Arc<Vec<u32>>| {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    if items.contains(&13) {
                        Err(Failure {
                            message: "invalid input 13".into(),
                            blame: Blame::Input,
                        })
                    } else {
                        Ok(items.iter().map(|i| i + 1).collect())
                    }
                }
            },
        ));
        // Hold the batcher busy so the next 20 calls share one batch.
        let first = tokio::spawn({
            let b = b.clone();
            async move { b.call(100).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        let calls: Vec<_> = (0..20u32)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move { (i, b.call(i).await) })
            })
            .collect();
        assert_eq!(first.await.unwrap(), Ok(101));
        for c in calls {
            let (i, out) = c.await.unwrap();
            if i == 13 {
                let e = out.expect_err("input 13 is refused");
                assert_eq!(e.message, "invalid input 13");
                assert_eq!(e.blame, Blame::Input, "run alone, its refusal is its own");
            } else {
                assert_eq!(out, Ok(i + 1), "input {i} failed with the bad one");
            }
        }
        // The first call's batch, the refused one, and runs of its inputs one by one.
        assert!(runs.load(std::sync::atomic::Ordering::SeqCst) >= 3);
    }

    #[tokio::test]
    async fn each_callers_wait_is_observed_failures_included() {
        let waits = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("waits", "test").buckets(vec![0.004, 10.0]),
        )
        .unwrap();
        let b = Arc::new(
            Batcher::spawn(
                64,
                1,
                |i: &u32| *i,
                |items: Arc<Vec<u32>>| async move {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    if items.contains(&7) {
                        Err(Failure::infra("Postgres went away"))
                    } else {
                        Ok(items.to_vec())
                    }
                },
            )
            .timed(waits.clone()),
        );
        // One batch runs while ten more calls queue behind it: each waits through at least one.
        let calls: Vec<_> = (0..11u32)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move { b.call(i).await })
            })
            .collect();
        let mut failed = 0;
        for c in calls {
            if c.await.unwrap().is_err() {
                failed += 1;
            }
        }
        assert!(failed >= 1, "the batch holding 7 failed");
        assert_eq!(waits.get_sample_count(), 11, "every call observed once");
        let metric = prometheus::core::Collector::collect(&waits);
        let buckets = metric[0].get_metric()[0].get_histogram().get_bucket();
        assert_eq!(
            buckets[0].cumulative_count(),
            0,
            "no call waited less than its batch's 5 ms"
        );
        assert!(waits.get_sample_sum() >= 11.0 * 0.005);
    }
}
