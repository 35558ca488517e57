//! The record the engine carries from source to target: one Kafka record, owned, with no knowledge
//! of where it was read or where it goes. The source makes them, transforms read them, and the
//! targets that write a record back to Kafka (the Kafka target, Kafka dead letters) keep its key
//! and headers.

use smallvec::SmallVec;

/// `timestampType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// Set by the producer.
    #[default]
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
///
/// Key, value and headers live back to back in one buffer (key, value, then each header's name
/// and value), so reading a record from librdkafka allocates once rather than once per field and
/// header. The accessors give the parts back as slices; [`RecordWriter`] builds one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceRecord {
    /// Partition number.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Milliseconds since the epoch (`-1` when the broker has none).
    pub timestamp: i64,
    /// Who set the timestamp.
    pub timestamp_type: TimestampType,
    /// Key, value, then each header's name and value.
    data: Vec<u8>,
    /// Length of the key at the start of `data`; `None` for a null key.
    key_len: Option<usize>,
    /// Length of the value after the key; `None` for a tombstone.
    value_len: Option<usize>,
    /// Each header's lengths, in record order (most records have at most two).
    headers: SmallVec<[HeaderSpan; 2]>,
}

/// Where one header lies in [`SourceRecord`]'s buffer, after the previous one.
#[derive(Debug, Clone, Copy, PartialEq)]
struct HeaderSpan {
    name_len: usize,
    /// `None`: a null value.
    value_len: Option<usize>,
}

impl SourceRecord {
    /// A record at `partition` and `offset` with no timestamp, key, value or headers, which the
    /// `with_*` methods give it.
    pub fn new(partition: i32, offset: i64) -> Self {
        Self {
            partition,
            offset,
            timestamp: -1,
            ..Self::default()
        }
    }

    /// The same record with this timestamp.
    pub fn with_timestamp(mut self, timestamp: i64, timestamp_type: TimestampType) -> Self {
        self.timestamp = timestamp;
        self.timestamp_type = timestamp_type;
        self
    }

    /// The same record with this key (`None`: a null key).
    pub fn with_key(&self, key: Option<&[u8]>) -> Self {
        self.with_parts(key, self.value())
    }

    /// The same record with this value (`None`: a tombstone).
    pub fn with_value(&self, value: Option<&[u8]>) -> Self {
        self.with_parts(self.key(), value)
    }

    /// The same record with this key and value, and its own headers.
    fn with_parts(&self, key: Option<&[u8]>, value: Option<&[u8]>) -> Self {
        let mut w = self.rewriter(key, value);
        w.headers(self.headers());
        w.finish()
    }

    /// The same record with these headers in place of its own.
    pub fn with_headers<'h>(
        &self,
        headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
    ) -> Self {
        let mut w = self.rewriter(self.key(), self.value());
        w.headers(headers);
        w.finish()
    }

    /// The same record with these headers after its own.
    pub fn with_more_headers<'h>(
        &self,
        extra: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
    ) -> Self {
        let mut w = self.rewriter(self.key(), self.value());
        w.headers(self.headers());
        w.headers(extra);
        w.finish()
    }

    fn rewriter(&self, key: Option<&[u8]>, value: Option<&[u8]>) -> RecordWriter {
        let header_bytes =
            self.data.len() - self.key_len.unwrap_or(0) - self.value_len.unwrap_or(0);
        RecordWriter::new(self.partition, self.offset, key, value, header_bytes)
            .timestamp(self.timestamp, self.timestamp_type)
    }

    /// The key; `None` for a null key.
    pub fn key(&self) -> Option<&[u8]> {
        self.key_len.map(|n| &self.data[..n])
    }

    /// The value; `None` for a tombstone.
    pub fn value(&self) -> Option<&[u8]> {
        let start = self.key_len.unwrap_or(0);
        self.value_len.map(|n| &self.data[start..start + n])
    }

    /// The headers in record order, duplicates kept; a header value may be null.
    pub fn headers(&self) -> Headers<'_> {
        let start = self.key_len.unwrap_or(0) + self.value_len.unwrap_or(0);
        Headers {
            data: &self.data[start..],
            spans: self.headers.iter(),
        }
    }

    /// Bytes of key, value and headers: what `EventSize` counts.
    pub fn size(&self) -> usize {
        self.data.len()
    }
}

/// Builds a [`SourceRecord`]: key and value first, then the headers one by one.
#[derive(Debug)]
pub struct RecordWriter {
    record: SourceRecord,
}

