//! Delivering one batch under the failure rules of `failure-handling.md`: attempts, retries with
//! backoff, bisection, partial batch failures, the record-age check, and giving records up (to the
//! dead-letter destination, or discarded). Progress is committed as it is made, in offset order:
//! after each part of the batch is delivered or given up, the partition's committed offset moves
//! to the first record not done yet, and while a part fails its failure history is stored with
//! that offset (commit metadata), so a restart or a new owner continues the count.
//!
//! The batch is worked on as [`Span`]s: runs of the records the filter kept, in order. A batch
//! starts as one span; bisection replaces a failing span by its two halves, first half first; a
//! partial failure shortens a span to the records from the first failed one on.

use std::collections::VecDeque;
use std::time::SystemTime;

use tracing::Instrument;

use super::lane::{CommitError, Committer, LaneControl, StoredRetry};
use super::process::{body_text, BatchProcessor, Stage};
use super::retry::{Decision, RetryState};
use crate::dead_letter::{Condition, DeadLetter, Failure};
use crate::execution_log::{end_step, Data, Step};
use crate::record::SourceRecord;
use crate::targets::{Event, ItemIdentifier, TargetError};
use crate::traces::{self, ExecutionAttributes};

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every record was delivered, filtered out or given up, and committed.
    Done,
    /// Given up because the lane is stopping; nothing past the delivered part is committed.
    Abandoned,
}

/// A run of kept records `[start, end)` and its failure history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
    state: RetryState,
}

/// One batch being delivered.
pub(crate) struct Delivery<'a, C> {
    processor: &'a BatchProcessor,
    committer: &'a C,
    control: &'a LaneControl,
    /// The records the filter kept.
    kept: Vec<&'a SourceRecord>,
    /// Their events (for the enrichment when there is one, else for the target).
    events: Vec<Event>,
    /// Offset after the batch's last record (filtered ones included).
    batch_end: i64,
}

impl<'a, C: Committer> Delivery<'a, C> {
    pub fn new(
        processor: &'a BatchProcessor,
        committer: &'a C,
        control: &'a LaneControl,
        batch: &'a [SourceRecord],
    ) -> Self {
        processor.count_batch(batch);
        let kept = processor.filter(batch);
        let events = processor.inputs(&kept);
        Self {
            processor,
            committer,
            control,
            kept,
            events,
            batch_end: batch.last().map_or(0, |r| r.offset + 1),
        }
    }

    /// Deliver the batch; `resumed` is the failure history stored for its first record by a
    /// previous owner of the partition (or a previous run), if any.
    pub async fn run(self, resumed: Option<StoredRetry>) -> Outcome {
        let started = std::time::Instant::now();
        if self.kept.is_empty() {
            self.processor.metrics().target_stage_skipped.inc();
            self.commit(self.batch_end, None).await;
            return Outcome::Done;
        }
        let _inflight = self.processor.in_flight();
        let mut work = VecDeque::new();
        let n = self.kept.len();
        match resumed {
            // The stored failure belongs to the first `len` records (the span that was failing).
            Some(r) if r.len > 0 && r.len < n => {
                work.push_back(Span {
                    start: 0,
                    end: r.len,
                    state: r.state,
                });
                work.push_back(Span {
                    start: r.len,
                    end: n,
                    state: RetryState::default(),
                });
            }
            Some(r) => work.push_back(Span {
                start: 0,
                end: n,
                state: r.state,
            }),
            None => work.push_back(Span {
                start: 0,
                end: n,
                state: RetryState::default(),
            }),
        }
        while let Some(span) = work.pop_front() {
            if self.run_span(span, &mut work).await == Outcome::Abandoned {
                return Outcome::Abandoned;
            }
        }
        self.processor.observe_duration(started);
        Outcome::Done
    }

