//! What a dead letter says, as pure functions: the `sluice.error.*` headers of a Kafka dead letter,
//! and the failure record (Lambda's shape) that SQS, SNS and S3 dead letters carry.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{json, Map, Value};

use super::{DeadLetter, Failure};
use crate::record::SourceRecord;

/// Longest `sluice.error.message`, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Where the records came from, as the failure record names it.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The pipe's ARN.
    pub pipe_arn: String,
    /// The source topic.
    pub topic: String,
    /// `eventSourceArn`: the MSK cluster ARN, or the `Source` of a self-managed pipe.
    pub event_source_arn: String,
    /// The bootstrap servers, comma-separated.
    pub bootstrap_servers: String,
}

/// The headers added to a Kafka dead letter of `rec`, in order (values UTF-8 text).
pub fn error_headers(origin: &Origin, rec: &SourceRecord, f: &Failure) -> Vec<(String, String)> {
    let mut h = vec![
        ("sluice.error.pipe", origin.pipe_arn.clone()),
        ("sluice.error.topic", origin.topic.clone()),
        ("sluice.error.partition", rec.partition.to_string()),
        ("sluice.error.offset", rec.offset.to_string()),
        ("sluice.error.condition", f.condition.as_str().to_string()),
    ];
    if let Some(stage) = f.stage {
        h.push(("sluice.error.stage", stage.to_string()));
    }
    h.push(("sluice.error.attempts", f.attempts.to_string()));
    if let Some(status) = &f.status {
        h.push(("sluice.error.status", status.clone()));
    }
    if !f.message.is_empty() {
        h.push((
            "sluice.error.message",
            truncate(&f.message, MAX_MESSAGE_BYTES),
        ));
    }
    h.push(("sluice.error.time", rfc3339(f.at)));
    h.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The failure record of a dead letter (Lambda's on-failure shape), without the records.
pub fn failure_record(origin: &Origin, letter: &DeadLetter<'_>, request_id: &str) -> Value {
    let f = letter.failure;
    let mut response = Map::new();
    if let Some(status) = &f.status {
        let code = status.parse::<u16>().map_or(json!(status), |n| json!(n));
        response.insert("statusCode".into(), code);
    }
    response.insert(
        "errorMessage".into(),
        json!(truncate(&f.message, MAX_MESSAGE_BYTES)),
    );
    let payload_size: usize = letter.events.iter().map(|e| e.payload.len()).sum();
    json!({
        "version": "1.0",
        "timestamp": rfc3339(f.at),
        "requestContext": {
            "requestId": request_id,
            "pipeArn": origin.pipe_arn,
            "condition": f.condition.as_str(),
            "approximateInvokeCount": f.attempts,
        },
        "responseContext": response,
        "KafkaBatchInfo": {
            "batchSize": letter.records.len(),
            "eventSourceArn": origin.event_source_arn,
            "bootstrapServers": origin.bootstrap_servers,
            "payloadSize": payload_size,
            "recordsInfo": records_info(&origin.topic, letter.records),
        }
    })
}

/// Per `<topic>-<partition>`: first and last offset and timestamp.
fn records_info(topic: &str, records: &[&SourceRecord]) -> Value {
    let mut info: BTreeMap<String, Value> = BTreeMap::new();
    for r in records {
        let key = format!("{topic}-{}", r.partition);
        let entry = info.entry(key).or_insert_with(
            || json!({"firstRecordOffset": r.offset, "firstRecordTimestamp": r.timestamp}),
        );
        entry["lastRecordOffset"] = json!(r.offset);
        entry["lastRecordTimestamp"] = json!(r.timestamp);
    }
    json!(info)
}

/// `s` cut to at most `max` bytes, at a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// RFC 3339 in UTC, to the millisecond.
pub fn rfc3339(t: SystemTime) -> String {
    let ns = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    let ms = ns / 1_000_000 * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(ms)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dead_letter::Condition;
    use crate::record::TimestampType;
    use crate::targets::Event;

    fn rec(offset: i64, ts: i64) -> SourceRecord {
        SourceRecord::new(2, offset)
            .with_timestamp(ts, TimestampType::CreateTime)
            .with_key(Some(b"k"))
            .with_value(Some(b"v"))
    }

    fn origin() -> Origin {
        Origin {
            pipe_arn: "arn:aws:pipes:us-east-1:1:pipe/p".into(),
            topic: "orders".into(),
            event_source_arn: "smk://h:9092".into(),
            bootstrap_servers: "h:9092".into(),
        }
    }

    fn failure(message: String) -> Failure {
        Failure {
            condition: Condition::RetryAttemptsExhausted,
            stage: Some("target"),
            attempts: 4,
            status: Some("500".into()),
            message,
            at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_583_200_123),
        }
    }

    #[test]
    fn kafka_headers_name_the_failure_and_cut_the_message_at_1_kib() {
        let f = failure("é".repeat(600));
        let h: BTreeMap<String, String> = error_headers(&origin(), &rec(15, 1), &f)
            .into_iter()
            .collect();
        assert_eq!(h["sluice.error.pipe"], "arn:aws:pipes:us-east-1:1:pipe/p");
        assert_eq!(h["sluice.error.topic"], "orders");
        assert_eq!(h["sluice.error.partition"], "2");
        assert_eq!(h["sluice.error.offset"], "15");
        assert_eq!(h["sluice.error.condition"], "RetryAttemptsExhausted");
        assert_eq!(h["sluice.error.stage"], "target");
        assert_eq!(h["sluice.error.attempts"], "4");
        assert_eq!(h["sluice.error.status"], "500");
        assert_eq!(h["sluice.error.time"], "2025-12-01T10:00:00.123Z");
        let m = &h["sluice.error.message"];
        assert!(m.len() <= 1024 && m.len() >= 1022, "{}", m.len());
        assert!(m.chars().all(|c| c == 'é'));
    }

    #[test]
    fn the_failure_record_has_lambdas_shape() {
        let records = [rec(15, 100), rec(16, 101), rec(17, 102)];
        let refs: Vec<&SourceRecord> = records.iter().collect();
        let events: Vec<Event> = (0..3)
            .map(|_| Event {
                payload: bytes::Bytes::from_static(b"0123456789"),
                is_json: true,
                record: None,
                source: None,
                array: None,
            })
            .collect();
        let f = failure("boom".into());
        let letter = DeadLetter {
            records: &refs,
            events: &events,
            failure: &f,
        };
        let v = failure_record(&origin(), &letter, "req-1");
        assert_eq!(v["version"], "1.0");
        assert_eq!(v["requestContext"]["condition"], "RetryAttemptsExhausted");
        assert_eq!(v["requestContext"]["approximateInvokeCount"], 4);
        assert_eq!(v["requestContext"]["requestId"], "req-1");
        assert_eq!(v["responseContext"]["statusCode"], 500);
        assert_eq!(v["responseContext"]["errorMessage"], "boom");
        let b = &v["KafkaBatchInfo"];
        assert_eq!(b["batchSize"], 3);
        assert_eq!(b["payloadSize"], 30);
        assert_eq!(
            b["recordsInfo"]["orders-2"],
            json!({"firstRecordOffset": 15, "lastRecordOffset": 17,
                   "firstRecordTimestamp": 100, "lastRecordTimestamp": 102})
        );
    }
}
