//! Running one pipe: the consumer loop that reads the topic and hands each record to the lane of
//! its partition ([`lane`]), the rebalance handling that starts lanes on assignment and drains them
//! on revocation, backpressure (pausing a partition whose lane is full), lag reporting, the check
//! of the source that fails the pipe on what only the user can fix ([`watch_source`]: a missing
//! topic, TLS against a plaintext listener), and the graceful shutdown.
//!
//! Record path: `sources::kafka` (poll) -> [`Shared::dispatch`] -> lane (batch) -> `transforms`
//! (filter, template) -> `targets` -> lane commits the offset.

pub mod lane;
pub mod retry;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::enrichment::Enricher;
use crate::metrics::{Metrics, PipeMetrics};
use crate::model::{HttpDelivery, KafkaSourceKind, PipeSpec};
use crate::sources::kafka::health::{Observation, SourceHealth};
use crate::sources::kafka::record::{RecordContext, SourceRecord};
use crate::sources::kafka::{
    auth, client_config, create_consumer, probe, KafkaConsumer, PartitionHandler, SourceContext,
};
use crate::targets::{Event, Target, TargetConfig, TargetError};
use crate::transforms::{decoded_record, TemplateVars};
use lane::{Lane, LaneControl};
use retry::RetryPolicy;

/// Knobs of the runtime that are not part of a pipe definition.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Records librdkafka may prefetch for one partition before it stops fetching it.
    pub partition_prefetch_records: usize,
    /// Kilobytes librdkafka may prefetch for one partition before it stops fetching it.
    pub partition_prefetch_kbytes: usize,
    /// How long a revocation waits for a batch in flight.
    pub revoke_timeout: Duration,
    /// How long shutdown waits for batches in flight.
    pub shutdown_timeout: Duration,
    /// How often partition lag is measured.
    pub lag_interval: Duration,
    /// `client.id` of the consumer.
    pub client_id: String,
    /// How long the source topic may be missing before the pipe fails (it may be created just
    /// after the pipe).
    pub missing_topic_grace: Duration,
    /// How long a TLS/plaintext mismatch with the brokers' listener must persist before the pipe
    /// fails.
    pub listener_mismatch_grace: Duration,
}

/// Default of [`RuntimeOptions::missing_topic_grace`] (and of the config file's
/// `missing_topic_grace_seconds`).
pub const DEFAULT_MISSING_TOPIC_GRACE: Duration = Duration::from_secs(60);

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            partition_prefetch_records: 5_000,
            partition_prefetch_kbytes: 4 * 1024,
            revoke_timeout: lane::DEFAULT_REVOKE_TIMEOUT,
            shutdown_timeout: Duration::from_secs(30),
            lag_interval: Duration::from_secs(5),
            client_id: "sluice".into(),
            missing_topic_grace: DEFAULT_MISSING_TOPIC_GRACE,
            listener_mismatch_grace: Duration::from_secs(10),
        }
    }
}

/// What a running pipe reports about itself (the control plane maps it to `CurrentState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipeStatus {
    /// Connecting and joining the consumer group.
    Starting,
    /// Joined the group and received an assignment (possibly of no partition), and the topic is
    /// known to exist.
    Running,
    /// Stopped because of a problem only the user can fix; the reason says what.
    Failed {
        /// What to fix, without secrets.
        reason: String,
    },
    /// Stopped after a shutdown request.
    Stopped,
}

/// Why a pipe could not run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The consumer could not be created or subscribed.
    #[error("Kafka consumer: {0}")]
    Kafka(#[from] KafkaError),
    /// The target could not be built.
    #[error("target: {0}")]
    Target(#[from] TargetError),
    /// The pipe stopped on an error only the user can fix (authentication, TLS, authorization, a
    /// missing topic, TLS against a plaintext listener).
    #[error("{0}")]
    Failed(String),
}

impl RuntimeError {
    /// Whether trying again later may help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RuntimeError::Kafka(_))
    }

    /// Whether the user must change something.
    pub fn is_user_error(&self) -> bool {
        match self {
            RuntimeError::Target(e) => e.is_user_error(),
            RuntimeError::Failed(_) => true,
            RuntimeError::Kafka(_) => false,
        }
    }
}

