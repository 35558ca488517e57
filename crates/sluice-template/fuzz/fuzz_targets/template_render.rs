//! Fuzz target: template compile + render against an arbitrary event, JSON path parse + resolve,
//! and dynamic parameters. Input: `template NUL event-json` (the event falls back to a fixed
//! Kafka-like record when it is missing or not JSON).
//!
//! Besides "never panics", it checks the invariants the runtime relies on: a JSON template always
//! renders valid JSON, and a static template renders to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use sluice_template::{resolve_dynamic, Context, Form, JsonPath, Template};

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let (template, event_text) = input.split_once('\0').unwrap_or((&input, ""));
    let event: Value = serde_json::from_str(event_text).unwrap_or_else(|_| {
        json!({
            "topic": "t", "partition": "0", "offset": 15, "key": "a2V5",
            "value": {"id": "A1", "n": 3, "items": [{"sku": "x"}, {"sku": "y\"<>\\"}], "o": {}},
            "headers": [{"h": [104, -1]}]
        })
    });
    let ctx = Context {
        pipe_arn: "arn:aws:pipes:us-east-1:1:pipe/p",
        pipe_name: "p\"\\<$.x>\n",
        source_arn: "s",
        enrichment_arn: "",
        target_arn: "t",
        ingestion_time: "2024-01-01T00:00:00Z",
        event_text,
        event_json: &event,
    };

    match Template::compile(template) {
        Ok(t) => {
            let mut out = String::new();
            t.render_into(&event, &ctx, &mut out);
            if t.is_json() {
                if let Err(e) = serde_json::from_str::<Value>(&out) {
                    // The event's own nesting (up to serde_json's limit) plus the template's can
                    // exceed the parser's recursion limit; that is not a template bug.
                    assert!(
                        e.to_string().starts_with("recursion limit exceeded"),
                        "template {template:?} rendered invalid JSON {out:?}: {e}"
                    );
                }
            }
            if matches!(t.form(), Form::StaticJson | Form::StaticString) {
                assert_eq!(out, template);
            }
        }
        Err(e) => {
            assert!(e.is_user_error() && !e.is_retryable());
            let _ = e.to_string();
        }
    }

    if let Ok(path) = JsonPath::parse(template) {
        let _ = path.resolve(&event);
    }
    let _ = resolve_dynamic(template, &event);
});
