//! The Create and Pipe pages' "try it" boxes, pure: an event pattern tested against an event and
//! an input template rendered against a sample record, answered by the pattern and template
//! engines themselves (the same rules as `sluice test-event-pattern` / `test-input-template`: a
//! record as a target receives it is read back and decoded as the pipe sees it).

use serde_json::Value;

use crate::transforms::record_json::{self, RecordJson};
use crate::transforms::{Filter, InputTemplate, TemplateVars};

/// Why a try could not be answered; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TryError {
    /// The pattern, template or event is invalid.
    #[error("{field} {reason}")]
    Invalid {
        /// `Pattern`, `Template` or `Event`.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

impl TryError {
    /// Always the caller's to fix.
    pub fn is_user_error(&self) -> bool {
        true
    }

    /// Never.
    pub fn is_retryable(&self) -> bool {
        false
    }

    fn invalid(field: &'static str, reason: impl Into<String>) -> TryError {
        TryError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

type Delivered = (RecordJson, crate::record::SourceRecord);

fn read_event(event: &str) -> Result<(Value, Option<Delivered>), TryError> {
    let json: Value = serde_json::from_str(event)
        .map_err(|e| TryError::invalid("Event", format!("is not valid JSON: {e}")))?;
    match record_json::from_wire(&json) {
        Ok(record) => Ok((json, record)),
        Err(why) => Err(TryError::invalid(
            "Event",
            format!("looks like a record as a target receives it, but {why}"),
        )),
    }
}

/// Whether `event` passes the filter `pattern` (Kafka rules when it is a delivered record).
pub fn test_pattern(pattern: &str, event: &str) -> Result<bool, TryError> {
    Filter::check(pattern).map_err(|e| TryError::invalid("Pattern", format!("is invalid: {e}")))?;
    match read_event(event)? {
        (_, Some((json, rec))) => Filter::compile(&[pattern])
            .map(|f| f.matches(&json, &rec))
            .map_err(|e| TryError::invalid("Pattern", format!("is invalid: {e}"))),
        (_, None) => {
            let m = sluice_pattern::Matcher::compile(pattern)
                .map_err(|e| TryError::invalid("Pattern", format!("is invalid: {e}")))?;
            m.matches_json(event.as_bytes())
                .map_err(|e| TryError::invalid("Event", format!("is not valid JSON: {e}")))
        }
    }
}

/// `template` rendered for `event`, with `vars` as the reserved variables.
pub fn preview_template(
    template: &str,
    event: &str,
    vars: &TemplateVars,
) -> Result<String, TryError> {
    let t = InputTemplate::compile(template)
        .map_err(|e| TryError::invalid("Template", format!("is invalid: {e}")))?;
    let decoded = match read_event(event)? {
        (_, Some((json, rec))) => json.decoded(&rec),
        (json, None) => json,
    };
    Ok(t.render(vars, event, &decoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &str = r#"{"eventSource":"SelfManagedKafka","topic":"orders","partition":0,
        "offset":5,"timestamp":1,"timestampType":"CREATE_TIME","key":null,
        "value":"eyJraW5kIjoiYmlnIiwibiI6N30=","headers":[]}"#;

    #[test]
    fn a_delivered_record_is_matched_on_its_decoded_value() {
        // value = {"kind":"big","n":7}
        assert_eq!(
            test_pattern(r#"{"value":{"kind":["big"]}}"#, RECORD),
            Ok(true)
        );
        assert_eq!(
            test_pattern(r#"{"value":{"kind":["small"]}}"#, RECORD),
            Ok(false)
        );
    }

    #[test]
    fn a_plain_event_is_matched_as_json() {
        assert_eq!(test_pattern(r#"{"a":[1]}"#, r#"{"a":1}"#), Ok(true));
    }

    #[test]
    fn bad_input_names_the_field() {
        let e = test_pattern(r#"{"a":1}"#, "{}").unwrap_err();
        assert!(e.to_string().starts_with("Pattern is invalid"), "{e}");
        let e = test_pattern(r#"{"a":[1]}"#, "{").unwrap_err();
        assert!(e.to_string().starts_with("Event is not valid JSON"), "{e}");
        let e = preview_template("{\"a\": <$.x>", "{}", &TemplateVars::default()).unwrap_err();
        assert!(e.to_string().starts_with("Template is invalid"), "{e}");
    }

    #[test]
    fn a_template_renders_the_decoded_record() {
        let vars = TemplateVars {
            pipe_name: "p1".into(),
            ..TemplateVars::default()
        };
        let out = preview_template(
            r#"{"n": <$.value.n>, "p": "<aws.pipes.pipe-name>"}"#,
            RECORD,
            &vars,
        );
        assert_eq!(out.as_deref(), Ok(r#"{"n": 7, "p": "p1"}"#));
    }
}
