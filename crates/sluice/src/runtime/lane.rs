//! A lane: the ordered worker of one assigned partition. It takes the partition's records in offset
//! order, cuts them into batches (`BatchSize`, batching window, payload cap), runs each batch through
//! filter -> template -> enrichment (optional; its response replaces the batch) -> target with the
//! retry policy, and commits the partition's offset only after
//! the batch succeeded. One batch in flight per partition; lanes of different partitions run in
//! parallel.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures::FutureExt;
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::retry::{Decision, RetryState};
use super::Shared;
use crate::sources::kafka::record::SourceRecord;
use crate::sources::kafka::{KafkaConsumer, SourceContext};
use crate::targets::{Event, TargetError};

/// Cap on a batch's payload in batch delivery (Lambda's 6 MB request limit).
const BATCH_PAYLOAD_CAP: usize = 6 * 1024 * 1024;

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

/// How one attempt at a batch ended well.
enum Attempt {
    /// The target accepted this many events.
    Delivered(usize),
    /// The enrichment answered "nothing to deliver".
    Skipped,
}

/// How a batch ended.
enum Outcome {
    /// Delivered (or entirely filtered out): commit up to here.
    Done,
    /// Given up because the lane is stopping; nothing is committed.
    Abandoned,
}

pub(crate) struct Lane {
    pub shared: Arc<Shared>,
    pub control: Arc<LaneControl>,
    /// Records that reached the main queue before the partition queue was split (read first:
    /// they precede everything in the partition queue).
    pub rx: mpsc::UnboundedReceiver<SourceRecord>,
    /// The partition's own librdkafka queue.
    pub queue: Option<StreamPartitionQueue<SourceContext>>,
    pub consumer: Weak<KafkaConsumer>,
}

