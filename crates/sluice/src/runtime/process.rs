//! The stages a batch goes through, one attempt at a time: filter -> events -> enrichment
//! (optional; its answer replaces the batch) -> target, and the dead-letter write of records given
//! up. [`BatchProcessor`] holds what that needs (and the retry policy) and nothing about Kafka,
//! partitions or offsets: [`super::delivery`] decides what to try next and what to commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use super::limit::CallLimit;
use super::retry::{Decision, RetryPolicy};
use crate::dead_letter::{DeadLetter, DeadLetterSink};
use crate::enrichment::Enricher;
use crate::execution_log::{Data, Execution, ExecutionLog, Step};
use crate::metrics::PipeMetrics;
use crate::model::{HttpDelivery, PipeSpec};
use crate::record::SourceRecord;
use crate::targets::http::batch_body;
use crate::targets::{Delivered, Event, Target, TargetConfig, TargetError};
use crate::transforms::event::EventBuilder;
use crate::transforms::record_json::RecordJson;
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

/// The stage of an attempt that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The enrichment call (or its answer).
    Enrichment,
    /// The target call.
    Target,
}

impl Stage {
    /// The name in logs and dead letters.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Enrichment => "enrichment",
            Stage::Target => "target",
        }
    }
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
    dead_letter: Option<Arc<dyn DeadLetterSink>>,
    /// Target calls of the pipe in flight, shared by its lanes.
    calls: CallLimit,
    /// Sub-lanes per partition.
    parallelization: usize,
    /// Least time between two offset commits of a partition.
    commit_interval: Duration,
    metrics: PipeMetrics,
    limits: BatchLimits,
    /// The pipe's ARN, for traces.
    arn: String,
    /// Execution logs, when the level is not `OFF`.
    execution_log: Option<Arc<ExecutionLog>>,
    /// Whether the target's and the enrichment's events are rendered by an `InputTemplate`
    /// (their transformation steps are logged).
    templates: (bool, bool),
}

impl BatchProcessor {
    /// The processor of `spec`, delivering to the built `target` (and `enrichment`).
    pub fn new(
        spec: &PipeSpec,
        events: EventBuilder,
        stages: Stages,
        metrics: PipeMetrics,
    ) -> Self {
        Self {
            pipe: spec.name.clone(),
            filter: spec.filter.clone(),
            events,
            enrichment: stages.enrichment,
            target: stages.target,
            max_target_batch: spec.target.max_batch(),
            policy: RetryPolicy::new(spec.max_retry_backoff, spec.failure.clone()),
            dead_letter: stages.dead_letter,
            calls: CallLimit::new(
                spec.concurrency.max_concurrency,
                spec.concurrency.adaptive,
                metrics.clone(),
            ),
            parallelization: spec.concurrency.parallelization,
            commit_interval: spec.commit_interval,
            metrics,
            limits: BatchLimits::of(spec),
            arn: spec.arn.clone(),
            execution_log: stages.execution_log,
            templates: (
                spec.target_template.is_some(),
                spec.enrichment_template.is_some(),
            ),
        }
    }