struct LaneHandle {
    tx: mpsc::UnboundedSender<SourceRecord>,
    control: Arc<LaneControl>,
    done: std::sync::mpsc::Receiver<()>,
}

/// State shared by the consumer loop, the lanes and the rebalance callbacks of one pipe.
pub(crate) struct Shared {
    spec: Arc<PipeSpec>,
    record_ctx: RecordContext,
    target: Arc<dyn Target>,
    needs_record: bool,
    /// The target keeps source keys and headers (Kafka).
    needs_source: bool,
    /// The enrichment, when the pipe has one.
    enrichment: Option<Arc<dyn Enricher>>,
    /// Enrichment requests resolve JSON paths against the record.
    enrichment_needs_record: bool,
    /// Most events one target delivery accepts (an enrichment answering more fails the batch).
    max_batch: usize,
    batch_payload_capped: bool,
    vars: TemplateVars,
    metrics: PipeMetrics,
    policy: RetryPolicy,
    options: RuntimeOptions,
    lanes: Mutex<HashMap<i32, LaneHandle>>,
    consumer: OnceLock<Weak<KafkaConsumer>>,
    handle: tokio::runtime::Handle,
    /// Set by the poll loop when the consumer is being closed, so revocation does not wait.
    closing: CancellationToken,
    /// Where the pipe reports its status.
    status: tokio::sync::watch::Sender<PipeStatus>,
    /// Cancelled when a fatal error was reported; `fatal_reason` says which.
    failed: CancellationToken,
    fatal_reason: Mutex<Option<String>>,
    /// The group assigned partitions to us (possibly none).
    joined: AtomicBool,
    /// The topic was seen on the cluster (in its metadata, or partitions of it were assigned).
    topic_seen: AtomicBool,
    /// Wakes [`watch_source`] early (librdkafka said the topic is unknown).
    check_source: tokio::sync::Notify,
}

impl Shared {
    /// Stop the pipe on an error only the user can fix.
    fn fail(&self, reason: String) {
        let mut r = self.fatal_reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            tracing::error!(pipe = %self.spec.name, reason = %reason, "pipe failed");
            *r = Some(reason);
            self.failed.cancel();
        }
    }

    /// Report RUNNING once the consumer joined its group and the topic is known to exist (a
    /// consumer of a missing topic may join with no partition; that pipe is not running yet).
    fn report_running(&self) {
        if self.joined.load(Ordering::SeqCst) && self.topic_seen.load(Ordering::SeqCst) {
            self.status.send_if_modified(|s| {
                let changed = *s != PipeStatus::Running;
                *s = PipeStatus::Running;
                changed
            });
        }
    }
}

