//! The write queue: one FIFO per priority, picked lowest-priority-number first, with aging so that a waiting
//! lower-priority write climbs one level per `age_step` and is never starved. Generic over the payload so the
//! scheduling rules are tested on their own, under paused time.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub use crate::core::registry::Priority;

/// One queued item.
#[derive(Debug)]
pub(crate) struct Queued<T> {
    /// The payload.
    pub item: T,
    /// Its priority.
    pub priority: Priority,
    /// When it was queued.
    pub at: Instant,
    /// Submission order.
    pub seq: u64,
}

/// The queues and their wake-up signal.
#[derive(Debug)]
pub(crate) struct Queue<T> {
    lanes: Mutex<[VecDeque<Queued<T>>; 4]>,
    /// Signalled on every push and on close.
    pub notify: Notify,
    age_step: Duration,
    /// Batches taken and not yet committed, or a caller's claim (changed and read under the `lanes` lock).
    running: AtomicUsize,
    /// Batches committed and not yet acknowledged: the cache replays commits in commit order, so a claimed
    /// write waits for them too.
    unacked: AtomicUsize,
}

impl<T> Queue<T> {
    /// An empty queue whose items climb one priority level per `age_step` of waiting.
    pub(crate) fn new(age_step: Duration) -> Self {
        Self {
            lanes: Mutex::new(Default::default()),
            notify: Notify::new(),
            age_step: age_step.max(Duration::from_millis(1)),
            running: AtomicUsize::new(0),
            unacked: AtomicUsize::new(0),
        }
    }

    fn lanes(&self) -> std::sync::MutexGuard<'_, [VecDeque<Queued<T>>; 4]> {
        self.lanes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues an item and wakes a writer.
    pub(crate) fn push(&self, q: Queued<T>) {
        self.lanes()[q.priority as usize].push_back(q);
        self.notify.notify_one();
    }

    /// Items queued now.
    pub(crate) fn len(&self) -> usize {
        self.lanes().iter().map(VecDeque::len).sum()
    }

    /// Claims the queue for one write that runs elsewhere, when nothing is queued, running or waiting for its
    /// acknowledgement (so it overtakes nobody, in the database or in the cache); until [`Queue::finished`],
    /// [`Queue::take`] hands out nothing.
    pub(crate) fn try_claim(&self) -> bool {
        let lanes = self.lanes();
        let idle = lanes.iter().all(VecDeque::is_empty)
            && self.running.load(Ordering::Acquire) == 0
            && self.unacked.load(Ordering::Acquire) == 0;
        if idle {
            self.running.fetch_add(1, Ordering::AcqRel);
        }
        idle
    }

    /// A batch [`Queue::take`] handed out has committed (or failed); its acknowledgement is pending.
    pub(crate) fn committed(&self) {
        let _lanes = self.lanes();
        self.running.fetch_sub(1, Ordering::AcqRel);
        self.unacked.fetch_add(1, Ordering::AcqRel);
    }

    /// A committed batch has been acknowledged.
    pub(crate) fn acknowledged(&self) {
        let _lanes = self.lanes();
        self.unacked.fetch_sub(1, Ordering::AcqRel);
    }

    /// A claim has ended (its write committed and acknowledged, or failed): wakes the writer.
    pub(crate) fn finished(&self) {
        {
            let _lanes = self.lanes();
            self.running.fetch_sub(1, Ordering::AcqRel);
        }
        self.notify.notify_one();
    }

    /// Items queued per priority.
    pub(crate) fn depths(&self) -> [usize; 4] {
        let l = self.lanes();
        [l[0].len(), l[1].len(), l[2].len(), l[3].len()]
    }

    /// When the oldest queued item was queued.
    pub(crate) fn oldest(&self) -> Option<Instant> {
        self.lanes().iter().filter_map(|l| l.front().map(|q| q.at)).min()
    }

