//! What a lane does with one batch: filter -> events -> enrichment (optional; its answer replaces
//! the batch) -> target, with the retry policy between failed attempts. [`BatchProcessor`] holds
//! what that needs and nothing about Kafka, partitions or offsets: the lane decides what to commit
//! from the [`Outcome`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::lane::LaneControl;
use super::retry::{Decision, RetryPolicy, RetryState};
use crate::enrichment::Enricher;
use crate::metrics::PipeMetrics;
use crate::model::{HttpDelivery, PipeSpec};
use crate::record::SourceRecord;
use crate::targets::{Event, Target, TargetConfig, TargetError};
use crate::transforms::event::EventBuilder;
use crate::transforms::Filter;

/// Cap on a batch's payload in batch delivery (Lambda's 6 MB request limit).
pub(crate) const BATCH_PAYLOAD_CAP: usize = 6 * 1024 * 1024;

/// How a lane cuts its partition's records into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchLimits {
    /// `BatchSize`.
    pub size: usize,
    /// `MaximumBatchingWindowInSeconds`.
    pub window: Duration,
    /// Most estimated JSON bytes in one batch (`usize::MAX`: no cap).
    pub payload_cap: usize,
}

impl BatchLimits {
    /// The limits of `spec`: its source's size and window, and the payload cap of HTTP batch
    /// delivery.
    pub fn of(spec: &PipeSpec) -> Self {
        let capped =
            matches!(&spec.target, TargetConfig::Http(h) if h.delivery == HttpDelivery::Batch);
        Self {
            size: spec.source.batch_size,
            window: spec.source.batching_window,
            payload_cap: if capped {
                BATCH_PAYLOAD_CAP
            } else {
                usize::MAX
            },
        }
    }
}

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Delivered (or entirely filtered out, or skipped by the enrichment): commit up to here.
    Done,
    /// Given up because the lane is stopping; nothing is committed.
    Abandoned,
}

/// How one attempt at a batch ended well.
enum Attempt {
    /// The target accepted this many events.
    Delivered(usize),
    /// The enrichment answered "nothing to deliver".
    Skipped,
}

/// Everything a lane needs to process a batch of its partition.
#[derive(Debug)]
pub(crate) struct BatchProcessor {
    /// The pipe's name, for logs.
    pipe: String,
    filter: Option<Arc<Filter>>,
    events: EventBuilder,
    enrichment: Option<Arc<dyn Enricher>>,
    target: Arc<dyn Target>,
    /// Most events one target delivery accepts (an enrichment answering more fails the batch).
    max_target_batch: usize,
    policy: RetryPolicy,
    metrics: PipeMetrics,
    limits: BatchLimits,
}

impl BatchProcessor {
    /// The processor of `spec`, delivering to the built `target` (and `enrichment`).
    pub fn new(
        spec: &PipeSpec,
        events: EventBuilder,
        target: Arc<dyn Target>,
        enrichment: Option<Arc<dyn Enricher>>,
        metrics: PipeMetrics,
    ) -> Self {
        Self {
            pipe: spec.name.clone(),
            filter: spec.filter.clone(),
            events,
            enrichment,
            target,
            max_target_batch: spec.target.max_batch(),
            policy: RetryPolicy::new(spec.max_retry_backoff),
            metrics,
            limits: BatchLimits::of(spec),
        }
    }

    /// How batches are cut.
    pub fn limits(&self) -> BatchLimits {
        self.limits
    }

    /// The pipe's metrics.
    pub fn metrics(&self) -> &PipeMetrics {
        &self.metrics
    }

