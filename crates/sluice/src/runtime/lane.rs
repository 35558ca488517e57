//! A lane: the ordered worker of one assigned partition. It reads the partition's records in offset
//! order from a [`RecordStream`], cuts them into batches ([`BatchLimits`]: `BatchSize`, batching
//! window, payload cap), hands each to the [`BatchProcessor`], and commits `last offset + 1`
//! through its [`Committer`] only after the batch is done. One batch in flight per partition; lanes
//! of different partitions run in parallel.
//!
//! The lane knows nothing of Kafka: [`super::kafka`] adapts a librdkafka partition queue and the
//! consumer's commit, and the unit tests below drive a lane with a channel and a recording
//! committer under paused time.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use super::process::{BatchLimits, BatchProcessor, Outcome};
use crate::record::SourceRecord;

/// Where a lane's records come from: one partition, in offset order.
pub(crate) trait RecordStream: Send + 'static {
    /// The next record, once there is one; `None` when the stream has ended.
    fn next(&mut self) -> impl Future<Output = Option<SourceRecord>> + Send;

    /// The next record if one is ready now (a batching window of 0 takes only those).
    fn next_ready(&mut self) -> Option<SourceRecord> {
        self.next().now_or_never().flatten()
    }
}

/// Why an offset commit failed. Never fatal to a lane: the next owner of the partition re-reads
/// from the last committed offset, so the batch may be delivered again, never lost.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommitError {
    /// The consumer is gone (the pipe is stopping).
    #[error("the consumer is closed")]
    Closed,
    /// The broker refused or did not answer (typically: the partition moved to another member).
    #[error("offset commit failed: {0}")]
    Failed(String),
}

/// Where a lane's progress goes.
pub(crate) trait Committer: Send + Sync + 'static {
    /// Make `next_offset` the partition's committed offset and wait for the broker's answer, so a
    /// crash right after can only repeat the batch in flight, never an older one.
    fn commit(
        &self,
        partition: i32,
        next_offset: i64,
    ) -> impl Future<Output = Result<(), CommitError>> + Send;
}

/// What the rebalance hooks and the lag reporter share with a lane.
#[derive(Debug)]
pub(crate) struct LaneControl {
    pub partition: i32,
    /// Finish the batch in flight, start no other.
    pub drain: CancellationToken,
    /// Stop at once, even mid-delivery.
    pub abandon: CancellationToken,
    /// The next offset the group will read, once this lane committed (-1 before).
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
}

/// The worker of one partition.
pub(crate) struct Lane<S, C> {
    pub control: Arc<LaneControl>,
    pub stream: S,
    pub committer: C,
    pub processor: Arc<BatchProcessor>,
}

impl<S: RecordStream, C: Committer> Lane<S, C> {
    /// Work until drained, abandoned, or the stream ends.
    pub async fn run(mut self) {
        let p = self.control.partition;
        let limits = self.processor.limits();
        let mut pending: Option<SourceRecord> = None;
        tracing::debug!(partition = p, "lane started");
        while let Some(batch) = self.next_batch(&limits, &mut pending).await {
            let next_offset = batch.last().map_or(0, |r| r.offset + 1);
            match self.processor.execute(&batch, &self.control).await {
                Outcome::Done => self.commit(next_offset).await,
                Outcome::Abandoned => break,
            }
            if self.control.drain.is_cancelled() {
                break;
            }
        }
        tracing::debug!(partition = p, "lane stopped");
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
            None => tokio::select! {
                biased;
                _ = drain.cancelled() => return None,
                r = self.stream.next() => r?,
            },
        };
        let mut bytes = estimated_json_size(&first);
        let mut batch = Vec::with_capacity(limits.size.min(1024));
        batch.push(first);
        let deadline = tokio::time::Instant::now() + limits.window;
        while batch.len() < limits.size {
            let next = if limits.window.is_zero() {
                match self.stream.next_ready() {
                    Some(r) => r,
                    None => break,
                }
            } else {
                tokio::select! {
                    biased;
                    _ = drain.cancelled() => return None,
                    _ = tokio::time::sleep_until(deadline) => break,
                    r = self.stream.next() => match r {
                        Some(r) => r,
                        None => break,
                    },
                }
            };
            let size = estimated_json_size(&next);
            if bytes + size > limits.payload_cap {
                *pending = Some(next);
                break;
            }
            bytes += size;
            batch.push(next);
        }
        Some(batch)
    }

    async fn commit(&self, next_offset: i64) {
        let partition = self.control.partition;
        match self.committer.commit(partition, next_offset).await {
            Ok(()) => self.control.committed.store(next_offset, Ordering::Relaxed),
            Err(CommitError::Closed) => {
                tracing::debug!(
                    partition,
                    next_offset,
                    "consumer closed; offset not committed"
                )
            }
            Err(e) => tracing::warn!(partition, next_offset, error = %e, "offset commit failed"),
        }
    }
}

/// Size of the record's JSON form (base64 grows bytes by 4/3), for the payload cap.
pub(crate) fn estimated_json_size(r: &SourceRecord) -> usize {
    r.size() * 4 / 3 + 200 + r.headers.len() * 16
}

/// How long a revoke waits for a lane's batch in flight before abandoning it.
pub(crate) const DEFAULT_REVOKE_TIMEOUT: Duration = Duration::from_secs(15);

#[cfg(test)]
#[path = "lane_tests.rs"]
mod tests;