/// Errors that retrying cannot fix: the pipe stops and says why.
fn fatal_reason(error: &KafkaError) -> Option<String> {
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

impl Shared {
    /// The event a target receives for one record (pipes without enrichment).
    fn event(&self, rec: &SourceRecord) -> Event {
        self.render(
            rec,
            self.spec.target_template.as_deref(),
            self.needs_record,
            self.needs_source,
        )
    }

    /// The event the enrichment receives for one record (its own template and parameters).
    fn enrichment_event(&self, rec: &SourceRecord) -> Event {
        self.render(
            rec,
            self.spec.enrichment_template.as_deref(),
            self.enrichment_needs_record,
            false,
        )
    }

    /// The event a target receives for one item of an enrichment's response: the item, through
    /// the target template; dynamic parameters resolve against the item.
    fn event_from_item(&self, item: serde_json::Value) -> Event {
        let text = serde_json::to_string(&item).unwrap_or_default();
        let (payload, is_json) = match &self.spec.target_template {
            Some(t) => (Bytes::from(t.render(&self.vars, &text, &item)), t.is_json()),
            None => (Bytes::from(text), true),
        };
        Event {
            payload,
            is_json,
            record: self.needs_record.then(|| Arc::new(item)),
            source: None,
        }
    }

    fn render(
        &self,
        rec: &SourceRecord,
        template: Option<&crate::transforms::InputTemplate>,
        needs_record: bool,
        needs_source: bool,
    ) -> Event {
        let need_decoded = needs_record || template.is_some();
        let decoded = need_decoded.then(|| decoded_record(&self.record_ctx, rec));
        let (payload, is_json) = match (template, &decoded) {
            (Some(t), Some(d)) => {
                let text = self.record_ctx.to_json(rec);
                (Bytes::from(t.render(&self.vars, &text, d)), t.is_json())
            }
            _ => {
                let mut out = Vec::with_capacity(256 + rec.size() * 4 / 3);
                self.record_ctx.write_json(rec, &mut out);
                (Bytes::from(out), true)
            }
        };
        Event {
            payload,
            is_json,
            record: if needs_record {
                decoded.map(Arc::new)
            } else {
                None
            },
            source: needs_source.then(|| Arc::new(rec.clone())),
        }
    }

    /// Hand a record that arrived on the main queue to its partition's lane. Lanes read their own
    /// partition queues; this path only sees records fetched in the instant between an assignment
    /// and the split of its partition queues.
    fn dispatch(&self, rec: SourceRecord) {
        let lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        match lanes.get(&rec.partition) {
            Some(lane) => {
                let _ = lane.tx.send(rec);
            }
            // librdkafka drops fetched records of revoked partitions; anything else is a bug.
            None => tracing::debug!(
                partition = rec.partition,
                "record for a partition without a lane"
            ),
        }
    }

    fn start_lane(self: &Arc<Self>, partition: i32) -> LaneHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let control = Arc::new(LaneControl::new(partition));
        let (done_tx, done) = std::sync::mpsc::channel();
        let consumer = self.consumer.get().cloned().unwrap_or_default();
        // The partition's own queue: librdkafka stops fetching a partition whose queue is full,
        // which bounds memory per partition without pausing (and re-fetching) anything.
        let queue = consumer
            .upgrade()
            .and_then(|c| c.split_partition_queue(&self.record_ctx.topic, partition));
        let lane = Lane {
            shared: self.clone(),
            control: control.clone(),
            rx,
            queue,
            consumer,
        };
        self.handle.spawn(async move {
            lane.run().await;
            let _ = done_tx.send(());
        });
        LaneHandle { tx, control, done }
    }

    /// Stop these lanes: let each finish its batch in flight within `timeout`, then abandon.
    fn stop_lanes(&self, handles: Vec<(i32, LaneHandle)>, timeout: Duration) {
        for (_, h) in &handles {
            h.control.drain.cancel();
        }
        let deadline = Instant::now() + timeout;
        let wait = || {
            for (p, h) in &handles {
                let left = deadline.saturating_duration_since(Instant::now());
                if h.done.recv_timeout(left).is_err() {
                    tracing::warn!(partition = p, "batch in flight did not finish in time; abandoned (it will be delivered again)");
                    h.control.abandon.cancel();
                    // The lane exits at its next await; give it a moment so it cannot commit
                    // after the partition is gone.
                    let _ = h.done.recv_timeout(Duration::from_secs(1));
                }
                self.metrics.remove_partition(&self.record_ctx.topic, *p);
            }
        };
        block_if_async(wait);
    }
}

/// Run blocking work from a callback that may be on a tokio worker thread.
fn block_if_async<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

struct Handler(Arc<Shared>);

impl PartitionHandler for Handler {
    fn assigned(&self, _consumer: &BaseConsumer<SourceContext>, partitions: &[i32]) {
        self.0.joined.store(true, Ordering::SeqCst);
        if !partitions.is_empty() {
            self.0.topic_seen.store(true, Ordering::SeqCst);
        }
        self.0.report_running();
        let mut lanes = self.0.lanes.lock().unwrap_or_else(|e| e.into_inner());
        for &p in partitions {
            lanes.entry(p).or_insert_with(|| self.0.start_lane(p));
        }
    }

    fn revoking(&self, _consumer: &BaseConsumer<SourceContext>, partitions: &[i32]) {
        let handles: Vec<(i32, LaneHandle)> = {
            let mut lanes = self.0.lanes.lock().unwrap_or_else(|e| e.into_inner());
            partitions
                .iter()
                .filter_map(|p| lanes.remove(p).map(|h| (*p, h)))
                .collect()
        };
        if handles.is_empty() {
            return;
        }
        let timeout = if self.0.closing.is_cancelled() {
            Duration::ZERO
        } else {
            self.0.options.revoke_timeout
        };
        self.0.stop_lanes(handles, timeout);
    }

