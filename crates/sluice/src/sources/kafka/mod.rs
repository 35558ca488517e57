//! The Kafka source: the librdkafka consumer configuration (group, starting position, offset
//! handling), the callbacks that tell the runtime when partitions are assigned and revoked
//! ([`PartitionHandler`]), and each assigned partition's own queue, read in batches and copied
//! into `SourceRecord`s ([`queue`]).
//!
//! Offsets are never committed automatically: `enable.auto.commit` and `enable.auto.offset.store`
//! are off, and the runtime commits a partition's offset only after its batch was delivered,
//! awaiting the broker's answer without a blocked thread ([`commit`]).
//!
//! Authentication and TLS ([`auth`]) are decided at validation and resolved into settings when the
//! pipe starts, with the client settings, key handling and MSK IAM tokens of the neutral
//! [`crate::kafka`] module (which the Kafka target uses too); librdkafka's log level stays at
//! warnings whatever `RUST_LOG` says, and its `debug` contexts are never enabled, so its debug
//! output (which would include connection details) cannot reach the logs.
//!
//! Problems only the user can fix that librdkafka would retry forever (a topic that does not
//! exist, TLS against a plaintext listener or the reverse) are judged by [`health`] from the
//! runtime's periodic metadata check and, when nothing connects, a [`probe`] of the listeners.
//! The consumer never asks the broker to create the topic (`allow.auto.create.topics=false`), as
//! AWS does not.

pub mod auth;
pub mod commit;
pub mod health;
pub mod msk;
pub mod probe;
pub mod queue;
pub mod start;
pub mod tuning;
mod waking_queue;

#[cfg(test)]
mod test_support;

// Kept where `SourceContext` and the MSK IAM tests find them; they live in `crate::kafka`.
pub use crate::kafka::{iam, log_to_tracing};

use std::sync::Arc;

use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::RebalanceProtocol;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};

use crate::model::{KafkaSourceSpec, StartingPosition};

/// What the source tells the runtime when the group hands out or takes back partitions.
pub trait PartitionHandler: Send + Sync {
    /// Partitions of our topic are about to be assigned to this consumer (librdkafka has not
    /// started fetching them yet). Nothing by default.
    fn assigning(&self, _consumer: &BaseConsumer<SourceContext>, _partitions: &[i32]) {}
    /// Partitions of our topic were assigned to this consumer.
    fn assigned(&self, consumer: &BaseConsumer<SourceContext>, partitions: &[i32]);
    /// Partitions are about to be revoked: stop their lanes, let in-flight work finish or abandon
    /// it, commit what was delivered. Runs on the polling thread; may block (bounded).
    fn revoking(&self, consumer: &BaseConsumer<SourceContext>, partitions: &[i32]);
    /// A fatal or persistent client error (authentication, unknown topic...).
    fn client_error(&self, error: &KafkaError, reason: &str);
    /// The partitions could not be started where the definition says (the lookups of
    /// `StartingPositionTimestamp` failed). Logged by default; the runtime stops the pipe.
    fn start_failed(&self, reason: String) {
        tracing::error!(%reason, "partitions could not be started at StartingPositionTimestamp");
    }
}

/// librdkafka callbacks, forwarded to the runtime.
pub struct SourceContext {
    topic: String,
    handler: Arc<dyn PartitionHandler>,
    oauth: Option<Arc<iam::IamTokenSource>>,
    starting_timestamp_ms: Option<i64>,
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
            oauth: None,
            starting_timestamp_ms: None,
        }
    }

    /// Start partitions without a committed offset at this timestamp (ms), not at
    /// `auto.offset.reset` ([`start`]).
    pub fn with_starting_timestamp(mut self, timestamp_ms: Option<i64>) -> Self {
        self.starting_timestamp_ms = timestamp_ms;
        self
    }

    /// Answer librdkafka's OAUTHBEARER token requests with MSK IAM tokens from `source`.
    pub fn with_oauth(mut self, source: Option<Arc<iam::IamTokenSource>>) -> Self {
        self.oauth = source;
        self
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
        log_to_tracing(level, fac, msg);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match auth::explain(reason) {
            // An authentication or TLS refusal never heals by retrying (and librdkafka would retry
            // forever): report it as fatal, in the pipe's terms first.
            Some(hint) => {
                let error = match error.rdkafka_error_code() {
                    Some(RDKafkaErrorCode::BrokerTransportFailure) | None => {
                        KafkaError::Global(RDKafkaErrorCode::SSL)
                    }
                    Some(_) => error,
                };
                self.handler
                    .client_error(&error, &format!("{hint}; librdkafka: {reason}"));
            }
            None => self.handler.client_error(&error, reason),
        }
    }

    // Only consulted when `sasl.mechanism` is OAUTHBEARER (MSK IAM); served from poll().
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        iam::oauth_token(self.oauth.as_deref())
    }
}

