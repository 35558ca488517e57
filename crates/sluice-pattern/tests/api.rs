//! The public API as the rest of Sluice uses it, plus regression tests for bugs found by fuzzing
//! (each named after what it found).

use sluice_pattern::{is_valid_json, validate, EventError, Matcher, PatternError};

#[test]
fn matcher_is_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Matcher>();
    assert_send_sync::<PatternError>();
    assert_send_sync::<EventError>();
    let m = std::sync::Arc::new(Matcher::compile(r#"{"a":["x"]}"#).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let m = m.clone();
            std::thread::spawn(move || {
                let e = if i % 2 == 0 {
                    r#"{"a":"x"}"#
                } else {
                    r#"{"a":"y"}"#
                };
                m.matches_json(e.as_bytes()).unwrap()
            })
        })
        .collect();
    let got: Vec<bool> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(got, [true, false, true, false]);
}

#[test]
fn errors_follow_the_house_convention() {
    let e = validate(r#"{"detail":{"qty":5}}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "\"detail.qty\" must be an object or an array"
    );
    assert_eq!(e.path(), Some("detail.qty"));
    assert!(e.is_user_error());
    assert!(!e.is_retryable());
    let m = Matcher::compile(r#"{"a":["x"]}"#).unwrap();
    let ev = m.matches_json(b"{\"a\": \"x\"").unwrap_err();
    assert!(ev.is_user_error() && !ev.is_retryable());
    assert!(
        ev.to_string().starts_with("Event is not valid JSON"),
        "{ev}"
    );
}

#[test]
fn lenient_matching_agrees_on_valid_json_and_reads_less() {
    let m = Matcher::compile(r#"{"a":["x"]}"#).unwrap();
    // Garbage after the named field: strict says invalid, lenient has its answer already.
    let tail = br#"{"a":"x", "b": [1, 2,,, oops"#;
    assert!(m.matches_json(tail).is_err());
    assert_eq!(m.matches_json_lenient(tail), Ok(true));
    for e in [
        &br#"{"a":"x","b":{"c":[1,2,{"d":"}"}]}}"#[..],
        br#"{"b":[{"a":"y"}],"a":"y"}"#,
        br#"[{"a":"y"},{"a":"x"}]"#,
    ] {
        assert_eq!(m.matches_json(e), m.matches_json_lenient(e));
    }
}

#[test]
fn validity_check_is_strict_json() {
    assert!(is_valid_json(br#"{"a":[1,2.5e-3,true,null,"\u00e9"]}"#));
    assert!(!is_valid_json(b"{'a':1}"));
    assert!(!is_valid_json(b"NaN"));
    assert!(!is_valid_json(b"{\"a\":1} {}"));
}

/// Found by `cargo fuzz` (input `2e99999`): serde_json rejects numbers beyond f64 range, but
/// JSON's grammar allows them; we accept them and compare them exactly.
#[test]
fn fuzz_huge_exponent_number_is_valid_json() {
    assert!(is_valid_json(b"2e99999"));
    let m = Matcher::compile(r#"{"n":[{"numeric":[">",5e9]}]}"#).unwrap();
    assert!(m.matches_json(br#"{"n":2e99999}"#).unwrap());
    assert!(!m.matches_json(br#"{"n":-2e99999}"#).unwrap());
    let exact = Matcher::compile(r#"{"n":[2e99999]}"#).unwrap();
    assert!(exact.matches_json(br#"{"n":20e99998}"#).unwrap());
    assert!(!exact.matches_json(br#"{"n":2e99998}"#).unwrap());
}

#[test]
fn deep_wide_matchers_stay_within_the_stack() {
    // 5 filters x 1,000 combinations (the widest matcher), 60 levels deep, on a default-sized (2 MiB) thread stack.
    let ten = |k: &str| {
        let b: Vec<String> = (0..10).map(|i| format!(r#"{{"{k}":[{i}]}}"#)).collect();
        format!(r#"{{"$or":[{}]}}"#, b.join(","))
    };
    let mut p = format!(r#"{{"x":{},"y":{},"z":{}}}"#, ten("a"), ten("b"), ten("c"));
    let mut e = r#"{"x":{"a":3},"y":{"b":4},"z":{"c":5}}"#.to_string();
    for _ in 0..57 {
        p = format!(r#"{{"k":{p}}}"#);
        e = format!(r#"{{"k":[{e}]}}"#);
    }
    assert!(p.chars().count() <= 4096);
    let pats = vec![p; 5];
    let got = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let m = Matcher::compile_all(&pats).unwrap();
            assert_eq!(m.conjunction_count(), 5000);
            (
                m.matches_json(e.as_bytes()).unwrap(),
                m.matches_json_lenient(e.as_bytes()).unwrap(),
            )
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(got, (true, true));
}

#[test]
fn hostile_events_do_not_exhaust_the_stack() {
    let m = Matcher::compile(r#"{"a":{"b":["x"]}}"#).unwrap();
    let deep_arrays = format!(
        r#"{{"a":{}{{"b":"x"}}{}}}"#,
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    assert!(m.matches_json(deep_arrays.as_bytes()).unwrap());
    let deep_objects = format!(
        r#"{{"z":{}1{},"a":{{"b":"x"}}}}"#,
        r#"{"q":"#.repeat(100_000),
        "}".repeat(100_000)
    );
    assert!(m.matches_json(deep_objects.as_bytes()).unwrap());
    assert!(m.matches_json_lenient(deep_objects.as_bytes()).unwrap());
}