    /// Attempt `span` until it is delivered, given up or replaced by its halves. Each attempt
    /// is an execution: logged (`LogConfiguration`) and traced (`pipe.execution`).
    async fn run_span(&self, mut span: Span, work: &mut VecDeque<Span>) -> Outcome {
        let policy = self.processor.policy();
        loop {
            let trace = self.trace(&span);
            if let Some(condition) = policy.check_age(self.oldest(&span), now_ms()) {
                traces::finish(&trace, "expired");
                let failure = self.failure(condition, &span, None);
                return self.give_up(span, failure).instrument(trace).await;
            }
            let events = &self.events[span.start..span.end];
            let exec = self.processor.execution();
            exec.log(Step::ExecutionStarted, None, || Data {
                payload: Some(body_text(events)),
                ..Data::default()
            });
            let attempt = self
                .processor
                .attempt(events, &exec)
                .instrument(trace.clone());
            let result = tokio::select! {
                biased;
                _ = self.control.abandon.cancelled() => return Outcome::Abandoned,
                r = attempt => r,
            };
            let mut partial = false;
            let failure = match result {
                Ok(delivered) => match self.reported_failure(&span, &delivered.item_failures) {
                    None => {
                        exec.step(Step::ExecutionSucceeded);
                        traces::finish(&trace, "succeeded");
                        self.delivered(span.end - span.start);
                        self.commit(self.position(span.end), None).await;
                        return Outcome::Done;
                    }
                    Some(Ok(first_failed)) => {
                        partial = true;
                        self.processor.metrics().partial_batch_failures.inc();
                        self.advance(&mut span, first_failed).await;
                        None
                    }
                    // An identifier naming no record of the batch fails the whole batch.
                    Some(Err(e)) => Some((Stage::Target, e)),
                },
                Err((stage, err)) => {
                    if self.isolate(&span, &err, work) {
                        exec.log(end_step(Some(&err), false), Some(&err), Data::default);
                        traces::finish(&trace, "isolated");
                        return Outcome::Done;
                    }
                    if let Some(i) = self.partial_entry(&err) {
                        partial = true;
                        self.processor.metrics().partial_batch_failures.inc();
                        let at = span.start + i;
                        self.advance(&mut span, at).await;
                    }
                    Some((stage, err))
                }
            };
            let err = failure.as_ref().map(|(_, e)| e);
            let end = end_step(err, partial);
            exec.log(end, err, Data::default);
            traces::finish(&trace, outcome_name(end));
            span.state.record_failure(now_ms());
            let decision = policy.decide(&span.state, span.end - span.start, err);
            self.processor.log_failure(
                self.control.partition,
                self.range(&span),
                span.state.attempts,
                &decision,
                failure.as_ref(),
            );
            match decision {
                Decision::Retry(wait) => {
                    self.processor.metrics().retries.inc();
                    if policy.settings.bounded() {
                        let stored = StoredRetry {
                            state: span.state,
                            len: span.end - span.start,
                        };
                        // The next owner resumes from the stored count: no attempt is made
                        // until it holds this one (a commit fails during a rebalance).
                        while !self.commit(self.position(span.start), Some(&stored)).await {
                            if !self.pause(wait).await {
                                return Outcome::Abandoned;
                            }
                        }
                    }
                    if !self.pause(wait).await {
                        return Outcome::Abandoned;
                    }
                }
                Decision::Split(wait) => {
                    self.processor.metrics().bisections.inc();
                    let mid = span.start + (span.end - span.start).div_ceil(2);
                    let fresh = RetryState::default();
                    work.push_front(Span {
                        start: mid,
                        end: span.end,
                        state: fresh,
                    });
                    work.push_front(Span {
                        start: span.start,
                        end: mid,
                        state: fresh,
                    });
                    return if self.pause(wait).await {
                        Outcome::Done
                    } else {
                        Outcome::Abandoned
                    };
                }
                Decision::GiveUp(condition) => {
                    let failure = self.failure(condition, &span, failure.as_ref());
                    return self.give_up(span, failure).instrument(trace).await;
                }
            }
        }
    }

    /// The `pipe.execution` span of the next attempt at `span` (disabled when spans are not
    /// exported, so nothing is computed then).
    fn trace(&self, span: &Span) -> tracing::Span {
        let records = &self.kept[span.start..span.end];
        traces::execution_span(
            &ExecutionAttributes {
                pipe_arn: self.processor.arn(),
                topic: &self.processor.record_json().topic,
                partition: self.control.partition,
                offsets: self.range(span),
                size: records.len(),
                attempt: span.state.attempts + 1,
            },
            records,
        )
    }

    /// With `ReportBatchItemFailures`, the first record of `span` the target named as failed:
    /// `None` when it named none, an error when it named a record that is not in the span.
    fn reported_failure(
        &self,
        span: &Span,
        ids: &[ItemIdentifier],
    ) -> Option<Result<usize, TargetError>> {
        if ids.is_empty() || !self.processor.policy().settings.report_item_failures {
            return None;
        }
        let topic = &self.processor.record_json().topic;
        let mut first = usize::MAX;
        for id in ids {
            let found = (span.start..span.end).find(|&i| {
                let r = self.kept[i];
                id.offset == r.offset && id.partition == format!("{topic}-{}", r.partition)
            });
            match found {
                Some(i) => first = first.min(i),
                None => {
                    return Some(Err(TargetError::Request(format!(
                        "batchItemFailures names {} offset {}, which is not a record of the batch",
                        id.partition, id.offset
                    ))))
                }
            }
        }
        Some(Ok(first))
    }

    /// With `ReportBatchItemFailures` and events that are the kept records one to one (no
    /// enrichment), the index in the span of the first entry a batch API refused.
    fn partial_entry(&self, err: &TargetError) -> Option<usize> {
        let settings = &self.processor.policy().settings;
        if !settings.report_item_failures || self.processor.has_enrichment() {
            return None;
        }
        err.failed_entry()
    }

