//! Offset commits spaced out in time (`OffsetCommitIntervalSeconds`, opt-in): a lane's commit that
//! comes less than the interval after the one before is owed instead of sent, and the next commit
//! sent (at the end of a later batch, when the lane would wait for records past the due time, or
//! when the partition is released) covers it. Fewer commit requests, each a broker round trip and
//! a pass through librdkafka's threads, for a larger replay after a crash: the batches delivered
//! since the last commit sent, not only the one in flight.
//!
//! A commit carrying a failing batch's retry history is never owed: the next owner must find it.
//! With an interval of zero every commit is sent, as without this wrapper.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::lane::{CommitError, Committer, StoredRetry};

/// A lane's committer whose commits are at least `interval` apart.
pub(crate) struct IntervalCommitter<C> {
    inner: C,
    interval: Duration,
    spacing: Mutex<Spacing>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Spacing {
    /// When the last commit was sent.
    last_sent: Option<Instant>,
    /// A delivered position not yet committed: partition and next offset.
    owed: Option<(i32, i64)>,
}

impl<C: Committer> IntervalCommitter<C> {
    pub fn new(inner: C, interval: Duration) -> Self {
        Self {
            inner,
            interval,
            spacing: Mutex::new(Spacing::default()),
        }
    }

    /// When the owed commit is due; `None` when nothing is owed.
    pub fn due(&self) -> Option<Instant> {
        let s = self.spacing();
        s.owed?;
        Some(s.last_sent.map_or_else(Instant::now, |t| t + self.interval))
    }

    /// Resolves when the owed commit is due; never while nothing is owed.
    pub async fn until_due(&self) {
        match self.due() {
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
    }

    /// Send the owed commit of `partition` now; refused, it stays owed and is tried again after
    /// another interval, or covered by the next commit.
    pub async fn send_owed(&self, partition: i32) {
        if let Err(e) = self.flush().await {
            tracing::debug!(partition, error = %e, "owed offset commit failed; tried again later");
        }
    }

    /// The partition goes to its next owner: send what is owed, once; not when `abandoned` (the
    /// partition may be another member's already).
    pub async fn release(&self, partition: i32, abandoned: bool) {
        if abandoned || self.due().is_none() {
            return;
        }
        if let Err(e) = self.flush().await {
            tracing::warn!(partition, error = %e,
                "owed offset commit failed as the partition was released; its next owner delivers again what was delivered since the last commit");
        }
    }

    /// Send the owed commit now, if there is one (refused, it stays owed).
    pub async fn flush(&self) -> Result<(), CommitError> {
        let owed = self.spacing().owed;
        match owed {
            Some((partition, next_offset)) => self.send(partition, next_offset, None).await,
            None => Ok(()),
        }
    }

    fn spacing(&self) -> std::sync::MutexGuard<'_, Spacing> {
        // The lock is never held across an await or a panic-prone call.
        self.spacing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Owe the commit when the last one went out less than the interval ago.
    fn defer(&self, partition: i32, next_offset: i64) -> bool {
        let mut s = self.spacing();
        let recent = s.last_sent.is_some_and(|t| t.elapsed() < self.interval);
        if recent {
            s.owed = Some((partition, next_offset));
        }
        recent
    }

    async fn send(
        &self,
        partition: i32,
        next_offset: i64,
        retry: Option<&StoredRetry>,
    ) -> Result<(), CommitError> {
        let owed = {
            let mut s = self.spacing();
            s.last_sent = Some(Instant::now());
            s.owed.take()
        };
        let result = self.inner.commit(partition, next_offset, retry).await;
        if result.is_err() && !self.interval.is_zero() {
            // A later position is covered by what this one carried; owe what was owed before
            // if that was more (never owed at an interval of zero: the lane retries itself).
            let keep = owed.map_or(next_offset, |(_, o)| o.max(next_offset));
            self.spacing().owed.get_or_insert((partition, keep));
        }
        result
    }
}

impl<C: Committer> Committer for IntervalCommitter<C> {
    async fn commit(
        &self,
        partition: i32,
        next_offset: i64,
        retry: Option<&StoredRetry>,
    ) -> Result<(), CommitError> {
        if retry.is_none() && self.defer(partition, next_offset) {
            return Ok(());
        }
        self.send(partition, next_offset, retry).await
    }

    async fn committed(
        &self,
        partition: i32,
    ) -> Result<Option<(i64, Option<StoredRetry>)>, CommitError> {
        self.inner.committed(partition).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::lane::tests::RecordingCommitter;
    use crate::runtime::retry::RetryState;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn commits_within_the_interval_are_owed_and_the_last_one_goes_out_when_due() {
        let recorder = RecordingCommitter::new(0);
        let c = IntervalCommitter::new(recorder.clone(), SECOND);
        let started = Instant::now();
        for next in [100, 200, 300] {
            c.commit(0, next, None).await.unwrap();
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        assert_eq!(recorder.offsets(), [100]);
        assert_eq!(c.due(), Some(started + SECOND));
        c.flush().await.unwrap();
        assert_eq!(recorder.offsets(), [100, 300]);
        assert_eq!(c.due(), None);
        // Past the interval a commit goes out at once.
        tokio::time::advance(SECOND).await;
        c.commit(0, 400, None).await.unwrap();
        assert_eq!(recorder.offsets(), [100, 300, 400]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_commit_with_retry_history_is_never_owed() {
        let recorder = RecordingCommitter::new(0);
        let c = IntervalCommitter::new(recorder.clone(), SECOND);
        c.commit(0, 100, None).await.unwrap();
        c.commit(0, 200, None).await.unwrap();
        let retry = StoredRetry {
            state: RetryState::default(),
            len: 5,
        };
        c.commit(0, 200, Some(&retry)).await.unwrap();
        assert_eq!(recorder.offsets(), [100, 200]);
        assert_eq!(c.due(), None, "the history's commit covered what was owed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_flush_stays_owed_until_the_next_interval() {
        let recorder = RecordingCommitter::new(0);
        let c = IntervalCommitter::new(recorder.clone(), SECOND);
        c.commit(0, 100, None).await.unwrap();
        c.commit(0, 200, None).await.unwrap();
        recorder.fail_next(1);
        let refused_at = Instant::now();
        assert!(c.flush().await.is_err());
        assert_eq!(c.due(), Some(refused_at + SECOND));
        c.flush().await.unwrap();
        assert_eq!(recorder.offsets(), [100, 200]);
    }

    #[tokio::test(start_paused = true)]
    async fn at_an_interval_of_zero_every_commit_goes_out_and_none_is_owed() {
        let recorder = RecordingCommitter::new(0);
        let c = IntervalCommitter::new(recorder.clone(), Duration::ZERO);
        recorder.fail_next(1);
        assert!(c.commit(0, 100, None).await.is_err());
        for next in [100, 200, 300] {
            c.commit(0, next, None).await.unwrap();
        }
        assert_eq!(recorder.offsets(), [100, 200, 300]);
        assert_eq!(c.due(), None);
    }
}