    /// Process one batch of `control`'s partition until it succeeds or the lane gives it up.
    pub async fn execute(&self, batch: &[SourceRecord], control: &LaneControl) -> Outcome {
        let m = &self.metrics;
        let started = Instant::now();
        m.invocations.inc();
        m.event_count.inc_by(batch.len() as u64);
        m.event_size
            .inc_by(batch.iter().map(SourceRecord::size).sum::<usize>() as u64);
        let kept = self.filter(batch);
        if kept.is_empty() {
            m.target_stage_skipped.inc();
            m.duration.observe(started.elapsed().as_secs_f64());
            return Outcome::Done;
        }
        // With an enrichment, its input is built once and the enrichment runs again on every
        // attempt: the batch is retried whole, both stages.
        let inputs: Vec<Event> = if self.enrichment.is_some() {
            kept.iter().map(|r| self.events.for_enrichment(r)).collect()
        } else {
            kept.iter().map(|r| self.events.for_target(r)).collect()
        };
        let _concurrency = ConcurrencyGuard::new(m);
        let mut retry = RetryState::new();
        loop {
            let result = tokio::select! {
                biased;
                _ = control.abandon.cancelled() => return Outcome::Abandoned,
                r = self.attempt(&inputs) => r,
            };
            let (stage, err) = match result {
                Ok(attempt) => {
                    match attempt {
                        Attempt::Delivered(n) => {
                            m.records_delivered.inc_by(n as u64);
                        }
                        Attempt::Skipped => {
                            m.target_stage_skipped.inc();
                        }
                    }
                    m.duration.observe(started.elapsed().as_secs_f64());
                    return Outcome::Done;
                }
                Err(e) => e,
            };
            retry.record_failure();
            let Decision::RetryAfter(wait) = self.policy.decide(&retry, &err);
            self.count_failure(&err);
            self.log_failure(control.partition, batch, &retry, wait, stage, &err);
            tokio::select! {
                biased;
                _ = control.drain.cancelled() => return Outcome::Abandoned,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The records of `batch` the filter keeps (all of them without a filter).
    fn filter<'a>(&self, batch: &'a [SourceRecord]) -> Vec<&'a SourceRecord> {
        let kept: Vec<&SourceRecord> = match &self.filter {
            Some(f) => f.retain(self.events.record_json(), batch),
            None => batch.iter().collect(),
        };
        let dropped = batch.len() - kept.len();
        if dropped > 0 {
            self.metrics.records_filtered.inc_by(dropped as u64);
        }
        kept
    }

    /// One attempt at a batch: the enrichment (if any), whose response replaces the batch, then
    /// the target. The error names the stage that failed.
    async fn attempt(&self, inputs: &[Event]) -> Result<Attempt, (&'static str, TargetError)> {
        let enriched: Vec<Event>;
        let events = match &self.enrichment {
            None => inputs,
            Some(enrichment) => match self.enrich(enrichment.as_ref(), inputs).await {
                Ok(items) if items.is_empty() => return Ok(Attempt::Skipped),
                Ok(items) => {
                    enriched = items;
                    &enriched
                }
                Err(e) => return Err(("enrichment", e)),
            },
        };
        let m = &self.metrics;
        let t = Instant::now();
        let result = self.target.deliver(events).await;
        m.target_stage_duration.observe(t.elapsed().as_secs_f64());
        match result {
            Ok(()) => Ok(Attempt::Delivered(events.len())),
            Err(e) => {
                m.target_stage_failed.inc();
                Err(("target", e))
            }
        }
    }

    /// Call the enrichment; its answer as the target's events.
    async fn enrich(
        &self,
        enrichment: &dyn Enricher,
        inputs: &[Event],
    ) -> Result<Vec<Event>, TargetError> {
        let m = &self.metrics;
        let t = Instant::now();
        let result = enrichment.enrich(inputs).await;
        m.enrichment_stage_duration
            .observe(t.elapsed().as_secs_f64());
        let items = result.and_then(|items| {
            if items.len() > self.max_target_batch {
                Err(TargetError::Request(format!(
                    "the enrichment returned {} items; the target accepts at most {} per batch",
                    items.len(),
                    self.max_target_batch
                )))
            } else {
                Ok(items)
            }
        });
        match items {
            Ok(items) => Ok(items
                .into_iter()
                .map(|v| self.events.from_item(v))
                .collect()),
            Err(e) => {
                m.enrichment_stage_failed.inc();
                Err(e)
            }
        }
    }

    fn count_failure(&self, err: &TargetError) {
        let m = &self.metrics;
        m.execution_failed.inc();
        if err.is_throttle() {
            m.execution_throttled.inc();
        }
        if err.is_timeout() {
            m.execution_timeout.inc();
        }
        m.retries.inc();
    }

    fn log_failure(
        &self,
        partition: i32,
        batch: &[SourceRecord],
        retry: &RetryState,
        wait: Duration,
        stage: &str,
        err: &TargetError,
    ) {
        let first = batch.first().map_or(0, |r| r.offset);
        let last = batch.last().map_or(0, |r| r.offset);
        let wait_ms = wait.as_millis() as u64;
        if err.is_user_error() {
            tracing::error!(pipe = %self.pipe, partition, first_offset = first, last_offset = last,
                attempt = retry.attempts, retry_in_ms = wait_ms, stage, error = %err,
                "the batch was rejected; only a change to the target, the enrichment or the pipe can fix this; retrying");
        } else {
            tracing::warn!(pipe = %self.pipe, partition, first_offset = first, last_offset = last,
                attempt = retry.attempts, retry_in_ms = wait_ms, stage, error = %err,
                "batch failed; retrying it whole");
        }
    }
}

/// Keeps the `Concurrency` gauge right on every way out of an execution.
struct ConcurrencyGuard<'a>(&'a PipeMetrics);

impl<'a> ConcurrencyGuard<'a> {
    fn new(m: &'a PipeMetrics) -> Self {
        m.concurrency.inc();
        Self(m)
    }
}

impl Drop for ConcurrencyGuard<'_> {
    fn drop(&mut self) {
        self.0.concurrency.dec();
    }
}
