//! The pipe's health as its runtime sees it: the status it reports to the control plane
//! ([`PipeStatus`]: starting, waiting and why, running, failed), the first fatal reason (which
//! stops the pipe), the two facts that make a pipe RUNNING (the consumer joined its group, the
//! topic is known to exist), the partitions it owns (reported with RUNNING), and the gauges that
//! show them (`sluice_source_connected`, `sluice_source_joined`).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::PipeStatus;
use crate::metrics::PipeMetrics;
use crate::model::PipeSpec;

/// One pipe's health, shared by the poll loop, the rebalance hooks and the source checks.
#[derive(Debug)]
pub(crate) struct PipeHealth {
    pipe: String,
    /// What `pipe running` says about the pipe: topic, group, target.
    running_line: (String, String, String),
    status: watch::Sender<PipeStatus>,
    metrics: PipeMetrics,
    /// Cancelled when a fatal error was reported; `fatal_reason` says which.
    failed: CancellationToken,
    fatal_reason: Mutex<Option<String>>,
    /// The group assigned partitions to us (possibly none).
    joined: AtomicBool,
    /// The topic was seen on the cluster (in its metadata, or partitions of it were assigned).
    topic_seen: AtomicBool,
    /// Wakes the source check early (librdkafka said the topic is unknown).
    check_source: Notify,
    /// The partitions assigned to us and not revoked since.
    owned: Mutex<BTreeSet<i32>>,
}

impl PipeHealth {
    pub fn new(spec: &PipeSpec, status: watch::Sender<PipeStatus>, metrics: PipeMetrics) -> Self {
        metrics.source_connected.set(0);
        metrics.source_joined.set(0);
        Self {
            pipe: spec.name.clone(),
            running_line: (
                spec.source.topic.clone(),
                spec.source.consumer_group_id.clone(),
                spec.definition.target.clone().unwrap_or_default(),
            ),
            status,
            metrics,
            failed: CancellationToken::new(),
            fatal_reason: Mutex::new(None),
            joined: AtomicBool::new(false),
            topic_seen: AtomicBool::new(false),
            check_source: Notify::new(),
            owned: Mutex::default(),
        }
    }

    /// The pipe's name, for logs.
    pub fn pipe(&self) -> &str {
        &self.pipe
    }

    /// Stop the pipe on an error only the user can fix; the first reason wins.
    pub fn fail(&self, reason: String) {
        let mut r = self.fatal_reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            tracing::error!(pipe = %self.pipe, reason = %reason, "pipe failed");
            *r = Some(reason);
            self.failed.cancel();
        }
    }

    /// Cancelled once the pipe failed.
    pub fn failed(&self) -> &CancellationToken {
        &self.failed
    }

    /// Why the pipe failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.fatal_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `partitions` were assigned to us (`true`) or revoked; a RUNNING status shows the change.
    pub fn own(&self, partitions: &[i32], assigned: bool) {
        {
            let mut owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
            for p in partitions {
                if assigned {
                    owned.insert(*p);
                } else {
                    owned.remove(p);
                }
            }
        }
        let owned = self.owned();
        self.status.send_if_modified(|s| match s {
            PipeStatus::Running { partitions } if *partitions != owned => {
                *partitions = owned;
                true
            }
            _ => false,
        });
    }

    fn owned(&self) -> Vec<i32> {
        let owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        owned.iter().copied().collect()
    }

    /// The group assigned partitions (possibly none) to us.
    pub fn joined(&self) {
        self.joined.store(true, Ordering::SeqCst);
        self.metrics.source_joined.set(1);
        self.metrics.source_connected.set(1);
        self.report_running();
    }

    /// The topic is known to exist.
    pub fn topic_seen(&self) {
        self.topic_seen.store(true, Ordering::SeqCst);
        self.report_running();
    }

    /// Whether the last look at the cluster got an answer from a broker.
    pub fn connected(&self, connected: bool) {
        self.metrics.source_connected.set(i64::from(connected));
    }

    /// Say why a pipe that is not running yet waits (`None`: it no longer waits on anything the
    /// user should hear about). Once running, or failed, the status stays as it is.
    pub fn waiting(&self, reason: Option<String>) {
        let next = match reason {
            Some(reason) => PipeStatus::Waiting { reason },
            None => PipeStatus::Starting,
        };
        self.status.send_if_modified(|s| {
            let change =
                matches!(s, PipeStatus::Starting | PipeStatus::Waiting { .. }) && *s != next;
            if change {
                *s = next;
            }
            change
        });
    }

    /// Ask for a source check now.
    pub fn check_source_soon(&self) {
        self.check_source.notify_one();
    }

    /// Resolves when someone asked for a source check.
    pub async fn source_check_requested(&self) {
        self.check_source.notified().await
    }

    /// Report the final status: failed with the reason, or stopped.
    pub fn report_end(&self) -> Option<String> {
        self.metrics.source_connected.set(0);
        self.metrics.source_joined.set(0);
        let failure = self.failure();
        self.status.send_replace(match &failure {
            Some(reason) => PipeStatus::Failed {
                reason: reason.clone(),
            },
            None => PipeStatus::Stopped,
        });
        failure
    }

    /// Report RUNNING once the consumer joined its group and the topic is known to exist (a
    /// consumer of a missing topic may join with no partition; that pipe is not running yet).
    fn report_running(&self) {
        if self.joined.load(Ordering::SeqCst) && self.topic_seen.load(Ordering::SeqCst) {
            let partitions = self.owned();
            let changed = self.status.send_if_modified(|s| {
                let changed = matches!(s, PipeStatus::Starting | PipeStatus::Waiting { .. });
                if changed {
                    *s = PipeStatus::Running { partitions };
                }
                changed
            });
            if changed {
                let (topic, group, target) = &self.running_line;
                tracing::info!(pipe = %self.pipe, %topic, %group, %target, "pipe running");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::model::{parse_definition, validate, ValidationContext};

    fn health() -> (PipeHealth, watch::Receiver<PipeStatus>) {
        let text = r#"{"Name":"p","Source":"smk://h:9092","Target":"http://127.0.0.1:1/",
            "SourceParameters":{"SelfManagedKafkaParameters":{"TopicName":"t"}}}"#;
        let def = parse_definition(text, false).unwrap();
        let spec = validate(&def, &ValidationContext::default()).unwrap();
        let (tx, rx) = watch::channel(PipeStatus::Starting);
        let metrics = std::sync::Arc::new(Metrics::new()).pipe("p");
        (PipeHealth::new(&spec, tx, metrics), rx)
    }

    #[test]
    fn running_reports_the_partitions_owned_through_rebalances() {
        let (h, rx) = health();
        h.own(&[2, 0], true);
        assert_eq!(
            *rx.borrow(),
            PipeStatus::Starting,
            "not running before joining"
        );
        h.joined();
        h.topic_seen();
        let running = |partitions: &[i32]| PipeStatus::Running {
            partitions: partitions.to_vec(),
        };
        assert_eq!(*rx.borrow(), running(&[0, 2]));
        h.own(&[0], false);
        assert_eq!(*rx.borrow(), running(&[2]));
        h.own(&[1, 3], true);
        assert_eq!(*rx.borrow(), running(&[1, 2, 3]));
    }
}