    /// The pipe's ARN.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// A new execution: logged when the pipe has execution logs.
    pub fn execution(&self) -> Execution<'_> {
        match &self.execution_log {
            Some(log) => log.begin(),
            None => Execution::off(),
        }
    }

    /// The pipe's execution logs, to close when the pipe stops.
    pub fn execution_log(&self) -> Option<&Arc<ExecutionLog>> {
        self.execution_log.as_ref()
    }

    /// How batches are cut.
    pub fn limits(&self) -> BatchLimits {
        self.limits
    }

    /// The pipe's metrics.
    pub fn metrics(&self) -> &PipeMetrics {
        &self.metrics
    }

    /// Sub-lanes per partition (`ParallelizationFactor`).
    pub fn parallelization(&self) -> usize {
        self.parallelization
    }

    /// Least time between two offset commits of a partition (`OffsetCommitIntervalSeconds`);
    /// zero commits after every batch.
    pub fn commit_interval(&self) -> Duration {
        self.commit_interval
    }

    /// The retry policy and failure settings.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The record's JSON forms.
    pub fn record_json(&self) -> &RecordJson {
        self.events.record_json()
    }

    /// Whether an enrichment replaces the batch (its events are then not the records one to one).
    pub fn has_enrichment(&self) -> bool {
        self.enrichment.is_some()
    }

    /// Count a batch that entered the pipe.
    pub fn count_batch(&self, batch: &[SourceRecord]) {
        let m = &self.metrics;
        m.invocations.inc();
        m.event_count.inc_by(batch.len() as u64);
        m.event_size
            .inc_by(batch.iter().map(SourceRecord::size).sum::<usize>() as u64);
    }

    /// Record the time a batch took, retries included.
    pub fn observe_duration(&self, started: Instant) {
        self.metrics
            .duration
            .observe(started.elapsed().as_secs_f64());
    }

    /// Keeps the `Concurrency` gauge up while the guard lives.
    pub fn in_flight(&self) -> ConcurrencyGuard<'_> {
        ConcurrencyGuard::new(&self.metrics)
    }

    /// The records of `batch` the filter keeps (all of them without a filter).
    pub fn filter<'a>(&self, batch: &'a [SourceRecord]) -> Vec<&'a SourceRecord> {
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

    /// The events of the kept records: for the enrichment when the pipe has one (it runs again on
    /// every attempt, so the batch is retried whole, both stages), else for the target.
    pub fn inputs(&self, kept: &[&SourceRecord]) -> Vec<Event> {
        if self.enrichment.is_some() {
            kept.iter().map(|r| self.events.for_enrichment(r)).collect()
        } else {
            self.events.for_targets(kept)
        }
    }

    /// One attempt at a batch: the enrichment (if any), whose response replaces the batch, then
    /// the target, each step logged on `exec` and traced as a child of the current span. The
    /// error names the stage that failed.
    pub async fn attempt(
        &self,
        inputs: &[Event],
        exec: &Execution<'_>,
    ) -> Result<Delivered, (Stage, TargetError)> {
        let enriched: Vec<Event>;
        let events = match &self.enrichment {
            None => {
                exec.step(Step::EnrichmentInvocationSkipped);
                inputs
            }
            Some(enrichment) => {
                let stage = self.enrich(enrichment.as_ref(), inputs, exec);
                match stage.instrument(crate::traces::enrichment_span()).await {
                    Ok(items) if items.is_empty() => {
                        exec.step(Step::TargetStageSkipped);
                        self.metrics.target_stage_skipped.inc();
                        return Ok(Delivered::default());
                    }
                    Ok(items) => {
                        enriched = items;
                        &enriched
                    }
                    Err(e) => return Err((Stage::Enrichment, e)),
                }
            }
        };
        self.target_stage(events, exec)
            .instrument(crate::traces::target_span())
            .await
            .map_err(|e| (Stage::Target, e))
    }

    /// The target stage of an attempt: its transformation (logged when there is a template;
    /// the events were rendered before), the call, and the partial or full failure.
    async fn target_stage(
        &self,
        events: &[Event],
        exec: &Execution<'_>,
    ) -> Result<Delivered, TargetError> {
        exec.step(Step::TargetStageEntered);
        if self.templates.0 {
            exec.step(Step::TargetTransformationStarted);
            exec.log(Step::TargetTransformationSucceeded, None, || Data {
                payload: Some(body_text(events)),
                ..Data::default()
            });
        }
        exec.log(Step::TargetInvocationStarted, None, || Data {
            request: Some(body_text(events)),
            ..Data::default()
        });
        let m = &self.metrics;
        let permit = self.calls.acquire().await;
        let t = Instant::now();
        let result = self.target.deliver(events).await;
        m.target_stage_duration.observe(t.elapsed().as_secs_f64());
        permit.finish(result.as_ref().is_err_and(TargetError::is_overload));
        let report = self.policy.settings.report_item_failures;
        match &result {
            Ok(d) if report && !d.item_failures.is_empty() => {
                let response = || Data {
                    response: Some(item_failures_text(&d.item_failures)),
                    ..Data::default()
                };
                exec.log(Step::TargetInvocationPartiallyFailed, None, response);
                exec.step(Step::TargetStagePartiallyFailed);
            }
            Ok(_) => {
                exec.step(Step::TargetInvocationSucceeded);
                exec.step(Step::TargetStageSucceeded);
            }
            Err(e) if report && e.failed_entry().is_some() && self.enrichment.is_none() => {
                m.target_stage_failed.inc();
                exec.log(
                    Step::TargetInvocationPartiallyFailed,
                    Some(e),
                    Data::default,
                );
                exec.log(Step::TargetStagePartiallyFailed, Some(e), Data::default);
            }
            Err(e) => {
                m.target_stage_failed.inc();
                exec.log(Step::TargetInvocationFailed, Some(e), Data::default);
                exec.log(Step::TargetStageFailed, Some(e), Data::default);
            }
        }
        result
    }

    /// Write given-up records to the dead-letter destination, or discard them (logged at ERROR)
    /// when the pipe has none.
    pub async fn dead_letter(&self, letter: &DeadLetter<'_>) -> Result<(), TargetError> {
        let n = letter.records.len() as u64;
        let condition = letter.failure.condition.as_str();
        match &self.dead_letter {
            Some(sink) => {
                sink.write(letter).await?;
                self.metrics.dead_lettered(condition).inc_by(n);
            }
            None => {
                let first = letter.records.first().map_or(0, |r| r.offset);
                let last = letter.records.last().map_or(0, |r| r.offset);
                let partition = letter.records.first().map_or(0, |r| r.partition);
                tracing::error!(pipe = %self.pipe, topic = %self.record_json().topic, partition,
                    first_offset = first, last_offset = last, records = n, condition,
                    attempts = letter.failure.attempts, error = %letter.failure.message,
                    "records given up and discarded (the pipe has no DeadLetterConfig)");
                self.metrics.records_discarded.inc_by(n);
            }
        }
        Ok(())
    }

    /// The enrichment stage: its transformation (logged when there is a template), the call,
    /// and its answer as the target's events.
    async fn enrich(
        &self,
        enrichment: &dyn Enricher,
        inputs: &[Event],
        exec: &Execution<'_>,
    ) -> Result<Vec<Event>, TargetError> {
        exec.step(Step::EnrichmentStageEntered);
        if self.templates.1 {
            exec.step(Step::EnrichmentTransformationStarted);
            exec.log(Step::EnrichmentTransformationSucceeded, None, || Data {
                payload: Some(body_text(inputs)),
                ..Data::default()
            });
        }
        exec.log(Step::EnrichmentInvocationStarted, None, || Data {
            request: Some(body_text(inputs)),
            ..Data::default()
        });
        let m = &self.metrics;
        let t = Instant::now();
        let result = enrichment.enrich(inputs).await;
        m.enrichment_stage_duration
            .observe(t.elapsed().as_secs_f64());
        match &result {
            Ok(items) => exec.log(Step::EnrichmentInvocationSucceeded, None, || Data {
                response: serde_json::to_string(items).ok(),
                ..Data::default()
            }),
            Err(e) => exec.log(Step::EnrichmentInvocationFailed, Some(e), Data::default),
        }
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
            Ok(items) => {
                exec.step(Step::EnrichmentStageSucceeded);
                Ok(items
                    .into_iter()
                    .map(|v| self.events.from_item(v))
                    .collect())
            }
            Err(e) => {
                m.enrichment_stage_failed.inc();
                exec.log(Step::EnrichmentStageFailed, Some(&e), Data::default);
                Err(e)
            }
        }
    }

    /// Count and log a failed attempt at the records `first..=last` and what follows it.
    pub fn log_failure(
        &self,
        partition: i32,
        (first, last): (i64, i64),
        attempts: u32,
        decision: &Decision,
        failure: Option<&(Stage, TargetError)>,
    ) {
        let m = &self.metrics;
        m.execution_failed.inc();
        let Some((stage, err)) = failure else {
            tracing::warn!(pipe = %self.pipe, partition, first_offset = first, last_offset = last,
                attempt = attempts, next = ?decision,
                "the target named failed records; retrying from the first of them");
            return;
        };
        if err.is_throttle() {
            m.execution_throttled.inc();
        }
        if err.is_timeout() {
            m.execution_timeout.inc();
        }
        let stage = stage.as_str();
        if err.is_user_error() {
            tracing::error!(pipe = %self.pipe, partition, first_offset = first, last_offset = last,
                attempt = attempts, next = ?decision, stage, error = %err,
                "the batch was rejected; only a change to the target, the enrichment or the pipe can fix this");
        } else {
            tracing::warn!(pipe = %self.pipe, partition, first_offset = first, last_offset = last,
                attempt = attempts, next = ?decision, stage, error = %err, "batch failed");
        }
    }
}

