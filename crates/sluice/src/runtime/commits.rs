//! Group commit: the offset commits of a pipe's lanes, coalesced. While one commit is in flight,
//! the commits other lanes ask for wait, and go out together as the next one: one broker round
//! trip (and one pass through librdkafka's threads) for several partitions instead of one each.
//! A lane still waits for its own commit's answer before its next batch, so the guarantee is the
//! lane's ([`super::lane`]); only the number of requests changes. A commit of several partitions
//! that fails is tried again partition by partition, so each lane learns its own answer (during a
//! rebalance the revoked partitions fail, the others need not).
//!
//! The queue knows nothing of Kafka: [`GroupCommit`] is what sends one commit, implemented by
//! [`super::kafka`] with the consumer and by the tests below with a recording fake.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use super::lane::CommitError;

/// One partition's offset to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitEntry {
    pub partition: i32,
    pub next_offset: i64,
    /// Offset commit metadata (a failing batch's retry state).
    pub metadata: Option<String>,
}

/// Sends one offset commit for several partitions and waits for the broker's answer.
pub(crate) trait GroupCommit: Send + Sync + 'static {
    /// Commit every entry in one request; an error when any was refused.
    fn commit_all(
        &self,
        entries: &[CommitEntry],
    ) -> impl Future<Output = Result<(), CommitError>> + Send;
}

struct Request {
    entry: CommitEntry,
    answer: oneshot::Sender<Result<(), CommitError>>,
}

/// The lanes' side of a pipe's commit queue; cloned into each lane's committer.
#[derive(Debug, Clone)]
pub(crate) struct CommitQueue {
    requests: mpsc::UnboundedSender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.entry.fmt(f)
    }
}

impl CommitQueue {
    /// Start the queue's task on the current runtime; it ends when every clone is dropped.
    pub fn start(committer: impl GroupCommit) -> Self {
        let (requests, rx) = mpsc::unbounded_channel();
        tokio::spawn(serve(committer, rx));
        Self { requests }
    }

    /// Commit `entry` with whatever else is waiting, and wait for the answer.
    pub async fn commit(&self, entry: CommitEntry) -> Result<(), CommitError> {
        let (answer, answered) = oneshot::channel();
        self.requests
            .send(Request { entry, answer })
            .map_err(|_| CommitError::Closed)?;
        answered.await.unwrap_or(Err(CommitError::Closed))
    }
}

/// Commit what is waiting, one request at a time, until the lanes are gone.
async fn serve(committer: impl GroupCommit, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut waiting = Vec::new();
    while rx.recv_many(&mut waiting, usize::MAX).await > 0 {
        commit_waiting(&committer, std::mem::take(&mut waiting)).await;
    }
}

/// One commit for all of `waiting`; if it fails and holds several partitions, one per partition.
async fn commit_waiting(committer: &impl GroupCommit, waiting: Vec<Request>) {
    let entries: Vec<CommitEntry> = waiting.iter().map(|r| r.entry.clone()).collect();
    let result = committer.commit_all(&entries).await;
    if result.is_ok() || waiting.len() == 1 {
        for r in waiting {
            let _ = r.answer.send(result.clone());
        }
        return;
    }
    for r in waiting {
        let alone = committer.commit_all(std::slice::from_ref(&r.entry)).await;
        let _ = r.answer.send(alone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// Records each commit it is asked for; each takes 10 ms; partitions in `refused` fail.
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<Vec<i32>>>,
        refused: Vec<i32>,
    }

    impl GroupCommit for Arc<Recorder> {
        async fn commit_all(&self, entries: &[CommitEntry]) -> Result<(), CommitError> {
            let partitions: Vec<i32> = entries.iter().map(|e| e.partition).collect();
            self.calls.lock().unwrap().push(partitions.clone());
            tokio::time::sleep(Duration::from_millis(10)).await;
            if partitions.iter().any(|p| self.refused.contains(p)) {
                return Err(CommitError::Failed("rebalance in progress".into()));
            }
            Ok(())
        }
    }

    fn entry(partition: i32) -> CommitEntry {
        CommitEntry {
            partition,
            next_offset: 100,
            metadata: None,
        }
    }

    /// Commit partition 0, then, while it is in flight, each of `partitions`; whether each of
    /// those succeeded.
    async fn commit_behind_one_in_flight(
        queue: &CommitQueue,
        partitions: std::ops::Range<i32>,
    ) -> Vec<(i32, bool)> {
        let first = tokio::spawn({
            let q = queue.clone();
            async move { q.commit(entry(0)).await }
        });
        // Let the first commit be sent before the others ask.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let waiting: Vec<_> = partitions
            .map(|p| {
                let q = queue.clone();
                tokio::spawn(async move { (p, q.commit(entry(p)).await.is_ok()) })
            })
            .collect();
        first.await.unwrap().unwrap();
        let mut answers = Vec::new();
        for w in waiting {
            answers.push(w.await.unwrap());
        }
        answers
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_commit_goes_out_at_once() {
        let recorder = Arc::new(Recorder::default());
        let queue = CommitQueue::start(recorder.clone());
        let started = tokio::time::Instant::now();
        queue.commit(entry(3)).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(10));
        assert_eq!(*recorder.calls.lock().unwrap(), vec![vec![3]]);
    }

    #[tokio::test(start_paused = true)]
    async fn commits_asked_for_during_one_in_flight_go_out_together() {
        let recorder = Arc::new(Recorder::default());
        let queue = CommitQueue::start(recorder.clone());
        let answers = commit_behind_one_in_flight(&queue, 1..4).await;
        assert_eq!(answers, vec![(1, true), (2, true), (3, true)]);
        assert_eq!(
            *recorder.calls.lock().unwrap(),
            vec![vec![0], vec![1, 2, 3]]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_group_commit_is_retried_per_partition_so_only_the_refused_lane_fails() {
        let recorder = Arc::new(Recorder {
            refused: vec![2],
            ..Default::default()
        });
        let queue = CommitQueue::start(recorder.clone());
        let answers = commit_behind_one_in_flight(&queue, 1..4).await;
        assert_eq!(answers, vec![(1, true), (2, false), (3, true)]);
        assert_eq!(
            *recorder.calls.lock().unwrap(),
            vec![vec![0], vec![1, 2, 3], vec![1], vec![2], vec![3]]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_commit_after_the_queue_task_is_gone_says_closed() {
        let (requests, rx) = mpsc::unbounded_channel();
        drop(rx);
        let queue = CommitQueue { requests };
        assert!(matches!(
            queue.commit(entry(0)).await,
            Err(CommitError::Closed)
        ));
    }
}
