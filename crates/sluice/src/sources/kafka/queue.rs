//! A partition's own librdkafka queue, split off the consumer and read many messages per call
//! (`rd_kafka_consume_batch_queue`), each copied into a [`SourceRecord`] at once.
//!
//! rust-rdkafka reads a queue one message per call, each wrapped in an event with an `Arc`, two
//! clock reads and the queue's lock, and has no batch read; this binds the few librdkafka calls
//! that need (docs/ARCHITECTURE.md says why it is hand-written). The rest of the consumer is
//! rust-rdkafka's.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::ffi::{c_void, CStr, CString};
use std::ptr::{null_mut, NonNull};
use std::sync::Arc;
use std::task::{Context, Poll};

use rdkafka::bindings as rd;
use rdkafka::consumer::Consumer;
use rdkafka::types::RDKafkaRespErr;

use super::waking_queue::WakingQueue;
use super::KafkaConsumer;
use crate::record::{RecordWriter, SourceRecord, TimestampType};

/// Most messages one call takes from librdkafka.
const READ_AT_ONCE: usize = 128;

/// One assigned partition's queue. Its records never reach the consumer's main queue.
pub struct PartitionQueue {
    /// Wakes the lane when the empty queue gets a message; released before `_consumer`.
    queue: WakingQueue,
    /// Records read from librdkafka, not yet taken.
    ready: VecDeque<SourceRecord>,
    partition: i32,
    /// librdkafka's queues must go before its handle.
    _consumer: Arc<KafkaConsumer>,
}

impl std::fmt::Debug for PartitionQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionQueue")
            .field("partition", &self.partition)
            .field("ready", &self.ready.len())
            .finish()
    }
}

impl PartitionQueue {
    /// Split `partition` of `topic` off `consumer`'s main queue; `None` when librdkafka does not
    /// know the partition (the consumer is closing).
    pub fn split(consumer: &Arc<KafkaConsumer>, topic: &str, partition: i32) -> Option<Self> {
        let topic = CString::new(topic).ok()?;
        let rk = consumer.client().native_ptr();
        // SAFETY: `rk` is the live handle of `consumer`, which the queue keeps.
        let raw = unsafe { rd::rd_kafka_queue_get_partition(rk, topic.as_ptr(), partition) };
        let queue = NonNull::new(raw)?;
        // SAFETY: `queue` is a valid handle of ours. Forwarding it nowhere keeps its records off
        // the main queue.
        let queue = unsafe {
            rd::rd_kafka_queue_forward(queue.as_ptr(), null_mut());
            WakingQueue::new(queue)
        };
        Some(Self {
            queue,
            ready: VecDeque::with_capacity(READ_AT_ONCE),
            partition,
            _consumer: consumer.clone(),
        })
    }

    /// The next record if one is there now.
    pub fn next_ready(&mut self) -> Option<SourceRecord> {
        if self.ready.is_empty() {
            self.read();
        }
        self.ready.pop_front()
    }

    /// The next record, once there is one (the queue never ends).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<SourceRecord> {
        if let Some(r) = self.next_ready() {
            return Poll::Ready(r);
        }
        self.queue.register(cx.waker());
        // A message that came between the read and the registration woke nobody.
        if let Some(r) = self.next_ready() {
            return Poll::Ready(r);
        }
        // A read can stop early (a yield) or serve only other ops and leave messages behind;
        // librdkafka calls back only when the empty queue gets one, so look again soon.
        // SAFETY: the queue is valid.
        if unsafe { rd::rd_kafka_queue_length(self.queue.as_ptr()) } > 0 {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// Move what the queue holds now (up to [`READ_AT_ONCE`]) into `ready`.
    fn read(&mut self) {
        let mut raw = [null_mut::<rd::rd_kafka_message_t>(); READ_AT_ONCE];
        // SAFETY: the queue is valid and `raw` has room for `READ_AT_ONCE` pointers; a timeout
        // of 0 never blocks.
        let n = unsafe {
            rd::rd_kafka_consume_batch_queue(self.queue.as_ptr(), 0, raw.as_mut_ptr(), raw.len())
        };
        // -1 only for a queue that is not a consumer's; nothing was taken.
        let n = usize::try_from(n).unwrap_or(0).min(READ_AT_ONCE);
        for &ptr in &raw[..n] {
            let Some(message) = NonNull::new(ptr).map(OwnedMessage) else {
                continue;
            };
            match message.record() {
                Ok(r) => self.ready.push_back(r),
                Err(e) => self.consumer_error(e),
            }
        }
    }

    /// A broker restarting, a fetch error: librdkafka retries; the queue goes on.
    fn consumer_error(&self, error: String) {
        tracing::warn!(partition = self.partition, %error, "consumer error")
    }
}

/// A message librdkafka handed over, destroyed on drop.
struct OwnedMessage(NonNull<rd::rd_kafka_message_t>);

impl Drop for OwnedMessage {
    fn drop(&mut self) {
        // SAFETY: the message came from `rd_kafka_consume_batch_queue` and is destroyed once.
        unsafe { rd::rd_kafka_message_destroy(self.0.as_ptr()) }
    }
}

impl OwnedMessage {
    /// The record, or the error librdkafka put in its place.
    fn record(&self) -> Result<SourceRecord, String> {
        // SAFETY: the message is valid until dropped; every pointer read below belongs to it,
        // with the length librdkafka gives.
        unsafe {
            let m = self.0.as_ref();
            if m.err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err(self.error_text(m.err));
            }
            let (timestamp, timestamp_type) = self.timestamp();
            let key = bytes(m.key, m.key_len);
            let value = bytes(m.payload, m.len);
            let mut hdrs: *mut rd::rd_kafka_headers_t = null_mut();
            let has_headers = rd::rd_kafka_message_headers(self.0.as_ptr(), &mut hdrs)
                == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR
                && !hdrs.is_null();
            // Room for the headers' bytes without counting them first: enough for a few small
            // headers; more grow the buffer.
            let header_room = if has_headers { 64 } else { 0 };
            let mut w = RecordWriter::new(m.partition, m.offset, key, value, header_room)
                .timestamp(timestamp, timestamp_type);
            if has_headers {
                write_headers(hdrs, &mut w);
            }
            Ok(w.finish())
        }
    }

