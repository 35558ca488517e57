//! The registry of a pipe's running lanes, one per assigned partition: what the rebalance hooks
//! start and stop, what the lag reporter reads committed offsets from, and what shutdown drains.
//! Stopping is blocking (it runs inside librdkafka's rebalance callback, which must not return
//! before the revoked lanes are done) and bounded by a timeout.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::lane::LaneControl;
use crate::metrics::PipeMetrics;

struct LaneHandle {
    control: Arc<LaneControl>,
    done: std::sync::mpsc::Receiver<()>,
}

/// The lanes of one pipe's consumer.
pub(crate) struct LaneRegistry {
    topic: String,
    metrics: PipeMetrics,
    lanes: Mutex<HashMap<i32, LaneHandle>>,
    runtime: tokio::runtime::Handle,
    /// How long a revocation waits for a batch in flight.
    revoke_timeout: Duration,
    /// Set when the consumer is being closed, so a revocation does not wait.
    closing: CancellationToken,
}

impl std::fmt::Debug for LaneRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneRegistry")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl LaneRegistry {
    /// An empty registry whose lanes run on the current tokio runtime.
    pub fn new(topic: &str, metrics: PipeMetrics, revoke_timeout: Duration) -> Self {
        Self {
            topic: topic.to_string(),
            metrics,
            lanes: Mutex::new(HashMap::new()),
            runtime: tokio::runtime::Handle::current(),
            revoke_timeout,
            closing: CancellationToken::new(),
        }
    }

    fn lanes(&self) -> std::sync::MutexGuard<'_, HashMap<i32, LaneHandle>> {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `partition` has a lane.
    pub fn contains(&self, partition: i32) -> bool {
        self.lanes().contains_key(&partition)
    }

    /// Run `lane` as the lane of `control`'s partition.
    pub fn spawn(
        &self,
        control: Arc<LaneControl>,
        lane: impl Future<Output = ()> + Send + 'static,
    ) {
        let (done_tx, done) = std::sync::mpsc::channel();
        self.runtime.spawn(async move {
            lane.await;
            let _ = done_tx.send(());
        });
        self.lanes()
            .insert(control.partition, LaneHandle { control, done });
    }

    /// The committed offset of each lane (before its first commit, the first offset it read; -1
    /// before that).
    pub fn committed(&self) -> Vec<(i32, i64)> {
        self.lanes()
            .iter()
            .map(|(p, h)| (*p, h.control.committed.load(Ordering::Relaxed)))
            .collect()
    }

    /// Stop the lanes of revoked partitions (at once while the consumer closes). Blocks.
    pub fn revoke(&self, partitions: &[i32]) {
        let handles: Vec<(i32, LaneHandle)> = {
            let mut lanes = self.lanes();
            partitions
                .iter()
                .filter_map(|p| lanes.remove(p).map(|h| (*p, h)))
                .collect()
        };
        let timeout = if self.closing.is_cancelled() {
            Duration::ZERO
        } else {
            self.revoke_timeout
        };
        self.stop(handles, timeout);
    }

    /// Stop every lane, each finishing its batch in flight within `timeout`. Blocks.
    pub fn stop_all(&self, timeout: Duration) {
        let handles = self.lanes().drain().collect();
        self.stop(handles, timeout);
    }

    /// The consumer is closing: revocations from now on do not wait.
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// Let each lane finish its batch in flight within `timeout`, then abandon it.
    fn stop(&self, handles: Vec<(i32, LaneHandle)>, timeout: Duration) {
        if handles.is_empty() {
            return;
        }
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
                self.metrics.remove_partition(&self.topic, *p);
            }
        };
        crate::kafka::block_in_callback(wait);
    }
}
