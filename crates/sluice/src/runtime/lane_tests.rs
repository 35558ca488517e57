//! The lane's delivery rules, without a broker: records come from a channel, the target is a
//! scripted [`Target`], commits are recorded, and time is paused (tokio advances it whenever every
//! task waits), so backoffs and windows of seconds take no real time.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::*;
use crate::metrics::Metrics;
use crate::model::{parse_definition, validate, ValidationContext};
use crate::record::TimestampType;
use crate::targets::{Event, Target, TargetError};
use crate::transforms::event::EventBuilder;
use crate::transforms::record_json::RecordJson;

/// One call the target received: when, and the offsets of its events.
#[derive(Debug, Clone)]
struct Call {
    at: Instant,
    offsets: Vec<i64>,
}

/// What the target answers to one call.
#[derive(Debug)]
enum Reply {
    Fail(TargetError),
    /// Never answers.
    Hang,
}

#[derive(Debug)]
struct FakeTarget {
    calls: watch::Sender<Vec<Call>>,
    /// Answers of the next calls, in order; success once they are used up.
    replies: Mutex<VecDeque<Reply>>,
    /// How long each call takes.
    latency: Duration,
    inflight: AtomicUsize,
    max_inflight: AtomicUsize,
}

impl FakeTarget {
    fn new(latency: Duration, replies: Vec<Reply>) -> Arc<Self> {
        Arc::new(Self {
            calls: watch::channel(Vec::new()).0,
            replies: Mutex::new(replies.into()),
            latency,
            inflight: AtomicUsize::new(0),
            max_inflight: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    fn sizes(&self) -> Vec<usize> {
        self.calls().iter().map(|c| c.offsets.len()).collect()
    }

    async fn wait_calls(&self, n: usize) {
        let mut rx = self.calls.subscribe();
        rx.wait_for(|c| c.len() >= n).await.unwrap();
    }
}

fn offset_of(e: &Event) -> i64 {
    let v: serde_json::Value = serde_json::from_slice(&e.payload).unwrap();
    v["offset"].as_i64().unwrap()
}

impl Target for FakeTarget {
    fn deliver<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            let offsets = events.iter().map(offset_of).collect();
            self.calls.send_modify(|c| {
                c.push(Call {
                    at: Instant::now(),
                    offsets,
                })
            });
            let now = self.inflight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_inflight.fetch_max(now, Ordering::SeqCst);
            let reply = self.replies.lock().unwrap().pop_front();
            tokio::time::sleep(self.latency).await;
            self.inflight.fetch_sub(1, Ordering::SeqCst);
            match reply {
                None => Ok(()),
                Some(Reply::Fail(e)) => Err(e),
                Some(Reply::Hang) => std::future::pending().await,
            }
        })
    }
}

struct ChannelStream(mpsc::UnboundedReceiver<SourceRecord>);

impl RecordStream for ChannelStream {
    async fn next(&mut self) -> Option<SourceRecord> {
        self.0.recv().await
    }

    // `recv().now_or_never()` would answer "not ready" once tokio's cooperative budget is spent.
    fn next_ready(&mut self) -> Option<SourceRecord> {
        self.0.try_recv().ok()
    }
}

#[derive(Clone)]
struct RecordingCommitter(Arc<watch::Sender<Vec<i64>>>);

impl Committer for RecordingCommitter {
    async fn commit(&self, _partition: i32, next_offset: i64) -> Result<(), CommitError> {
        self.0.send_modify(|c| c.push(next_offset));
        Ok(())
    }
}

/// A running lane and its ends.
struct Harness {
    records: mpsc::UnboundedSender<SourceRecord>,
    next_offset: i64,
    control: Arc<LaneControl>,
    commits: Arc<watch::Sender<Vec<i64>>>,
    lane: tokio::task::JoinHandle<()>,
}

