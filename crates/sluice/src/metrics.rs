//! Every metric Sluice exports, named in one place. The names follow the AWS Pipes metrics of
//! `observability.md` (snake_case, a `pipe` label, prefix `sluice_`), plus per-partition consumer
//! lag and our own counters. [`Metrics::encode`] renders the Prometheus text format.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Metric names and help texts (AWS name in parentheses where there is one).
pub mod names {
    /// (Invocations) batches executed.
    pub const INVOCATIONS: &str = "sluice_invocations";
    /// (EventCount) records that entered the pipe.
    pub const EVENT_COUNT: &str = "sluice_event_count";
    /// (EventSize) bytes of key, value and headers of records that entered the pipe.
    pub const EVENT_SIZE: &str = "sluice_event_size_bytes";
    /// (Duration) time from batch start to its success, retries included.
    pub const DURATION: &str = "sluice_duration_seconds";
    /// (Concurrency) batches executing now.
    pub const CONCURRENCY: &str = "sluice_concurrency";
    /// (ExecutionFailed) failed execution attempts.
    pub const EXECUTION_FAILED: &str = "sluice_execution_failed";
    /// (ExecutionThrottled) attempts the target throttled (429).
    pub const EXECUTION_THROTTLED: &str = "sluice_execution_throttled";
    /// (ExecutionTimeout) attempts that timed out.
    pub const EXECUTION_TIMEOUT: &str = "sluice_execution_timeout";
    /// (TargetStageDuration) time of one target call.
    pub const TARGET_STAGE_DURATION: &str = "sluice_target_stage_duration_seconds";
    /// (TargetStageFailed) failed target calls.
    pub const TARGET_STAGE_FAILED: &str = "sluice_target_stage_failed";
    /// (EnrichmentStageDuration) time of one enrichment call (of the whole batch).
    pub const ENRICHMENT_STAGE_DURATION: &str = "sluice_enrichment_stage_duration_seconds";
    /// (EnrichmentStageFailed) failed enrichment calls.
    pub const ENRICHMENT_STAGE_FAILED: &str = "sluice_enrichment_stage_failed";
    /// (TargetStageSkipped) batches with nothing left for the target.
    pub const TARGET_STAGE_SKIPPED: &str = "sluice_target_stage_skipped";
    /// Records the filter dropped.
    pub const RECORDS_FILTERED: &str = "sluice_records_filtered";
    /// Records delivered to the target.
    pub const RECORDS_DELIVERED: &str = "sluice_records_delivered";
    /// Batch retries scheduled.
    pub const BATCH_RETRIES: &str = "sluice_batch_retries";
    /// Failed batches split in two (`AUTOMATIC_BISECT`).
    pub const BATCH_BISECTIONS: &str = "sluice_batch_bisections";
    /// Deliveries of which the target named some records as failed (`ReportBatchItemFailures`).
    pub const PARTIAL_BATCH_FAILURES: &str = "sluice_partial_batch_failures";
    /// Records given up and written to the dead-letter destination, per condition.
    pub const RECORDS_DEAD_LETTERED: &str = "sluice_records_dead_lettered";
    /// Records given up and discarded (no dead-letter destination).
    pub const RECORDS_DISCARDED: &str = "sluice_records_discarded";
    /// Target calls the pipe allows in flight now (0: no limit yet).
    pub const TARGET_CONCURRENCY_LIMIT: &str = "sluice_target_concurrency_limit";
    /// Target calls in flight now.
    pub const TARGET_INFLIGHT: &str = "sluice_target_inflight";
    /// Target calls the target answered with an overload (429, 503, throttling, timeout).
    pub const TARGET_THROTTLED: &str = "sluice_target_throttled";
    /// (OffsetLag) sum of the consumer lag over the pipe's partitions.
    pub const OFFSET_LAG: &str = "sluice_offset_lag";
    /// Consumer lag of one partition: high watermark minus committed offset.
    pub const PARTITION_LAG: &str = "sluice_partition_lag";
    /// Offsets committed, per partition: the next offset the group will read.
    pub const COMMITTED_OFFSET: &str = "sluice_committed_offset";
    /// Execution log records dropped, per destination: its buffer was full, or it kept failing.
    pub const EXECUTION_LOG_DROPPED: &str = "sluice_execution_log_dropped";
    /// The pipe's `CurrentState`: one series per pipe, value 1, label `state`.
    pub const PIPE_STATE: &str = "sluice_pipe_state";
    /// 1 while the last look at the source cluster got an answer from a broker, else 0.
    pub const SOURCE_CONNECTED: &str = "sluice_source_connected";
    /// 1 once the consumer group assigned this pipe its partitions, else 0 (starting, stopped).
    pub const SOURCE_JOINED: &str = "sluice_source_joined";
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipeLabels {
    pipe: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    pipe: String,
    condition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabels {
    pipe: String,
    destination: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    pipe: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    pipe: String,
    topic: String,
    partition: String,
}

fn duration_histogram() -> Histogram {
    // 1 ms .. ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The process-wide metric registry.
pub struct Metrics {
    registry: Mutex<Registry>,
    invocations: Family<PipeLabels, Counter>,
    event_count: Family<PipeLabels, Counter>,
    event_size: Family<PipeLabels, Counter>,
    duration: HistogramFamily<PipeLabels>,
    concurrency: Family<PipeLabels, Gauge>,
    execution_failed: Family<PipeLabels, Counter>,
    execution_throttled: Family<PipeLabels, Counter>,
    execution_timeout: Family<PipeLabels, Counter>,
    target_stage_duration: HistogramFamily<PipeLabels>,
    target_stage_failed: Family<PipeLabels, Counter>,
    target_stage_skipped: Family<PipeLabels, Counter>,
    enrichment_stage_duration: HistogramFamily<PipeLabels>,
    enrichment_stage_failed: Family<PipeLabels, Counter>,
    records_filtered: Family<PipeLabels, Counter>,
    records_delivered: Family<PipeLabels, Counter>,
    retries: Family<PipeLabels, Counter>,
    bisections: Family<PipeLabels, Counter>,
    partial_batch_failures: Family<PipeLabels, Counter>,
    records_dead_lettered: Family<ConditionLabels, Counter>,
    records_discarded: Family<PipeLabels, Counter>,
    target_concurrency_limit: Family<PipeLabels, Gauge>,
    target_inflight: Family<PipeLabels, Gauge>,
    target_throttled: Family<PipeLabels, Counter>,
    offset_lag: Family<PipeLabels, Gauge>,
    partition_lag: Family<PartitionLabels, Gauge>,
    committed_offset: Family<PartitionLabels, Gauge>,
    execution_log_dropped: Family<DestinationLabels, Counter>,
    pipe_state: Family<StateLabels, Gauge>,
    source_connected: Family<PipeLabels, Gauge>,
    source_joined: Family<PipeLabels, Gauge>,
    /// The labelled series of each pipe beyond its `pipe` label, so that a deleted pipe's can go.
    series: Mutex<PipeSeries>,
}

/// The series of each pipe whose labels are more than the pipe's name.
#[derive(Default)]
struct PipeSeries {
    partitions: HashSet<PartitionLabels>,
    conditions: HashSet<ConditionLabels>,
    states: HashMap<String, StateLabels>,
    destinations: HashSet<DestinationLabels>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Self {
        Self::with_registry(Registry::default())
    }

    /// Every series also labelled `instance="<id>"` (`sluice serve --instance-id`), so the
    /// instances of a cluster can be told apart when their metrics are scraped together.
    pub fn for_instance(instance: &str) -> Self {
        let label = (
            std::borrow::Cow::Borrowed("instance"),
            std::borrow::Cow::Owned(instance.to_string()),
        );
        Self::with_registry(Registry::with_labels(std::iter::once(label)))
    }

    fn with_registry(registry: Registry) -> Self {
        let hist: fn() -> Histogram = duration_histogram;
        let m = Self {
            registry: Mutex::new(registry),
            invocations: Family::default(),
            event_count: Family::default(),
            event_size: Family::default(),
            duration: Family::new_with_constructor(hist),
            concurrency: Family::default(),
            execution_failed: Family::default(),
            execution_throttled: Family::default(),
            execution_timeout: Family::default(),
            target_stage_duration: Family::new_with_constructor(hist),
            target_stage_failed: Family::default(),
            target_stage_skipped: Family::default(),
            enrichment_stage_duration: Family::new_with_constructor(hist),
            enrichment_stage_failed: Family::default(),
            records_filtered: Family::default(),
            records_delivered: Family::default(),
            retries: Family::default(),
            bisections: Family::default(),
            partial_batch_failures: Family::default(),
            records_dead_lettered: Family::default(),
            records_discarded: Family::default(),
            target_concurrency_limit: Family::default(),
            target_inflight: Family::default(),
            target_throttled: Family::default(),
            offset_lag: Family::default(),
            partition_lag: Family::default(),
            committed_offset: Family::default(),
            execution_log_dropped: Family::default(),
            pipe_state: Family::default(),
            source_connected: Family::default(),
            source_joined: Family::default(),
            series: Mutex::default(),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(|e| e.into_inner());
            use names::*;
            r.register(
                INVOCATIONS,
                "Batches executed (AWS: Invocations)",
                m.invocations.clone(),
            );
            r.register(
                EVENT_COUNT,
                "Records that entered the pipe (AWS: EventCount)",
                m.event_count.clone(),
            );
            r.register(
                EVENT_SIZE,
                "Bytes of records that entered the pipe (AWS: EventSize)",
                m.event_size.clone(),
            );
            r.register(
                DURATION,
                "Batch execution time, retries included (AWS: Duration)",
                m.duration.clone(),
            );
            r.register(
                CONCURRENCY,
                "Batches executing now (AWS: Concurrency)",
                m.concurrency.clone(),
            );
            r.register(
                EXECUTION_FAILED,
                "Failed execution attempts (AWS: ExecutionFailed)",
                m.execution_failed.clone(),
            );
            r.register(
                EXECUTION_THROTTLED,
                "Attempts throttled by the target (AWS: ExecutionThrottled)",
                m.execution_throttled.clone(),
            );
            r.register(
                EXECUTION_TIMEOUT,
                "Attempts that timed out (AWS: ExecutionTimeout)",
                m.execution_timeout.clone(),
            );
            r.register(
                TARGET_STAGE_DURATION,
                "Time of one target call (AWS: TargetStageDuration)",
                m.target_stage_duration.clone(),
            );
            r.register(
                TARGET_STAGE_FAILED,
                "Failed target calls (AWS: TargetStageFailed)",
                m.target_stage_failed.clone(),
            );
            r.register(
                TARGET_STAGE_SKIPPED,
                "Batches with nothing for the target (AWS: TargetStageSkipped)",
                m.target_stage_skipped.clone(),
            );
            r.register(
                ENRICHMENT_STAGE_DURATION,
                "Time of one enrichment call (AWS: EnrichmentStageDuration)",
                m.enrichment_stage_duration.clone(),
            );
            r.register(
                ENRICHMENT_STAGE_FAILED,
                "Failed enrichment calls (AWS: EnrichmentStageFailed)",
                m.enrichment_stage_failed.clone(),
            );
            r.register(
                RECORDS_FILTERED,
                "Records dropped by the filter",
                m.records_filtered.clone(),
            );
            r.register(
                RECORDS_DELIVERED,
                "Records delivered to the target",
                m.records_delivered.clone(),
            );
            r.register(BATCH_RETRIES, "Batch retries scheduled", m.retries.clone());
            r.register(
                BATCH_BISECTIONS,
                "Failed batches split in two (AUTOMATIC_BISECT)",
                m.bisections.clone(),
            );
            r.register(
                PARTIAL_BATCH_FAILURES,
                "Deliveries whose target named failed records",
                m.partial_batch_failures.clone(),
            );
            r.register(
                RECORDS_DEAD_LETTERED,
                "Records given up and written to the dead-letter destination",
                m.records_dead_lettered.clone(),
            );
            r.register(
                RECORDS_DISCARDED,
                "Records given up and discarded (no dead-letter destination)",
                m.records_discarded.clone(),
            );
            r.register(
                TARGET_CONCURRENCY_LIMIT,
                "Target calls allowed in flight now (0: no limit yet)",
                m.target_concurrency_limit.clone(),
            );
            r.register(
                TARGET_INFLIGHT,
                "Target calls in flight now",
                m.target_inflight.clone(),
            );
            r.register(
                TARGET_THROTTLED,
                "Target calls answered with an overload (429, 503, throttling, timeout)",
                m.target_throttled.clone(),
            );
            r.register(
                OFFSET_LAG,
                "Sum of consumer lag over the pipe's partitions (AWS: OffsetLag)",
                m.offset_lag.clone(),
            );
            r.register(
                PARTITION_LAG,
                "Consumer lag of one partition",
                m.partition_lag.clone(),
            );
            r.register(
                COMMITTED_OFFSET,
                "Next offset the group will read, per partition",
                m.committed_offset.clone(),
            );
            r.register(
                EXECUTION_LOG_DROPPED,
                "Execution log records dropped (the destination's buffer was full or it kept failing)",
                m.execution_log_dropped.clone(),
            );
            r.register(
                PIPE_STATE,
                "The pipe's CurrentState (value 1, label state)",
                m.pipe_state.clone(),
            );
            r.register(
                SOURCE_CONNECTED,
                "1 while a broker of the source cluster answers",
                m.source_connected.clone(),
            );
            r.register(
                SOURCE_JOINED,
                "1 while the consumer group has assigned the pipe its partitions",
                m.source_joined.clone(),
            );
        }
        m
    }

    fn series(&self) -> std::sync::MutexGuard<'_, PipeSeries> {
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Show `state` as the pipe's state (its previous state's series goes).
    pub fn set_pipe_state(&self, pipe: &str, state: &str) {
        let labels = StateLabels {
            pipe: pipe.to_string(),
            state: state.to_string(),
        };
        if let Some(old) = self
            .series()
            .states
            .insert(pipe.to_string(), labels.clone())
        {
            if old != labels {
                self.pipe_state.remove(&old);
            }
        }
        self.pipe_state.get_or_create(&labels).set(1);
    }

    /// Forget every series of a deleted pipe. (A family added to the struct belongs here too; the
    /// unit test below finds one that is not.)
    pub fn remove_pipe(&self, pipe: &str) {
        let l = PipeLabels {
            pipe: pipe.to_string(),
        };
        for f in [
            &self.invocations,
            &self.event_count,
            &self.event_size,
            &self.execution_failed,
            &self.execution_throttled,
            &self.execution_timeout,
            &self.target_stage_failed,
            &self.target_stage_skipped,
            &self.enrichment_stage_failed,
            &self.records_filtered,
            &self.records_delivered,
            &self.retries,
            &self.bisections,
            &self.partial_batch_failures,
            &self.records_discarded,
            &self.target_throttled,
        ] {
            f.remove(&l);
        }
        for f in [
            &self.concurrency,
            &self.target_concurrency_limit,
            &self.target_inflight,
            &self.offset_lag,
            &self.source_connected,
            &self.source_joined,
        ] {
            f.remove(&l);
        }
        for f in [
            &self.duration,
            &self.target_stage_duration,
            &self.enrichment_stage_duration,
        ] {
            f.remove(&l);
        }
        let mut series = self.series();
        series.partitions.retain(|p| {
            let keep = p.pipe != pipe;
            if !keep {
                self.partition_lag.remove(p);
                self.committed_offset.remove(p);
            }
            keep
        });
        series.conditions.retain(|c| {
            let keep = c.pipe != pipe;
            if !keep {
                self.records_dead_lettered.remove(c);
            }
            keep
        });
        if let Some(s) = series.states.remove(pipe) {
            self.pipe_state.remove(&s);
        }
        series.destinations.retain(|d| {
            let keep = d.pipe != pipe;
            if !keep {
                self.execution_log_dropped.remove(d);
            }
            keep
        });
    }

    /// Handles for one pipe's series.
    pub fn pipe(self: &Arc<Self>, pipe: &str) -> PipeMetrics {
        let l = PipeLabels {
            pipe: pipe.to_string(),
        };
        PipeMetrics {
            pipe: pipe.to_string(),
            registry: self.clone(),
            invocations: self.invocations.get_or_create(&l).clone(),
            event_count: self.event_count.get_or_create(&l).clone(),
            event_size: self.event_size.get_or_create(&l).clone(),
            duration: self.duration.get_or_create(&l).clone(),
            concurrency: self.concurrency.get_or_create(&l).clone(),
            execution_failed: self.execution_failed.get_or_create(&l).clone(),
            execution_throttled: self.execution_throttled.get_or_create(&l).clone(),
            execution_timeout: self.execution_timeout.get_or_create(&l).clone(),
            target_stage_duration: self.target_stage_duration.get_or_create(&l).clone(),
            target_stage_failed: self.target_stage_failed.get_or_create(&l).clone(),
            target_stage_skipped: self.target_stage_skipped.get_or_create(&l).clone(),
            enrichment_stage_duration: self.enrichment_stage_duration.get_or_create(&l).clone(),
            enrichment_stage_failed: self.enrichment_stage_failed.get_or_create(&l).clone(),
            records_filtered: self.records_filtered.get_or_create(&l).clone(),
            records_delivered: self.records_delivered.get_or_create(&l).clone(),
            retries: self.retries.get_or_create(&l).clone(),
            bisections: self.bisections.get_or_create(&l).clone(),
            partial_batch_failures: self.partial_batch_failures.get_or_create(&l).clone(),
            records_discarded: self.records_discarded.get_or_create(&l).clone(),
            target_concurrency_limit: self.target_concurrency_limit.get_or_create(&l).clone(),
            target_inflight: self.target_inflight.get_or_create(&l).clone(),
            target_throttled: self.target_throttled.get_or_create(&l).clone(),
            offset_lag: self.offset_lag.get_or_create(&l).clone(),
            source_connected: self.source_connected.get_or_create(&l).clone(),
            source_joined: self.source_joined.get_or_create(&l).clone(),
        }
    }

    /// The console's figures of every pipe that has a state series now: its counters and the
    /// lag of each of its partitions, read from the same series `/metrics` shows.
    pub fn sample(&self) -> Vec<PipeSample> {
        let series = self.series();
        let mut out: Vec<PipeSample> = series
            .states
            .keys()
            .map(|pipe| {
                let l = PipeLabels { pipe: pipe.clone() };
                PipeSample {
                    pipe: pipe.clone(),
                    delivered: self.records_delivered.get_or_create(&l).get(),
                    filtered: self.records_filtered.get_or_create(&l).get(),
                    failed: self.execution_failed.get_or_create(&l).get(),
                    dead_lettered: 0,
                    partition_lag: Vec::new(),
                }
            })
            .collect();
        for s in &mut out {
            s.dead_lettered = series
                .conditions
                .iter()
                .filter(|c| c.pipe == s.pipe)
                .map(|c| self.records_dead_lettered.get_or_create(c).get())
                .sum();
            let mut lags: Vec<(String, i64)> = series
                .partitions
                .iter()
                .filter(|p| p.pipe == s.pipe)
                .map(|p| {
                    let lag = self.partition_lag.get_or_create(p).get();
                    (format!("{}-{}", p.topic, p.partition), lag)
                })
                .collect();
            lags.sort();
            s.partition_lag = lags;
        }
        out
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &r);
        out
    }
}

/// One pipe's figures at one moment ([`Metrics::sample`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipeSample {
    /// The pipe.
    pub pipe: String,
    /// Records delivered so far.
    pub delivered: u64,
    /// Records the filter dropped so far.
    pub filtered: u64,
    /// Failed execution attempts so far.
    pub failed: u64,
    /// Records dead-lettered so far (all conditions).
    pub dead_lettered: u64,
    /// Lag of each partition (`topic-partition`), sorted.
    pub partition_lag: Vec<(String, i64)>,
}

