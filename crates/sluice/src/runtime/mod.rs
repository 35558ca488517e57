//! Running one pipe. [`run_pipe`] resolves the source's secrets, builds the target and enrichment
//! into a [`process::BatchProcessor`], connects the consumer, and then only serves the consumer's
//! group events while the work happens in lanes, one per assigned partition ([`lane`]), each
//! reading its partition's own queue. The Kafka side of lanes and rebalances is one adapter
//! ([`kafka`]); the registry of running lanes is [`lanes`]; the pipe's health and reported status
//! is [`status`]; the periodic source check and lag report are [`watch`]. Bounded memory needs no
//! pausing: librdkafka stops fetching a partition whose queue is full (`RuntimeOptions`).
//!
//! Record path: `sources::kafka` (fetch into the partition queue) -> [`lane`] (batch) ->
//! [`delivery`] (attempts, retries, bisection, dead letters; commits what is done) -> [`process`]
//! (filter, events, enrichment, target, dead-letter write).

pub mod commit_interval;
pub mod commits;
pub mod delivery;
pub mod kafka;
pub mod keyed;
pub mod lane;
pub mod lanes;
pub mod limit;
pub mod process;
pub mod retry;
pub mod status;
pub mod watch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::Message;
use tokio_util::sync::CancellationToken;

use crate::dead_letter::letter::Origin;
use crate::dead_letter::SinkContext;
use crate::execution_log::recent::RecentErrors;
use crate::kafka::ResolvedSecurity;
use crate::metrics::Metrics;
use crate::model::{KafkaSourceKind, KafkaSourceSpec, PipeSpec};
use crate::sources::kafka::SourceContext;
use crate::sources::kafka::{auth, msk};
use crate::sources::kafka::{client_config, create_consumer, KafkaConsumer};
use crate::targets::TargetError;
use crate::transforms::event::EventBuilder;
use crate::transforms::record_json::RecordJson;
use kafka::{fatal_reason, is_unknown_topic, RebalanceHooks};
use lanes::LaneRegistry;
use process::{BatchProcessor, Stages};
use status::PipeHealth;

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
    /// `group.instance.id` of the consumer (static membership, KIP-345); `None`, a dynamic member.
    pub group_instance_id: Option<String>,
    /// librdkafka properties set on the consumer after Sluice's own (`[source]
    /// librdkafka_options` of the configuration file, checked there).
    pub librdkafka_options: Vec<(String, String)>,
    /// How long the source topic may be missing before the pipe fails (it may be created just
    /// after the pipe).
    pub missing_topic_grace: Duration,
    /// How long a TLS/plaintext mismatch with the brokers' listener must persist before the pipe
    /// fails.
    pub listener_mismatch_grace: Duration,
    /// How long no broker of an MSK cluster looked up by ARN may answer before its brokers are
    /// looked up again (they may have been replaced).
    pub msk_lookup_again_after: Duration,
    /// Where the pipes' execution logs keep their last errors, for the console (shared by every
    /// pipe of this instance; not a knob, but handed to each runtime with the others).
    pub recent_errors: Arc<RecentErrors>,
}

/// Default of [`RuntimeOptions::msk_lookup_again_after`] (and of the config file's
/// `msk_lookup_again_after_seconds`): a minute, as `kafka-source.md` says.
pub const DEFAULT_MSK_LOOKUP_AGAIN_AFTER: Duration = Duration::from_secs(60);

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
            group_instance_id: None,
            librdkafka_options: Vec::new(),
            missing_topic_grace: DEFAULT_MISSING_TOPIC_GRACE,
            listener_mismatch_grace: Duration::from_secs(10),
            msk_lookup_again_after: DEFAULT_MSK_LOOKUP_AGAIN_AFTER,
            recent_errors: Arc::default(),
        }
    }
}

/// What a running pipe reports about itself (the control plane maps it to `CurrentState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipeStatus {
    /// Connecting and joining the consumer group.
    Starting,
    /// Not running yet, and waiting on something outside the pipe (brokers that do not answer, a
    /// topic that does not exist yet); it keeps trying. The reason says what to check.
    Waiting {
        /// What the pipe waits for, and what to check.
        reason: String,
    },
    /// Joined the group and received an assignment (possibly of no partition), and the topic is
    /// known to exist.
    Running {
        /// The partitions of the topic this consumer owns now, in order (updated at each
        /// rebalance).
        partitions: Vec<i32>,
    },
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