impl Harness {
    /// A lane of the pipe with these `SourceParameters` members and `extra` top-level members.
    fn start(source: &str, extra: &str, target: Arc<FakeTarget>) -> Self {
        let text = format!(
            r#"{{"Name":"p","Source":"smk://h:9092","Target":"http://127.0.0.1:1/",
               "SourceParameters":{{{source}}}{extra}}}"#
        );
        let def = parse_definition(&text, false).unwrap();
        let spec = validate(&def, &ValidationContext::default()).unwrap();
        let events = EventBuilder::new(&spec, RecordJson::self_managed("t", "h:9092"));
        let metrics = Arc::new(Metrics::new()).pipe("p");
        let processor = Arc::new(BatchProcessor::new(&spec, events, target, None, metrics));
        let (records, rx) = mpsc::unbounded_channel();
        let control = Arc::new(LaneControl::new(0));
        let commits = Arc::new(watch::channel(Vec::new()).0);
        let lane = Lane {
            control: control.clone(),
            stream: ChannelStream(rx),
            committer: RecordingCommitter(commits.clone()),
            processor,
        };
        Self {
            records,
            next_offset: 0,
            control,
            commits,
            lane: tokio::spawn(lane.run()),
        }
    }

    fn send(&mut self, n: usize, value: &[u8]) {
        for _ in 0..n {
            let r = SourceRecord {
                partition: 0,
                offset: self.next_offset,
                timestamp: 0,
                timestamp_type: TimestampType::CreateTime,
                key: None,
                value: Some(value.to_vec()),
                headers: Vec::new(),
            };
            self.next_offset += 1;
            self.records.send(r).unwrap();
        }
    }

    fn commits(&self) -> Vec<i64> {
        self.commits.borrow().clone()
    }

    async fn wait_commits(&self, n: usize) {
        let mut rx = self.commits.subscribe();
        rx.wait_for(|c| c.len() >= n).await.unwrap();
    }

    /// Wait for the lane task to end (it must, within a minute of paused time).
    async fn ended(self) {
        tokio::time::timeout(Duration::from_secs(60), self.lane)
            .await
            .expect("the lane did not stop")
            .unwrap();
    }
}

fn status(code: u16, retry_after: Option<Duration>) -> TargetError {
    TargetError::Status {
        status: code,
        retry_after,
        detail: String::new(),
    }
}

const NO_LATENCY: Duration = Duration::ZERO;

/// The `SelfManagedKafkaParameters` member with this batch size and window.
fn kafka(batch_size: usize, window_secs: u64) -> String {
    format!(
        r#""SelfManagedKafkaParameters":{{"TopicName":"t","BatchSize":{batch_size},"MaximumBatchingWindowInSeconds":{window_secs}}}"#
    )
}

#[tokio::test(start_paused = true)]
async fn batches_are_cut_by_size() {
    let target = FakeTarget::new(NO_LATENCY, vec![]);
    let mut h = Harness::start(&kafka(100, 0), "", target.clone());
    h.send(250, b"{}");
    h.wait_commits(3).await;
    assert_eq!(target.sizes(), vec![100, 100, 50]);
    assert_eq!(h.commits(), vec![100, 200, 250]);
}

#[tokio::test(start_paused = true)]
async fn a_batch_waits_for_its_window_unless_it_fills() {
    let target = FakeTarget::new(NO_LATENCY, vec![]);
    let mut h = Harness::start(&kafka(100, 2), "", target.clone());
    let t0 = Instant::now();
    h.send(10, b"{}");
    target.wait_calls(1).await;
    let first = &target.calls()[0];
    assert_eq!(first.offsets.len(), 10);
    assert!(
        first.at - t0 >= Duration::from_secs(2),
        "{:?}",
        first.at - t0
    );
    // A full batch goes at once.
    let t1 = Instant::now();
    h.send(100, b"{}");
    target.wait_calls(2).await;
    let second = &target.calls()[1];
    assert_eq!(second.offsets.len(), 100);
    assert!(second.at - t1 < Duration::from_millis(10));
    h.wait_commits(2).await;
    assert_eq!(h.commits(), vec![10, 110]);
}

#[tokio::test(start_paused = true)]
async fn batch_delivery_caps_the_payload() {
    let target = FakeTarget::new(NO_LATENCY, vec![]);
    let extra = r#","SluiceParameters":{"HttpDelivery":"BATCH"}"#;
    let mut h = Harness::start(&kafka(100, 0), extra, target.clone());
    // About 1.33 MB of JSON each: four fit under the 6 MB cap, the fifth starts the next batch.
    h.send(10, &vec![b'x'; 1_000_000]);
    h.wait_commits(3).await;
    assert_eq!(target.sizes(), vec![4, 4, 2]);
    assert_eq!(h.commits(), vec![4, 8, 10]);
}