/// One pipe's metric handles (cheap to clone, lock-free to update).
#[derive(Clone)]
pub struct PipeMetrics {
    pipe: String,
    registry: Arc<Metrics>,
    /// Batches executed.
    pub invocations: Counter,
    /// Records that entered the pipe.
    pub event_count: Counter,
    /// Their bytes.
    pub event_size: Counter,
    /// Batch execution time.
    pub duration: Histogram,
    /// Batches executing now.
    pub concurrency: Gauge,
    /// Failed attempts.
    pub execution_failed: Counter,
    /// Throttled attempts.
    pub execution_throttled: Counter,
    /// Timed-out attempts.
    pub execution_timeout: Counter,
    /// Target call time.
    pub target_stage_duration: Histogram,
    /// Failed target calls.
    pub target_stage_failed: Counter,
    /// Skipped target calls.
    pub target_stage_skipped: Counter,
    /// Enrichment call time.
    pub enrichment_stage_duration: Histogram,
    /// Failed enrichment calls.
    pub enrichment_stage_failed: Counter,
    /// Records filtered out.
    pub records_filtered: Counter,
    /// Records delivered.
    pub records_delivered: Counter,
    /// Retries scheduled.
    pub retries: Counter,
    /// Bisections.
    pub bisections: Counter,
    /// Deliveries with failed records named.
    pub partial_batch_failures: Counter,
    /// Records discarded.
    pub records_discarded: Counter,
    /// Target calls allowed in flight.
    pub target_concurrency_limit: Gauge,
    /// Target calls in flight.
    pub target_inflight: Gauge,
    /// Overloaded target calls.
    pub target_throttled: Counter,
    /// Total lag.
    pub offset_lag: Gauge,
    /// Whether a broker of the source cluster answers.
    pub source_connected: Gauge,
    /// Whether the consumer group has assigned the pipe its partitions.
    pub source_joined: Gauge,
}

