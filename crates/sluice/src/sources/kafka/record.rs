//! A polled librdkafka message as the engine's [`SourceRecord`], copied so it can outlive the poll.

use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::Timestamp;

use crate::record::{SourceRecord, TimestampType};

/// Copy a polled message.
pub fn record_from_message(m: &BorrowedMessage<'_>) -> SourceRecord {
    let (timestamp, timestamp_type) = match m.timestamp() {
        Timestamp::CreateTime(t) => (t, TimestampType::CreateTime),
        Timestamp::LogAppendTime(t) => (t, TimestampType::LogAppendTime),
        Timestamp::NotAvailable => (-1, TimestampType::CreateTime),
    };
    let headers = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    SourceRecord {
        partition: m.partition(),
        offset: m.offset(),
        timestamp,
        timestamp_type,
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers,
    }
}
