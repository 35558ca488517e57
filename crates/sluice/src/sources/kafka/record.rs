//! A Kafka record as the pipe carries it, and its JSON form exactly as Pipes sends it to targets
//! (`kafka-source.md`, "The record format"): written straight into a byte buffer, without building
//! a JSON tree, because it runs for every record.

use std::io::Write;

use base64::Engine;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::Timestamp;

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
    /// Copy a polled message.
    pub fn from_message(m: &BorrowedMessage<'_>) -> Self {
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
        Self {
            partition: m.partition(),
            offset: m.offset(),
            timestamp,
            timestamp_type,
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
        }
    }

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

/// The per-pipe constant part of every record's JSON: `eventSource` and where it came from.
#[derive(Debug, Clone)]
pub struct RecordContext {
    /// Topic name.
    pub topic: String,
    /// Prebuilt `"eventSource":...,"bootstrapServers"|"eventSourceArn":...,` prefix.
    prefix: Vec<u8>,
    /// `eventSource` value, for filters and templates.
    pub event_source: &'static str,
    /// `bootstrapServers` (self-managed) as written in the record.
    pub bootstrap_servers: Option<String>,
    /// `eventSourceArn` (MSK).
    pub event_source_arn: Option<String>,
}

impl RecordContext {
    /// A self-managed Kafka source (`eventSource: SelfManagedKafka`).
    pub fn self_managed(topic: &str, bootstrap_servers: &str) -> Self {
        Self::build(
            topic,
            "SelfManagedKafka",
            Some(bootstrap_servers.to_string()),
            None,
        )
    }

    /// An MSK source (`eventSource: aws:kafka`).
    pub fn msk(topic: &str, cluster_arn: &str) -> Self {
        Self::build(topic, "aws:kafka", None, Some(cluster_arn.to_string()))
    }

    fn build(
        topic: &str,
        event_source: &'static str,
        bootstrap_servers: Option<String>,
        event_source_arn: Option<String>,
    ) -> Self {
        let mut prefix = Vec::new();
        prefix.extend_from_slice(b"{\"eventSource\":");
        json_str(&mut prefix, event_source);
        if let Some(arn) = &event_source_arn {
            prefix.extend_from_slice(b",\"eventSourceArn\":");
            json_str(&mut prefix, arn);
        }
        if let Some(servers) = &bootstrap_servers {
            prefix.extend_from_slice(b",\"bootstrapServers\":");
            json_str(&mut prefix, servers);
        }
        Self {
            topic: topic.to_string(),
            prefix,
            event_source,
            bootstrap_servers,
            event_source_arn,
        }
    }

    /// Append the record's JSON object to `out`.
    pub fn write_json(&self, rec: &SourceRecord, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(b",\"eventSourceKey\":\"");
        json_str_inner(out, &self.topic);
        // Writes into a Vec cannot fail.
        let _ = write!(out, "-{}\",\"topic\":", rec.partition);
        json_str(out, &self.topic);
        let _ = write!(
            out,
            ",\"partition\":\"{}\",\"offset\":{},\"timestamp\":{},\"timestampType\":\"{}\"",
            rec.partition,
            rec.offset,
            rec.timestamp,
            rec.timestamp_type.as_str()
        );
        if let Some(key) = &rec.key {
            out.extend_from_slice(b",\"key\":\"");
            base64_into(out, key);
            out.push(b'"');
        }
        out.extend_from_slice(b",\"value\":");
        match &rec.value {
            Some(v) => {
                out.push(b'"');
                base64_into(out, v);
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"headers\":[");
        for (i, (k, v)) in rec.headers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            json_str(out, k);
            out.push(b':');
            match v {
                None => out.extend_from_slice(b"null"),
                Some(bytes) => {
                    out.push(b'[');
                    for (j, b) in bytes.iter().enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        // Java's byte is signed: 0xC3 is -61.
                        let _ = write!(out, "{}", *b as i8);
                    }
                    out.push(b']');
                }
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
    }

    /// The record's JSON as a string.
    pub fn to_json(&self, rec: &SourceRecord) -> String {
        let mut out = Vec::with_capacity(256);
        self.write_json(rec, &mut out);
        // Everything written is ASCII or valid UTF-8 from `json_str`.
        String::from_utf8(out).unwrap_or_default()
    }
}

fn base64_into(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    let len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
    out.resize(start + len, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + written);
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    json_str_inner(out, s);
    out.push(b'"');
}

fn json_str_inner(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                let _ = write!(out, "\\u{b:04x}");
            }
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn record() -> SourceRecord {
        SourceRecord {
            partition: 3,
            offset: 15,
            timestamp: 1_545_084_650_987,
            timestamp_type: TimestampType::CreateTime,
            key: Some(b"k1".to_vec()),
            value: Some(b"Hello, this is a test.".to_vec()),
            headers: vec![
                ("headerKey".into(), Some(b"headerValue".to_vec())),
                ("bin".into(), Some(vec![0xC3, 0x00, 0x7F, 0x80, 0xFF])),
                ("empty".into(), Some(vec![])),
                ("headerKey".into(), Some(b"again".to_vec())),
                ("nul".into(), None),
            ],
        }
    }