impl Lane {
    pub async fn run(mut self) {
        let p = self.control.partition;
        let batch_size = self.shared.spec.source.batch_size;
        let window = self.shared.spec.source.batching_window;
        let cap = if self.shared.batch_payload_capped {
            BATCH_PAYLOAD_CAP
        } else {
            usize::MAX
        };
        let mut pending: Option<SourceRecord> = None;
        let drain = self.control.drain.clone();
        tracing::debug!(partition = p, "lane started");
        'lanes: loop {
            let first = match pending.take() {
                Some(r) => r,
                None => tokio::select! {
                    biased;
                    _ = drain.cancelled() => break,
                    r = self.next() => r,
                },
            };
            let mut bytes = estimated_json_size(&first);
            let mut batch = Vec::with_capacity(batch_size.min(1024));
            batch.push(first);
            let deadline = tokio::time::Instant::now() + window;
            while batch.len() < batch_size {
                let next = if window.is_zero() {
                    match self.next().now_or_never() {
                        Some(r) => r,
                        None => break,
                    }
                } else {
                    tokio::select! {
                        biased;
                        // A batch still being collected is not in flight: drop it, the next
                        // owner of the partition reads it again.
                        _ = drain.cancelled() => break 'lanes,
                        _ = tokio::time::sleep_until(deadline) => break,
                        r = self.next() => r,
                    }
                };
                let size = estimated_json_size(&next);
                if bytes + size > cap {
                    pending = Some(next);
                    break;
                }
                bytes += size;
                batch.push(next);
            }
            let next_offset = batch.last().map_or(0, |r| r.offset + 1);
            match self.execute(&batch).await {
                Outcome::Done => self.commit(next_offset).await,
                Outcome::Abandoned => break,
            }
            if self.control.drain.is_cancelled() {
                break;
            }
        }
        tracing::debug!(partition = p, "lane stopped");
    }

    /// The partition's next record: first any that came through the main queue, then the
    /// partition queue. Consumer errors (a broker restarting...) are logged and skipped over.
    async fn next(&mut self) -> SourceRecord {
        loop {
            if let Ok(r) = self.rx.try_recv() {
                return r;
            }
            let Some(queue) = &self.queue else {
                // No partition queue (the consumer was closing): only the main queue feeds us.
                match self.rx.recv().await {
                    Some(r) => return r,
                    None => std::future::pending::<()>().await,
                }
                continue;
            };
            tokio::select! {
                biased;
                r = self.rx.recv(), if !self.rx.is_closed() => {
                    if let Some(r) = r {
                        return r;
                    }
                }
                m = queue.recv() => match m {
                    Ok(m) => return SourceRecord::from_message(&m),
                    Err(e) => tracing::warn!(partition = self.control.partition, error = %e, "consumer error"),
                },
            }
        }
    }

    async fn execute(&self, batch: &[SourceRecord]) -> Outcome {
        let s = &self.shared;
        let m = &s.metrics;
        let started = Instant::now();
        m.invocations.inc();
        m.event_count.inc_by(batch.len() as u64);
        m.event_size
            .inc_by(batch.iter().map(SourceRecord::size).sum::<usize>() as u64);

        let kept: Vec<&SourceRecord> = match &s.spec.filter {
            Some(f) => batch
                .iter()
                .filter(|r| f.matches(&s.record_ctx, r))
                .collect(),
            None => batch.iter().collect(),
        };
        let dropped = batch.len() - kept.len();
        if dropped > 0 {
            m.records_filtered.inc_by(dropped as u64);
        }
        if kept.is_empty() {
            m.target_stage_skipped.inc();
            m.duration.observe(started.elapsed().as_secs_f64());
            return Outcome::Done;
        }
        // With an enrichment, its input is built once and the enrichment runs again on every
        // attempt: the batch is retried whole, both stages.
        let inputs: Vec<Event> = if s.enrichment.is_some() {
            kept.iter().map(|r| s.enrichment_event(r)).collect()
        } else {
            kept.iter().map(|r| s.event(r)).collect()
        };

        let _concurrency = ConcurrencyGuard::new(m);
        let mut retry = RetryState::new();
        loop {
            let result = tokio::select! {
                biased;
                _ = self.control.abandon.cancelled() => return Outcome::Abandoned,
                r = self.attempt(&inputs) => r,
            };
            let (stage, err) = match result {
                Ok(Attempt::Delivered(n)) => {
                    m.records_delivered.inc_by(n as u64);
                    m.duration.observe(started.elapsed().as_secs_f64());
                    return Outcome::Done;
                }
                Ok(Attempt::Skipped) => {
                    m.target_stage_skipped.inc();
                    m.duration.observe(started.elapsed().as_secs_f64());
                    return Outcome::Done;
                }
                Err(e) => e,
            };
            m.execution_failed.inc();
            if err.is_throttle() {
                m.execution_throttled.inc();
            }
            if err.is_timeout() {
                m.execution_timeout.inc();
            }
            retry.record_failure();
            let Decision::RetryAfter(wait) = s.policy.decide(&retry, &err);
            m.retries.inc();
            let first = batch.first().map_or(0, |r| r.offset);
            let last = batch.last().map_or(0, |r| r.offset);
            if err.is_user_error() {
                tracing::error!(pipe = %s.spec.name, partition = self.control.partition, first_offset = first, last_offset = last,
                    attempt = retry.attempts, retry_in_ms = wait.as_millis() as u64, stage, error = %err,
                    "the batch was rejected; only a change to the target, the enrichment or the pipe can fix this; retrying");
            } else {
                tracing::warn!(pipe = %s.spec.name, partition = self.control.partition, first_offset = first, last_offset = last,
                    attempt = retry.attempts, retry_in_ms = wait.as_millis() as u64, stage, error = %err,
                    "batch failed; retrying it whole");
            }
            tokio::select! {
                biased;
                _ = self.control.drain.cancelled() => return Outcome::Abandoned,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One attempt at a batch: the enrichment (if any), whose response replaces the batch, then
    /// the target. The error names the stage that failed.
    async fn attempt(&self, inputs: &[Event]) -> Result<Attempt, (&'static str, TargetError)> {
        let s = &self.shared;
        let m = &s.metrics;
        let enriched: Vec<Event>;
        let events = match &s.enrichment {
            None => inputs,
            Some(enrichment) => {
                let t = Instant::now();
                let result = enrichment.enrich(inputs).await;
                m.enrichment_stage_duration
                    .observe(t.elapsed().as_secs_f64());
                let items = result
                    .and_then(|items| {
                        if items.len() > s.max_batch {
                            Err(TargetError::Request(format!(
                                "the enrichment returned {} items; the target accepts at most {} per batch",
                                items.len(),
                                s.max_batch
                            )))
                        } else {
                            Ok(items)
                        }
                    })
                    .inspect_err(|_| {
                        m.enrichment_stage_failed.inc();
                    })
                    .map_err(|e| ("enrichment", e))?;
                if items.is_empty() {
                    return Ok(Attempt::Skipped);
                }
                enriched = items.into_iter().map(|v| s.event_from_item(v)).collect();
                &enriched
            }
        };
        let t = Instant::now();
        let result = s.target.deliver(events).await;
        m.target_stage_duration.observe(t.elapsed().as_secs_f64());
        match result {
            Ok(()) => Ok(Attempt::Delivered(events.len())),
            Err(e) => {
                m.target_stage_failed.inc();
                Err(("target", e))
            }
        }
    }

    /// Commit `next_offset` for the partition and wait for the broker's answer, so that a crash
    /// right after can only repeat the batch in flight, never an older one.
    async fn commit(&self, next_offset: i64) {
        let Some(consumer) = self.consumer.upgrade() else {
            return;
        };
        let topic = self.shared.record_ctx.topic.clone();
        let partition = self.control.partition;
        let result = tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, partition, Offset::Offset(next_offset))?;
            consumer.commit(&tpl, CommitMode::Sync)
        })
        .await;
        match result {
            Ok(Ok(())) => {
                self.control.committed.store(next_offset, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                // Typically the partition moved to another member; it re-reads from the last
                // committed offset, so the batch may be delivered again, never lost.
                tracing::warn!(partition, next_offset, error = %e, "offset commit failed");
            }
            Err(e) => tracing::error!(partition, error = %e, "offset commit task failed"),
        }
    }
}