    /// Takes up to `n` items: the most urgent effective priority first (priority minus one level per
    /// `age_step` waited), FIFO within a level, ties by submission order. A non-empty take is a batch
    /// running until [`Queue::finished`]. Nothing while a claimed write runs.
    pub(crate) fn take(&self, n: usize, now: Instant) -> Vec<Queued<T>> {
        let mut lanes = self.lanes();
        if self.running.load(Ordering::Acquire) > 0 {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(n.min(1024));
        while out.len() < n {
            let best = (0..4)
                .filter_map(|i| {
                    let q = lanes[i].front()?;
                    let aged = (now.saturating_duration_since(q.at).as_millis() / self.age_step.as_millis()) as usize;
                    Some(((i.saturating_sub(aged)), q.seq, i))
                })
                .min();
            let Some((_, _, lane)) = best else { break };
            if let Some(q) = lanes[lane].pop_front() {
                out.push(q);
            }
        }
        if !out.is_empty() {
            self.running.fetch_add(1, Ordering::AcqRel);
        }
        out
    }

    /// Takes everything.
    pub(crate) fn drain(&self) -> Vec<Queued<T>> {
        let mut lanes = self.lanes();
        let mut out: Vec<Queued<T>> = lanes.iter_mut().flat_map(|l| l.drain(..)).collect();
        out.sort_by_key(|q| q.seq);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(q: &Queue<u32>, item: u32, priority: Priority, seq: u64) {
        q.push(Queued { item, priority, at: Instant::now(), seq });
    }

    #[tokio::test(start_paused = true)]
    async fn priority_order_then_fifo() {
        let q = Queue::new(Duration::from_millis(100));
        push(&q, 1, Priority::Low, 1);
        push(&q, 2, Priority::Normal, 2);
        push(&q, 3, Priority::Critical, 3);
        push(&q, 4, Priority::Normal, 4);
        push(&q, 5, Priority::High, 5);
        let got: Vec<u32> = q.take(10, Instant::now()).into_iter().map(|x| x.item).collect();
        assert_eq!(got, [3, 5, 2, 4, 1]);
        assert_eq!(q.len(), 0);
    }

    /// A caller may claim the queue only when nothing is queued or running; while it holds the claim the
    /// writer takes nothing, and a batch taken blocks claims until it finishes.
    #[tokio::test(start_paused = true)]
    async fn a_claim_excludes_batches_both_ways() {
        let q = Queue::new(Duration::from_millis(100));
        assert!(q.try_claim());
        assert!(!q.try_claim(), "one claim at a time");
        push(&q, 1, Priority::Normal, 1);
        assert!(q.take(10, Instant::now()).is_empty(), "nothing is handed out during a claim");
        q.finished();
        assert!(!q.try_claim(), "a queued write comes first");
        let got: Vec<u32> = q.take(10, Instant::now()).into_iter().map(|x| x.item).collect();
        assert_eq!(got, [1]);
        assert!(!q.try_claim(), "a running batch comes first");
        q.committed();
        assert!(!q.try_claim(), "and its acknowledgement");
        q.acknowledged();
        assert!(q.try_claim());
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_items_age_past_newer_urgent_ones() {
        let q = Queue::new(Duration::from_millis(100));
        push(&q, 1, Priority::Low, 1);
        tokio::time::advance(Duration::from_millis(250)).await;
        // Low (3) aged two levels is now High (1): it goes before a fresh Normal, after a fresh Critical.
        push(&q, 2, Priority::Normal, 2);
        push(&q, 3, Priority::Critical, 3);
        let got: Vec<u32> = q.take(10, Instant::now()).into_iter().map(|x| x.item).collect();
        assert_eq!(got, [3, 1, 2]);
        q.committed();
        // Long enough, it ties with Critical and wins by submission order.
        push(&q, 4, Priority::Low, 4);
        tokio::time::advance(Duration::from_millis(300)).await;
        push(&q, 5, Priority::Critical, 5);
        let got: Vec<u32> = q.take(1, Instant::now()).into_iter().map(|x| x.item).collect();
        assert_eq!(got, [4]);
    }
}
