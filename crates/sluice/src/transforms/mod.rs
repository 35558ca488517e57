//! Per-record transforms between source and target, pure (no I/O): the filter (event patterns,
//! from `sluice-pattern`), input templates (from `sluice-template`), the record's JSON forms both
//! languages see ([`record_json`], their one owner), and the events built from records for the
//! enrichment and the target ([`event`]).

pub mod event;
pub mod record_json;

use serde_json::Value;
use sluice_pattern::Matcher;
use sluice_template::{Context, Template};

use crate::record::SourceRecord;
use record_json::RecordJson;

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

    /// Check one filter's pattern with the Kafka rules. The message carries no filter number:
    /// the caller names the filter (`Filters[2].Pattern`).
    pub fn check(pattern: &str) -> Result<(), String> {
        Matcher::compile_kafka(&[pattern])
            .map(|_| ())
            .map_err(|e| match e {
                sluice_pattern::PatternError::InFilter { inner, .. } => inner.to_string(),
                other => other.to_string(),
            })
    }

    /// Whether the record passes (any filter matches).
    pub fn matches(&self, json: &RecordJson, rec: &SourceRecord) -> bool {
        let mut headers = Vec::new();
        self.0.matches_kafka(&json.filter_view(rec, &mut headers))
    }

    /// The records of `batch` that pass, in order.
    pub fn retain<'a>(
        &self,
        json: &RecordJson,
        batch: &'a [SourceRecord],
    ) -> Vec<&'a SourceRecord> {
        let mut headers = Vec::new();
        batch
            .iter()
            .filter(|r| self.0.matches_kafka(&json.filter_view(r, &mut headers)))
            .collect()
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
    /// same record with `key`/`value` decoded (see [`RecordJson::decoded`]).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TimestampType;
    use serde_json::json;

    fn rec(value: &[u8]) -> SourceRecord {
        SourceRecord::new(1, 7)
            .with_timestamp(1000, TimestampType::CreateTime)
            .with_key(Some(b"\"k\""))
            .with_value(Some(value))
            .with_headers([("h", Some(&[0xff][..]))])
    }

    #[test]
    fn template_renders_decoded_fields() {
        let ctx = RecordJson::self_managed("t", "h:1");
        let r = rec(br#"{"id":"A1","n":3}"#);
        let t = InputTemplate::compile(r#"{"id": <$.value.id>, "p": "<aws.pipes.pipe-name>"}"#)
            .unwrap();
        let vars = TemplateVars {
            pipe_name: "orders".into(),
            ..Default::default()
        };
        let out = t.render(&vars, &ctx.wire_string(&r), &ctx.decoded(&r));
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v, json!({"id": "A1", "p": "orders"}));
        assert!(t.is_json());
    }

    #[test]
    fn filter_sees_decoded_value() {
        let ctx = RecordJson::self_managed("t", "h:1");
        let f = Filter::compile(&[r#"{"value": {"id": [{"prefix": "A"}]}}"#]).unwrap();
        assert!(f.matches(&ctx, &rec(br#"{"id":"A1"}"#)));
        assert!(!f.matches(&ctx, &rec(br#"{"id":"B1"}"#)));
        let batch = [
            rec(br#"{"id":"A1"}"#),
            rec(br#"{"id":"B1"}"#),
            rec(br#"{"id":"A2"}"#),
        ];
        let kept: Vec<&[u8]> = f
            .retain(&ctx, &batch)
            .iter()
            .map(|r| r.value().unwrap())
            .collect();
        assert_eq!(kept, vec![&br#"{"id":"A1"}"#[..], &br#"{"id":"A2"}"#[..]]);
        assert!(Filter::compile(&[r#"{"eventSource": ["x"]}"#]).is_err());
    }
}
