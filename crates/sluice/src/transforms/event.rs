//! Event building, in one place: what the target receives for a record (its wire JSON, or the target
//! `InputTemplate` rendered against it), what the enrichment receives (its own template), and what
//! the target receives for each item of an enrichment's answer. Dynamic parameters resolve against
//! the `record` an event carries, so each event says whether it carries one.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::record_json::RecordJson;
use super::{InputTemplate, TemplateVars};
use crate::model::PipeSpec;
use crate::record::SourceRecord;
use crate::targets::Event;

/// Builds a pipe's events from its records.
#[derive(Debug)]
pub struct EventBuilder {
    json: RecordJson,
    vars: TemplateVars,
    target_template: Option<Arc<InputTemplate>>,
    enrichment_template: Option<Arc<InputTemplate>>,
    /// Target events carry the decoded record (the target has JSON-path parameters).
    target_needs_record: bool,
    /// Target events carry the source record (the Kafka target keeps its key and headers).
    target_needs_source: bool,
    /// Enrichment events carry the decoded record.
    enrichment_needs_record: bool,
}

impl EventBuilder {
    /// The builder of `spec`'s events; `json` is the record form of its source.
    pub fn new(spec: &PipeSpec, json: RecordJson) -> Self {
        let def = &spec.definition;
        Self {
            json,
            vars: TemplateVars {
                pipe_arn: spec.arn.clone(),
                pipe_name: spec.name.clone(),
                source_arn: def.source.clone().unwrap_or_default(),
                enrichment_arn: def.enrichment.clone().unwrap_or_default(),
                target_arn: def.target.clone().unwrap_or_default(),
            },
            target_template: spec.target_template.clone(),
            enrichment_template: spec.enrichment_template.clone(),
            target_needs_record: spec.target.needs_record(),
            target_needs_source: spec.target.needs_source(),
            enrichment_needs_record: spec.enrichment.as_ref().is_some_and(|e| e.needs_record()),
        }
    }

    /// The record's JSON forms (also what the filter reads).
    pub fn record_json(&self) -> &RecordJson {
        &self.json
    }

    /// The event the target receives for one record (pipes without enrichment).
    pub fn for_target(&self, rec: &SourceRecord) -> Event {
        self.render(
            rec,
            self.target_template.as_deref(),
            self.target_needs_record,
            self.target_needs_source,
        )
    }

