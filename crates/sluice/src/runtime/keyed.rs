//! Key-ordered parallelism within a partition (`concurrency.md`, `ParallelizationFactor` F > 1): the
//! partition's records are split into F sub-lanes by the murmur2 hash of their key (Kafka's default
//! partitioner, so the split is stable; records without a key get a sub-lane of their own), each an
//! ordinary [`Lane`] over a channel: records of one key reach the target in offset order, one batch
//! per sub-lane in flight, with the same retry, bisection and dead-letter rules.
//!
//! The partition's committed offset is its [`Watermark`]: the lowest offset read and not yet done
//! (delivered, filtered out or given up), committed as it moves, never past a record that is not
//! done; a crash replays at most what lies above it. At most `10 x BatchSize x F` records wait above
//! the watermark; then the partition is not read until it moves. A sub-lane's next batch waits
//! until the commit covering its previous one landed (a refused commit is retried with backoff), so
//! a rebalance replays only the batches in flight, as with one lane (with
//! `OffsetCommitIntervalSeconds`, the watermark's commits are spaced by an [`IntervalCommitter`]
//! and a crash replays up to an interval's batches). The failure history of a
//! failing sub-lane batch lives in memory only (the commit metadata holds one history per
//! partition).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

use super::commit_interval::IntervalCommitter;
use super::lane::{
    CommitError, Committer, Lane, LaneControl, RecordStream, StoredRetry, SETTLE_BACKOFF_MAX,
    SETTLE_BACKOFF_MIN,
};
use super::process::BatchProcessor;
use crate::record::SourceRecord;

/// Kafka's murmur2 (the Java client's `Utils.murmur2`, seed `0x9747b28c`), as a signed 32-bit value.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The sub-lane of a record: `murmur2(key) mod factor` as Kafka picks a partition (sign bit
/// cleared), or `factor` (a sub-lane of their own) for records without a key.
pub fn sub_lane(key: Option<&[u8]>, factor: usize) -> usize {
    match key {
        Some(k) => (murmur2(k) & 0x7fff_ffff) as usize % factor,
        None => factor,
    }
}

/// What is read and not yet done, per sub-lane, in offset order.
#[derive(Debug)]
pub struct Watermark {
    pending: Vec<VecDeque<i64>>,
    /// The offset after the last record read.
    next: i64,
    /// How many times sub-lanes reported records done: a commit of the mark read at epoch `e`
    /// covers every report up to `e`.
    epoch: u64,
}

impl Watermark {
    /// For `lanes` sub-lanes, before anything is read.
    pub fn new(lanes: usize) -> Self {
        Self {
            pending: vec![VecDeque::new(); lanes],
            next: -1,
            epoch: 0,
        }
    }

    /// A record of `lane` was read.
    pub fn read(&mut self, lane: usize, offset: i64) {
        self.pending[lane].push_back(offset);
        self.next = self.next.max(offset + 1);
    }

    /// Every record of `lane` below `next` is done; how many that made done.
    pub fn done_below(&mut self, lane: usize, next: i64) -> usize {
        self.epoch += 1;
        let q = &mut self.pending[lane];
        let before = q.len();
        while q.front().is_some_and(|&o| o < next) {
            q.pop_front();
        }
        before - q.len()
    }

    /// How many offsets lie between the watermark and the next record to read: what a crash would
    /// replay.
    pub fn above(&self) -> i64 {
        self.next - self.mark()
    }

    /// The lowest offset not done (or the next to read when all is done); -1 before any read.
    pub fn mark(&self) -> i64 {
        self.pending
            .iter()
            .filter_map(|q| q.front().copied())
            .min()
            .unwrap_or(self.next)
    }
}

/// What the partition's commits covered, in [`Watermark`] epochs.
#[derive(Debug, Clone, Copy, Default)]
struct CommitProgress {
    /// The epoch of the last mark whose commit landed (or that needed none).
    landed: u64,
    /// The epoch of the last mark whose commit was refused.
    refused: u64,
    /// The committer task ended: nothing is committed any more.
    closed: bool,
}

/// The partition's watermark, shared by its sub-lanes and its committer task.
struct Shared {
    watermark: Mutex<Watermark>,
    /// Told by the committer task after every attempt.
    progress: watch::Sender<CommitProgress>,
    /// Most offsets above the watermark before the partition stops being read.
    cap: i64,
    /// The watermark may have moved (for the committer task).
    moved: Notify,
    /// The watermark may have moved (for the reader waiting for room).
    room: Notify,
}

