//! Table tests for every template form and edge case of the spec (`input-templates.md`).

use super::*;
use crate::path::MAX_PATH_LEN;
use serde_json::json;

/// The spec's example record. Keys are written in sorted order so that expectations hold whether
/// or not serde_json keeps insertion order in the workspace build.
fn spec_event() -> Value {
    json!({"value": {"id": "A1", "n": 3}})
}

fn render(template: &str, event: &Value) -> String {
    Template::compile(template)
        .unwrap_or_else(|e| panic!("{template:?} should compile: {e}"))
        .render(event, &Context::default())
}

fn compile_err(template: &str) -> String {
    match Template::compile(template) {
        Ok(_) => panic!("{template:?} should not compile"),
        Err(e) => {
            assert!(e.is_user_error() && !e.is_retryable());
            e.to_string()
        }
    }
}

#[test]
fn the_five_forms_of_the_spec() {
    let e = spec_event();
    let cases = [
        (r#""Hello""#, r#""Hello""#, Form::StaticString),
        ("<$.value.id>", "A1", Form::SinglePath),
        (
            r#""Order <$.value.id> has <$.value.n>""#,
            r#""Order A1 has 3""#,
            Form::StringWithPaths,
        ),
        (r#"{"a": 1}"#, r#"{"a": 1}"#, Form::StaticJson),
        (
            r#"{"id": <$.value.id>, "n": <$.value.n>, "all": <$.value>}"#,
            r#"{"id": "A1", "n": 3, "all": {"id": "A1", "n": 3}}"#,
            Form::JsonWithPaths,
        ),
    ];
    for (template, want, form) in cases {
        let t = Template::compile(template).unwrap();
        assert_eq!(t.form(), form, "{template}");
        assert_eq!(t.is_json(), form.is_json(), "{template}");
        assert_eq!(t.render(&e, &Context::default()), want, "{template}");
        assert_eq!(t.as_str(), template);
    }
}

#[test]
fn json_value_placement_and_quoting() {
    let e = json!({
        "arr": ["a", "b"],
        "b": true,
        "f": 1.5,
        "nul": null,
        "q": "say \"hi\"\n",
        "value": {"id": "A1", "n": 3}
    });
    let cases = [
        // Unquoted: the value's JSON.
        (r#"{"x": <$.value.id>}"#, r#"{"x": "A1"}"#),
        (r#"{"x": <$.value.n>}"#, r#"{"x": 3}"#),
        (r#"{"x": <$.f>}"#, r#"{"x": 1.5}"#),
        (r#"{"x": <$.b>}"#, r#"{"x": true}"#),
        (r#"{"x": <$.nul>}"#, r#"{"x": null}"#),
        (r#"{"x": <$.arr>}"#, r#"{"x": ["a", "b"]}"#),
        (r#"{"x": <$.q>}"#, r#"{"x": "say \"hi\"\n"}"#),
        // Quoted: the value as a string, escaped so the JSON stays valid.
        (r#"{"x": "<$.value.id>"}"#, r#"{"x": "A1"}"#),
        (r#"{"x": "<$.value.n>"}"#, r#"{"x": "3"}"#),
        (r#"{"x": "<$.b>"}"#, r#"{"x": "true"}"#),
        (r#"{"x": "<$.nul>"}"#, r#"{"x": "null"}"#),
        (r#"{"x": "<$.q>"}"#, r#"{"x": "say \"hi\"\n"}"#),
        (
            r#"{"x": "Order <$.value.id> has <$.value.n> items"}"#,
            r#"{"x": "Order A1 has 3 items"}"#,
        ),
        // Arrays, nesting and whitespace are kept as written.
        (
            "[<$.value.id>, \"<$.value.n>\", {\"in\": [ <$.b> ]}]",
            "[\"A1\", \"3\", {\"in\": [ true ]}]",
        ),
        (
            "{\n  \"id\" : <$.value.id> ,\n\t\"n\":<$.value.n>\n}",
            "{\n  \"id\" : \"A1\" ,\n\t\"n\":3\n}",
        ),
        // Escapes in the template are copied as written.
        (
            r#"{"x": "\"<$.value.id>\"\u00e9"}"#,
            r#"{"x": "\"A1\"\u00e9"}"#,
        ),
    ];
    for (template, want) in cases {
        let got = render(template, &e);
        assert_eq!(got, want, "{template}");
        serde_json::from_str::<Value>(&got).unwrap_or_else(|err| panic!("{got}: {err}"));
    }
}

#[test]
fn quoting_an_object_or_array_renders_its_string_form_and_is_reported() {
    let e = spec_event();
    let t = Template::compile(r#"{"x": "<$.value>", "y": "<$.value.*>", "z": "<$.value.id>"}"#)
        .unwrap();
    let mut out = String::new();
    let report = t.render_into(&e, &Context::default(), &mut out);
    assert_eq!(out, r#"{"x": "{id: A1, n: 3}", "y": "[A1, 3]", "z": "A1"}"#);
    assert_eq!(
        report,
        RenderReport {
            missing: 0,
            quoted_composites: 2
        }
    );
    serde_json::from_str::<Value>(&out).unwrap();
}

#[test]
fn string_text_renders_objects_and_arrays_without_quotes() {
    let e =
        json!({"value": {"id": "A1", "n": 3, "tags": ["x", "y"], "deep": {"a": [1, {"b": null}]}}});
    let cases = [
        ("<$.value.tags>", "[x, y]"),
        ("<$.value.deep>", "{a: [1, {b: null}]}"),
        (
            "Tags: <$.value.tags>; first <$.value.tags[0]>",
            "Tags: [x, y]; first x",
        ),
        ("\"<$.value.id>\"", "\"A1\""),
        ("<$.value.tags.*>", "[x, y]"),
    ];
    for (template, want) in cases {
        assert_eq!(render(template, &e), want, "{template}");
    }
}

#[test]
fn text_forms_insert_strings_raw() {
    // Text is not JSON: nothing is escaped.
    let e = json!({"q": "say \"hi\"\n"});
    assert_eq!(render("<$.q>", &e), "say \"hi\"\n");
    assert_eq!(render("\"<$.q>\"", &e), "\"say \"hi\"\n\"");
}

#[test]
fn missing_paths_yield_empty_text_or_an_empty_json_string() {
    let e = spec_event();
    let cases = [
        ("<$.nope>", ""),
        ("Hi <$.nope>!", "Hi !"),
        ("<$.value.id.deeper>", ""),
        (r#"{"a": <$.nope>}"#, r#"{"a": ""}"#),
        (r#"{"a": "x<$.nope>y"}"#, r#"{"a": "xy"}"#),
        (r#"[<$.nope>, <$.value.id[0]>]"#, r#"["", ""]"#),
        (r#"{"a": <$.value.*.x>}"#, r#"{"a": ""}"#),
    ];
    for (template, want) in cases {
        let t = Template::compile(template).unwrap();
        let mut out = String::new();
        let report = t.render_into(&e, &Context::default(), &mut out);
        assert_eq!(out, want, "{template}");
        assert!(report.missing >= 1, "{template}");
    }
}

#[test]
fn wildcards_yield_an_array_of_matches() {
    let e = json!({"items": [{"sku": "x"}, {"sku": "y"}, {"other": 1}]});
    assert_eq!(
        render(r#"{"skus": <$.items[*].sku>}"#, &e),
        r#"{"skus": ["x", "y"]}"#
    );
    assert_eq!(render("<$.items.*.sku>", &e), "[x, y]");
}

fn full_context(event_json: &Value) -> Context<'_> {
    Context {
        pipe_arn: "arn:aws:pipes:us-east-1:123456789012:pipe/p1",
        pipe_name: "p1",
        source_arn: "arn:aws:kafka:us-east-1:123456789012:cluster/c/1",
        enrichment_arn: "arn:aws:lambda:us-east-1:123456789012:function:enrich",
        target_arn: "arn:aws:sqs:us-east-1:123456789012:q",
        ingestion_time: "2024-01-02T03:04:05.678Z",
        event_text: r#"{"value":"eyJhIjoxfQ=="}"#,
        event_json,
    }
}

#[test]
fn reserved_variables() {
    let decoded = json!({"value": {"a": 1}});
    let ctx = full_context(&decoded);
    let t = |s: &str| {
        Template::compile(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .render(&Value::Null, &ctx)
    };
    assert_eq!(t("<aws.pipes.pipe-arn>"), ctx.pipe_arn);
    assert_eq!(t("<aws.pipes.pipe-name>"), "p1");
    assert_eq!(t("<aws.pipes.source-arn>"), ctx.source_arn);
    assert_eq!(t("<aws.pipes.enrichment-arn>"), ctx.enrichment_arn);
    assert_eq!(t("<aws.pipes.target-arn>"), ctx.target_arn);
    assert_eq!(t("<aws.pipes.event.ingestion-time>"), ctx.ingestion_time);
    assert_eq!(t("<aws.pipes.event>"), ctx.event_text);
    assert_eq!(
        t("Pipe <aws.pipes.pipe-name> at <aws.pipes.event.ingestion-time>"),
        "Pipe p1 at 2024-01-02T03:04:05.678Z"
    );
    // As JSON values they are strings; the record text is escaped, the decoded record inserted.
    assert_eq!(
        t(
            r#"{"name": <aws.pipes.pipe-name>, "raw": <aws.pipes.event>, "json": <aws.pipes.event.json>}"#
        ),
        r#"{"name": "p1", "raw": "{\"value\":\"eyJhIjoxfQ==\"}", "json": {"value": {"a": 1}}}"#
    );
    assert_eq!(
        t(r#"{"s": "<aws.pipes.pipe-name>/<aws.pipes.event>"}"#),
        r#"{"s": "p1/{\"value\":\"eyJhIjoxfQ==\"}"}"#
    );
    let json_only = Template::compile(r#"{"e": <aws.pipes.event.json>}"#).unwrap();
    assert!(json_only.uses_event_json() && !json_only.uses_event_text());
    let text_only = Template::compile("<aws.pipes.event>").unwrap();
    assert!(!text_only.uses_event_json() && text_only.uses_event_text());
}

#[test]
fn kafka_records_decoded_and_not() {
    // The caller decoded `value` (valid UTF-8 JSON); `key` stayed base64.
    let e = json!({"key": "a2V5", "partition": "0", "offset": 15, "topic": "t",
                   "value": {"orderId": "o-1", "total": 9.5}});
    assert_eq!(render("<$.value.orderId>", &e), "o-1");
    // A bare <$.value> in string context strips the inner quotes; wrapping it as JSON keeps them.
    assert_eq!(render("<$.value>", &e), "{orderId: o-1, total: 9.5}");
    assert_eq!(
        render(r#"{"data": <$.value>}"#, &e),
        r#"{"data": {"orderId": "o-1", "total": 9.5}}"#
    );
    assert_eq!(render("<$.key>", &e), "a2V5");
    assert_eq!(
        render(r#"{"k": <$.key>, "p": <$.partition>, "o": <$.offset>}"#, &e),
        r#"{"k": "a2V5", "p": "0", "o": 15}"#
    );
    // A tombstone: value is null.
    assert_eq!(
        render(r#"{"v": <$.value>}"#, &json!({"value": null})),
        r#"{"v": null}"#
    );
}

#[test]
fn angle_brackets_that_are_not_placeholders_are_text() {
    let e = spec_event();
    let cases = [
        ("a < b", "a < b"),
        ("<b>bold</b> <$.value.id>", "<b>bold</b> A1"),
        ("x > y <> <", "x > y <> <"),
        ("<awsome>", "<awsome>"),
        (
            r#"{"html": "<p><$.value.id></p>"}"#,
            r#"{"html": "<p>A1</p>"}"#,
        ),
    ];
    for (template, want) in cases {
        assert_eq!(render(template, &e), want, "{template}");
    }
    assert_eq!(
        Template::compile("a < b").unwrap().form(),
        Form::StaticString
    );
}

#[test]
fn which_templates_are_json() {
    let cases = [
        ("", Form::StaticString),
        ("   ", Form::StaticString),
        ("42", Form::StaticString),
        ("true", Form::StaticString),
        ("null", Form::StaticString),
        ("{name} says <$.a>", Form::StringWithPaths),
        ("[INFO] <$.a>", Form::StringWithPaths),
        ("[<$.level>] <$.msg>", Form::StringWithPaths),
        ("{ name } says <$.a>", Form::StringWithPaths),
        (" <$.a>", Form::StringWithPaths),
        ("<$.a><$.b>", Form::StringWithPaths),
        ("<aws.pipes.pipe-name>", Form::SinglePath),
        ("\n{\"a\": 1}\n", Form::StaticJson),
        ("[]", Form::StaticJson),
        ("[<$.a>]", Form::JsonWithPaths),
        ("{\"a\": \"<$.a>\"}", Form::JsonWithPaths),
    ];
    for (template, form) in cases {
        assert_eq!(
            Template::compile(template).unwrap().form(),
            form,
            "{template:?}"
        );
    }
}

#[test]
fn static_templates_render_to_themselves() {
    let e = spec_event();
    for template in [
        "",
        "Hello, sender",
        "\"Hello\"",
        "{\n  \"key1\": \"value1\",\n  \"key2\": [1, 2.50, -3e2, true, null, {}]\n}",
        "[ ]",
        r#"{"esc": "\" \\ \/ \b \f \n \r \t \u0041 \ud83d\ude00"}"#,
    ] {
        assert_eq!(render(template, &e), template);
    }
}

#[test]
fn limits() {
    let max = "é".repeat(MAX_TEMPLATE_LEN);
    assert!(Template::compile(&max).is_ok());
    let over = "a".repeat(MAX_TEMPLATE_LEN + 1);
    assert_eq!(
        compile_err(&over),
        "InputTemplate is 8193 characters long; the limit is 8192"
    );
    let path = format!("$.{}", "a".repeat(MAX_PATH_LEN - 2));
    assert!(Template::compile(&format!("<{path}>")).is_ok());
    let long = format!("$.{}", "a".repeat(MAX_PATH_LEN - 1));
    let msg = compile_err(&format!("x <{long}>"));
    assert!(msg.starts_with("invalid placeholder <$.aaaa"), "{msg}");
    assert!(
        msg.ends_with(
            "at line 1, column 3: the JSON path is 257 characters long; the limit is 256"
        ),
        "{msg}"
    );
}

#[test]
fn compile_errors_name_the_place_and_the_reason() {
    let cases = [
        (
            "{<$.k>: 1}",
            "placeholder <$.k> at line 1, column 2 is used as an object key; placeholders can only be used as values",
        ),
        (
            r#"{"<$.k>": 1}"#,
            "placeholder <$.k> at line 1, column 3 is used as an object key; placeholders can only be used as values",
        ),
        (
            r#"{"a": 1, "b<aws.pipes.pipe-name>": 2}"#,
            "placeholder <aws.pipes.pipe-name> at line 1, column 12 is used as an object key; placeholders can only be used as values",
        ),
        (
            "{\n  \"a\": <$.k>,\n  <$.x>: 1\n}",
            "placeholder <$.x> at line 3, column 3 is used as an object key; placeholders can only be used as values",
        ),
        (
            "<$.a",
            "placeholder starting at line 1, column 1 has no closing '>' ('<' and '>' cannot be escaped in an InputTemplate)",
        ),
        (
            "x <aws.pipes.pipe-name",
            "placeholder starting at line 1, column 3 has no closing '>' ('<' and '>' cannot be escaped in an InputTemplate)",
        ),
        (
            "Hi <$.a..b>",
            "invalid placeholder <$.a..b> at line 1, column 4: recursive descent ('..') is not supported (character 4 of the path)",
        ),
        (
            "costs <$5>",
            "invalid placeholder <$5> at line 1, column 7: a JSON path starts with '$.' (<$.5>)",
        ),
        (
            "<$.a b>",
            "invalid placeholder <$.a b> at line 1, column 1: expected '.' or '[', found ' ' (character 4 of the path)",
        ),
        (
            "<aws.pipes.nope>",
            "invalid placeholder <aws.pipes.nope> at line 1, column 1: unknown reserved variable; the reserved variables are aws.pipes.pipe-arn, aws.pipes.pipe-name, aws.pipes.source-arn, aws.pipes.enrichment-arn, aws.pipes.target-arn, aws.pipes.event.ingestion-time, aws.pipes.event, aws.pipes.event.json",
        ),
        (
            "<aws.pipes.event.json>",
            "<aws.pipes.event.json> at line 1, column 1 can only be used as an unquoted value in a JSON template, for example {\"event\": <aws.pipes.event.json>}",
        ),
        (
            "Event: <aws.pipes.event.json>",
            "<aws.pipes.event.json> at line 1, column 8 can only be used as an unquoted value in a JSON template, for example {\"event\": <aws.pipes.event.json>}",
        ),
        (
            r#"{"e": "<aws.pipes.event.json>"}"#,
            "<aws.pipes.event.json> at line 1, column 8 can only be used as an unquoted value in a JSON template, for example {\"event\": <aws.pipes.event.json>}",
        ),
        (
            r#"{"id": <$.value.id>"#,
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 20: unexpected end of the template (an object or array is not closed)",
        ),
        (
            r#"{"id": <$.value.id>} and more"#,
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 22: unexpected 'a' after the end of the JSON value",
        ),
        (
            "[1, 2",
            "InputTemplate starts like JSON (with '['), so it must be valid JSON, but it is not at line 1, column 6: unexpected end of the template (an object or array is not closed)",
        ),
        (
            r#"{"id": <value.id>}"#,
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 8: <value.id> is not a placeholder: a JSON path starts with '$.' (<$.value.id>), a reserved variable with 'aws.pipes.' (<aws.pipes.pipe-name>)",
        ),
        (
            "Order <$value.id>",
            "invalid placeholder <$value.id> at line 1, column 7: a JSON path starts with '$.' (<$.value.id>)",
        ),
        (
            r#"{"a": 1,}"#,
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 9: expected an object key, found '}' (trailing commas are not allowed)",
        ),
        (
            "[1, 2, ]",
            "InputTemplate starts like JSON (with '['), so it must be valid JSON, but it is not at line 1, column 8: expected a value, found ']' (trailing commas are not allowed)",
        ),
        (
            "{\n  \"key1\": \"value1\"\n  \"key2\": <$.body.key>\n}",
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 3, column 3: expected ',' or '}' after an object member, found '\"'",
        ),
        (
            r#"{"a" 1}"#,
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 6: expected ':' after the object key, found '1'",
        ),
        (
            r#"{"a" <$.x>}"#,
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 6: expected ':' after the object key, found placeholder <$.x>",
        ),
        (
            r#"{"a": 1 <$.x>}"#,
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 9: expected ',' or '}' after an object member, found placeholder <$.x>",
        ),
        (
            "[<$.a> <$.b>]",
            "InputTemplate starts like JSON (with '['), so it must be valid JSON, but it is not at line 1, column 8: expected ',' or ']' after an array element, found placeholder <$.b>",
        ),
        (
            r#"{"a": x}"#,
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 7: expected a value, found 'x'",
        ),
        (
            r#"{"a": tru}"#,
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 7: expected a value, found 't'",
        ),
        (
            r#"{"a": 01}"#,
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 8: expected ',' or '}' after an object member, found '1'",
        ),
        (
            r#"{"a": -}"#,
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 7: invalid number",
        ),
        (
            r#"{"a": 1.}"#,
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 7: invalid number",
        ),
        (
            r#"{"a": "x}"#,
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 7: this string is not closed",
        ),
        (
            r#"{"a": "\q"}"#,
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 8: invalid escape sequence (valid: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
        ),
        (
            r#"{"a": "\<$.x>"}"#,
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 8: invalid escape sequence (valid: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
        ),
        (
            r#"{"a": "\u12"}"#,
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 8: \\u must be followed by four hex digits",
        ),
        (
            r#"{"a": "\ud800"}"#,
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 8: unpaired surrogate in a \\u escape",
        ),
        (
            r#"{"a": "\udc00\ud800"}"#,
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 8: unpaired surrogate in a \\u escape",
        ),
        (
            "{\"a\": \"line\nbreak\"}",
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 12: control character U+000A must be escaped in a string",
        ),
        (
            r#"{"a": 1} {"b": 2}"#,
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 10: unexpected '{' after the end of the JSON value",
        ),
        (
            "{x} and {y}",
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 2: expected an object key in double quotes, found 'x'",
        ),
        (
            "{<b>}",
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 2: expected an object key in double quotes, found '<'",
        ),
        (
            "{\"a\": [1, {\"b\": 2}}",
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 19: expected ',' or ']' after an array element, found '}'",
        ),
        (
            "{\"a\": {\"b\": 2}",
            "InputTemplate starts like JSON (with '{'), so it must be valid JSON, but it is not at line 1, column 15: unexpected end of the template (an object or array is not closed)",
        ),
    ];
    for (template, msg) in cases {
        assert_eq!(compile_err(template), msg, "{template:?}");
    }
}

#[test]
fn rendering_appends_and_reuses_the_buffer() {
    let t = Template::compile("<$.value.id>,").unwrap();
    let e = spec_event();
    let mut out = String::from(">");
    t.render_into(&e, &Context::default(), &mut out);
    t.render_into(&e, &Context::default(), &mut out);
    assert_eq!(out, ">A1,A1,");
}

#[test]
fn templates_are_send_and_sync() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Template>();
    check::<crate::path::JsonPath>();
}

/// Found by the fuzzer: `{"ase": -1.5e+314}` compiled as static JSON but no parser accepts the
/// number (beyond f64), so the "JSON templates render valid JSON" guarantee broke.
#[test]
fn fuzz_number_out_of_range_in_static_json() {
    for template in [
        r#"{"ase": -1.5e+314}"#,
        "[1e400]",
        &format!("[1{}]", "0".repeat(400)),
    ] {
        let msg = compile_err(template);
        assert!(
            msg.ends_with("column 2: number out of range")
                || msg.ends_with("column 9: number out of range"),
            "{msg}"
        );
    }
    // The largest finite numbers and underflow to zero are fine.
    for template in [
        "[1.7976931348623157e308]",
        "[-1e-400]",
        "[123456789012345678901234567890]",
    ] {
        let out = render(template, &Value::Null);
        assert_eq!(out, template);
        serde_json::from_str::<Value>(&out).unwrap();
    }
}
