//! An offset commit whose answer the caller awaits without holding a thread: librdkafka posts the
//! result to a reply queue of the commit's own (`rd_kafka_commit_queue`), and the queue's
//! not-empty callback wakes the waiting task.
//!
//! rust-rdkafka offers a synchronous commit (a thread blocks until the broker answers: one trip
//! through the blocking pool per commit) or a fire-and-forget one whose answer only reaches a
//! consumer-wide callback on the main queue, which the revocation callback blocks while lanes
//! drain. A reply queue per commit needs neither (docs/ARCHITECTURE.md says why it is hand-written).
#![allow(unsafe_code)]

use std::future::poll_fn;
use std::marker::PhantomData;
use std::ptr::{null_mut, NonNull};
use std::task::{Context, Poll};

use rdkafka::bindings as rd;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::TopicPartitionList;

use super::waking_queue::WakingQueue;
use super::KafkaConsumer;

/// Commit `offsets` (with their metadata) for `consumer`'s group and wait for the broker's answer,
/// as a synchronous commit would, but without blocking a thread.
pub async fn commit(consumer: &KafkaConsumer, offsets: &TopicPartitionList) -> KafkaResult<()> {
    let replies =
        ReplyQueue::new(consumer).ok_or(KafkaError::ConsumerCommit(RDKafkaErrorCode::Fail))?;
    let rk = consumer.client().native_ptr();
    // SAFETY: `rk` is the live handle the queue belongs to; librdkafka copies `offsets` and keeps
    // its own reference to the reply queue until it has posted the answer there.
    let err = unsafe {
        rd::rd_kafka_commit_queue(rk, offsets.ptr(), replies.queue.as_ptr(), None, null_mut())
    };
    check(err)?;
    check(poll_fn(|cx| replies.poll_answer(cx)).await)
}

fn check(err: RDKafkaRespErr) -> KafkaResult<()> {
    if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
        Ok(())
    } else {
        Err(KafkaError::ConsumerCommit(err.into()))
    }
}

/// A queue of one commit's answer; it borrows the consumer because librdkafka's queues must go
/// before its handle.
struct ReplyQueue<'a> {
    queue: WakingQueue,
    _consumer: PhantomData<&'a KafkaConsumer>,
}

impl<'a> ReplyQueue<'a> {
    fn new(consumer: &'a KafkaConsumer) -> Option<Self> {
        let rk = consumer.client().native_ptr();
        // SAFETY: `rk` is the live handle of `consumer`, which outlives the queue.
        let queue = NonNull::new(unsafe { rd::rd_kafka_queue_new(rk) })?;
        // SAFETY: a new queue's handle, ours alone.
        let queue = unsafe { WakingQueue::new(queue) };
        Some(Self {
            queue,
            _consumer: PhantomData,
        })
    }

    /// The commit's result, once posted.
    fn poll_answer(&self, cx: &mut Context<'_>) -> Poll<RDKafkaRespErr> {
        if let Some(err) = self.take_answer() {
            return Poll::Ready(err);
        }
        self.queue.register(cx.waker());
        // An answer posted between the look and the registration woke nobody.
        match self.take_answer() {
            Some(err) => Poll::Ready(err),
            None => Poll::Pending,
        }
    }

    /// The commit's error code if its answer is in the queue (anything else there is dropped).
    fn take_answer(&self) -> Option<RDKafkaRespErr> {
        loop {
            // SAFETY: the queue is valid; a timeout of 0 never blocks. The event is ours to
            // destroy, once, after its error code was read.
            unsafe {
                let event = rd::rd_kafka_queue_poll(self.queue.as_ptr(), 0);
                if event.is_null() {
                    return None;
                }
                let kind = rd::rd_kafka_event_type(event);
                let err = rd::rd_kafka_event_error(event);
                rd::rd_kafka_event_destroy(event);
                if kind == rd::RD_KAFKA_EVENT_OFFSET_COMMIT {
                    return Some(err);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rdkafka::mocking::MockCluster;
    use rdkafka::types::RDKafkaApiKey;
    use rdkafka::Offset;

    use super::*;
    use crate::sources::kafka::test_support;

    fn offsets(offset: i64, metadata: &str) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        let mut p = tpl.add_partition("t", 0);
        p.set_offset(Offset::Offset(offset)).unwrap();
        p.set_metadata(metadata);
        tpl
    }

    async fn within_30s<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(30), f)
            .await
            .expect("an answer within 30 s")
    }

    #[tokio::test]
    async fn a_commit_is_answered_and_lands_with_its_metadata() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("t", 1, 1).unwrap();
        let consumer = test_support::consumer(&cluster, "t");
        for next in [42, 43, 100] {
            within_30s(commit(&consumer, &offsets(next, &format!("m{next}"))))
                .await
                .unwrap();
            let back = consumer
                .committed_offsets(offsets(0, ""), Duration::from_secs(10))
                .unwrap();
            let p = back.find_partition("t", 0).unwrap();
            assert_eq!(p.offset(), Offset::Offset(next));
            assert_eq!(p.metadata(), format!("m{next}"));
        }
    }

    #[tokio::test]
    async fn a_refused_commit_returns_the_brokers_error() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("t", 1, 1).unwrap();
        let consumer = test_support::consumer(&cluster, "t");
        // Not retried by librdkafka: the answer carries it back.
        cluster.request_errors(
            RDKafkaApiKey::OffsetCommit,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED],
        );
        let err = within_30s(commit(&consumer, &offsets(7, "")))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("authorization"),
            "unexpected error: {err}"
        );
        // The next commit gets its own answer, not a stale one.
        within_30s(commit(&consumer, &offsets(8, "")))
            .await
            .unwrap();
    }
}
