//! Per-record transforms between source and target: the filter (event patterns, from
//! `sluice-pattern`) and input templates (from `sluice-template`), adapted to Kafka records: the
//! decoding of `key`/`value` that both languages see.

use base64::Engine;
use serde_json::{Map, Value};
use sluice_pattern::{KafkaRecord, Matcher};
use sluice_template::{Context, Template};

use crate::sources::kafka::record::{RecordContext, SourceRecord};

/// A pipe's compiled `FilterCriteria`.
#[derive(Debug)]
pub struct Filter(Matcher);

impl Filter {
    /// Compile all filters of a pipe, with the Kafka rules (no patterns on `eventSource*`).
    pub fn compile<S: AsRef<str>>(patterns: &[S]) -> Result<Self, String> {
        Matcher::compile_kafka(patterns)
            .map(Filter)
            .map_err(|e| e.to_string())
    }

    /// Whether the record passes (any filter matches).
    pub fn matches(&self, ctx: &RecordContext, rec: &SourceRecord) -> bool {
        let headers: Vec<(&str, Option<&[u8]>)> = rec
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        self.0.matches_kafka(&KafkaRecord {
            topic: &ctx.topic,
            partition: rec.partition,
            offset: rec.offset,
            timestamp: rec.timestamp,
            timestamp_type: rec.timestamp_type.as_str(),
            key: rec.key.as_deref(),
            value: rec.value.as_deref(),
            headers: &headers,
            bootstrap_servers: ctx.bootstrap_servers.as_deref(),
            event_source_arn: ctx.event_source_arn.as_deref(),
        })
    }
}

/// The pipe-level values of a template's reserved variables.
#[derive(Debug, Clone, Default)]
pub struct TemplateVars {
    /// `<aws.pipes.pipe-arn>`.
    pub pipe_arn: String,
    /// `<aws.pipes.pipe-name>`.
    pub pipe_name: String,
    /// `<aws.pipes.source-arn>`.
    pub source_arn: String,
    /// `<aws.pipes.enrichment-arn>`.
    pub enrichment_arn: String,
    /// `<aws.pipes.target-arn>`.
    pub target_arn: String,
}

/// A compiled `InputTemplate`.
#[derive(Debug)]
pub struct InputTemplate(Template);

impl InputTemplate {
    /// Compile template text.
    pub fn compile(text: &str) -> Result<Self, String> {
        Template::compile(text)
            .map(InputTemplate)
            .map_err(|e| e.to_string())
    }

    /// Whether the output is JSON (else text).
    pub fn is_json(&self) -> bool {
        self.0.is_json()
    }

    /// Render for one record. `event_text` is the record's JSON as sent to targets, `decoded` the
    /// same record with `key`/`value` decoded (see [`decoded_record`]).
    pub fn render(&self, vars: &TemplateVars, event_text: &str, decoded: &Value) -> String {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        self.0.render(
            decoded,
            &Context {
                pipe_arn: &vars.pipe_arn,
                pipe_name: &vars.pipe_name,
                source_arn: &vars.source_arn,
                enrichment_arn: &vars.enrichment_arn,
                target_arn: &vars.target_arn,
                ingestion_time: &now,
                event_text,
                event_json: decoded,
            },
        )
    }
}

/// The record as templates and JSON-path parameters see it: the record JSON with `key` and `value`
/// replaced by their parsed JSON when the bytes are valid UTF-8 JSON, otherwise left as base64.
pub fn decoded_record(ctx: &RecordContext, rec: &SourceRecord) -> Value {
    let mut m = Map::new();
    m.insert("eventSource".into(), ctx.event_source.into());
    if let Some(arn) = &ctx.event_source_arn {
        m.insert("eventSourceArn".into(), arn.as_str().into());
    }
    if let Some(s) = &ctx.bootstrap_servers {
        m.insert("bootstrapServers".into(), s.as_str().into());
    }
    m.insert(
        "eventSourceKey".into(),
        format!("{}-{}", ctx.topic, rec.partition).into(),
    );
    m.insert("topic".into(), ctx.topic.as_str().into());
    m.insert("partition".into(), rec.partition.to_string().into());
    m.insert("offset".into(), rec.offset.into());
    m.insert("timestamp".into(), rec.timestamp.into());
    m.insert("timestampType".into(), rec.timestamp_type.as_str().into());
    if let Some(k) = &rec.key {
        m.insert("key".into(), decode_bytes(k));
    }
    m.insert(
        "value".into(),
        rec.value.as_deref().map_or(Value::Null, decode_bytes),
    );
    let headers = rec
        .headers
        .iter()
        .map(|(k, v)| {
            let bytes = v.as_ref().map_or(Value::Null, |b| {
                Value::Array(b.iter().map(|x| Value::from(*x as i8)).collect())
            });
            let mut h = Map::new();
            h.insert(k.clone(), bytes);
            Value::Object(h)
        })
        .collect();
    m.insert("headers".into(), Value::Array(headers));
    Value::Object(m)
}

fn decode_bytes(b: &[u8]) -> Value {
    match std::str::from_utf8(b)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    {
        Some(v) => v,
        None => base64::engine::general_purpose::STANDARD.encode(b).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::kafka::record::TimestampType;
    use serde_json::json;

    fn rec(value: &[u8]) -> SourceRecord {
        SourceRecord {
            partition: 1,
            offset: 7,
            timestamp: 1000,
            timestamp_type: TimestampType::CreateTime,
            key: Some(b"\"k\"".to_vec()),
            value: Some(value.to_vec()),
            headers: vec![("h".into(), Some(vec![0xff]))],
        }
    }

    #[test]
    fn json_values_are_decoded_and_others_stay_base64() {
        let ctx = RecordContext::self_managed("t", "h:1");
        let d = decoded_record(&ctx, &rec(br#"{"id":"A1","n":3}"#));
        assert_eq!(d["value"], json!({"id": "A1", "n": 3}));
        assert_eq!(d["key"], json!("k"));
        assert_eq!(d["headers"], json!([{"h": [-1]}]));
        let d = decoded_record(&ctx, &rec(b"plain text"));
        assert_eq!(d["value"], json!("cGxhaW4gdGV4dA=="));
        let d = decoded_record(&ctx, &rec(&[0xff, 0xfe]));
        assert_eq!(d["value"], json!("//4="));
    }

    #[test]
    fn template_renders_decoded_fields() {
        let ctx = RecordContext::self_managed("t", "h:1");
        let r = rec(br#"{"id":"A1","n":3}"#);
        let t = InputTemplate::compile(r#"{"id": <$.value.id>, "p": "<aws.pipes.pipe-name>"}"#)
            .unwrap();
        let vars = TemplateVars {
            pipe_name: "orders".into(),
            ..Default::default()
        };
        let out = t.render(&vars, &ctx.to_json(&r), &decoded_record(&ctx, &r));
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v, json!({"id": "A1", "p": "orders"}));
        assert!(t.is_json());
    }

    #[test]
    fn filter_sees_decoded_value() {
        let ctx = RecordContext::self_managed("t", "h:1");
        let f = Filter::compile(&[r#"{"value": {"id": [{"prefix": "A"}]}}"#]).unwrap();
        assert!(f.matches(&ctx, &rec(br#"{"id":"A1"}"#)));
        assert!(!f.matches(&ctx, &rec(br#"{"id":"B1"}"#)));
        assert!(Filter::compile(&[r#"{"eventSource": ["x"]}"#]).is_err());
    }
}
