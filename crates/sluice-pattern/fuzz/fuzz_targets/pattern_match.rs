//! Fuzz target: arbitrary pattern + arbitrary event must never panic, and the matcher's answers
//! must agree with each other (strict vs lenient vs the Kafka path's optimistic reading) and its
//! JSON validity with serde_json's.
//!
//! Input layout: `pattern \0 event` (no NUL: the whole input is tried as both).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_pattern::{KafkaRecord, Matcher};

fn depth(b: &[u8]) -> usize {
    let (mut d, mut max) = (0usize, 0usize);
    for &c in b {
        match c {
            b'[' | b'{' => {
                d += 1;
                max = max.max(d);
            }
            b']' | b'}' => d = d.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fuzz_target!(|data: &[u8]| {
    let (pat, event) = match data.iter().position(|&c| c == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, data),
    };

    // Our validator agrees with serde_json (within serde_json's recursion limit).
    if depth(event) < 100 {
        let ours = sluice_pattern::is_valid_json(event);
        match serde_json::from_slice::<serde_json::Value>(event) {
            Ok(_) => assert!(ours, "valid: {:?}", String::from_utf8_lossy(event)),
            // serde_json refuses numbers beyond f64 (`2e99999`); JSON's grammar allows them.
            Err(e) if e.to_string().starts_with("number out of range") => {}
            Err(e) => assert!(!ours, "invalid ({e}): {:?}", String::from_utf8_lossy(event)),
        }
    }

    let Ok(pat) = std::str::from_utf8(pat) else {
        return;
    };
    let _ = sluice_pattern::validate(pat);
    let _ = Matcher::compile_kafka(&[pat, pat]);
    let Ok(m) = Matcher::compile_all(&[pat]) else {
        return;
    };
    let strict = m.matches_json(event);
    let lenient = m.matches_json_lenient(event);
    if let Ok(s) = strict {
        // On valid JSON the lenient pass gives the same answer.
        assert_eq!(lenient, Ok(s), "lenient disagrees");
    }
    let headers = [("h", Some(event)), ("n", None)];
    let record = KafkaRecord {
        topic: "t",
        partition: 0,
        offset: 1,
        timestamp: 2,
        timestamp_type: "CREATE_TIME",
        key: Some(event),
        value: Some(event),
        headers: &headers,
        bootstrap_servers: None,
        event_source_arn: Some("arn"),
    };
    let _ = m.matches_kafka(&record);
    let tomb = KafkaRecord {
        key: None,
        value: None,
        ..record
    };
    let _ = m.matches_kafka(&tomb);

    // A document value is read optimistically and validated only when that could change the
    // answer: the result must equal "valid JSON, and the pattern matches it under `value`".
    let doc = event
        .iter()
        .find(|c| !matches!(c, b' ' | b'\n' | b'\r' | b'\t'))
        .is_some_and(|c| matches!(c, b'{' | b'['));
    if doc && pat.trim_start().starts_with('{') {
        let wrapped = format!(r#"{{"value": {pat}}}"#);
        if let (Ok(k), Ok(j)) = (
            Matcher::compile_kafka(&[wrapped.as_str()]),
            Matcher::compile(&wrapped),
        ) {
            let got = k.matches_kafka(&KafkaRecord {
                key: None,
                headers: &[],
                ..record
            });
            let as_json = [br#"{"value": "#.as_slice(), event, b"}"].concat();
            let want = sluice_pattern::is_valid_json(event) && j.matches_json(&as_json) == Ok(true);
            assert_eq!(got, want, "kafka path disagrees with decode-then-match");
        }
    }
});