impl std::fmt::Debug for PipeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeMetrics")
            .field("pipe", &self.pipe)
            .finish()
    }
}

impl PipeMetrics {
    /// Records dead-lettered for `condition`.
    pub fn dead_lettered(&self, condition: &str) -> Counter {
        let l = ConditionLabels {
            pipe: self.pipe.clone(),
            condition: condition.to_string(),
        };
        self.registry.series().conditions.insert(l.clone());
        self.registry
            .records_dead_lettered
            .get_or_create(&l)
            .clone()
    }

    /// Execution log records dropped for `destination` (`cloudwatch`, `file`, ...).
    pub fn execution_log_dropped(&self, destination: &str) -> Counter {
        let l = DestinationLabels {
            pipe: self.pipe.clone(),
            destination: destination.to_string(),
        };
        self.registry.series().destinations.insert(l.clone());
        self.registry
            .execution_log_dropped
            .get_or_create(&l)
            .clone()
    }

    /// Set one partition's lag and committed offset.
    pub fn set_partition(&self, topic: &str, partition: i32, lag: i64, committed: i64) {
        let l = PartitionLabels {
            pipe: self.pipe.clone(),
            topic: topic.to_string(),
            partition: partition.to_string(),
        };
        self.registry.series().partitions.insert(l.clone());
        self.registry.partition_lag.get_or_create(&l).set(lag);
        self.registry
            .committed_offset
            .get_or_create(&l)
            .set(committed);
    }