    #[test]
    fn self_managed_record_json_is_exact() {
        let ctx = RecordContext::self_managed("my\"topic", "h1:9092,h2:9092");
        let v: Value = serde_json::from_str(&ctx.to_json(&record())).unwrap();
        assert_eq!(
            v,
            json!({
                "eventSource": "SelfManagedKafka",
                "bootstrapServers": "h1:9092,h2:9092",
                "eventSourceKey": "my\"topic-3",
                "topic": "my\"topic",
                "partition": "3",
                "offset": 15,
                "timestamp": 1545084650987i64,
                "timestampType": "CREATE_TIME",
                "key": "azE=",
                "value": "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==",
                "headers": [
                    {"headerKey": [104, 101, 97, 100, 101, 114, 86, 97, 108, 117, 101]},
                    {"bin": [-61, 0, 127, -128, -1]},
                    {"empty": []},
                    {"headerKey": [97, 103, 97, 105, 110]},
                    {"nul": null}
                ]
            })
        );
    }

    #[test]
    fn msk_record_has_arn_and_no_bootstrap_servers() {
        let ctx = RecordContext::msk("t", "arn:aws:kafka:sa-east-1:123456789012:cluster/c/u-2");
        let v: Value = serde_json::from_str(&ctx.to_json(&record())).unwrap();
        assert_eq!(v["eventSource"], "aws:kafka");
        assert_eq!(
            v["eventSourceArn"],
            "arn:aws:kafka:sa-east-1:123456789012:cluster/c/u-2"
        );
        assert!(v.get("bootstrapServers").is_none());
    }

    #[test]
    fn null_key_is_omitted_and_tombstone_is_null() {
        let ctx = RecordContext::self_managed("t", "h:1");
        let mut r = record();
        r.key = None;
        r.value = None;
        r.headers.clear();
        r.timestamp_type = TimestampType::LogAppendTime;
        let v: Value = serde_json::from_str(&ctx.to_json(&r)).unwrap();
        assert!(v.get("key").is_none());
        assert_eq!(v["value"], Value::Null);
        assert_eq!(v["headers"], json!([]));
        assert_eq!(v["timestampType"], "LOG_APPEND_TIME");
    }

    #[test]
    fn control_characters_in_names_stay_valid_json() {
        let ctx = RecordContext::self_managed("t", "h:1");
        let mut r = record();
        r.headers = vec![("a\u{1}\n\\".into(), Some(vec![1]))];
        let v: Value = serde_json::from_str(&ctx.to_json(&r)).unwrap();
        assert_eq!(v["headers"][0]["a\u{1}\n\\"], json!([1]));
    }
}
