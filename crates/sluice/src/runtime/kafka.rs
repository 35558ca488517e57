//! The Kafka side of the runtime, in one adapter: a partition's own librdkafka queue as a lane's
//! [`RecordStream`], the consumer's offset commit as its [`Committer`], and the rebalance hooks
//! that start a lane per assigned partition and drain the lanes of revoked ones.
//!
//! Each partition's queue is split off the consumer in the pre-assignment hook, before librdkafka
//! starts fetching it: librdkafka then never forwards that partition's records to the consumer's
//! main queue (the queue carries its application-forwarding flag), so a lane has a single input
//! and the poll loop only serves group events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::commits::{CommitEntry, CommitQueue, GroupCommit};
use super::keyed::KeyedLane;
use super::lane::{CommitError, Committer, Lane, LaneControl, RecordStream, StoredRetry};
use super::lanes::LaneRegistry;
use super::process::BatchProcessor;
use super::status::PipeHealth;
use crate::record::SourceRecord;
use crate::sources::kafka::commit;
use crate::sources::kafka::queue::PartitionQueue;
use crate::sources::kafka::{KafkaConsumer, PartitionHandler, SourceContext};

/// One partition's records, from its own librdkafka queue.
pub(crate) struct PartitionStream {
    queue: PartitionQueue,
}

impl RecordStream for PartitionStream {
    async fn next(&mut self) -> Option<SourceRecord> {
        // The stream never ends: librdkafka's queues do not.
        Some(std::future::poll_fn(|cx| self.queue.poll_next(cx)).await)
    }

    fn next_ready(&mut self) -> Option<SourceRecord> {
        self.queue.next_ready()
    }
}

/// A lane's offset commits, through the pipe's commit queue ([`CommitQueue`]).
pub(crate) struct ConsumerCommitter {
    consumer: Weak<KafkaConsumer>,
    topic: String,
    commits: CommitQueue,
    metadata: Arc<MetadataCheck>,
}

/// Offset commits of several partitions through the pipe's consumer, each awaited until the broker
/// answered ([`commit::commit`]).
struct KafkaGroupCommit {
    consumer: Weak<KafkaConsumer>,
    topic: String,
}

impl GroupCommit for KafkaGroupCommit {
    async fn commit_all(&self, entries: &[CommitEntry]) -> Result<(), CommitError> {
        let consumer = self.consumer.upgrade().ok_or(CommitError::Closed)?;
        let mut tpl = TopicPartitionList::with_capacity(entries.len());
        for e in entries {
            let mut elem = tpl.add_partition(&self.topic, e.partition);
            elem.set_offset(Offset::Offset(e.next_offset))
                .map_err(|e| CommitError::Failed(e.to_string()))?;
            if let Some(m) = &e.metadata {
                elem.set_metadata(m);
            }
        }
        let result = commit::commit(&consumer, &tpl).await;
        release(consumer);
        result.map_err(|e| CommitError::Failed(e.to_string()))
    }
}

/// Let go of an upgraded consumer. Closing it blocks, so when this was the last reference (the
/// pipe stopped during the commit), that happens on the blocking pool, not on a worker.
fn release(consumer: Arc<KafkaConsumer>) {
    if let Some(last) = Arc::into_inner(consumer) {
        tokio::task::spawn_blocking(move || drop(last));
    }
}

/// Whether the cluster keeps offset commit metadata, learned from the first commit that carried
/// some (the test broker drops it: the failure history then lives only in the lane's memory).
#[derive(Debug, Default)]
pub(crate) struct MetadataCheck {
    checked: AtomicBool,
}

impl ConsumerCommitter {
    fn consumer(&self) -> Result<Arc<KafkaConsumer>, CommitError> {
        self.consumer.upgrade().ok_or(CommitError::Closed)
    }