    /// Forget a partition this instance no longer owns.
    pub fn remove_partition(&self, topic: &str, partition: i32) {
        let l = PartitionLabels {
            pipe: self.pipe.clone(),
            topic: topic.to_string(),
            partition: partition.to_string(),
        };
        self.registry.partition_lag.remove(&l);
        self.registry.committed_offset.remove(&l);
        self.registry.series().partitions.remove(&l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_carry_the_pipe_label_and_aws_names() {
        let m = Arc::new(Metrics::new());
        let p = m.pipe("orders");
        p.invocations.inc();
        p.event_count.inc_by(3);
        p.set_partition("t", 2, 40, 7);
        let text = m.encode();
        assert!(
            text.contains("sluice_invocations_total{pipe=\"orders\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sluice_event_count_total{pipe=\"orders\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("sluice_partition_lag{pipe=\"orders\",topic=\"t\",partition=\"2\"} 40"),
            "{text}"
        );
        p.remove_partition("t", 2);
        assert!(!m.encode().contains("partition=\"2\""));
    }

    #[test]
    fn an_instance_label_is_on_every_series() {
        let m = Arc::new(Metrics::for_instance("b:9800"));
        m.pipe("orders").invocations.inc();
        let text = m.encode();
        assert!(
            text.contains("sluice_invocations_total{instance=\"b:9800\",pipe=\"orders\"} 1")
                || text.contains("sluice_invocations_total{pipe=\"orders\",instance=\"b:9800\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn a_pipe_shows_one_state_and_a_deleted_pipe_leaves_no_series() {
        let m = Arc::new(Metrics::new());
        m.set_pipe_state("orders", "CREATING");
        m.set_pipe_state("orders", "RUNNING");
        let other = m.pipe("other");
        other.invocations.inc();
        let p = m.pipe("orders");
        p.invocations.inc();
        p.source_joined.set(1);
        p.set_partition("t", 0, 5, 1);
        p.dead_lettered("MaximumRetryAttempts").inc();
        let text = m.encode();
        assert!(
            text.contains("sluice_pipe_state{pipe=\"orders\",state=\"RUNNING\"} 1"),
            "{text}"
        );
        assert!(!text.contains("state=\"CREATING\""), "{text}");
        assert!(
            text.contains("sluice_source_joined{pipe=\"orders\"} 1"),
            "{text}"
        );
        m.remove_pipe("orders");
        let text = m.encode();
        assert!(!text.contains("pipe=\"orders\""), "{text}");
        assert!(
            text.contains("sluice_invocations_total{pipe=\"other\"} 1"),
            "{text}"
        );
    }
}
