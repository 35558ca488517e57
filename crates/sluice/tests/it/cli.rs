//! The `sluice` commands that need no broker: validate, test-event-pattern, test-input-template.

use std::process::Output;

use crate::support::sluice_command;

fn sluice(args: &[&str]) -> Output {
    sluice_command().args(args).output().expect("run sluice")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn test_event_pattern_prints_the_result_like_the_aws_cli() {
    let out = sluice(&[
        "test-event-pattern",
        "--event-pattern",
        r#"{"value": {"n": [{"numeric": [">", 5]}], "ip": [{"cidr": "10.0.0.0/24"}]}}"#,
        "--event",
        r#"{"value": {"n": 7, "ip": "10.0.0.9"}}"#,
    ]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), r#"{"Result":true}"#);

    let out = sluice(&[
        "test-event-pattern",
        "--event-pattern",
        r#"{"value": {"n": [{"numeric": [">", 5]}]}}"#,
        "--event",
        r#"{"value": {"n": 5}}"#,
    ]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), r#"{"Result":false}"#);
}

#[test]
fn test_event_pattern_rejects_an_invalid_pattern_with_exit_2() {
    let out = sluice(&[
        "test-event-pattern",
        "--event-pattern",
        r#"{"qty": 5}"#,
        "--event",
        "{}",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("\"qty\""), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn test_input_template_prints_exactly_the_rendered_output() {
    let out = sluice(&[
        "test-input-template",
        "--template",
        r#"{"id": <$.value.id>, "all": <$.value>, "pipe": "<aws.pipes.pipe-name>"}"#,
        "--event",
        r#"{"value": {"id": "A1", "n": 3}}"#,
        "--pipe-name",
        "orders",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"id": "A1", "all": {"id": "A1", "n": 3}, "pipe": "orders"})
    );

    let out = sluice(&[
        "test-input-template",
        "--template",
        "Order <$.value.id> has <$.value.n>",
        "--event",
        r#"{"value": {"id": "A1", "n": 3}}"#,
    ]);
    assert_eq!(text(&out.stdout), "Order A1 has 3");
}

#[test]
fn test_input_template_rejects_an_invalid_template_with_exit_2() {
    let out = sluice(&[
        "test-input-template",
        "--template",
        r#"{<$.key>: 1}"#,
        "--event",
        "{}",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!text(&out.stderr).is_empty());
}

#[test]
fn validate_lists_every_field_error_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "Name: bad name\nSource: smk://127.0.0.1:9092\nTarget: http://127.0.0.1:1/x\n\
         SourceParameters:\n  SelfManagedKafkaParameters:\n    TopicName: t\n    BatchSize: 0\n\
         \x20 FilterCriteria:\n    Filters:\n      - Pattern: '{\"a\": 1}'\n",
    )
    .unwrap();
    let out = sluice(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    for field in [
        "Name:",
        "SourceParameters.SelfManagedKafkaParameters.BatchSize:",
        "SourceParameters.FilterCriteria.Filters[0].Pattern:",
    ] {
        assert!(err.contains(field), "{field} missing from:\n{err}");
    }
}

#[test]
fn validate_accepts_the_examples() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        let out = sluice(&["validate", path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            text(&out.stderr)
        );
    }
}

/// Patterns AWS refuses (issue 19): each class exits 2 with AWS's words and the field named.
#[test]
fn test_event_pattern_refuses_what_aws_refuses() {
    let cases = [
        (
            r#"{"n":[{"numeric":["<",5,">",0]}]}"#,
            "Too many elements in numeric expression",
        ),
        (
            r#"{"n":[{"numeric":[">",5,">",9]}]}"#,
            "Bad numeric range operator",
        ),
        (
            r#"{"n":[{"numeric":[">",9,"<",5]}]}"#,
            "Bottom must be less than top",
        ),
        (
            r#"{"n":[{"numeric":[">",1e309]}]}"#,
            "Cannot compare number",
        ),
        (
            r#"{"a":[{"anything-but":{"prefix":""}}]}"#,
            "Null prefix/suffix not allowed",
        ),
        (
            r#"{"a":[{"anything-but":{"suffix":""}}]}"#,
            "Null prefix/suffix not allowed",
        ),
        (
            r#"{"a":[{"wildcard":"*:*:*:*:*:event-bus/*"}]}"#,
            "Rule is too complex",
        ),
    ];
    for (pattern, words) in cases {
        let out = sluice(&[
            "test-event-pattern",
            "--event-pattern",
            pattern,
            "--event",
            "{}",
        ]);
        assert_eq!(out.status.code(), Some(2), "{pattern}");
        let err = text(&out.stderr);
        assert!(err.contains(words), "{pattern}: {err}");
        assert!(
            err.contains("\"n\"") || err.contains("\"a\""),
            "{pattern}: {err}"
        );
    }
    // Just valid on the other side of each boundary.
    for pattern in [
        r#"{"n":[{"numeric":[">",0,"<",5]}]}"#,
        r#"{"n":[{"numeric":[">",1.7976931348623157e308]}]}"#,
        r#"{"a":[{"anything-but":{"prefix":"x"}}]}"#,
        r#"{"a":[{"wildcard":"*:*:event-bus/*"}]}"#,
    ] {
        let out = sluice(&[
            "test-event-pattern",
            "--event-pattern",
            pattern,
            "--event",
            "{}",
        ]);
        assert!(out.status.success(), "{pattern}: {}", text(&out.stderr));
    }
}

/// `sluice validate` names the filter's field path as the API's `fieldList` does.
#[test]
fn validate_names_the_filter_pattern_that_aws_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipe.json");
    let pipe = serde_json::json!({
        "Name": "p", "Source": "smk://127.0.0.1:9092", "Target": "http://127.0.0.1:1/",
        "SourceParameters": {
            "SelfManagedKafkaParameters": {"TopicName": "t"},
            "FilterCriteria": {"Filters": [
                {"Pattern": r#"{"value":{"n":[{"numeric":[">",1]}]}}"#},
                {"Pattern": r#"{"value":{"n":[{"numeric":["<",5,">",0]}]}}"#}
            ]}
        }
    });
    std::fs::write(&file, pipe.to_string()).unwrap();
    let out = sluice(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("SourceParameters.FilterCriteria.Filters[1].Pattern"),
        "{err}"
    );
    assert!(
        err.contains("Too many elements in numeric expression"),
        "{err}"
    );
}
