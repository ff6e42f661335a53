//! Acknowledgements to the broker, batched: one `basic.ack` with `multiple` for every run of
//! deliveries that finished in order, instead of one frame (and one wake-up of lapin's I/O
//! thread, and one settle in the quorum queue) per delivery.
//!
//! A multiple ack of tag `t` settles *every* outstanding delivery up to `t` on the channel, so it
//! is sent only once every tag up to `t` is done. A delivery that finished while an older one is
//! still running (a slow vendor call, a retry waiting in process) is not held hostage: after
//! [`LINGER`] it is acked on its own, so a straggler never keeps prefetch slots from the work
//! behind it. Requeues are sent at once, one by one. Nothing here acks earlier than before: a
//! delivery is reported done only after its result was recorded and its publish confirmed.

use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a delivery that finished out of order waits for the ones before it before it is
/// acked on its own.
pub const LINGER: Duration = Duration::from_millis(10);

/// How a delivery ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Processed: ack.
    Ack,
    /// Give it back to the queue for a later attempt.
    Requeue,
}

/// A frame to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// `basic.ack` with `multiple`: every outstanding delivery up to this tag.
    AckUpTo(u64),
    /// `basic.ack` of this delivery alone.
    Ack(u64),
    /// `basic.nack` of this delivery alone, requeued.
    Requeue(u64),
}

/// The bookkeeping of one channel's delivery tags (which start at 1 and count up by one).
#[derive(Debug)]
pub struct Window {
    /// Every tag below this one is settled at the broker.
    next: u64,
    /// Done, not yet acked: since when.
    done: BTreeMap<u64, Instant>,
    /// At or above `next`, already settled one by one.
    settled: BTreeSet<u64>,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            next: 1,
            done: BTreeMap::new(),
            settled: BTreeSet::new(),
        }
    }
}

impl Window {
    /// Notes how `tag` ended; a requeue is sent at once.
    pub fn complete(&mut self, tag: u64, how: Settle, now: Instant) -> Option<Frame> {
        if tag < self.next || self.settled.contains(&tag) || self.done.contains_key(&tag) {
            return None;
        }
        match how {
            Settle::Ack => {
                self.done.insert(tag, now);
                None
            }
            Settle::Requeue => {
                self.settled.insert(tag);
                Some(Frame::Requeue(tag))
            }
        }
    }

    /// The frames due now: one multiple ack for the run of done tags at the bottom of the
    /// window, then single acks for those that waited out `linger` behind an unfinished one.
    pub fn flush(&mut self, now: Instant, linger: Duration) -> Vec<Frame> {
        let mut frames = Vec::new();
        let mut top = None;
        loop {
            if self.done.remove(&self.next).is_some() {
                top = Some(self.next);
            } else if !self.settled.remove(&self.next) {
                break;
            }
            self.next += 1;
        }
        if let Some(t) = top {
            frames.push(Frame::AckUpTo(t));
        }
        let overdue: Vec<u64> = self
            .done
            .iter()
            .filter(|(_, at)| now.duration_since(**at) >= linger)
            .map(|(t, _)| *t)
            .collect();
        for t in overdue {
            self.done.remove(&t);
            self.settled.insert(t);
            frames.push(Frame::Ack(t));
        }
        frames
    }

    /// When the oldest out-of-order delivery is due to be acked on its own.
    pub fn deadline(&self, linger: Duration) -> Option<Instant> {
        self.done.values().min().map(|at| *at + linger)
    }

    /// Done deliveries not yet acked.
    pub fn pending(&self) -> usize {
        self.done.len()
    }
}

/// The acker of one consumer channel: a task that owns the channel's [`Window`].
#[derive(Debug)]
pub struct Acks {
    tx: mpsc::UnboundedSender<(u64, Settle)>,
    task: JoinHandle<()>,
}

/// Reports deliveries' ends to their channel's acker.
#[derive(Debug, Clone)]
pub struct AckHandle(mpsc::UnboundedSender<(u64, Settle)>);

impl AckHandle {
    /// Settles delivery `tag` (soon, possibly together with others).
    pub fn settle(&self, tag: u64, how: Settle) {
        if self.0.send((tag, how)).is_err() {
            // The acker is gone with its channel: the broker redelivers, the ledger answers.
            tracing::warn!(tag, "ack after the channel's acker stopped");
        }
    }
}

impl Acks {
    /// Starts the acker of `channel`.
    pub fn start(channel: Channel) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(channel, rx));
        Self { tx, task }
    }

    /// A handle for the deliveries of this channel.
    pub fn handle(&self) -> AckHandle {
        AckHandle(self.tx.clone())
    }

    /// Sends every ack still owed, once no handle is left (every delivery's task has ended),
    /// for at most `limit`.
    pub async fn finish(self, limit: Duration) {
        drop(self.tx);
        let mut task = self.task;
        if tokio::time::timeout(limit, &mut task).await.is_err() {
            tracing::warn!("acks not flushed in time; the broker redelivers, the ledger answers");
            task.abort();
        }
    }
}