/// Run a validated pipe until `shutdown` is cancelled, then stop gracefully: stop polling, let
/// batches in flight finish (bounded), commit what was delivered, close the consumer. Progress is
/// reported on `status`; an error only the user can fix stops the pipe with
/// [`RuntimeError::Failed`] (and [`PipeStatus::Failed`]). An MSK cluster given by ARN alone has its
/// brokers looked up first, and again when none answered for
/// [`RuntimeOptions::msk_lookup_again_after`]: brokers that moved get a new consumer.
pub async fn run_pipe(
    spec: PipeSpec,
    metrics: Arc<Metrics>,
    options: RuntimeOptions,
    shutdown: CancellationToken,
    status: tokio::sync::watch::Sender<PipeStatus>,
) -> Result<(), RuntimeError> {
    status.send_replace(PipeStatus::Starting);
    let health = Arc::new(PipeHealth::new(&spec, status, metrics.pipe(&spec.name)));
    let mut resolved = None;
    loop {
        let source = match resolved.take() {
            Some(source) => source,
            None => match resolve_source(&spec, &shutdown).await {
                Some(Ok(source)) => source,
                Some(Err(e)) => return Err(fail_at_start(&health, e)),
                None => break,
            },
        };
        let current = spec.with_source(source);
        match serve(&spec, &current, &metrics, &options, &shutdown, &health).await {
            Ok(Some(moved)) => resolved = Some(moved),
            Ok(None) => break,
            Err(e) => return Err(fail_at_start(&health, e)),
        }
    }
    match health.report_end() {
        Some(reason) => Err(RuntimeError::Failed(reason)),
        None => {
            tracing::info!(pipe = %spec.name, "pipe stopped");
            Ok(())
        }
    }
}

/// An error before the pipe ran: one only the user can fix is reported as the pipe's failure.
fn fail_at_start(health: &PipeHealth, e: RuntimeError) -> RuntimeError {
    if let RuntimeError::Failed(reason) = &e {
        health.fail(reason.clone());
        health.report_end();
    }
    e
}

/// The source with an MSK cluster's brokers looked up (`sources::kafka::msk`); `None` when
/// `shutdown` came first. Throttling is retried for as long as it lasts.
async fn resolve_source(
    spec: &PipeSpec,
    shutdown: &CancellationToken,
) -> Option<Result<KafkaSourceSpec, RuntimeError>> {
    tokio::select! {
        r = msk::resolve(&spec.source) => Some(r.map_err(|e| RuntimeError::Failed(e.to_string()))),
        _ = shutdown.cancelled() => None,
    }
}

/// One consumer's life: prepare, connect, serve group events until shutdown, a fatal error or
/// (for a cluster looked up by ARN) brokers that moved, then the bounded stop. `Ok(Some(source))`
/// is the source at its new brokers; `current` is `spec` with its brokers resolved.
async fn serve(
    spec: &PipeSpec,
    current: &PipeSpec,
    metrics: &Arc<Metrics>,
    options: &RuntimeOptions,
    shutdown: &CancellationToken,
    health: &Arc<PipeHealth>,
) -> Result<Option<KafkaSourceSpec>, RuntimeError> {
    let (security, processor) = prepare(current, metrics, &options.recent_errors).await?;
    let topic = &current.source.topic;
    let pipe_metrics = processor.metrics().clone();
    let execution_log = processor.execution_log().cloned();
    let registry = Arc::new(LaneRegistry::new(
        topic,
        pipe_metrics.clone(),
        options.revoke_timeout,
    ));
    let hooks = Arc::new(RebalanceHooks::new(
        topic,
        registry.clone(),
        processor,
        health.clone(),
    ));
    let consumer = connect(current, options, &security, hooks.clone())?;
    drop(security);
    let weak = Arc::downgrade(&consumer);
    let lag = tokio::spawn(watch::report_lag(
        topic.clone(),
        options.lag_interval,
        registry.clone(),
        pipe_metrics,
        weak.clone(),
    ));
    let (unreachable, unreachable_rx) = tokio::sync::watch::channel(None);
    let source_check = tokio::spawn(watch::watch_source(
        current.source.clone(),
        options.clone(),
        health.clone(),
        weak,
        unreachable,
    ));
    // Polling stops on shutdown, or when the brokers of a cluster looked up by ARN moved.
    let stop = shutdown.child_token();
    let moved = Arc::new(std::sync::Mutex::new(None));
    let lookup_again = spec.source.msk_lookup.is_some().then(|| {
        tokio::spawn(watch_moved_brokers(
            spec.source.clone(),
            current.source.bootstrap_servers.clone(),
            options.msk_lookup_again_after,
            unreachable_rx,
            health.clone(),
            MovedSignal {
                stop: stop.clone(),
                source: moved.clone(),
            },
        ))
    });
    poll(&consumer, &stop, health).await;
    tracing::info!(pipe = %spec.name, "stopping: finishing batches in flight");
    let timeout = options.shutdown_timeout;
    let r = registry.clone();
    let _ = tokio::task::spawn_blocking(move || r.stop_all(timeout)).await;
    lag.abort();
    source_check.abort();
    if let Some(task) = lookup_again {
        task.abort();
    }
    registry.close();
    hooks.clear();
    // Closing leaves the group (a last revoke callback); it blocks, so not on a worker thread.
    let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
    if let Some(log) = execution_log {
        log.close().await;
    }
    let moved = moved.lock().unwrap_or_else(|e| e.into_inner()).take();
    Ok(moved.filter(|_| !shutdown.is_cancelled() && health.failure().is_none()))
}

