//! The Kafka source: the librdkafka consumer configuration (group, starting position, offset
//! handling), the rebalance hooks that hand partitions to the runtime's lanes and take them back,
//! and the record type with its JSON form ([`record`]).
//!
//! Offsets are never committed automatically: `enable.auto.commit` and `enable.auto.offset.store`
//! are off, and the runtime commits a partition's offset only after its batch was delivered.

pub mod record;

use std::sync::Arc;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::TopicPartitionList;

use crate::model::{KafkaSourceSpec, StartingPosition};

/// What the source tells the runtime when the group hands out or takes back partitions.
pub trait PartitionHandler: Send + Sync {
    /// Partitions of our topic were assigned to this consumer.
    fn assigned(&self, consumer: &BaseConsumer<SourceContext>, partitions: &[i32]);
    /// Partitions are about to be revoked: stop their lanes, let in-flight work finish or abandon
    /// it, commit what was delivered. Runs on the polling thread; may block (bounded).
    fn revoking(&self, consumer: &BaseConsumer<SourceContext>, partitions: &[i32]);
    /// A fatal or persistent client error (authentication, unknown topic...).
    fn client_error(&self, error: &KafkaError, reason: &str);
}

/// librdkafka callbacks, forwarded to the runtime.
pub struct SourceContext {
    topic: String,
    handler: Arc<dyn PartitionHandler>,
}

impl std::fmt::Debug for SourceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceContext")
            .field("topic", &self.topic)
            .finish()
    }
}

impl SourceContext {
    /// Forward rebalance events of `topic` to `handler`.
    pub fn new(topic: &str, handler: Arc<dyn PartitionHandler>) -> Self {
        Self {
            topic: topic.to_string(),
            handler,
        }
    }

    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect()
    }
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{msg}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{msg}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", fac, "{msg}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{msg}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.handler.client_error(&error, reason);
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let parts = self.partitions(tpl);
                tracing::info!(topic = %self.topic, partitions = ?parts, "partitions revoked");
                self.handler.revoking(consumer, &parts);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let parts = self.partitions(tpl);
            tracing::info!(topic = %self.topic, partitions = ?parts, "partitions assigned");
            self.handler.assigned(consumer, &parts);
        }
    }
}

/// The consumer every pipe uses.
pub type KafkaConsumer = StreamConsumer<SourceContext>;

/// librdkafka settings for a pipe's source.
pub fn client_config(spec: &KafkaSourceSpec, client_id: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", spec.bootstrap_servers.join(","))
        .set("group.id", &spec.consumer_group_id)
        .set("client.id", client_id)
        // Offsets move only when the runtime says a batch was delivered.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            match spec.starting_position {
                StartingPosition::TrimHorizon => "earliest",
                StartingPosition::Latest => "latest",
            },
        )
        // Bounded prefetch: the lanes' own buffers hold the rest (see runtime::lane).
        .set("queued.max.messages.kbytes", "16384")
        .set("fetch.wait.max.ms", "100")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("max.poll.interval.ms", "300000")
        .set("topic.metadata.refresh.interval.ms", "10000")
        .set_log_level(RDKafkaLogLevel::Warning);
    cfg
}
