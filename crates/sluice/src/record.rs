//! The record the engine carries from source to target: one Kafka record, owned, with no knowledge
//! of where it was read or where it goes. The source makes them, transforms read them, and the
//! targets that write a record back to Kafka (the Kafka target, Kafka dead letters) keep its key
//! and headers.

/// `timestampType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker.
    LogAppendTime,
}

impl TimestampType {
    /// The name in the record JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampType::CreateTime => "CREATE_TIME",
            TimestampType::LogAppendTime => "LOG_APPEND_TIME",
        }
    }
}

/// One record read from a partition, owned so it can outlive the poll that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    /// Partition number.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Milliseconds since the epoch (`-1` when the broker has none).
    pub timestamp: i64,
    /// Who set the timestamp.
    pub timestamp_type: TimestampType,
    /// Raw key bytes; `None` for a null key.
    pub key: Option<Vec<u8>>,
    /// Raw value bytes; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// Headers in record order, duplicates kept; a header value may be null.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl SourceRecord {
    /// Bytes of key, value and headers: what `EventSize` counts.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
    }
}