/// How [`watch_moved_brokers`] says the brokers moved: the source at its new brokers, then the
/// consumer's polling stopped.
struct MovedSignal {
    stop: CancellationToken,
    source: Arc<std::sync::Mutex<Option<KafkaSourceSpec>>>,
}

/// While no broker answers the source check for `after`, look the cluster's brokers up again
/// (`source` is the definition's, unresolved); when the chosen brokers are others than `servers`,
/// hand over the new source and stop the consumer. An AWS error fails the pipe.
async fn watch_moved_brokers(
    source: KafkaSourceSpec,
    servers: Vec<String>,
    after: Duration,
    mut unreachable: tokio::sync::watch::Receiver<Option<Instant>>,
    health: Arc<PipeHealth>,
    moved: MovedSignal,
) {
    let mut not_before = Instant::now();
    loop {
        if unreachable_for(&mut unreachable, after, not_before)
            .await
            .is_none()
        {
            return;
        }
        tracing::warn!(pipe = %health.pipe(), after_secs = after.as_secs(),
            "no broker of the MSK cluster answers: looking its brokers up again");
        match msk::resolve(&source).await {
            Ok(new) if new.bootstrap_servers != servers => {
                tracing::info!(pipe = %health.pipe(), servers = %new.bootstrap_servers.join(","),
                    "the MSK cluster's brokers moved: reconnecting");
                *moved.source.lock().unwrap_or_else(|e| e.into_inner()) = Some(new);
                moved.stop.cancel();
                return;
            }
            Ok(_) => not_before = Instant::now(),
            Err(e) => {
                health.fail(e.to_string());
                return;
            }
        }
    }
}

/// Wait until the source check has seen no broker answer for `after`, counting from no earlier
/// than `not_before`; `None` when the check is gone.
async fn unreachable_for(
    since: &mut tokio::sync::watch::Receiver<Option<Instant>>,
    after: Duration,
    not_before: Instant,
) -> Option<()> {
    loop {
        let current = *since.borrow_and_update();
        match current {
            Some(t) => {
                let deadline = t.max(not_before) + after;
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline.into()) => return Some(()),
                    r = since.changed() => r.ok()?,
                }
            }
            None => since.changed().await.ok()?,
        }
    }
}

/// Before anything connects: the source's secrets (a secret that cannot be had stops the pipe with
/// a reason naming the field, never the value), and the target and enrichment, built. A target
/// only the user can fix (unsupported kind, missing connection secret) stops the pipe like a Kafka
/// authentication failure.
async fn prepare(
    spec: &PipeSpec,
    metrics: &Arc<Metrics>,
    recent_errors: &RecentErrors,
) -> Result<(ResolvedSecurity, Arc<BatchProcessor>), RuntimeError> {
    let security = auth::resolve(&spec.source.security)
        .await
        .map_err(|e| RuntimeError::Failed(e.to_string()))?;
    let failed_build = |e: TargetError| {
        if e.is_user_error() {
            RuntimeError::Failed(e.to_string())
        } else {
            RuntimeError::Target(e)
        }
    };
    let target = spec.target.build().await.map_err(failed_build)?;
    let enrichment = match &spec.enrichment {
        Some(e) => Some(e.build().await.map_err(failed_build)?),
        None => None,
    };
    let dead_letter = match &spec.dead_letter {
        Some(d) => Some(
            d.build(&sink_context(spec, &security))
                .await
                .map_err(failed_build)?,
        ),
        None => None,
    };
    let execution_log = match &spec.execution_log {
        Some(c) => Some(Arc::new(
            c.build(
                &spec.name,
                &spec.arn,
                &metrics.pipe(&spec.name),
                recent_errors.ring(&spec.name),
            )
            .await
            .map_err(|e| RuntimeError::Failed(format!("LogConfiguration: {e}")))?,
        )),
        None => None,
    };
    let src = &spec.source;
    let json = match &src.kind {
        KafkaSourceKind::SelfManaged => {
            RecordJson::self_managed(&src.topic, &src.bootstrap_servers.join(","))
        }
        KafkaSourceKind::Msk { arn } => RecordJson::msk(&src.topic, arn),
    };
    let stages = Stages {
        target,
        enrichment,
        dead_letter,
        execution_log,
    };
    let processor = BatchProcessor::new(
        spec,
        EventBuilder::new(spec, json),
        stages,
        metrics.pipe(&spec.name),
    );
    Ok((security, Arc::new(processor)))
}