async fn run(channel: Channel, mut rx: mpsc::UnboundedReceiver<(u64, Settle)>) {
    let mut window = Window::default();
    let mut batch = Vec::new();
    let mut open = true;
    while open || window.pending() > 0 {
        let wake = window.deadline(LINGER);
        tokio::select! {
            n = rx.recv_many(&mut batch, 1024), if open => {
                if n == 0 {
                    open = false;
                }
            }
            _ = async { tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)).await }, if wake.is_some() => {}
        }
        let now = Instant::now();
        let mut frames: Vec<Frame> = batch
            .drain(..)
            .filter_map(|(tag, how)| window.complete(tag, how, now))
            .collect();
        // Once every delivery's task has ended nothing older can finish: ack what is left.
        let linger = if open { LINGER } else { Duration::ZERO };
        frames.extend(window.flush(now, linger));
        for frame in frames {
            let sent = match frame {
                Frame::AckUpTo(t) => {
                    channel
                        .basic_ack(t, BasicAckOptions { multiple: true })
                        .await
                }
                Frame::Ack(t) => channel.basic_ack(t, BasicAckOptions::default()).await,
                Frame::Requeue(t) => {
                    channel
                        .basic_nack(
                            t,
                            BasicNackOptions {
                                requeue: true,
                                ..BasicNackOptions::default()
                            },
                        )
                        .await
                }
            };
            if let Err(e) = sent {
                tracing::warn!(error = %e, ?frame, "ack/nack failed; the broker will redeliver");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *BASE.get_or_init(Instant::now) + Duration::from_millis(ms)
    }

    #[test]
    fn deliveries_done_in_any_order_are_acked_with_one_frame_once_the_run_is_whole() {
        let mut w = Window::default();
        for tag in [3, 1, 2, 5] {
            assert_eq!(w.complete(tag, Settle::Ack, at(0)), None);
        }
        // 4 is still running: 1-3 go in one frame, 5 waits for 4.
        assert_eq!(w.flush(at(1), LINGER), vec![Frame::AckUpTo(3)]);
        w.complete(4, Settle::Ack, at(2));
        assert_eq!(w.flush(at(3), LINGER), vec![Frame::AckUpTo(5)]);
        assert_eq!(w.pending(), 0);
    }

    #[test]
    fn a_straggler_does_not_hold_the_deliveries_behind_it_past_the_linger() {
        let mut w = Window::default();
        for tag in 2..=4 {
            w.complete(tag, Settle::Ack, at(0));
        }
        assert_eq!(w.flush(at(1), LINGER), vec![]);
        assert_eq!(w.deadline(LINGER), Some(at(0) + LINGER));
        assert_eq!(
            w.flush(at(0) + LINGER, LINGER),
            vec![Frame::Ack(2), Frame::Ack(3), Frame::Ack(4)]
        );
        // When the straggler ends, the multiple ack names it, not a tag already acked (the
        // broker closes the channel on an unknown tag).
        w.complete(1, Settle::Ack, at(50));
        w.complete(5, Settle::Ack, at(50));
        assert_eq!(w.flush(at(51), LINGER), vec![Frame::AckUpTo(5)]);
        w.complete(6, Settle::Ack, at(52));
        assert_eq!(w.flush(at(53), LINGER), vec![Frame::AckUpTo(6)]);
    }

    #[test]
    fn a_requeue_goes_at_once_and_alone_and_is_never_covered_by_a_multiple_ack() {
        let mut w = Window::default();
        w.complete(1, Settle::Ack, at(0));
        assert_eq!(
            w.complete(2, Settle::Requeue, at(0)),
            Some(Frame::Requeue(2))
        );
        w.complete(3, Settle::Ack, at(0));
        // 1 and 3 acked in one frame; 2 was settled by its nack, which a multiple ack would
        // not touch anyway (it acks outstanding deliveries only).
        assert_eq!(w.flush(at(1), LINGER), vec![Frame::AckUpTo(3)]);
        // A second report of a settled tag sends nothing.
        assert_eq!(w.complete(2, Settle::Requeue, at(2)), None);
        assert_eq!(w.complete(3, Settle::Ack, at(2)), None);
        assert_eq!(w.flush(at(3), LINGER), vec![]);
    }

    #[test]
    fn the_last_flush_acks_everything_done_whatever_the_order() {
        let mut w = Window::default();
        w.complete(7, Settle::Ack, at(0));
        w.complete(8, Settle::Ack, at(0));
        assert_eq!(
            w.flush(at(0), Duration::ZERO),
            vec![Frame::Ack(7), Frame::Ack(8)]
        );
    }
}
