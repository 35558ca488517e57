//! A lane: the ordered worker of one assigned partition. It reads the partition's records in offset
//! order from a [`RecordStream`], cuts them into batches ([`BatchLimits`]: `BatchSize`, batching
//! window, payload cap), and delivers each ([`Delivery`]: the failure rules), which commits through
//! the lane's [`Committer`] only what is done: `last offset + 1` after the batch, never past an
//! undelivered record. One batch in flight per partition, and one uncommitted: the next batch waits
//! until the previous one's commit landed (retried while a rebalance refuses it), so a new owner
//! replays at most the batch in flight; with `OffsetCommitIntervalSeconds` the commits within the
//! interval are owed and sent together ([`IntervalCommitter`]), and a crash replays up to an
//! interval's batches. Lanes of different partitions run in parallel.
//!
//! The lane knows nothing of Kafka: [`super::kafka`] adapts a librdkafka partition queue and the
//! consumer's commit, and the unit tests below drive a lane with a channel and a recording
//! committer under paused time.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::commit_interval::IntervalCommitter;
use super::delivery::{Delivery, Outcome};
use super::process::{BatchLimits, BatchProcessor};
use super::retry::RetryState;
use crate::record::SourceRecord;

/// Where a lane's records come from: one partition, in offset order.
pub(crate) trait RecordStream: Send {
    /// The next record, once there is one; `None` when the stream has ended.
    fn next(&mut self) -> impl Future<Output = Option<SourceRecord>> + Send;

    /// The next record if one is ready now (a batching window of 0 takes only those).
    fn next_ready(&mut self) -> Option<SourceRecord> {
        self.next().now_or_never().flatten()
    }
}

/// Why an offset commit failed. Never fatal to a lane: the next owner of the partition re-reads
/// from the last committed offset, so the batch may be delivered again, never lost.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CommitError {
    /// The consumer is gone (the pipe is stopping).
    #[error("the consumer is closed")]
    Closed,
    /// The broker refused or did not answer (typically: the partition moved to another member).
    #[error("offset commit failed: {0}")]
    Failed(String),
}

/// The failure history of the batch starting at a committed offset, stored with that offset (the
/// commit's metadata) so a restart or the partition's next owner continues the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredRetry {
    /// Failed attempts and when the first failed.
    #[serde(flatten)]
    pub state: RetryState,
    /// How many (kept) records the failing batch had.
    #[serde(rename = "n")]
    pub len: usize,
}

impl StoredRetry {
    /// Marks Sluice's metadata among what other consumers of the group may commit.
    const PREFIX: &'static str = "sluice.retry:";

    /// The commit metadata text.
    pub fn to_metadata(self) -> String {
        format!(
            "{}{}",
            Self::PREFIX,
            serde_json::to_string(&self).unwrap_or_default()
        )
    }

    /// Read commit metadata; `None` when it is not ours.
    pub fn from_metadata(text: &str) -> Option<Self> {
        serde_json::from_str(text.strip_prefix(Self::PREFIX)?).ok()
    }
}

/// Where a lane's progress goes.
pub(crate) trait Committer: Send + Sync + 'static {
    /// Make `next_offset` the partition's committed offset, with the failure history of the batch
    /// starting there when it is failing, and wait for the broker's answer, so a crash right after
    /// can only repeat the batch in flight, never an older one.
    fn commit(
        &self,
        partition: i32,
        next_offset: i64,
        retry: Option<&StoredRetry>,
    ) -> impl Future<Output = Result<(), CommitError>> + Send;

    /// The partition's committed offset and the failure history stored with it, if any.
    fn committed(
        &self,
        partition: i32,
    ) -> impl Future<Output = Result<Option<(i64, Option<StoredRetry>)>, CommitError>> + Send;
}

/// What the rebalance hooks and the lag reporter share with a lane.
#[derive(Debug)]
pub(crate) struct LaneControl {
    pub partition: i32,
    /// Finish the batch in flight, start no other.
    pub drain: CancellationToken,
    /// Stop at once, even mid-delivery.
    pub abandon: CancellationToken,
    /// The next offset the group will read: the last commit's, or before the first commit the
    /// offset of the first record the lane read (-1 before that). The lag is measured from it.
    pub committed: AtomicI64,
}

impl LaneControl {
    pub fn new(partition: i32) -> Self {
        Self {
            partition,
            drain: CancellationToken::new(),
            abandon: CancellationToken::new(),
            committed: AtomicI64::new(-1),
        }
    }