    /// With a dead-letter destination, a record that fails the same way every time (too large)
    /// becomes a span of its own between the records before and after it, which start afresh:
    /// it is then given up alone, at once.
    fn isolate(&self, span: &Span, err: &TargetError, work: &mut VecDeque<Span>) -> bool {
        let settings = &self.processor.policy().settings;
        let Some(i) = err.deterministic_entry() else {
            return false;
        };
        let at = span.start + i;
        if !settings.dead_letter
            || self.processor.has_enrichment()
            || span.end - span.start < 2
            || at >= span.end
        {
            return false;
        }
        let fresh = RetryState::default();
        let parts = [(span.start, at), (at, at + 1), (at + 1, span.end)];
        for (start, end) in parts.into_iter().rev().filter(|(s, e)| s < e) {
            work.push_front(Span {
                start,
                end,
                state: fresh,
            });
        }
        true
    }

    /// The records of `span` before `first_failed` are done: commit past them and keep trying the
    /// rest (the failure history stays with it).
    async fn advance(&self, span: &mut Span, first_failed: usize) {
        let first_failed = first_failed.min(span.end - 1);
        if first_failed > span.start {
            self.delivered(first_failed - span.start);
            span.start = first_failed;
            self.commit(self.position(span.start), None).await;
        }
    }

    fn delivered(&self, records: usize) {
        self.processor
            .metrics()
            .records_delivered
            .inc_by(records as u64);
    }

    /// Dead-letter (or discard) `span`, then commit past it. Only a stopping lane interrupts a
    /// dead-letter write that keeps failing; nothing is committed past it then.
    async fn give_up(&self, span: Span, failure: Failure) -> Outcome {
        let records = &self.kept[span.start..span.end];
        let letter = DeadLetter {
            records,
            events: &self.events[span.start..span.end],
            failure: &failure,
        };
        let mut attempts = 0;
        loop {
            let write = self
                .processor
                .dead_letter(&letter)
                .instrument(traces::dead_letter_span(records.len()));
            let written = tokio::select! {
                biased;
                _ = self.control.abandon.cancelled() => return Outcome::Abandoned,
                r = write => r,
            };
            match written {
                Ok(()) => break,
                Err(e) => {
                    attempts += 1;
                    let wait = self.processor.policy().backoff(attempts, Some(&e));
                    tracing::warn!(partition = self.control.partition, first_offset = records[0].offset,
                        attempt = attempts, retry_in_ms = wait.as_millis() as u64, error = %e,
                        "the dead-letter write failed; the partition waits and retries it");
                    if !self.pause(wait).await {
                        return Outcome::Abandoned;
                    }
                }
            }
        }
        self.commit(self.position(span.end), None).await;
        Outcome::Done
    }

    fn failure(
        &self,
        condition: Condition,
        span: &Span,
        last: Option<&(Stage, TargetError)>,
    ) -> Failure {
        Failure {
            condition,
            stage: last.map(|(stage, _)| stage.as_str()),
            attempts: span.state.attempts,
            status: last.and_then(|(_, e)| e.status_code()),
            message: last.map(|(_, e)| e.to_string()).unwrap_or_default(),
            at: SystemTime::now(),
        }
    }

    /// Wait before the next attempt; `false` when the lane is draining (a batch waiting to retry
    /// is not in flight: the next owner of the partition starts it again).
    async fn pause(&self, wait: std::time::Duration) -> bool {
        tokio::select! {
            biased;
            _ = self.control.drain.cancelled() => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }

    /// The commit position once the first `done` kept records are done: the next kept record,
    /// or past the whole batch.
    fn position(&self, done: usize) -> i64 {
        self.kept.get(done).map_or(self.batch_end, |r| r.offset)
    }

    fn oldest(&self, span: &Span) -> i64 {
        self.kept[span.start..span.end]
            .iter()
            .map(|r| r.timestamp)
            .min()
            .unwrap_or(i64::MAX)
    }

    fn range(&self, span: &Span) -> (i64, i64) {
        (self.kept[span.start].offset, self.kept[span.end - 1].offset)
    }

    /// Commit `next_offset`; whether it was committed.
    async fn commit(&self, next_offset: i64, retry: Option<&StoredRetry>) -> bool {
        let partition = self.control.partition;
        match self.committer.commit(partition, next_offset, retry).await {
            Ok(()) => {
                self.control.record_commit(next_offset);
                true
            }
            Err(CommitError::Closed) => {
                tracing::debug!(
                    partition,
                    next_offset,
                    "consumer closed; offset not committed"
                );
                false
            }
            Err(e) => {
                tracing::warn!(partition, next_offset, error = %e, "offset commit failed");
                false
            }
        }
    }
}

/// The `pipe.outcome` of a span whose execution ended with `step`.
fn outcome_name(step: Step) -> &'static str {
    match step {
        Step::ExecutionSucceeded => "succeeded",
        Step::ExecutionPartiallyFailed => "partially_failed",
        Step::ExecutionThrottled => "throttled",
        Step::ExecutionTimeout => "timeout",
        _ => "failed",
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
