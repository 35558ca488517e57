//! Fuzz target: pipe definitions (JSON or YAML, as pipe files and API bodies hold them) through
//! parsing, `validate()`, the `sluice:` tag extensions and the `UpdatePipe` merge. Nothing may
//! panic; a refusal always names at least one field; and a definition that validates must read
//! back identically from the JSON it is stored as (the store keeps it so and validates it again
//! after a restart).
//!
//! Input layout: one mode byte (bit 0: YAML), then `definition [NUL update]`.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use sluice::model::{self, update, validate, PipeDefinition, ValidationContext};
use sluice::targets::TargetsConfig;

/// API destinations, a connection and a Kafka cluster, so ARN and `kafka://` targets resolve.
const TARGETS: &str = r#"
[[api_destinations]]
arn = "arn:aws:events:us-east-1:123456789012:api-destination/orders/0a1b2c3d"
endpoint = "http://127.0.0.1:9/orders/*"
http_method = "PUT"
invocation_rate_limit_per_second = 10
connection = "conn"

[[connections]]
name = "conn"
auth = { type = "API_KEY", api_key_name = "x-api-key", api_key_value = "env:FUZZ_KEY" }

[[kafka_clusters]]
name = "other"
bootstrap_servers = ["127.0.0.1:9092"]
"#;

fn context() -> &'static ValidationContext {
    static CTX: OnceLock<ValidationContext> = OnceLock::new();
    CTX.get_or_init(|| ValidationContext {
        targets: Arc::new(toml::from_str::<TargetsConfig>(TARGETS).expect("targets config")),
        ..ValidationContext::default()
    })
}

fn check(def: &PipeDefinition) {
    let ctx = context();
    let _ = update::check_create_request(def);
    if let Some(tags) = &def.tags {
        let _ = update::check_tags("Tags", tags);
    }
    let result = validate(def, ctx);
    if let Err(e) = &result {
        assert!(!e.fields.is_empty(), "a refusal names no field");
    }
    if let Ok(extended) = update::with_tag_extensions(def) {
        if let Err(e) = validate(&extended, ctx) {
            assert!(!e.fields.is_empty(), "a refusal names no field");
        }
    }
    if result.is_ok() {
        let stored = serde_json::to_string(def).expect("a valid definition serializes");
        let back = model::parse_definition(&stored, false)
            .unwrap_or_else(|e| panic!("stored definition does not read back: {e}\n{stored}"));
        assert_eq!(&back, def, "stored definition reads back different");
        assert!(validate(&back, ctx).is_ok(), "stored definition no longer valid");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let yaml = mode & 1 == 1;
    let (first, second) = text.split_once('\0').unwrap_or((text, ""));
    let Ok(def) = model::parse_definition(first, yaml) else {
        return;
    };
    check(&def);
    if let Ok(upd) = model::parse_definition(second, yaml) {
        if let Ok(merged) = update::merge_update(&def, &upd) {
            check(&merged);
        }
    }
});