/// The built stages a batch goes through.
#[derive(Debug)]
pub(crate) struct Stages {
    /// The target.
    pub target: Arc<dyn Target>,
    /// The enrichment, when the pipe has one.
    pub enrichment: Option<Arc<dyn Enricher>>,
    /// The dead-letter destination, when the pipe has one.
    pub dead_letter: Option<Arc<dyn DeadLetterSink>>,
    /// Execution logs, when the pipe's level is not `OFF`.
    pub execution_log: Option<Arc<ExecutionLog>>,
}

/// Events as the JSON array a batch call carries (for execution data).
pub(crate) fn body_text(events: &[Event]) -> String {
    String::from_utf8_lossy(&batch_body(events)).into_owned()
}

/// The target's `batchItemFailures` in Lambda's shape (for execution data).
fn item_failures_text(items: &[crate::targets::ItemIdentifier]) -> String {
    let items: Vec<serde_json::Value> = items
        .iter()
        .map(|i| serde_json::json!({"itemIdentifier": {"partition": i.partition, "offset": i.offset}}))
        .collect();
    serde_json::json!({ "batchItemFailures": items }).to_string()
}

/// Keeps the `Concurrency` gauge right on every way out of an execution.
pub(crate) struct ConcurrencyGuard<'a>(&'a PipeMetrics);

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