#[tokio::test(start_paused = true)]
async fn one_batch_is_in_flight_at_a_time() {
    let target = FakeTarget::new(Duration::from_millis(100), vec![]);
    let mut h = Harness::start(&kafka(10, 0), "", target.clone());
    h.send(50, b"{}");
    h.wait_commits(5).await;
    assert_eq!(target.max_inflight.load(Ordering::SeqCst), 1);
    let calls = target.calls();
    for pair in calls.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_millis(100));
    }
    assert_eq!(h.commits(), vec![10, 20, 30, 40, 50]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_batch_is_retried_whole_with_growing_backoff() {
    let replies = vec![
        Reply::Fail(status(500, None)),
        Reply::Fail(status(503, None)),
        Reply::Fail(TargetError::Timeout(Duration::from_secs(5))),
    ];
    let target = FakeTarget::new(NO_LATENCY, replies);
    let mut h = Harness::start(&kafka(5, 0), "", target.clone());
    h.send(5, b"{}");
    h.wait_commits(1).await;
    let calls = target.calls();
    assert_eq!(calls.len(), 4);
    for c in &calls {
        assert_eq!(c.offsets, vec![0, 1, 2, 3, 4]);
    }
    // Backoff starts at 100 ms and doubles, with jitter in its upper half.
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].at - w[0].at).collect();
    let ms = Duration::from_millis;
    assert!(gaps[0] >= ms(50) && gaps[0] <= ms(100), "{gaps:?}");
    assert!(gaps[1] >= ms(100) && gaps[1] <= ms(200), "{gaps:?}");
    assert!(gaps[2] >= ms(200) && gaps[2] <= ms(400), "{gaps:?}");
    assert_eq!(h.commits(), vec![5]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_a_floor_on_the_backoff() {
    let replies = vec![Reply::Fail(status(429, Some(Duration::from_secs(3))))];
    let target = FakeTarget::new(NO_LATENCY, replies);
    let mut h = Harness::start(&kafka(5, 0), "", target.clone());
    h.send(5, b"{}");
    h.wait_commits(1).await;
    let calls = target.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls[1].at - calls[0].at >= Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn drain_lets_the_batch_in_flight_finish_and_commit() {
    let target = FakeTarget::new(Duration::from_secs(1), vec![]);
    let mut h = Harness::start(&kafka(5, 0), "", target.clone());
    h.send(20, b"{}");
    target.wait_calls(1).await;
    h.control.drain.cancel();
    let commits = h.commits.clone();
    h.ended().await;
    // The batch in flight was delivered and committed; no other batch started.
    assert_eq!(target.sizes(), vec![5]);
    assert_eq!(*commits.borrow(), vec![5]);
}

#[tokio::test(start_paused = true)]
async fn drain_abandons_a_batch_waiting_to_retry() {
    let replies = (0..100).map(|_| Reply::Fail(status(500, None))).collect();
    let target = FakeTarget::new(NO_LATENCY, replies);
    let mut h = Harness::start(&kafka(5, 0), "", target.clone());
    h.send(5, b"{}");
    target.wait_calls(2).await;
    h.control.drain.cancel();
    let commits = h.commits.clone();
    h.ended().await;
    assert!(commits.borrow().is_empty());
}

#[tokio::test(start_paused = true)]
async fn abandon_stops_mid_delivery_without_a_commit() {
    let target = FakeTarget::new(NO_LATENCY, vec![Reply::Hang]);
    let mut h = Harness::start(&kafka(5, 0), "", target.clone());
    h.send(5, b"{}");
    target.wait_calls(1).await;
    h.control.drain.cancel();
    h.control.abandon.cancel();
    let commits = h.commits.clone();
    h.ended().await;
    assert!(commits.borrow().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_commit_is_last_plus_one_and_never_passes_an_undelivered_record() {
    let target = FakeTarget::new(NO_LATENCY, vec![]);
    let mut h = Harness::start(&kafka(3, 0), "", target.clone());
    h.send(3, b"{}");
    h.wait_commits(1).await;
    assert_eq!(h.commits(), vec![3]);
    // The second batch fails five times.
    let failures = (0..5).map(|_| Reply::Fail(status(500, None)));
    target.replies.lock().unwrap().extend(failures);
    h.send(3, b"{}");
    target.wait_calls(4).await;
    assert_eq!(h.commits(), vec![3]);
    h.wait_commits(2).await;
    assert_eq!(target.calls().len(), 7);
    assert_eq!(h.commits(), vec![3, 6]);
}

#[tokio::test(start_paused = true)]
async fn filtered_out_records_are_committed() {
    let target = FakeTarget::new(NO_LATENCY, vec![]);
    let source = format!(
        r#"{},"FilterCriteria":{{"Filters":[{{"Pattern":"{{\"value\":{{\"keep\":[true]}}}}"}}]}}"#,
        kafka(4, 0)
    );
    let mut h = Harness::start(&source, "", target.clone());
    // Every record of the batch dropped: committed without a target call.
    h.send(4, br#"{"keep":false}"#);
    h.wait_commits(1).await;
    assert!(target.calls().is_empty());
    // Some kept: only those delivered, the commit passes the dropped ones too.
    h.send(2, br#"{"keep":true}"#);
    h.send(2, br#"{"keep":false}"#);
    h.wait_commits(2).await;
    assert_eq!(target.calls()[0].offsets, vec![4, 5]);
    assert_eq!(h.commits(), vec![4, 8]);
}