    /// The control of a sub-lane of this partition: drained and abandoned with it.
    pub fn child(&self) -> Self {
        Self {
            partition: self.partition,
            drain: self.drain.child_token(),
            abandon: self.abandon.child_token(),
            committed: AtomicI64::new(-1),
        }
    }

    /// The lane read the record at `offset`: before any commit, the group would read it again.
    pub fn record_read(&self, offset: i64) {
        if self.committed.load(Ordering::Relaxed) < 0 {
            let _ =
                self.committed
                    .compare_exchange(-1, offset, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// The broker accepted `next_offset` as the committed offset.
    pub fn record_commit(&self, next_offset: i64) {
        self.committed.store(next_offset, Ordering::Relaxed);
    }
}

/// The worker of one partition.
pub(crate) struct Lane<S, C> {
    control: Arc<LaneControl>,
    stream: S,
    /// Commits at most every `OffsetCommitIntervalSeconds` (after every batch by default).
    committer: IntervalCommitter<C>,
    processor: Arc<BatchProcessor>,
}

impl<S: RecordStream, C: Committer> Lane<S, C> {
    /// A partition's lane: its commits spaced by the pipe's `OffsetCommitIntervalSeconds`.
    pub fn new(
        control: Arc<LaneControl>,
        stream: S,
        committer: C,
        processor: Arc<BatchProcessor>,
    ) -> Self {
        let interval = processor.commit_interval();
        Self::spaced(control, stream, committer, processor, interval)
    }

    /// A sub-lane: every report goes to the partition's watermark at once (the watermark's own
    /// commits are the ones spaced).
    pub fn unspaced(
        control: Arc<LaneControl>,
        stream: S,
        committer: C,
        processor: Arc<BatchProcessor>,
    ) -> Self {
        Self::spaced(control, stream, committer, processor, Duration::ZERO)
    }

    fn spaced(
        control: Arc<LaneControl>,
        stream: S,
        committer: C,
        processor: Arc<BatchProcessor>,
        interval: Duration,
    ) -> Self {
        Self {
            control,
            stream,
            committer: IntervalCommitter::new(committer, interval),
            processor,
        }
    }

    /// Work until drained, abandoned, or the stream ends.
    pub async fn run(mut self) {
        let p = self.control.partition;
        let limits = self.processor.limits();
        let mut pending: Option<SourceRecord> = None;
        tracing::debug!(partition = p, "lane started");
        // A failure history stored by the partition's previous owner (or a run before a crash).
        let bounded = self.processor.policy().settings.bounded();
        let stored = if bounded {
            self.committer.committed(p).await
        } else {
            Ok(None)
        };
        let mut resumed = match stored {
            Ok(Some((offset, Some(retry)))) => Some((offset, retry)),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(partition = p, error = %e, "no committed offset to resume from");
                None
            }
        };
        while let Some(batch) = self.next_batch(&limits, &mut pending).await {
            // It applies to the batch that starts where it was stored, and only to that one.
            let retry = resumed
                .take()
                .filter(|(offset, _)| batch.first().is_some_and(|r| r.offset == *offset))
                .map(|(_, retry)| retry);
            let delivery = Delivery::new(&self.processor, &self.committer, &self.control, &batch);
            if delivery.run(retry).await == Outcome::Abandoned {
                break;
            }
            let end = batch.last().map_or(0, |r| r.offset + 1);
            if !self.settle(end).await {
                break;
            }
            if self.control.drain.is_cancelled() {
                break;
            }
        }
        let abandoned = self.control.abandon.is_cancelled();
        self.committer.release(p, abandoned).await;
        tracing::debug!(partition = p, "lane stopped");
    }

    /// Make sure the delivered batch's commit (`next_offset`) landed before the next batch goes
    /// out, retrying it with backoff: a commit refused during a rebalance would otherwise leave the
    /// partition's next owner to replay every batch delivered since the last commit that landed,
    /// not only the one in flight. `false` when the lane is drained or abandoned first (after one
    /// last attempt when drained: the revoking member may still commit) or the consumer closed.
    async fn settle(&self, next_offset: i64) -> bool {
        let p = self.control.partition;
        let mut wait = SETTLE_BACKOFF_MIN;
        while self.control.committed.load(Ordering::Relaxed) != next_offset {
            let last_try = tokio::select! {
                biased;
                _ = self.control.abandon.cancelled() => return false,
                _ = self.control.drain.cancelled() => true,
                _ = tokio::time::sleep(wait) => false,
            };
            match self.committer.commit(p, next_offset, None).await {
                Ok(()) => self.control.record_commit(next_offset),
                // The pipe is stopping: nothing will commit any more.
                Err(CommitError::Closed) => return false,
                Err(e) => tracing::debug!(partition = p, next_offset, error = %e,
                    "offset commit failed again; the next batch waits for it"),
            }
            if last_try {
                return false;
            }
            wait = (wait * 2).min(SETTLE_BACKOFF_MAX);
        }
        true
    }

    /// The next batch: waits for its first record, then takes more until the batch is full, the
    /// window closes (at once when it is 0 and nothing more is ready) or the payload cap would be
    /// passed (that record starts the next batch). `None` when the lane is drained before the batch
    /// is complete (a batch still being collected is not in flight: the next owner of the partition
    /// reads it again) or the stream ended.
    async fn next_batch(
        &mut self,
        limits: &BatchLimits,
        pending: &mut Option<SourceRecord>,
    ) -> Option<Vec<SourceRecord>> {
        let drain = self.control.drain.clone();
        let first = match pending.take() {
            Some(r) => r,
            None => loop {
                // While the lane waits for records, an owed commit goes out when it is due.
                tokio::select! {
                    biased;
                    _ = drain.cancelled() => return None,
                    _ = self.committer.until_due() => {
                        self.committer.send_owed(self.control.partition).await
                    }
                    r = self.stream.next() => break r?,
                }
            },
        };
        self.control.record_read(first.offset);
        let mut bytes = estimated_json_size(&first);
        let mut batch = Vec::with_capacity(limits.size.min(1024));
        batch.push(first);
        let deadline = tokio::time::Instant::now() + limits.window;
        // One timer and one drain watch per batch, not per record: records already fetched are
        // taken without awaiting, and only an empty queue waits on the three.
        let window = tokio::time::sleep_until(deadline);
        tokio::pin!(window);
        while batch.len() < limits.size {
            let next = match self.stream.next_ready() {
                Some(r) if !window_closed(limits, &batch, deadline) => r,
                Some(r) => {
                    *pending = Some(r);
                    break;
                }
                None if limits.window.is_zero() => break,
                None => tokio::select! {
                    biased;
                    _ = drain.cancelled() => return None,
                    _ = &mut window => break,
                    r = self.stream.next() => match r {
                        Some(r) => r,
                        None => break,
                    },
                },
            };
            // A look at the drain takes a lock: once every few records, and once at the end.
            if batch.len().is_multiple_of(CHECK_EVERY) && drain.is_cancelled() {
                return None;
            }
            let size = estimated_json_size(&next);
            if bytes + size > limits.payload_cap {
                *pending = Some(next);
                break;
            }
            bytes += size;
            batch.push(next);
        }
        (!drain.is_cancelled()).then_some(batch)
    }
}

/// Whether a batch being filled from records that are already there has outlived its window (a
/// window of 0 takes all of them). The clock is read every [`CHECK_EVERY`] records: taking a ready
/// record costs less than reading it.
fn window_closed(
    limits: &BatchLimits,
    batch: &[SourceRecord],
    deadline: tokio::time::Instant,
) -> bool {
    !limits.window.is_zero()
        && batch.len().is_multiple_of(CHECK_EVERY)
        && tokio::time::Instant::now() >= deadline
}

/// How many ready records a batch takes between two looks at its window's deadline and at the
/// drain.
const CHECK_EVERY: usize = 64;

/// Size of the record's JSON form (base64 grows bytes by 4/3), for the payload cap.
pub(crate) fn estimated_json_size(r: &SourceRecord) -> usize {
    r.size() * 4 / 3 + 200 + r.headers().len() * 16
}

/// The first and the longest pause between attempts to commit a delivered batch again.
pub(crate) const SETTLE_BACKOFF_MIN: Duration = Duration::from_millis(100);
pub(crate) const SETTLE_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// How long a revoke waits for a lane's batch in flight before abandoning it.
pub(crate) const DEFAULT_REVOKE_TIMEOUT: Duration = Duration::from_secs(15);

#[cfg(test)]
#[path = "lane_tests.rs"]
pub(crate) mod tests;