impl ConsumerContext for SourceContext {
    // rust-rdkafka hands `pre_rebalance` the assignment read-only; starting at a timestamp sets
    // its offsets, so this is rust-rdkafka's own sequence (pre-hook, assign or unassign, post-hook)
    // through the public consumer API, with that one step added before the assign.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let assign = err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
        if let (true, Some(ts)) = (assign, self.starting_timestamp_ms) {
            if let Err(reason) = start::set_starting_offsets(consumer, &self.topic, tpl, ts) {
                self.handler.start_failed(reason);
            }
        }
        let rebalance = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Rebalance::Assign(tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(tpl),
            _ => Rebalance::Error(KafkaError::Rebalance(err.into())),
        };
        self.pre_rebalance(consumer, &rebalance);
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let done = match (&rebalance, cooperative) {
            (Rebalance::Assign(tpl), true) => consumer.incremental_assign(tpl),
            (Rebalance::Assign(tpl), false) => consumer.assign(tpl),
            (_, true) => consumer.incremental_unassign(tpl),
            (_, false) => consumer.unassign(),
        };
        if let Err(e) = done {
            tracing::warn!(topic = %self.topic, error = %e, "applying the rebalance failed");
        }
        self.post_rebalance(consumer, &rebalance);
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let parts = self.partitions(tpl);
                tracing::info!(topic = %self.topic, partitions = ?parts, "partitions revoked");
                self.handler.revoking(consumer, &parts);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
            Rebalance::Assign(tpl) => self.handler.assigning(consumer, &self.partitions(tpl)),
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

/// Create the pipe's consumer from its settings (see [`client_config`] and
/// [`crate::kafka::ResolvedSecurity::apply`]); errors never quote a secret setting's value.
pub fn create_consumer(
    cfg: &ClientConfig,
    context: SourceContext,
) -> Result<KafkaConsumer, KafkaError> {
    cfg.create_with_context(context)
        .map_err(crate::kafka::redact_error)
}

/// Most bytes one fetch response may carry (all partitions of one broker); see [`client_config`].
/// Eight partitions' full share (`max.partition.fetch.bytes`, 1 MB) per round; not more, as a
/// response's buffer stays in memory until every record of it was consumed.
pub const FETCH_MAX_BYTES: usize = 8 * 1024 * 1024;

/// librdkafka settings for a pipe's source, without its security settings.
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
            // With a starting timestamp the assignment carries the offsets; should its lookup
            // fail (the pipe then stops), earliest repeats records rather than skipping them.
            match (spec.starting_position, spec.starting_timestamp_ms) {
                (_, Some(_)) | (StartingPosition::TrimHorizon, None) => "earliest",
                (StartingPosition::Latest, None) => "latest",
            },
        )
        // With a queue per partition, `queued.max.messages.kbytes` bounds each partition, but
        // librdkafka also caps `fetch.max.bytes` (one fetch response, all partitions of a broker)
        // at it unless it is set: a 4 MB per-partition bound would then cap every fetch round at
        // 4 MB in total (~190,000 records/s against a broker answering every 100 ms). Each
        // partition's share of a response stays bounded by `max.partition.fetch.bytes` (1 MB).
        .set("fetch.max.bytes", FETCH_MAX_BYTES.to_string())
        // A partition whose queue is full is looked at again after this long (librdkafka's
        // default is 1 s: a lane that empties its queue in a fraction of that would wait idle).
        // The check is local (no request is sent), so a short interval costs next to nothing.
        .set("fetch.queue.backoff.ms", "10")
        .set("fetch.wait.max.ms", "100")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("max.poll.interval.ms", "300000")
        .set("topic.metadata.refresh.interval.ms", "10000")
        // A missing topic is the user's to create (the pipe fails after a grace period), never
        // created by subscribing, whatever the broker's `auto.create.topics.enable` says.
        .set("allow.auto.create.topics", "false")
        .set_log_level(RDKafkaLogLevel::Warning);
    cfg
}