impl Shared {
    fn watermark(&self) -> std::sync::MutexGuard<'_, Watermark> {
        self.watermark.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait until fewer than `cap` offsets lie above the watermark; `false` when draining.
    async fn room(&self, drain: &CancellationToken) -> bool {
        loop {
            let freed = self.room.notified();
            if self.watermark().above() < self.cap {
                return true;
            }
            tokio::select! {
                biased;
                _ = drain.cancelled() => return false,
                _ = freed => {}
            }
        }
    }
}

/// A sub-lane's view of the partition's commits: its records below the offset it commits are done,
/// and the commit is in once [`commit_watermark`] committed a mark read after that (one commit
/// covers the reports of every sub-lane made meanwhile). `Failed` when that commit was refused:
/// `Lane::settle` then asks again, and its next batch waits. A crash replays at most what lies
/// above the last committed watermark.
struct SubLaneCommitter {
    lane: usize,
    shared: Arc<Shared>,
}

impl Committer for SubLaneCommitter {
    async fn commit(
        &self,
        _partition: i32,
        next_offset: i64,
        _retry: Option<&StoredRetry>,
    ) -> Result<(), CommitError> {
        let s = &self.shared;
        let epoch = {
            let mut w = s.watermark();
            w.done_below(self.lane, next_offset);
            w.epoch
        };
        let mut progress = s.progress.subscribe();
        s.moved.notify_one();
        s.room.notify_waiters();
        let seen = progress
            .wait_for(|p| p.landed >= epoch || p.refused >= epoch || p.closed)
            .await
            .map(|p| *p);
        match seen {
            Ok(p) if p.landed >= epoch => Ok(()),
            Ok(p) if p.refused >= epoch => Err(CommitError::Failed(
                "the partition's offset commit was refused".into(),
            )),
            _ => Err(CommitError::Closed),
        }
    }

    async fn committed(
        &self,
        _partition: i32,
    ) -> Result<Option<(i64, Option<StoredRetry>)>, CommitError> {
        Ok(None)
    }
}

/// Commit the partition's watermark whenever it moves, until `stop`; then once more, so what the
/// sub-lanes finished while draining is committed. A refused commit is tried again with backoff
/// (the sub-lanes wait for it) until it lands, the partition is abandoned or drained, or the
/// consumer closed. A commit the interval holds back goes out when due, and at the end.
async fn commit_watermark<C: Committer>(
    shared: Arc<Shared>,
    committer: IntervalCommitter<C>,
    control: Arc<LaneControl>,
    stop: CancellationToken,
) {
    let mut last = -1;
    let mut wait = SETTLE_BACKOFF_MIN;
    let mut failing = false;
    loop {
        let stopping = tokio::select! {
            biased;
            _ = stop.cancelled() => true,
            _ = committer.until_due(), if !failing => {
                committer.send_owed(control.partition).await;
                continue;
            }
            _ = shared.moved.notified(), if !failing => false,
            _ = tokio::time::sleep(wait), if failing => control.drain.is_cancelled(),
        };
        // An abandoned partition may already be another member's: commit nothing more.
        if control.abandon.is_cancelled() {
            break;
        }
        let (mark, epoch) = {
            let w = shared.watermark();
            (w.mark(), w.epoch)
        };
        match commit_mark(&committer, &control, mark, last).await {
            Ok(()) => {
                last = last.max(mark);
                failing = false;
                wait = SETTLE_BACKOFF_MIN;
                shared.progress.send_modify(|p| p.landed = epoch);
            }
            Err(CommitError::Closed) => break,
            Err(e) => {
                if !failing {
                    tracing::warn!(partition = control.partition, next_offset = mark, error = %e,
                        "offset commit failed; the sub-lanes wait for it");
                }
                failing = true;
                wait = (wait * 2).min(SETTLE_BACKOFF_MAX);
                shared.progress.send_modify(|p| p.refused = epoch);
            }
        }
        if stopping {
            break;
        }
    }
    committer
        .release(control.partition, control.abandon.is_cancelled())
        .await;
    shared.progress.send_modify(|p| p.closed = true);
}

/// Commit `mark` unless `last` (committed already) covers it.
async fn commit_mark<C: Committer>(
    committer: &C,
    control: &LaneControl,
    mark: i64,
    last: i64,
) -> Result<(), CommitError> {
    if mark <= last {
        return Ok(());
    }
    committer.commit(control.partition, mark, None).await?;
    control.record_commit(mark);
    Ok(())
}

/// A sub-lane's records.
struct SubLaneStream(mpsc::UnboundedReceiver<SourceRecord>);

impl RecordStream for SubLaneStream {
    async fn next(&mut self) -> Option<SourceRecord> {
        self.0.recv().await
    }

