//! The adaptive controller: batch size and linger follow the commit latency and the queue depth it observes,
//! within configured bounds. Linger is about half a commit (waiting longer than a commit costs more than it
//! saves); the batch target doubles while a backlog remains after a batch and halves while batches run small.

use std::time::Duration;

/// Bounds and state.
#[derive(Debug, Clone)]
pub(crate) struct Controller {
    min_batch: usize,
    max_batch: usize,
    min_linger: Duration,
    max_linger: Duration,
    commit_ewma: Duration,
    target: usize,
    linger: Duration,
}

impl Controller {
    /// A controller within `[min_batch, max_batch]` rows and `[min_linger, max_linger]`.
    pub(crate) fn new(min_batch: usize, max_batch: usize, min_linger: Duration, max_linger: Duration) -> Self {
        let min_batch = min_batch.max(1);
        let max_batch = max_batch.max(min_batch);
        let max_linger = max_linger.max(min_linger);
        Self {
            min_batch,
            max_batch,
            min_linger,
            max_linger,
            commit_ewma: Duration::ZERO,
            target: min_batch,
            linger: min_linger,
        }
    }

    /// Rows to collect before flushing without waiting for the linger deadline.
    pub(crate) fn target(&self) -> usize {
        self.target
    }

    /// The most a batch may hold.
    pub(crate) fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// How long the first write of a batch may wait for company.
    pub(crate) fn linger(&self) -> Duration {
        self.linger
    }

    /// The lower bound of linger: the grace given to writes that queued during a flush.
    pub(crate) fn min_linger(&self) -> Duration {
        self.min_linger
    }

    /// Learns from one flush: its commit latency, its size, and the queue depth left behind.
    pub(crate) fn observe(&mut self, commit: Duration, batch_rows: usize, backlog: usize) {
        self.commit_ewma = if self.commit_ewma.is_zero() { commit } else { (self.commit_ewma * 4 + commit) / 5 };
        self.linger = (self.commit_ewma / 2).clamp(self.min_linger, self.max_linger);
        if backlog > self.target {
            self.target = (self.target * 2).min(self.max_batch);
        } else if batch_rows < self.target / 4 {
            self.target = (self.target / 2).max(self.min_batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapts_within_bounds() {
        let ms = Duration::from_millis;
        let mut c = Controller::new(16, 256, ms(1), ms(10));
        assert_eq!((c.target(), c.linger()), (16, ms(1)));
        for _ in 0..20 {
            c.observe(ms(100), c.target(), 10_000);
        }
        assert_eq!(c.target(), 256, "a backlog grows batches up to the bound");
        assert_eq!(c.linger(), ms(10), "slow commits lengthen linger up to the bound");
        for _ in 0..20 {
            c.observe(Duration::from_micros(100), 1, 0);
        }
        assert_eq!(c.target(), 16, "small batches shrink the target down to the bound");
        assert_eq!(c.linger(), ms(1));
    }
}