/// Keeps the `Concurrency` gauge right on every way out of an execution.
struct ConcurrencyGuard<'a>(&'a crate::metrics::PipeMetrics);

impl<'a> ConcurrencyGuard<'a> {
    fn new(m: &'a crate::metrics::PipeMetrics) -> Self {
        m.concurrency.inc();
        Self(m)
    }
}

impl Drop for ConcurrencyGuard<'_> {
    fn drop(&mut self) {
        self.0.concurrency.dec();
    }
}

/// Size of the record's JSON form (base64 grows bytes by 4/3), for the payload cap.
fn estimated_json_size(r: &SourceRecord) -> usize {
    r.size() * 4 / 3 + 200 + r.headers.len() * 16
}

/// How long a revoke waits for a lane's batch in flight before abandoning it.
pub(crate) const DEFAULT_REVOKE_TIMEOUT: Duration = Duration::from_secs(15);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::kafka::record::TimestampType;

    #[test]
    fn size_estimate_covers_the_base64_json() {
        let r = SourceRecord {
            partition: 0,
            offset: 0,
            timestamp: 0,
            timestamp_type: TimestampType::CreateTime,
            key: Some(vec![1; 30]),
            value: Some(vec![2; 3000]),
            headers: vec![("h".into(), Some(vec![200; 10]))],
        };
        let ctx = crate::sources::kafka::record::RecordContext::self_managed("topic", "h:1");
        // Header bytes render as up to 5 characters each; the estimate leaves room for a few.
        assert!(estimated_json_size(&r) >= ctx.to_json(&r).len() - 50);
    }
}