    fn client_error(&self, error: &KafkaError, reason: &str) {
        if is_unknown_topic(error) {
            self.0.check_source.notify_one();
        }
        match fatal_reason(error) {
            Some(r) => self.0.fail(format!("{r} ({reason})")),
            None => {
                tracing::warn!(pipe = %self.0.spec.name, error = %error, reason, "Kafka client error")
            }
        }
    }
}

/// Run a validated pipe until `shutdown` is cancelled, then stop gracefully: stop polling, let
/// batches in flight finish (bounded), commit what was delivered, close the consumer. Progress is
/// reported on `status`; an error only the user can fix stops the pipe with
/// [`RuntimeError::Failed`] (and [`PipeStatus::Failed`]).
pub async fn run_pipe(
    spec: PipeSpec,
    metrics: Arc<Metrics>,
    options: RuntimeOptions,
    shutdown: CancellationToken,
    status: tokio::sync::watch::Sender<PipeStatus>,
) -> Result<(), RuntimeError> {
    status.send_replace(PipeStatus::Starting);
    // Secrets are fetched before anything connects; a secret that cannot be had stops the pipe
    // with a reason naming the field (never the value).
    let security = match auth::resolve(&spec.source.security).await {
        Ok(s) => s,
        Err(e) => {
            let reason = e.to_string();
            tracing::error!(pipe = %spec.name, reason = %reason, "pipe failed");
            status.send_replace(PipeStatus::Failed {
                reason: reason.clone(),
            });
            return Err(RuntimeError::Failed(reason));
        }
    };
    let spec = Arc::new(spec);
    // A target or enrichment that cannot be built (unsupported kind, missing connection secret)
    // stops the pipe with the reason, like a Kafka authentication failure.
    let built = async {
        let target = spec.target.build().await?;
        let enrichment = match &spec.enrichment {
            Some(e) => Some(e.build().await?),
            None => None,
        };
        Ok::<_, TargetError>((target, enrichment))
    };
    let (target, enrichment) = match built.await {
        Ok(b) => b,
        Err(e) if e.is_user_error() => {
            let reason = e.to_string();
            tracing::error!(pipe = %spec.name, reason = %reason, "pipe failed");
            status.send_replace(PipeStatus::Failed {
                reason: reason.clone(),
            });
            return Err(RuntimeError::Failed(reason));
        }
        Err(e) => return Err(e.into()),
    };
    let src = &spec.source;
    let record_ctx = match &src.kind {
        KafkaSourceKind::SelfManaged => {
            RecordContext::self_managed(&src.topic, &src.bootstrap_servers.join(","))
        }
        KafkaSourceKind::Msk { arn } => RecordContext::msk(&src.topic, arn),
    };
    let batch_payload_capped =
        matches!(&spec.target, TargetConfig::Http(h) if h.delivery == HttpDelivery::Batch);
    let shared = Arc::new(Shared {
        vars: TemplateVars {
            pipe_arn: spec.arn.clone(),
            pipe_name: spec.name.clone(),
            source_arn: spec.definition.source.clone().unwrap_or_default(),
            enrichment_arn: spec.definition.enrichment.clone().unwrap_or_default(),
            target_arn: spec.definition.target.clone().unwrap_or_default(),
        },
        needs_record: spec.target.needs_record(),
        needs_source: spec.target.needs_source(),
        enrichment_needs_record: spec.enrichment.as_ref().is_some_and(|e| e.needs_record()),
        enrichment,
        max_batch: spec.target.max_batch(),
        batch_payload_capped,
        metrics: metrics.pipe(&spec.name),
        policy: RetryPolicy::new(spec.max_retry_backoff),
        record_ctx,
        target,
        options: options.clone(),
        lanes: Mutex::new(HashMap::new()),
        consumer: OnceLock::new(),
        handle: tokio::runtime::Handle::current(),
        closing: CancellationToken::new(),
        status,
        failed: CancellationToken::new(),
        fatal_reason: Mutex::new(None),
        joined: AtomicBool::new(false),
        topic_seen: AtomicBool::new(false),
        check_source: tokio::sync::Notify::new(),
        spec: spec.clone(),
    });
    let context = SourceContext::new(&spec.source.topic, Arc::new(Handler(shared.clone())))
        .with_oauth(security.oauth.clone());
    let mut cfg = client_config(&spec.source, &options.client_id);
    cfg.set(
        "queued.min.messages",
        options.partition_prefetch_records.to_string(),
    )
    .set(
        "queued.max.messages.kbytes",
        options.partition_prefetch_kbytes.to_string(),
    );
    security.apply(&mut cfg);
    tracing::info!(pipe = %spec.name, security = %security.description, "connecting to Kafka");
    let consumer: Arc<KafkaConsumer> = Arc::new(create_consumer(&cfg, context)?);
    drop(cfg);
    let _ = shared.consumer.set(Arc::downgrade(&consumer));
    consumer.subscribe(&[&spec.source.topic])?;
    tracing::info!(pipe = %spec.name, topic = %spec.source.topic, group = %spec.source.consumer_group_id,
        target = %spec.definition.target.as_deref().unwrap_or_default(), "pipe running");

    let lag = tokio::spawn(report_lag(shared.clone(), Arc::downgrade(&consumer)));
    let watch = tokio::spawn(watch_source(shared.clone(), Arc::downgrade(&consumer)));
    let mut last_error: Option<(String, Instant)> = None;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = shared.failed.cancelled() => break,
            m = consumer.recv() => match m {
                Ok(msg) => shared.dispatch(SourceRecord::from_message(&msg)),
                Err(e) if fatal_reason(&e).is_some() => {
                    shared.fail(fatal_reason(&e).unwrap_or_default());
                }
                Err(e) => {
                    if is_unknown_topic(&e) {
                        shared.check_source.notify_one();
                    }
                    // The same error repeats on every poll while it lasts; say it once a minute.
                    let text = e.to_string();
                    let repeat = last_error.as_ref().is_some_and(|(t, at)| *t == text && at.elapsed() < Duration::from_secs(60));
                    if !repeat {
                        tracing::warn!(pipe = %spec.name, error = %text, "consumer error");
                        last_error = Some((text, Instant::now()));
                    }
                }
            },
        }
    }
    tracing::info!(pipe = %spec.name, "stopping: finishing batches in flight");
    let handles: Vec<(i32, LaneHandle)> = shared
        .lanes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .collect();
    let timeout = options.shutdown_timeout;
    let s = shared.clone();
    let _ = tokio::task::spawn_blocking(move || s.stop_lanes(handles, timeout)).await;
    lag.abort();
    watch.abort();
    shared.closing.cancel();
    // Closing leaves the group (a last revoke callback); it blocks, so not on a worker thread.
    let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
    let failure = shared
        .fatal_reason
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match failure {
        Some(reason) => {
            shared.status.send_replace(PipeStatus::Failed {
                reason: reason.clone(),
            });
            Err(RuntimeError::Failed(reason))
        }
        None => {
            shared.status.send_replace(PipeStatus::Stopped);
            tracing::info!(pipe = %spec.name, "pipe stopped");
            Ok(())
        }
    }
}