    /// Read back what was committed with metadata, once per pipe, and warn if it was dropped.
    async fn check_metadata(&self, partition: i32, sent: String) {
        if self.metadata.checked.swap(true, Ordering::SeqCst) {
            return;
        }
        match self.committed(partition).await {
            Ok(Some((_, Some(back)))) if back.to_metadata() == sent => {}
            Ok(_) => tracing::warn!(topic = %self.topic,
                "the Kafka cluster dropped the offset commit metadata; a failing batch's attempt count then survives neither a restart nor a rebalance"),
            Err(e) => tracing::debug!(error = %e, "could not read back the commit metadata"),
        }
    }
}

impl Committer for ConsumerCommitter {
    async fn commit(
        &self,
        partition: i32,
        next_offset: i64,
        retry: Option<&StoredRetry>,
    ) -> Result<(), CommitError> {
        let metadata = retry.map(|r| r.to_metadata());
        let entry = CommitEntry {
            partition,
            next_offset,
            metadata: metadata.clone(),
        };
        self.commits.commit(entry).await?;
        if let Some(sent) = metadata {
            self.check_metadata(partition, sent).await;
        }
        Ok(())
    }

    async fn committed(
        &self,
        partition: i32,
    ) -> Result<Option<(i64, Option<StoredRetry>)>, CommitError> {
        let consumer = self.consumer()?;
        let topic = self.topic.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&topic, partition);
            let got = consumer.committed_offsets(tpl, COMMITTED_TIMEOUT)?;
            let found = got.find_partition(&topic, partition).and_then(|e| {
                let Offset::Offset(offset) = e.offset() else {
                    return None;
                };
                // rdkafka panics on metadata that is not UTF-8 (another group member's?).
                let text = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    e.metadata().to_string()
                }))
                .unwrap_or_default();
                Some((offset, StoredRetry::from_metadata(&text)))
            });
            Ok::<_, KafkaError>(found)
        })
        .await;
        match result {
            Ok(r) => r.map_err(|e| CommitError::Failed(e.to_string())),
            Err(e) => Err(CommitError::Failed(format!("committed-offset task: {e}"))),
        }
    }
}

/// How long reading a partition's committed offset may take.
const COMMITTED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What librdkafka's rebalance and error callbacks do to the pipe.
pub(crate) struct RebalanceHooks {
    topic: String,
    consumer: OnceLock<Weak<KafkaConsumer>>,
    registry: Arc<LaneRegistry>,
    processor: Arc<BatchProcessor>,
    health: Arc<PipeHealth>,
    /// Queues split before an assignment, waiting for their lanes.
    split: Mutex<HashMap<i32, PartitionQueue>>,
    /// The lanes' commit queue (started with the consumer).
    commits: OnceLock<CommitQueue>,
    metadata: Arc<MetadataCheck>,
}

impl RebalanceHooks {
    pub fn new(
        topic: &str,
        registry: Arc<LaneRegistry>,
        processor: Arc<BatchProcessor>,
        health: Arc<PipeHealth>,
    ) -> Self {
        Self {
            topic: topic.to_string(),
            consumer: OnceLock::new(),
            registry,
            processor,
            health,
            split: Mutex::new(HashMap::new()),
            commits: OnceLock::new(),
            metadata: Arc::default(),
        }
    }

    /// The consumer whose partitions the hooks manage (set once it exists), and its commit queue.
    /// Runs on the runtime.
    pub fn attach(&self, consumer: &Arc<KafkaConsumer>) {
        let _ = self.consumer.set(Arc::downgrade(consumer));
        let _ = self.commits.set(CommitQueue::start(KafkaGroupCommit {
            consumer: Arc::downgrade(consumer),
            topic: self.topic.clone(),
        }));
    }

