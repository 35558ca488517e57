//! The runtime's periodic looks at the cluster, beside the lanes: [`watch_source`] fails the pipe on
//! what only the user can fix (a missing topic, TLS against a plaintext listener: judged by
//! `sources::kafka::health`), says meanwhile what a pipe not yet running waits for (its
//! `StateReason`, a WARN each minute while no broker answers), and [`report_lag`] measures each
//! assigned partition's lag.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::metadata::Metadata;
use rdkafka::{Offset, TopicPartitionList};

use super::lanes::LaneRegistry;
use super::status::PipeHealth;
use super::RuntimeOptions;
use crate::metrics::PipeMetrics;
use crate::model::KafkaSourceSpec;
use crate::sources::kafka::health::{Observation, SourceHealth};
use crate::sources::kafka::{probe, KafkaConsumer};

/// How long one metadata request of [`watch_source`] waits for a broker.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a listener probe waits to connect, and then for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the source is checked while all is well (a topic deleted under a running pipe).
const HEALTHY_CHECK_INTERVAL: Duration = Duration::from_secs(15);
/// How often a cluster that stays unreachable is said again at WARN.
const UNREACHABLE_WARN_INTERVAL: Duration = Duration::from_secs(60);

/// Check the source periodically and fail the pipe on what only the user can fix (judged by
/// [`SourceHealth`]): the topic's metadata says whether it exists; when no broker answers, a probe
/// of the bootstrap servers says whether their listeners speak the other protocol (TLS vs
/// plaintext). An unreachable cluster is never fatal: librdkafka keeps reconnecting; since when
/// no broker answered is published on `unreachable` (for the MSK lookup that finds moved brokers).
pub(crate) async fn watch_source(
    source: KafkaSourceSpec,
    options: RuntimeOptions,
    health: Arc<PipeHealth>,
    consumer: Weak<KafkaConsumer>,
    unreachable: tokio::sync::watch::Sender<Option<Instant>>,
) {
    let mut judge = SourceHealth::new(
        &source.topic,
        options.missing_topic_grace,
        options.listener_mismatch_grace,
    );
    // While something is wrong, look often enough to fail close to the end of the grace period.
    let eager =
        (options.missing_topic_grace / 4).clamp(Duration::from_millis(200), Duration::from_secs(2));
    let mut warned_unreachable: Option<Instant> = None;
    loop {
        let Some(observation) = observe(&source, &health, &consumer).await else {
            return;
        };
        let healthy = observation == Some(Observation::TopicExists);
        let none_answered = matches!(observation, Some(Observation::Unreachable(_)));
        unreachable.send_if_modified(|since| match (none_answered, *since) {
            (true, None) => since.replace(Instant::now()).is_none(),
            (false, Some(_)) => since.take().is_some(),
            _ => false,
        });
        if let Some(observation) = observation {
            if !judge_observation(&mut judge, observation, &source, &options, &health) {
                return;
            }
            health.connected(judge.unreachable_since().is_none());
            health.waiting(judge.waiting_reason(&source.bootstrap_servers));
            warn_unreachable(&judge, &source, &health, &mut warned_unreachable);
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
            _ = health.source_check_requested() => {}
        }
    }
}

/// One look at the cluster: `None` when the consumer is gone; `Some(None)` for topic errors that
/// are judged elsewhere (leader election, authorization).
async fn observe(
    source: &KafkaSourceSpec,
    health: &PipeHealth,
    consumer: &Weak<KafkaConsumer>,
) -> Option<Option<Observation>> {
    let c = consumer.upgrade()?;
    let topic = source.topic.clone();
    let fetched =
        tokio::task::spawn_blocking(move || c.fetch_metadata(Some(&topic), METADATA_TIMEOUT))
            .await
            .ok()?;
    Some(match fetched {
        Ok(md) => topic_state(&md, &source.topic),
        Err(e) => {
            let servers = source.bootstrap_servers.clone();
            let tls = source.security.tls;
            let found =
                tokio::task::spawn_blocking(move || probe::mismatch(&servers, tls, PROBE_TIMEOUT))
                    .await
                    .ok()
                    .flatten();
            tracing::debug!(pipe = %health.pipe(), error = %e, mismatch = ?found,
                "no broker answered the source check");
            Some(Observation::Unreachable(found))
        }
    })
}