/// How long one metadata request of [`watch_source`] waits for a broker.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a listener probe waits to connect, and then for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the source is checked while all is well (a topic deleted under a running pipe).
const HEALTHY_CHECK_INTERVAL: Duration = Duration::from_secs(15);

/// Check the source periodically and fail the pipe on what only the user can fix (judged by
/// [`SourceHealth`]): the topic's metadata says whether it exists; when no broker answers, a probe
/// of the bootstrap servers says whether their listeners speak the other protocol (TLS vs
/// plaintext). An unreachable cluster is never fatal: librdkafka keeps reconnecting.
async fn watch_source(shared: Arc<Shared>, consumer: Weak<KafkaConsumer>) {
    let src = &shared.spec.source;
    let opts = &shared.options;
    let mut health = SourceHealth::new(
        &src.topic,
        opts.missing_topic_grace,
        opts.listener_mismatch_grace,
    );
    // While something is wrong, look often enough to fail close to the end of the grace period.
    let eager =
        (opts.missing_topic_grace / 4).clamp(Duration::from_millis(200), Duration::from_secs(2));
    loop {
        let Some(c) = consumer.upgrade() else { return };
        let topic = src.topic.clone();
        let fetched =
            tokio::task::spawn_blocking(move || c.fetch_metadata(Some(&topic), METADATA_TIMEOUT))
                .await;
        let observation = match fetched {
            Err(_) => return,
            Ok(Ok(md)) => topic_state(&md, &src.topic),
            Ok(Err(e)) => {
                let servers = src.bootstrap_servers.clone();
                let tls = src.security.tls;
                let found = tokio::task::spawn_blocking(move || {
                    probe::mismatch(&servers, tls, PROBE_TIMEOUT)
                })
                .await
                .ok()
                .flatten();
                tracing::debug!(pipe = %shared.spec.name, error = %e, mismatch = ?found,
                    "no broker answered the source check");
                Some(Observation::Unreachable(found))
            }
        };
        let mut healthy = false;
        if let Some(observation) = observation {
            let (was_missing, was_suspect) = (health.topic_missing(), health.mismatch_suspected());
            if observation == Observation::TopicExists {
                healthy = true;
                shared.topic_seen.store(true, Ordering::SeqCst);
                shared.report_running();
            }
            if let Some(problem) = health.observe(observation, Instant::now()) {
                shared.fail(problem.to_string());
                return;
            }
            if health.topic_missing() && !was_missing {
                tracing::warn!(pipe = %shared.spec.name, topic = %src.topic,
                    grace_secs = opts.missing_topic_grace.as_secs(),
                    "the source topic does not exist; the pipe fails if it is still missing after the grace period");
            } else if was_missing && !health.topic_missing() {
                tracing::info!(pipe = %shared.spec.name, topic = %src.topic, "the source topic exists now");
            }
            if health.mismatch_suspected() && !was_suspect {
                tracing::warn!(pipe = %shared.spec.name, tls = src.security.tls,
                    "the brokers' listener seems to speak the other protocol (TLS vs plaintext); the pipe fails if this lasts");
            }
        }
        let pause = if healthy {
            HEALTHY_CHECK_INTERVAL
        } else {
            eager
        };
        // librdkafka's word brings the next check forward, never closer than the floor.
        let floor = Duration::from_millis(200).min(pause);
        tokio::time::sleep(floor).await;
        tokio::select! {
            _ = tokio::time::sleep(pause - floor) => {}
            _ = shared.check_source.notified() => {}
        }
    }
}