    /// Drop queues split for an assignment that never completed; they hold the consumer.
    pub fn clear(&self) {
        self.split.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn consumer(&self) -> Weak<KafkaConsumer> {
        self.consumer.get().cloned().unwrap_or_default()
    }

    fn split_queue(&self, partition: i32) -> Option<PartitionQueue> {
        PartitionQueue::split(&self.consumer().upgrade()?, &self.topic, partition)
    }

    fn start_lane(&self, partition: i32, queue: PartitionQueue) {
        let control = Arc::new(LaneControl::new(partition));
        let Some(commits) = self.commits.get().cloned() else {
            tracing::debug!(partition, "no consumer attached; no lane");
            return;
        };
        let committer = ConsumerCommitter {
            consumer: self.consumer(),
            topic: self.topic.clone(),
            commits,
            metadata: self.metadata.clone(),
        };
        let processor = self.processor.clone();
        let lane_control = control.clone();
        let lane = async move {
            let stream = PartitionStream { queue };
            match processor.parallelization() {
                1 => {
                    let lane = Lane::new(lane_control, stream, committer, processor);
                    lane.run().await
                }
                factor => {
                    let lane = KeyedLane {
                        control: lane_control,
                        stream,
                        committer,
                        processor,
                        factor,
                    };
                    lane.run().await
                }
            }
        };
        self.registry.spawn(control, lane);
    }
}

impl PartitionHandler for RebalanceHooks {
    fn assigning(&self, _consumer: &BaseConsumer<SourceContext>, partitions: &[i32]) {
        let mut split = self.split.lock().unwrap_or_else(|e| e.into_inner());
        for &p in partitions {
            if let Some(q) = self.split_queue(p) {
                split.insert(p, q);
            }
        }
    }

    fn assigned(&self, _consumer: &BaseConsumer<SourceContext>, partitions: &[i32]) {
        self.health.own(partitions, true);
        self.health.joined();
        if !partitions.is_empty() {
            self.health.topic_seen();
        }
        let mut split = self.split.lock().unwrap_or_else(|e| e.into_inner());
        for &p in partitions {
            if self.registry.contains(p) {
                continue;
            }
            // Split late only if the pre-assignment hook could not (it always runs first).
            match split.remove(&p).or_else(|| self.split_queue(p)) {
                Some(q) => self.start_lane(p, q),
                // The consumer is closing; the partition is revoked again right away.
                None => tracing::debug!(partition = p, "no partition queue; no lane"),
            }
        }
    }

    fn revoking(&self, _consumer: &BaseConsumer<SourceContext>, partitions: &[i32]) {
        self.health.own(partitions, false);
        self.registry.revoke(partitions);
    }

    fn start_failed(&self, reason: String) {
        self.health.fail(format!(
            "the partitions could not be started at StartingPositionTimestamp: {reason}"
        ));
    }

    fn client_error(&self, error: &KafkaError, reason: &str) {
        if is_unknown_topic(error) {
            self.health.check_source_soon();
        }
        match fatal_reason(error) {
            Some(r) => self.health.fail(format!("{r} ({reason})")),
            None => {
                tracing::warn!(pipe = %self.health.pipe(), error = %error, reason, "Kafka client error")
            }
        }
    }
}

/// Errors that retrying cannot fix: the pipe stops and says why.
pub(crate) fn fatal_reason(error: &KafkaError) -> Option<String> {
    use rdkafka::types::RDKafkaErrorCode as C;
    let code = error.rdkafka_error_code()?;
    let what = match code {
        C::Authentication | C::SaslAuthenticationFailed => {
            "authentication with the Kafka cluster failed"
        }
        C::SSL => "TLS connection to the Kafka cluster failed",
        C::TopicAuthorizationFailed => "not authorized to read the topic",
        C::GroupAuthorizationFailed => "not authorized to use the consumer group",
        C::FencedInstanceId => {
            "another consumer of the group joined with this consumer's group.instance.id (do two instances share one --instance-id?)"
        }
        C::Fatal => "fatal Kafka client error",
        _ => return None,
    };
    Some(format!("{what}: {error}"))
}

/// librdkafka says a topic is unknown (it may have been deleted under us).
pub(crate) fn is_unknown_topic(error: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        error.rdkafka_error_code(),
        Some(C::UnknownTopicOrPartition | C::UnknownTopic)
    )
}
