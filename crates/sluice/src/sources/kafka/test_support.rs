//! What the unit tests of the consumer's librdkafka bindings share: a consumer of librdkafka's
//! mock cluster with no lanes behind it.

use std::sync::Arc;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::mocking::MockCluster;

use super::{KafkaConsumer, PartitionHandler, SourceContext};

/// Rebalances and client errors go nowhere.
struct NoLanes;

impl PartitionHandler for NoLanes {
    fn assigned(&self, _: &BaseConsumer<SourceContext>, _: &[i32]) {}
    fn revoking(&self, _: &BaseConsumer<SourceContext>, _: &[i32]) {}
    fn client_error(&self, _: &rdkafka::error::KafkaError, _: &str) {}
}

/// A consumer of `topic` on `cluster` in group `g` that never commits on its own.
pub(crate) fn consumer(
    cluster: &MockCluster<'_, impl rdkafka::ClientContext>,
    topic: &str,
) -> Arc<KafkaConsumer> {
    Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "g")
            .set("enable.auto.commit", "false")
            .create_with_context(SourceContext::new(topic, Arc::new(NoLanes)))
            .unwrap(),
    )
}
