//! The pipe's health as its runtime sees it: the status it reports to the control plane
//! ([`PipeStatus`]), the first fatal reason (which stops the pipe), and the two facts that make a
//! pipe RUNNING (the consumer joined its group, the topic is known to exist).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::PipeStatus;

/// One pipe's health, shared by the poll loop, the rebalance hooks and the source checks.
#[derive(Debug)]
pub(crate) struct PipeHealth {
    pipe: String,
    status: watch::Sender<PipeStatus>,
    /// Cancelled when a fatal error was reported; `fatal_reason` says which.
    failed: CancellationToken,
    fatal_reason: Mutex<Option<String>>,
    /// The group assigned partitions to us (possibly none).
    joined: AtomicBool,
    /// The topic was seen on the cluster (in its metadata, or partitions of it were assigned).
    topic_seen: AtomicBool,
    /// Wakes the source check early (librdkafka said the topic is unknown).
    check_source: Notify,
}

impl PipeHealth {
    pub fn new(pipe: &str, status: watch::Sender<PipeStatus>) -> Self {
        Self {
            pipe: pipe.to_string(),
            status,
            failed: CancellationToken::new(),
            fatal_reason: Mutex::new(None),
            joined: AtomicBool::new(false),
            topic_seen: AtomicBool::new(false),
            check_source: Notify::new(),
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

    /// The group assigned partitions (possibly none) to us.
    pub fn joined(&self) {
        self.joined.store(true, Ordering::SeqCst);
        self.report_running();
    }

    /// The topic is known to exist.
    pub fn topic_seen(&self) {
        self.topic_seen.store(true, Ordering::SeqCst);
        self.report_running();
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
            self.status.send_if_modified(|s| {
                let changed = *s != PipeStatus::Running;
                *s = PipeStatus::Running;
                changed
            });
        }
    }
}