impl RecordWriter {
    /// A record at `partition` and `offset` with this key and value, whose buffer has room for
    /// `header_bytes` more (the headers' names and values) without growing.
    pub fn new(
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        header_bytes: usize,
    ) -> Self {
        let len = |b: Option<&[u8]>| b.map_or(0, <[u8]>::len);
        let mut data = Vec::with_capacity(len(key) + len(value) + header_bytes);
        data.extend_from_slice(key.unwrap_or_default());
        data.extend_from_slice(value.unwrap_or_default());
        Self {
            record: SourceRecord {
                data,
                key_len: key.map(<[u8]>::len),
                value_len: value.map(<[u8]>::len),
                ..SourceRecord::new(partition, offset)
            },
        }
    }

    /// With this timestamp.
    pub fn timestamp(mut self, timestamp: i64, timestamp_type: TimestampType) -> Self {
        self.record.timestamp = timestamp;
        self.record.timestamp_type = timestamp_type;
        self
    }

    /// Add a header after the ones added so far.
    pub fn header(&mut self, name: &str, value: Option<&[u8]>) {
        self.record.data.extend_from_slice(name.as_bytes());
        self.record
            .data
            .extend_from_slice(value.unwrap_or_default());
        self.record.headers.push(HeaderSpan {
            name_len: name.len(),
            value_len: value.map(<[u8]>::len),
        });
    }

    /// Add these headers after the ones added so far.
    pub fn headers<'h>(&mut self, headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>) {
        for (name, value) in headers {
            self.header(name, value);
        }
    }

    /// The record.
    pub fn finish(self) -> SourceRecord {
        self.record
    }
}

/// The headers of a [`SourceRecord`], in record order.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    /// The buffer from the next header's name on.
    data: &'a [u8],
    spans: std::slice::Iter<'a, HeaderSpan>,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        let span = self.spans.next()?;
        let (name, rest) = self.data.split_at(span.name_len);
        let value_len = span.value_len.unwrap_or(0);
        let (value, rest) = rest.split_at(value_len);
        self.data = rest;
        // Names were written from `&str`, so they are UTF-8.
        let name = std::str::from_utf8(name).unwrap_or_default();
        Some((name, span.value_len.map(|_| value)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl ExactSizeIterator for Headers<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_come_back_as_they_were_written() {
        let mut w = RecordWriter::new(3, 42, Some(b"k"), None, 0)
            .timestamp(7, TimestampType::LogAppendTime);
        w.header("a", Some(b"1"));
        w.header("b", None);
        w.header("", Some(b""));
        w.header("a", Some(b"22"));
        let r = w.finish();
        assert_eq!((r.partition, r.offset, r.timestamp), (3, 42, 7));
        assert_eq!(r.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(r.key(), Some(&b"k"[..]));
        assert_eq!(r.value(), None);
        let headers: Vec<_> = r.headers().collect();
        assert_eq!(
            headers,
            [
                ("a", Some(&b"1"[..])),
                ("b", None),
                ("", Some(&b""[..])),
                ("a", Some(&b"22"[..]))
            ]
        );
        assert_eq!(r.headers().len(), 4);
        assert_eq!(
            r.size(),
            b"k".len() + b"a1".len() + b"b".len() + b"a22".len()
        );
    }

    #[test]
    fn an_empty_key_or_value_is_not_a_null_one() {
        let r = SourceRecord::new(0, 0)
            .with_key(Some(b""))
            .with_value(Some(b""));
        assert_eq!((r.key(), r.value()), (Some(&b""[..]), Some(&b""[..])));
        let r = r.with_key(None).with_value(None);
        assert_eq!((r.key(), r.value()), (None, None));
    }

    #[test]
    fn rewriting_one_part_keeps_the_others() {
        let r = SourceRecord::new(1, 2)
            .with_timestamp(5, TimestampType::CreateTime)
            .with_key(Some(b"key"))
            .with_value(Some(b"value"))
            .with_headers([("h", Some(&b"v"[..]))]);
        let r2 = r.with_value(Some(b"other")).with_key(Some(b"k2"));
        assert_eq!(r2.key(), Some(&b"k2"[..]));
        assert_eq!(r2.value(), Some(&b"other"[..]));
        assert_eq!(r2.headers().collect::<Vec<_>>(), [("h", Some(&b"v"[..]))]);
        assert_eq!((r2.partition, r2.offset, r2.timestamp), (1, 2, 5));
        let r3 = r2.with_more_headers([("x", None)]);
        assert_eq!(
            r3.headers().collect::<Vec<_>>(),
            [("h", Some(&b"v"[..])), ("x", None)]
        );
        assert_eq!(r3.with_headers([]).headers().len(), 0);
        assert_eq!(r3.with_headers([]).value(), Some(&b"other"[..]));
    }
}
