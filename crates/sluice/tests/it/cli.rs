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