/// Feed one observation to the judge; fail the pipe (and answer `false`) on a problem, and log
/// when a suspicion starts or ends.
fn judge_observation(
    judge: &mut SourceHealth,
    observation: Observation,
    source: &KafkaSourceSpec,
    options: &RuntimeOptions,
    health: &PipeHealth,
) -> bool {
    let (was_missing, was_suspect) = (judge.topic_missing(), judge.mismatch_suspected());
    if observation == Observation::TopicExists {
        health.topic_seen();
    }
    if let Some(problem) = judge.observe(observation, Instant::now()) {
        health.fail(problem.to_string());
        return false;
    }
    let pipe = health.pipe();
    if judge.topic_missing() && !was_missing {
        tracing::warn!(pipe, topic = %source.topic,
            grace_secs = options.missing_topic_grace.as_secs(),
            "the source topic does not exist; the pipe fails if it is still missing after the grace period");
    } else if was_missing && !judge.topic_missing() {
        tracing::info!(pipe, topic = %source.topic, "the source topic exists now");
    }
    if judge.mismatch_suspected() && !was_suspect {
        tracing::warn!(pipe, tls = source.security.tls,
            "the brokers' listener seems to speak the other protocol (TLS vs plaintext); the pipe fails if this lasts");
    }
    true
}

/// Say at WARN that no broker answers, when it starts and then once a minute while it lasts
/// (librdkafka's own lines only say `Connection refused`), and when it is over.
fn warn_unreachable(
    judge: &SourceHealth,
    source: &KafkaSourceSpec,
    health: &PipeHealth,
    warned: &mut Option<Instant>,
) {
    let servers = source.bootstrap_servers.join(",");
    match (judge.unreachable_since(), *warned) {
        (Some(since), last) if last.is_none_or(|at| at.elapsed() >= UNREACHABLE_WARN_INTERVAL) => {
            tracing::warn!(pipe = %health.pipe(), bootstrap_servers = %servers,
                "cannot reach {servers} for {} s; check BootstrapServers / the listener (still trying)",
                // The look that found it unreachable had already waited this long.
                (since.elapsed() + METADATA_TIMEOUT).as_secs());
            *warned = Some(Instant::now());
        }
        (None, Some(_)) => {
            tracing::info!(pipe = %health.pipe(), bootstrap_servers = %servers,
                "the Kafka cluster answers again");
            *warned = None;
        }
        _ => {}
    }
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
pub(crate) async fn report_lag(
    topic: String,
    interval: Duration,
    registry: Arc<LaneRegistry>,
    metrics: PipeMetrics,
    consumer: Weak<KafkaConsumer>,
) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let Some(c) = consumer.upgrade() else { return };
        let parts = registry.committed();
        let asked = parts.len();
        let t = topic.clone();
        let rows = tokio::task::spawn_blocking(move || measure_lag(&c, &t, parts)).await;
        if let Ok(rows) = rows {
            let answered = rows.len();
            let mut total = 0;
            for (p, lag, base) in rows {
                total += lag;
                metrics.set_partition(&topic, p, lag, base);
            }
            // A partition whose watermark did not come keeps its last figure; a total without it
            // would claim the backlog shrank.
            if answered == asked {
                metrics.offset_lag.set(total);
            }
        }
    }
}

/// `(partition, lag, committed or position)` of each partition that answered. Blocks.
fn measure_lag(c: &KafkaConsumer, topic: &str, parts: Vec<(i32, i64)>) -> Vec<(i32, i64, i64)> {
    let positions = c.position().ok();
    parts
        .into_iter()
        .filter_map(|(p, committed)| {
            let (_lo, hi) = c.fetch_watermarks(topic, p, Duration::from_secs(2)).ok()?;
            let base = if committed >= 0 {
                committed
            } else {
                position_of(positions.as_ref(), topic, p).unwrap_or(hi)
            };
            Some((p, (hi - base).max(0), base))
        })
        .collect()
}

fn position_of(tpl: Option<&TopicPartitionList>, topic: &str, p: i32) -> Option<i64> {
    match tpl?.find_partition(topic, p)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}