    fn error_text(&self, err: RDKafkaRespErr) -> String {
        // SAFETY: librdkafka returns a NUL-terminated string owned by the message.
        let text = unsafe { CStr::from_ptr(rd::rd_kafka_message_errstr(self.0.as_ptr())) };
        format!("{} ({err:?})", text.to_string_lossy())
    }

    /// As rust-rdkafka reads it: `-1` or no type is no timestamp.
    fn timestamp(&self) -> (i64, TimestampType) {
        use rd::rd_kafka_timestamp_type_t as T;
        let mut kind = T::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: the message is valid.
        let ms = unsafe { rd::rd_kafka_message_timestamp(self.0.as_ptr(), &mut kind) };
        match kind {
            _ if ms == -1 => (-1, TimestampType::CreateTime),
            T::RD_KAFKA_TIMESTAMP_CREATE_TIME => (ms, TimestampType::CreateTime),
            T::RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME => (ms, TimestampType::LogAppendTime),
            T::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE => (-1, TimestampType::CreateTime),
        }
    }
}

/// Add the message's headers to `w` in record order; a name that is not UTF-8 is read lossily
/// (rust-rdkafka panics).
///
/// # Safety
/// `hdrs` is the valid header list of a message that outlives this call.
unsafe fn write_headers(hdrs: *const rd::rd_kafka_headers_t, w: &mut RecordWriter) {
    // SAFETY: the caller's promise; every pointer librdkafka returns belongs to the list.
    unsafe {
        for i in 0..rd::rd_kafka_header_cnt(hdrs) {
            let (mut name, mut value, mut size) = (std::ptr::null(), std::ptr::null(), 0);
            if rd::rd_kafka_header_get_all(hdrs, i, &mut name, &mut value, &mut size)
                != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR
            {
                break;
            }
            let name = CStr::from_ptr(name).to_string_lossy();
            w.header(&name, bytes(value.cast_mut(), size));
        }
    }
}

/// A buffer of the message; `None` for a null pointer (a null key, a tombstone).
///
/// # Safety
/// `ptr` is null or points to `len` bytes that live as long as the returned slice is used.
unsafe fn bytes<'a>(ptr: *mut c_void, len: usize) -> Option<&'a [u8]> {
    if ptr.is_null() {
        None
    } else {
        // SAFETY: the caller's promise.
        Some(unsafe { std::slice::from_raw_parts(ptr as *const u8, len) })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rdkafka::config::ClientConfig;
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::{Offset, TopicPartitionList};

    use super::*;
    use crate::sources::kafka::test_support;

    /// Record `i` of the test: every third without a key, every fifth a tombstone, two headers,
    /// the second with a null value.
    async fn produce(producer: &FutureProducer, i: usize) {
        let key = format!("k{i}");
        let value = format!("value {i}");
        let mut record = FutureRecord::to("t")
            .partition(0)
            .timestamp(1_700_000_000_000 + i as i64)
            .headers(
                OwnedHeaders::new()
                    .insert(Header {
                        key: "h",
                        value: Some(&format!("{i}")),
                    })
                    .insert(Header::<&str> {
                        key: "null",
                        value: None,
                    }),
            );
        if !i.is_multiple_of(3) {
            record = record.key(&key);
        }
        if !i.is_multiple_of(5) {
            record = record.payload(&value);
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_split_queue_reads_every_record_in_order_with_its_fields() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("t", 1, 1).unwrap();
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .unwrap();
        // More than one read's worth.
        let n = READ_AT_ONCE * 2 + 7;
        for i in 0..n {
            produce(&producer, i).await;
        }
        let consumer = test_support::consumer(&cluster, "t");
        let mut queue = PartitionQueue::split(&consumer, "t", 0).unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("t", 0, Offset::Beginning).unwrap();
        consumer.assign(&tpl).unwrap();
        let mut got = Vec::new();
        while got.len() < n {
            let r = tokio::time::timeout(
                Duration::from_secs(30),
                std::future::poll_fn(|cx| queue.poll_next(cx)),
            )
            .await
            .expect("a record within 30 s");
            got.push(r);
            got.extend(std::iter::from_fn(|| queue.next_ready()));
        }
        assert_eq!(got.len(), n);
        for (i, r) in got.iter().enumerate() {
            assert_eq!((r.partition, r.offset), (0, i as i64));
            assert_eq!(r.timestamp, 1_700_000_000_000 + i as i64);
            assert_eq!(r.timestamp_type, TimestampType::CreateTime);
            let key = (!i.is_multiple_of(3)).then(|| format!("k{i}"));
            assert_eq!(r.key(), key.as_ref().map(String::as_bytes), "key of {i}");
            let value = (!i.is_multiple_of(5)).then(|| format!("value {i}"));
            assert_eq!(
                r.value(),
                value.as_ref().map(String::as_bytes),
                "value of {i}"
            );
            let h = format!("{i}");
            assert_eq!(
                r.headers().collect::<Vec<_>>(),
                [("h", Some(h.as_bytes())), ("null", None)]
            );
        }
        assert!(queue.next_ready().is_none());
    }
}
