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

#[test]
fn validate_reports_shape_and_rule_errors_in_one_pass_with_suggestions() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "Name: bad name\nSource: smk://127.0.0.1:9092\n\
         Target: arn:aws:sqs:us-east-1:123456789012:q\n\
         SourceParameters:\n  SelfManagedKafkaParameters:\n    TopicName: t\n\
         \x20   StartingPostion: LATEST\n    BatchSize: 11\n    MaximumBatchingWindowInSeconds: soon\n\
         \x20 FilterCriteria:\n    Filters:\n      - Pattern: {value: {n: [1]}}\n\
         \x20     - Pattern: '{\"value\": {\"n\": [{\"numerc\": [\">\", 1]}]}}'\n",
    )
    .unwrap();
    let out = sluice(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let block = "SourceParameters.SelfManagedKafkaParameters";
    for line in [
        format!("  {block}.StartingPostion: unknown field `StartingPostion`; did you mean `StartingPosition`?"),
        format!("  {block}.MaximumBatchingWindowInSeconds: must be a whole number, not the string \"soon\""),
        "  SourceParameters.FilterCriteria.Filters[0].Pattern: Pattern must be a JSON string: quote it".into(),
        "  SourceParameters.FilterCriteria.Filters[1].Pattern: \"value.n\" uses unrecognized match type \"numerc\"; did you mean \"numeric\"?".into(),
        // The rules of the fields that parsed still ran: the name, and BatchSize against SQS.
        "  Name: must satisfy regular expression pattern".into(),
        format!("  {block}.BatchSize: is 11 but a SQS queue target accepts at most 10 records per batch"),
    ] {
        assert!(err.contains(&line), "{line:?} missing from:\n{err}");
    }
    // Each field once, in AWS's names only: no `?` segment, no Rust type, no repeated path.
    for absent in ["?.", "i64", "struct ", "Filter 1", "Filter 2"] {
        assert!(!err.contains(absent), "{absent:?} in:\n{err}");
    }
    assert_eq!(
        err.matches(&format!("{block}.BatchSize")).count(),
        1,
        "{err}"
    );
}

/// A record as an HTTP target received it: `{"n": 7}` under key `k1`, base64.
const DELIVERED: &str = r#"{"eventSource":"SelfManagedKafka","bootstrapServers":"127.0.0.1:9092",
    "eventSourceKey":"orders-0","topic":"orders","partition":"0","offset":3,"timestamp":1700000000000,
    "timestampType":"CREATE_TIME","key":"azE=","value":"eyJuIjogN30=","headers":[{"h":[104,105]}]}"#;

#[test]
fn a_delivered_record_is_decoded_as_the_pipe_does() {
    let out = sluice(&[
        "test-event-pattern",
        "--event-pattern",
        r#"{"value": {"n": [{"numeric": [">", 5]}]}, "key": ["k1"]}"#,
        "--event",
        DELIVERED,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), r#"{"Result":true}"#);
    assert!(text(&out.stderr).contains("decoded from base64"));
    let out = sluice(&[
        "test-input-template",
        "--template",
        r#"{"n": <$.value.n>, "topic": "<$.topic>"}"#,
        "--event",
        DELIVERED,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), r#"{"n": 7, "topic": "orders"}"#);
    // A record whose value is not base64 cannot be what a target received: said, not `false`.
    let broken = DELIVERED.replace("eyJuIjogN30=", "{n: 7}");
    let out = sluice(&[
        "test-event-pattern",
        "--event-pattern",
        r#"{"value": {"n": [7]}}"#,
        "--event",
        &broken,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("its value is not base64"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn both_test_commands_word_a_bad_event_the_same_way() {
    let pattern = sluice(&[
        "test-event-pattern",
        "--event-pattern",
        r#"{"a": [1]}"#,
        "--event",
        r#"{"a":"#,
    ]);
    let template = sluice(&[
        "test-input-template",
        "--template",
        "<$.a>",
        "--event",
        r#"{"a":"#,
    ]);
    assert_eq!(pattern.status.code(), Some(2));
    assert_eq!(template.status.code(), Some(2));
    assert_eq!(text(&pattern.stderr), text(&template.stderr));
    assert!(text(&pattern.stderr).starts_with("error: --event is not valid JSON: "));
}

#[test]
fn a_template_that_starts_like_json_must_be_json() {
    for (template, needle) in [
        (r#"{"id": <$.value.id>"#, "an object or array is not closed"),
        (
            r#"{"id": <value.id>}"#,
            "a JSON path starts with '$.' (<$.value.id>)",
        ),
    ] {
        let out = sluice(&[
            "test-input-template",
            "--template",
            template,
            "--event",
            "{}",
        ]);
        assert_eq!(out.status.code(), Some(2), "{template}");
        assert!(out.stdout.is_empty());
        assert!(text(&out.stderr).contains(needle), "{}", text(&out.stderr));
    }
}

#[test]
fn a_fatal_error_is_said_once_without_colours_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ecs.json");
    // An unsupported target kind stops the pipe before it connects anywhere.
    std::fs::write(
        &file,
        r#"{"Name": "ecs", "Source": "smk://127.0.0.1:9", "Target": "arn:aws:ecs:us-east-1:123456789012:cluster/c",
            "SourceParameters": {"SelfManagedKafkaParameters": {"TopicName": "t"}}}"#,
    )
    .unwrap();
    let out = sluice_command()
        .arg("run")
        .arg(&file)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(
        err.matches("ECS task targets are not supported").count(),
        1,
        "{err}"
    );
    assert!(!err.contains('\x1b'), "ANSI escapes in:\n{err}");
}

/// `sluice ARGS` on a pseudo-terminal (util-linux `script`), with `env`; what the terminal showed.
fn on_a_terminal(args: &str, env: &[(&str, &str)]) -> String {
    let command = format!("{} {args}", env!("CARGO_BIN_EXE_sluice"));
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .output()
        .expect("run script (util-linux)");
    text(&out.stdout)
}

#[test]
fn on_a_terminal_output_ends_its_line_and_logs_are_coloured_unless_no_color() {
    let shown = on_a_terminal(
        r#"test-input-template --template '<$.a>' --event '{"a": "x"}'"#,
        &[],
    );
    assert_eq!(shown, "x\r\n");
    // An ECS pipe logs its failure at once.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ecs.json");
    std::fs::write(
        &file,
        r#"{"Name": "ecs", "Source": "smk://127.0.0.1:9", "Target": "arn:aws:ecs:us-east-1:123456789012:cluster/c",
            "SourceParameters": {"SelfManagedKafkaParameters": {"TopicName": "t"}}}"#,
    )
    .unwrap();
    let run_ecs = format!("run {}", file.display());
    assert!(on_a_terminal(&run_ecs, &[("RUST_LOG", "info")]).contains('\x1b'));
    let plain = on_a_terminal(&run_ecs, &[("RUST_LOG", "info"), ("NO_COLOR", "1")]);
    assert!(
        plain.contains("ECS task targets are not supported") && !plain.contains('\x1b'),
        "{plain}"
    );
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

#[test]
fn run_refuses_an_instance_id_with_a_space_before_it_connects() {
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/orders-to-http.json");
    let out = sluice(&["run", file.to_str().unwrap(), "--instance-id", "a b"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("--instance-id must be 1-200 characters without spaces"),
        "{err}"
    );
}
