//! Kafka records through the public API: field types, key/value decoding, format mismatches,
//! tombstones, headers and the fields a Kafka-source pattern may not name.

use sluice_pattern::{KafkaRecord, Matcher, PatternError};

fn record<'a>(
    value: Option<&'a [u8]>,
    headers: &'a [(&'a str, Option<&'a [u8]>)],
) -> KafkaRecord<'a> {
    KafkaRecord {
        topic: "orders",
        partition: 3,
        offset: 15,
        timestamp: 1_545_084_650_987,
        timestamp_type: "CREATE_TIME",
        key: Some(b"abc"),
        value,
        headers,
        bootstrap_servers: None,
        event_source_arn: Some("arn:aws:kafka:sa-east-1:123456789012:cluster/c/uuid"),
    }
}

fn kafka(pattern: &str) -> Matcher {
    Matcher::compile_kafka(&[pattern]).unwrap_or_else(|e| panic!("{pattern}: {e}"))
}

#[test]
fn metadata_fields_have_the_record_formats_types() {
    let r = record(Some(br#"{"x":1}"#), &[]);
    let cases: &[(&str, bool)] = &[
        (r#"{"topic":["orders"]}"#, true),
        (r#"{"topic":["other"]}"#, false),
        // partition is a string in the Pipes record.
        (r#"{"partition":["3"]}"#, true),
        (r#"{"partition":[3]}"#, false),
        (r#"{"offset":[15]}"#, true),
        (r#"{"offset":[{"numeric":[">",10,"<",16]}]}"#, true),
        (r#"{"offset":["15"]}"#, false),
        (r#"{"timestamp":[{"numeric":[">=",1545084650987]}]}"#, true),
        (r#"{"timestampType":["CREATE_TIME"]}"#, true),
        (r#"{"timestampType":["LOG_APPEND_TIME"]}"#, false),
        (r#"{"bootstrapServers":[{"exists":false}]}"#, true),
        (r#"{"nope":[{"exists":true}]}"#, false),
        (r#"{"topic":["orders"],"offset":[16]}"#, false),
    ];
    for (p, want) in cases {
        assert_eq!(kafka(p).matches_kafka(&r), *want, "{p}");
    }
    let smk = KafkaRecord {
        bootstrap_servers: Some("h1:9092,h2:9092"),
        event_source_arn: None,
        ..r
    };
    assert!(kafka(r#"{"bootstrapServers":[{"prefix":"h1:"}]}"#).matches_kafka(&smk));
}

#[test]
fn json_values_are_matched_as_json() {
    let v = br#"{"device_id":"AB-123","temp":21.5,"tags":["a","b"]}"#;
    let r = record(Some(v), &[]);
    assert!(kafka(r#"{"value":{"device_id":[{"prefix":"AB"}]}}"#).matches_kafka(&r));
    assert!(kafka(r#"{"value":{"temp":[{"numeric":[">",20]}],"tags":["b"]}}"#).matches_kafka(&r));
    assert!(!kafka(r#"{"value":{"temp":[{"numeric":[">",22]}]}}"#).matches_kafka(&r));
    assert!(kafka(r#"{"value":{"missing":[{"exists":false}]}}"#).matches_kafka(&r));
    // A JSON scalar value is JSON too.
    let n = record(Some(b"42"), &[]);
    assert!(kafka(r#"{"value":[42]}"#).matches_kafka(&n));
    assert!(!kafka(r#"{"value":["42"]}"#).matches_kafka(&n));
    let s = record(Some(br#""hello""#), &[]);
    assert!(kafka(r#"{"value":[{"prefix":"hel"}]}"#).matches_kafka(&s));
}

#[test]
fn plain_text_values_are_matched_as_strings() {
    let r = record(Some(b"hello world"), &[]);
    assert!(kafka(r#"{"value":[{"prefix":"hello"}]}"#).matches_kafka(&r));
    assert!(kafka(r#"{"value":["hello world"]}"#).matches_kafka(&r));
    assert!(!kafka(r#"{"value":[{"suffix":"hello"}]}"#).matches_kafka(&r));
    // Invalid JSON that looks like JSON is text.
    let broken = record(Some(br#"{"a":1"#), &[]);
    assert!(kafka(r#"{"value":[{"prefix":"{\"a\""}]}"#).matches_kafka(&broken));
    assert!(!kafka(r#"{"value":{"a":[1]}}"#).matches_kafka(&broken));
}

#[test]
fn format_mismatch_leaves_only_other_fields_able_to_match() {
    let json = record(Some(br#"{"a":1}"#), &[]);
    let text = record(Some(b"just text"), &[]);
    // Plain-string pattern vs JSON object value: no condition on value matches, exists:false included.
    for p in [
        r#"{"value":[{"prefix":"{"}]}"#,
        r#"{"value":[{"exists":false}]}"#,
        r#"{"value":[{"exists":true}]}"#,
        r#"{"value":[{"anything-but":"x"}]}"#,
    ] {
        assert!(!kafka(p).matches_kafka(&json), "{p}");
    }
    // JSON pattern vs plain text: same.
    for p in [
        r#"{"value":{"a":[1]}}"#,
        r#"{"value":{"a":[{"exists":false}]}}"#,
    ] {
        assert!(!kafka(p).matches_kafka(&text), "{p}");
    }
    // Other fields still match, in another filter or another $or branch.
    let m = Matcher::compile_kafka(&[r#"{"value":{"a":[1]}}"#, r#"{"topic":["orders"]}"#]).unwrap();
    assert!(m.matches_kafka(&text));
    assert_eq!(m.matching_filters_kafka(&text), 0b10);
    let or = kafka(r#"{"$or":[{"value":{"a":[1]}},{"partition":["3"]}]}"#);
    assert!(or.matches_kafka(&text));
    assert!(!kafka(r#"{"value":{"a":[1]},"partition":["3"]}"#).matches_kafka(&text));
}

#[test]
fn non_utf8_bytes_match_no_condition_on_that_field() {
    let r = record(Some(&[0xff, 0xfe, b'a']), &[]);
    for p in [
        r#"{"value":[{"exists":false}]}"#,
        r#"{"value":[{"exists":true}]}"#,
        r#"{"value":[{"anything-but":"a"}]}"#,
        r#"{"value":{"a":[{"exists":false}]}}"#,
    ] {
        assert!(!kafka(p).matches_kafka(&r), "{p}");
    }
    assert!(kafka(r#"{"offset":[15]}"#).matches_kafka(&r));
    let m =
        Matcher::compile_kafka(&[r#"{"value":[{"exists":true}]}"#, r#"{"offset":[15]}"#]).unwrap();
    assert!(m.matches_kafka(&r));
    // Non-UTF-8 key: conditions on the key fail, the value is unaffected.
    let k = KafkaRecord {
        key: Some(&[0xc3]),
        ..record(Some(b"v"), &[])
    };
    assert!(!kafka(r#"{"key":[{"exists":false}]}"#).matches_kafka(&k));
    assert!(kafka(r#"{"value":["v"]}"#).matches_kafka(&k));
}

#[test]
fn tombstones_are_null_and_null_keys_are_absent() {
    let r = KafkaRecord {
        key: None,
        ..record(None, &[])
    };
    assert!(kafka(r#"{"value":[null]}"#).matches_kafka(&r));
    assert!(kafka(r#"{"value":[{"exists":true}]}"#).matches_kafka(&r));
    assert!(!kafka(r#"{"value":[{"exists":false}]}"#).matches_kafka(&r));
    assert!(kafka(r#"{"value":[{"anything-but":"x"}]}"#).matches_kafka(&r));
    assert!(kafka(r#"{"key":[{"exists":false}]}"#).matches_kafka(&r));
    assert!(!kafka(r#"{"key":[null]}"#).matches_kafka(&r));
    let keyed = record(None, &[]);
    assert!(kafka(r#"{"key":["abc"]}"#).matches_kafka(&keyed));
}

#[test]
fn headers_are_arrays_of_signed_bytes() {
    let headers: &[(&str, Option<&[u8]>)] = &[
        ("headerKey", Some(b"hi")),
        ("bin", Some(&[0x80, 0xff, 0x01])),
        ("empty", None),
    ];
    let r = record(Some(b"{}"), headers);
    assert!(kafka(r#"{"headers":{"headerKey":[104]}}"#).matches_kafka(&r));
    assert!(kafka(r#"{"headers":{"bin":[-128]}}"#).matches_kafka(&r));
    assert!(kafka(r#"{"headers":{"bin":[-1]}}"#).matches_kafka(&r));
    assert!(!kafka(r#"{"headers":{"bin":[255]}}"#).matches_kafka(&r));
    assert!(kafka(r#"{"headers":{"empty":[null]}}"#).matches_kafka(&r));
    assert!(kafka(r#"{"headers":{"absent":[{"exists":false}]}}"#).matches_kafka(&r));
    // Each header is its own array element: fields of different headers never combine.
    assert!(!kafka(r#"{"headers":{"headerKey":[104],"bin":[-1]}}"#).matches_kafka(&r));
}

#[test]
fn kafka_patterns_may_not_name_per_pipe_fields() {
    for field in [
        "eventSource",
        "eventSourceArn",
        "eventSourceKey",
        "awsRegion",
    ] {
        let p = format!(r#"{{"{field}":["x"]}}"#);
        let e = Matcher::compile_kafka(&[p.as_str()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "Filter 1: \"{field}\" cannot be used in a filter pattern for a Kafka source: it is not filterable"
            )
        );
        assert!(matches!(
            &e,
            PatternError::InFilter { inner, .. } if matches!(**inner, PatternError::NotFilterable { .. })
        ));
        assert_eq!(e.path(), Some(field));
        // Also inside a top-level $or.
        let or = format!(r#"{{"$or":[{{"{field}":["x"]}},{{"topic":["t"]}}]}}"#);
        assert!(Matcher::compile_kafka(&[or.as_str()]).is_err());
        // The generic compiler has no such rule, and nested names are fine for Kafka.
        assert!(Matcher::compile(&p).is_ok());
        let nested = format!(r#"{{"value":{{"{field}":["x"]}}}}"#);
        assert!(Matcher::compile_kafka(&[nested.as_str()]).is_ok());
    }
}