    /// The events the target receives for a batch of records (pipes without enrichment). Plain wire
    /// JSON, the common case, is written as the batch's JSON array into one buffer, each event a
    /// slice of it: one allocation per batch rather than two per record, and the array is the
    /// batch's body as it stands.
    pub fn for_targets(&self, recs: &[&SourceRecord]) -> Vec<Event> {
        if self.target_template.is_some() || self.target_needs_record {
            return recs.iter().map(|r| self.for_target(r)).collect();
        }
        let hint: usize = recs.iter().map(|r| self.json.wire_len_hint(r) + 1).sum();
        let mut buf = Vec::with_capacity(hint + 1);
        let mut spans = Vec::with_capacity(recs.len());
        buf.push(b'[');
        for (i, rec) in recs.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            let start = buf.len();
            self.json.write_wire(rec, &mut buf);
            spans.push(start..buf.len());
        }
        buf.push(b']');
        let array = Bytes::from(buf);
        recs.iter()
            .zip(spans)
            .enumerate()
            .map(|(i, (rec, span))| Event {
                payload: array.slice(span),
                is_json: true,
                record: None,
                source: self.target_needs_source.then(|| Arc::new((*rec).clone())),
                array: (i == 0).then(|| array.clone()),
            })
            .collect()
    }

    /// The event the enrichment receives for one record.
    pub fn for_enrichment(&self, rec: &SourceRecord) -> Event {
        self.render(
            rec,
            self.enrichment_template.as_deref(),
            self.enrichment_needs_record,
            false,
        )
    }

    /// The event the target receives for one item of an enrichment's answer: the item, through
    /// the target template; dynamic parameters resolve against the item.
    pub fn from_item(&self, item: Value) -> Event {
        let text = serde_json::to_string(&item).unwrap_or_default();
        let (payload, is_json) = match &self.target_template {
            Some(t) => (Bytes::from(t.render(&self.vars, &text, &item)), t.is_json()),
            None => (Bytes::from(text), true),
        };
        Event {
            payload,
            is_json,
            record: self.target_needs_record.then(|| Arc::new(item)),
            source: None,
            array: None,
        }
    }

    fn render(
        &self,
        rec: &SourceRecord,
        template: Option<&InputTemplate>,
        needs_record: bool,
        needs_source: bool,
    ) -> Event {
        let decoded = (needs_record || template.is_some()).then(|| self.json.decoded(rec));
        let (payload, is_json) = match (template, &decoded) {
            (Some(t), Some(d)) => {
                let text = self.json.wire_string(rec);
                (Bytes::from(t.render(&self.vars, &text, d)), t.is_json())
            }
            _ => {
                let mut out = Vec::with_capacity(self.json.wire_len_hint(rec));
                self.json.write_wire(rec, &mut out);
                (Bytes::from(out), true)
            }
        };
        Event {
            payload,
            is_json,
            record: if needs_record {
                decoded.map(Arc::new)
            } else {
                None
            },
            source: needs_source.then(|| Arc::new(rec.clone())),
            array: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{parse_definition, validate, ValidationContext};
    use crate::record::TimestampType;
    use crate::targets::http::batch_body;

    fn builder(extra: &str) -> EventBuilder {
        let text = format!(
            r#"{{"Name":"p","Source":"smk://h:9092","Target":"http://127.0.0.1:1/",
               "SourceParameters":{{"SelfManagedKafkaParameters":{{"TopicName":"t"}}}}{extra}}}"#
        );
        let def = parse_definition(&text, false).unwrap();
        let spec = validate(&def, &ValidationContext::default()).unwrap();
        EventBuilder::new(&spec, RecordJson::self_managed("t\"q", "h:9092"))
    }

    fn records() -> Vec<SourceRecord> {
        (0..5)
            .map(|i| {
                let key = (i != 1).then(|| format!("k{i}"));
                let value = (i != 2).then(|| format!("{{\"n\":{i}}}").repeat(i as usize));
                SourceRecord::new(i % 2, 100 + i64::from(i))
                    .with_timestamp(1_700_000_000_000, TimestampType::CreateTime)
                    .with_key(key.as_ref().map(String::as_bytes))
                    .with_value(value.as_ref().map(String::as_bytes))
                    .with_headers([("h", Some(&[0xC3, i as u8][..]))])
            })
            .collect()
    }

    /// The batch writer (one buffer for the batch) and the per-record writer give every record the
    /// same event, with and without a template.
    #[test]
    fn batch_events_agree_with_single_events() {
        let recs = records();
        let refs: Vec<&SourceRecord> = recs.iter().collect();
        for extra in [
            "",
            r#","TargetParameters":{"InputTemplate":"{\"o\": <$.offset>}"}"#,
        ] {
            let b = builder(extra);
            let batch = b.for_targets(&refs);
            assert_eq!(batch.len(), recs.len());
            for (ev, rec) in batch.iter().zip(&recs) {
                let single = b.for_target(rec);
                assert_eq!(ev.payload, single.payload, "{extra}");
                assert_eq!(ev.is_json, single.is_json);
                let _: serde_json::Value = serde_json::from_slice(&ev.payload).unwrap();
            }
        }
    }

    /// A whole batch's body is the array its events were written into, not a copy; any part of
    /// the batch (a bisection's half, the rest after a partial failure) gets a body of its own,
    /// the same as one put together from single events.
    #[test]
    fn a_batch_body_is_the_written_array_and_a_part_is_written_anew() {
        let recs = records();
        let refs: Vec<&SourceRecord> = recs.iter().collect();
        let b = builder("");
        let batch = b.for_targets(&refs);
        let singles: Vec<Event> = recs.iter().map(|r| b.for_target(r)).collect();
        let whole = batch_body(&batch);
        assert_eq!(whole, batch_body(&singles));
        let array = batch[0]
            .array
            .as_ref()
            .expect("the first event carries the array");
        assert_eq!(whole.as_ptr(), array.as_ptr(), "the body is not copied");
        assert!(batch[1..].iter().all(|e| e.array.is_none()));
        for (from, to) in [(0, 2), (2, 5), (1, 4), (0, 4), (0, 1)] {
            let part = batch_body(&batch[from..to]);
            assert_eq!(part, batch_body(&singles[from..to]), "{from}..{to}");
            let v: serde_json::Value = serde_json::from_slice(&part).unwrap();
            assert_eq!(v.as_array().unwrap().len(), to - from);
        }
        let skipping = [batch[0].clone(), batch[2].clone()];
        assert_eq!(
            batch_body(&skipping),
            batch_body(&[singles[0].clone(), singles[2].clone()])
        );
    }
}