    fn next_ready(&mut self) -> Option<SourceRecord> {
        self.0.try_recv().ok()
    }
}

/// The worker of one partition with F > 1: reads the partition, routes each record to its
/// sub-lane, and lets the sub-lanes deliver.
pub(crate) struct KeyedLane<S, C> {
    /// The partition's control (its sub-lanes get child tokens of it).
    pub control: Arc<LaneControl>,
    pub stream: S,
    pub committer: C,
    pub processor: Arc<BatchProcessor>,
    pub factor: usize,
}

impl<S: RecordStream, C: Committer> KeyedLane<S, C> {
    /// Work until drained, abandoned, or the stream ends; returns once every sub-lane stopped and
    /// the watermark they left is committed.
    pub async fn run(mut self) {
        let p = self.control.partition;
        let lanes = self.factor + 1;
        let shared = Arc::new(Shared {
            watermark: Mutex::new(Watermark::new(lanes)),
            cap: (10 * self.processor.limits().size * self.factor) as i64,
            progress: watch::channel(CommitProgress::default()).0,
            moved: Notify::new(),
            room: Notify::new(),
        });
        let stop = CancellationToken::new();
        let commits = tokio::spawn(commit_watermark(
            shared.clone(),
            IntervalCommitter::new(self.committer, self.processor.commit_interval()),
            self.control.clone(),
            stop.clone(),
        ));
        let mut senders = Vec::with_capacity(lanes);
        let mut tasks = Vec::with_capacity(lanes);
        for lane in 0..lanes {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.push(tx);
            let sub = Lane::unspaced(
                Arc::new(self.control.child()),
                SubLaneStream(rx),
                SubLaneCommitter {
                    lane,
                    shared: shared.clone(),
                },
                self.processor.clone(),
            );
            tasks.push(tokio::spawn(sub.run()));
        }
        tracing::debug!(partition = p, sub_lanes = lanes, "keyed lane started");
        let drain = self.control.drain.clone();
        while shared.room(&drain).await {
            let rec = tokio::select! {
                biased;
                _ = drain.cancelled() => break,
                r = self.stream.next() => match r {
                    Some(r) => r,
                    None => break,
                },
            };
            self.control.record_read(rec.offset);
            let lane = sub_lane(rec.key(), self.factor);
            shared.watermark().read(lane, rec.offset);
            let _ = senders[lane].send(rec);
        }
        // The sub-lanes finish what they hold, or stop with the partition's drain and abandon.
        drop(senders);
        for t in tasks {
            let _ = t.await;
        }
        stop.cancel();
        let _ = commits.await;
        tracing::debug!(partition = p, "keyed lane stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas() {
        // Kafka's own test vectors (UtilsTest.testMurmur2).
        let cases: &[(&str, i32)] = &[
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (s, h) in cases {
            assert_eq!(murmur2(s.as_bytes()), *h, "{s}");
        }
    }

    #[test]
    fn sub_lanes_follow_the_key_and_keyless_records_get_their_own() {
        for f in [2, 16, 100] {
            for k in ["a", "b", "order-17", ""] {
                let lane = sub_lane(Some(k.as_bytes()), f);
                assert!(lane < f);
                assert_eq!(lane, sub_lane(Some(k.as_bytes()), f));
            }
            assert_eq!(sub_lane(None, f), f);
        }
        // The keys spread over the sub-lanes.
        let used: std::collections::HashSet<usize> = (0..200)
            .map(|i| sub_lane(Some(format!("k{i}").as_bytes()), 16))
            .collect();
        assert_eq!(used.len(), 16);
    }

    #[test]
    fn the_watermark_is_the_lowest_offset_not_done() {
        let mut w = Watermark::new(3);
        assert_eq!(w.mark(), -1);
        for (lane, offset) in [(0, 10), (1, 11), (0, 12), (2, 13), (1, 14)] {
            w.read(lane, offset);
        }
        assert_eq!(w.mark(), 10);
        // Out-of-order completions: only the contiguous prefix counts.
        assert_eq!(w.done_below(1, 15), 2);
        assert_eq!(w.mark(), 10);
        assert_eq!(w.done_below(0, 11), 1);
        assert_eq!(w.mark(), 12);
        assert_eq!(w.done_below(2, 14), 1);
        assert_eq!(w.mark(), 12);
        assert_eq!(w.above(), 3);
        assert_eq!(w.done_below(0, 13), 1);
        assert_eq!(w.mark(), 15);
        assert_eq!(w.above(), 0);
        assert_eq!(w.done_below(0, 100), 0);
    }
}
