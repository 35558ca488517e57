//! The Kafka side of the runtime, in one adapter: a partition's own librdkafka queue as a lane's
//! [`RecordStream`], the consumer's offset commit as its [`Committer`], and the rebalance hooks
//! that start a lane per assigned partition and drain the lanes of revoked ones.
//!
//! Each partition's queue is split off the consumer in the pre-assignment hook, before librdkafka
//! starts fetching it: librdkafka then never forwards that partition's records to the consumer's
//! main queue (the queue carries its application-forwarding flag), so a lane has a single input
//! and the poll loop only serves group events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::lane::{CommitError, Committer, Lane, LaneControl, RecordStream};
use super::lanes::LaneRegistry;
use super::process::BatchProcessor;
use super::status::PipeHealth;
use crate::record::SourceRecord;
use crate::sources::kafka::{record_from_message, KafkaConsumer, PartitionHandler, SourceContext};

type PartitionQueue = StreamPartitionQueue<SourceContext>;

/// One partition's records, from its own librdkafka queue.
pub(crate) struct PartitionStream {
    partition: i32,
    queue: PartitionQueue,
}

impl RecordStream for PartitionStream {
    async fn next(&mut self) -> Option<SourceRecord> {
        loop {
            match self.queue.recv().await {
                Ok(m) => return Some(record_from_message(&m)),
                // A broker restarting, a fetch error: librdkafka retries; the queue goes on.
                Err(e) => {
                    tracing::warn!(partition = self.partition, error = %e, "consumer error")
                }
            }
        }
    }
}

/// Synchronous offset commits through the pipe's consumer.
pub(crate) struct ConsumerCommitter {
    consumer: Weak<KafkaConsumer>,
    topic: String,
}

impl Committer for ConsumerCommitter {
    async fn commit(&self, partition: i32, next_offset: i64) -> Result<(), CommitError> {
        let consumer = self.consumer.upgrade().ok_or(CommitError::Closed)?;
        let topic = self.topic.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, partition, Offset::Offset(next_offset))?;
            consumer.commit(&tpl, CommitMode::Sync)
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(CommitError::Failed(e.to_string())),
            Err(e) => Err(CommitError::Failed(format!("commit task: {e}"))),
        }
    }
}

/// What librdkafka's rebalance and error callbacks do to the pipe.
pub(crate) struct RebalanceHooks {
    topic: String,
    consumer: OnceLock<Weak<KafkaConsumer>>,
    registry: Arc<LaneRegistry>,
    processor: Arc<BatchProcessor>,
    health: Arc<PipeHealth>,
    /// Queues split before an assignment, waiting for their lanes.
    split: Mutex<HashMap<i32, PartitionQueue>>,
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
        }
    }

    /// The consumer whose partitions the hooks manage (set once it exists).
    pub fn attach(&self, consumer: &Arc<KafkaConsumer>) {
        let _ = self.consumer.set(Arc::downgrade(consumer));
    }

    /// Drop queues split for an assignment that never completed; they hold the consumer.
    pub fn clear(&self) {
        self.split.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn consumer(&self) -> Weak<KafkaConsumer> {
        self.consumer.get().cloned().unwrap_or_default()
    }

    fn split_queue(&self, partition: i32) -> Option<PartitionQueue> {
        self.consumer()
            .upgrade()?
            .split_partition_queue(&self.topic, partition)
    }

    fn start_lane(&self, partition: i32, queue: PartitionQueue) {
        let control = Arc::new(LaneControl::new(partition));
        let lane = Lane {
            control: control.clone(),
            stream: PartitionStream { partition, queue },
            committer: ConsumerCommitter {
                consumer: self.consumer(),
                topic: self.topic.clone(),
            },
            processor: self.processor.clone(),
        };
        self.registry.spawn(control, lane.run());
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
        self.registry.revoke(partitions);
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