/// librdkafka says a topic is unknown (it may have been deleted under us).
fn is_unknown_topic(error: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        error.rdkafka_error_code(),
        Some(C::UnknownTopicOrPartition | C::UnknownTopic)
    )
}

/// What the metadata of `topic` says about it; `None` for other topic errors (leader election,
/// authorization), which are judged elsewhere.
fn topic_state(md: &Metadata, topic: &str) -> Option<Observation> {
    use rdkafka::types::RDKafkaErrorCode as C;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Some(Observation::TopicMissing);
    };
    match t.error().map(C::from) {
        None => Some(Observation::TopicExists),
        Some(C::UnknownTopicOrPartition | C::UnknownTopic) => Some(Observation::TopicMissing),
        Some(_) => None,
    }
}

/// Measure each assigned partition's lag (high watermark minus committed offset) periodically.
async fn report_lag(shared: Arc<Shared>, consumer: Weak<KafkaConsumer>) {
    let mut tick = tokio::time::interval(shared.options.lag_interval);
    loop {
        tick.tick().await;
        let Some(c) = consumer.upgrade() else { return };
        let parts: Vec<(i32, i64)> = shared
            .lanes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(p, h)| (*p, h.control.committed.load(Ordering::Relaxed)))
            .collect();
        let topic = shared.record_ctx.topic.clone();
        let result = tokio::task::spawn_blocking(move || {
            let positions = c.position().ok();
            parts
                .into_iter()
                .filter_map(|(p, committed)| {
                    let (_lo, hi) = c.fetch_watermarks(&topic, p, Duration::from_secs(2)).ok()?;
                    let base = if committed >= 0 {
                        committed
                    } else {
                        position_of(positions.as_ref(), &topic, p).unwrap_or(hi)
                    };
                    Some((p, (hi - base).max(0), base))
                })
                .collect::<Vec<_>>()
        })
        .await;
        if let Ok(rows) = result {
            let mut total = 0;
            for (p, lag, base) in rows {
                total += lag;
                shared
                    .metrics
                    .set_partition(&shared.record_ctx.topic, p, lag, base);
            }
            shared.metrics.offset_lag.set(total);
        }
    }
}

fn position_of(tpl: Option<&TopicPartitionList>, topic: &str, p: i32) -> Option<i64> {
    match tpl?.find_partition(topic, p)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}