/// What a dead letter says of the pipe, and the source's security for a dead-letter topic on the
/// source cluster.
fn sink_context(spec: &PipeSpec, security: &ResolvedSecurity) -> SinkContext {
    let src = &spec.source;
    let event_source_arn = match &src.kind {
        KafkaSourceKind::Msk { arn } => arn.clone(),
        KafkaSourceKind::SelfManaged => spec.definition.source.clone().unwrap_or_default(),
    };
    SinkContext {
        origin: Origin {
            pipe_arn: spec.arn.clone(),
            topic: src.topic.clone(),
            event_source_arn,
            bootstrap_servers: src.bootstrap_servers.join(","),
        },
        source_security: Some(security.clone()),
        region: spec
            .arn
            .split(':')
            .nth(3)
            .unwrap_or("us-east-1")
            .to_string(),
    }
}

/// Create the consumer with its security settings and the rebalance hooks, and subscribe.
fn connect(
    spec: &PipeSpec,
    options: &RuntimeOptions,
    security: &ResolvedSecurity,
    hooks: Arc<RebalanceHooks>,
) -> Result<Arc<KafkaConsumer>, RuntimeError> {
    let context = SourceContext::new(&spec.source.topic, hooks.clone())
        .with_oauth(security.oauth.clone())
        .with_starting_timestamp(spec.source.starting_timestamp_ms);
    let mut cfg = client_config(&spec.source, &options.client_id);
    // The per-partition prefetch bound: librdkafka stops fetching a partition whose own queue
    // holds this many records or kilobytes, so a slow lane keeps its backlog in Kafka.
    cfg.set(
        "queued.min.messages",
        options.partition_prefetch_records.to_string(),
    )
    .set(
        "queued.max.messages.kbytes",
        options.partition_prefetch_kbytes.to_string(),
    );
    if let Some(id) = &options.group_instance_id {
        cfg.set("group.instance.id", id);
    }
    crate::sources::kafka::tuning::apply(&mut cfg, &options.librdkafka_options);
    security.apply(&mut cfg);
    tracing::info!(pipe = %spec.name, security = %security.description, "connecting to Kafka");
    let consumer = Arc::new(create_consumer(&cfg, context)?);
    drop(cfg);
    hooks.attach(&consumer);
    consumer.subscribe(&[&spec.source.topic])?;
    // `pipe running` follows once the group has assigned partitions and the topic is known.
    tracing::info!(pipe = %spec.name, topic = %spec.source.topic, group = %spec.source.consumer_group_id,
        "subscribed; joining the consumer group");
    Ok(consumer)
}

/// Serve the consumer's main queue (rebalances, errors) until shutdown or a fatal error. Records
/// never arrive here: each partition's queue is split off before it is assigned.
async fn poll(consumer: &KafkaConsumer, shutdown: &CancellationToken, health: &PipeHealth) {
    let mut last_error: Option<(String, Instant)> = None;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = health.failed().cancelled() => return,
            m = consumer.recv() => match m {
                Ok(msg) => {
                    // Fail-stop rather than skip it: nothing is committed past an undelivered record.
                    health.fail(format!(
                        "internal error: record {} of partition {} reached the consumer's main queue instead of its lane; the pipe stopped without committing past it",
                        msg.offset(), msg.partition()
                    ));
                }
                Err(e) => on_consumer_error(&e, health, &mut last_error),
            },
        }
    }
}

/// A consumer error: fatal ones stop the pipe; others repeat on every poll while they last, so
/// each is said once a minute.
fn on_consumer_error(e: &KafkaError, health: &PipeHealth, last: &mut Option<(String, Instant)>) {
    if let Some(reason) = fatal_reason(e) {
        health.fail(reason);
        return;
    }
    if is_unknown_topic(e) {
        health.check_source_soon();
    }
    let text = e.to_string();
    let repeat = last
        .as_ref()
        .is_some_and(|(t, at)| *t == text && at.elapsed() < Duration::from_secs(60));
    if !repeat {
        tracing::warn!(pipe = %health.pipe(), error = %text, "consumer error");
        *last = Some((text, Instant::now()));
    }
}
