//! Property tests: static JSON renders to itself, JSON templates always render valid JSON (with the
//! right values in the right places), paths find what is there, and nothing ever panics.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use sluice_template::{resolve_dynamic, Context, Form, JsonPath, Template};

/// Strings for keys and values: quotes, backslashes, control characters, `<` and `>`, non-ASCII.
/// No `$`, so no `<$` can appear and open a placeholder by accident.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _<>\"\\\\é\u{1F600}\n\t\u{1}/-]{0,8}"
}

/// Keys a path can name.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("value".to_owned()),
        "[a-zA-Z0-9_/-]{1,6}",
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::String),
    ]
}

fn value_with(key: BoxedStrategy<String>) -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 32, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..4)
                .prop_map(|kvs| Value::Object(kvs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn event() -> impl Strategy<Value = Value> {
    value_with(key().boxed())
}

fn path() -> impl Strategy<Value = String> {
    let step = prop_oneof![
        Just(".a"),
        Just(".b"),
        Just(".value"),
        Just("[0]"),
        Just("[1]"),
        Just(".*"),
        Just("[*]"),
    ];
    prop::collection::vec(step, 0..4).prop_map(|steps| format!("${}", steps.concat()))
}

/// A JSON template as a tree, so that it is valid by construction.
#[derive(Debug, Clone)]
enum Node {
    Scalar(Value),
    /// An unquoted placeholder (a path or a reserved variable).
    Placeholder(String),
    /// A string value: literal pieces and placeholders.
    Str(Vec<Piece>),
    Array(Vec<Node>),
    Object(Vec<Node>),
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Placeholder(String),
}

const RESERVED_STRINGS: &[&str] = &[
    "aws.pipes.pipe-arn",
    "aws.pipes.pipe-name",
    "aws.pipes.source-arn",
    "aws.pipes.enrichment-arn",
    "aws.pipes.target-arn",
    "aws.pipes.event.ingestion-time",
    "aws.pipes.event",
];

fn string_placeholder() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => path(),
        1 => prop::sample::select(RESERVED_STRINGS).prop_map(str::to_owned),
    ]
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        scalar().prop_map(Node::Scalar),
        string_placeholder().prop_map(Node::Placeholder),
        Just(Node::Placeholder("aws.pipes.event.json".to_owned())),
        prop::collection::vec(
            prop_oneof![
                text().prop_map(Piece::Text),
                string_placeholder().prop_map(Piece::Placeholder),
            ],
            0..4
        )
        .prop_map(Node::Str),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Node::Array),
            prop::collection::vec(inner, 0..4).prop_map(Node::Object),
        ]
    })
}

fn container() -> impl Strategy<Value = Node> {
    node().prop_map(|n| match n {
        n @ (Node::Array(_) | Node::Object(_)) => n,
        other => Node::Array(vec![other]),
    })
}

fn escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap();
    quoted[1..quoted.len() - 1].to_owned()
}

/// The template text, and where it has whitespace: `pretty` adds newlines and indentation.
fn write_template(node: &Node, pretty: bool, out: &mut String) {
    let sep = if pretty { ",\n  " } else { ", " };
    match node {
        Node::Scalar(v) => out.push_str(&serde_json::to_string(v).unwrap()),
        Node::Placeholder(p) => {
            out.push('<');
            out.push_str(p);
            out.push('>');
        }
        Node::Str(pieces) => {
            out.push('"');
            for piece in pieces {
                match piece {
                    Piece::Text(t) => out.push_str(&escape(t)),
                    Piece::Placeholder(p) => {
                        out.push('<');
                        out.push_str(p);
                        out.push('>');
                    }
                }
            }
            out.push('"');
        }
        Node::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                write_template(item, pretty, out);
            }
            out.push(']');
        }
        Node::Object(items) => {
            out.push('{');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                // Distinct keys, so the parsed output can be compared member by member.
                out.push_str(&format!("\"k{i}\": "));
                write_template(item, pretty, out);
            }
            out.push('}');
        }
    }
}

fn context(event: &Value) -> Context<'_> {
    Context {
        pipe_arn: "arn:aws:pipes:us-east-1:123456789012:pipe/p",
        pipe_name: "p \"quoted\" \\ <$.x>",
        source_arn: "arn:aws:kafka:src",
        enrichment_arn: "",
        target_arn: "arn:aws:sqs:q",
        ingestion_time: "2024-01-02T03:04:05Z",
        event_text: "{\"value\":\"eyJ9\"}\n",
        event_json: event,
    }
}

/// The string form of a placeholder, as a single-path text template renders it.
fn string_form(placeholder: &str, event: &Value, ctx: &Context<'_>) -> String {
    Template::compile(&format!("<{placeholder}>"))
        .unwrap()
        .render(event, ctx)
}

/// What the output must parse to.
fn expected(node: &Node, event: &Value, ctx: &Context<'_>) -> Value {
    match node {
        Node::Scalar(v) => v.clone(),
        Node::Placeholder(p) if p == "aws.pipes.event.json" => ctx.event_json.clone(),
        Node::Placeholder(p) if p.starts_with('$') => JsonPath::parse(p)
            .unwrap()
            .resolve(event)
            .map_or_else(|| json!(""), |v| v.into_owned()),
        Node::Placeholder(p) => Value::String(string_form(p, event, ctx)),
        Node::Str(pieces) => Value::String(
            pieces
                .iter()
                .map(|piece| match piece {
                    Piece::Text(t) => t.clone(),
                    Piece::Placeholder(p) => string_form(p, event, ctx),
                })
                .collect(),
        ),
        Node::Array(items) => Value::Array(items.iter().map(|n| expected(n, event, ctx)).collect()),
        Node::Object(items) => Value::Object(
            items
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("k{i}"), expected(n, event, ctx)))
                .collect(),
        ),
    }
}

/// Follows random choices down `value` and returns a path to where it stopped, with the value.
fn locate<'v>(value: &'v Value, choices: &[usize]) -> (String, &'v Value) {
    let mut path = "$".to_owned();
    let mut cur = value;
    for &c in choices {
        match cur {
            Value::Array(items) if !items.is_empty() => {
                let i = c % items.len();
                path.push_str(&format!("[{i}]"));
                cur = &items[i];
            }
            Value::Object(map) if !map.is_empty() => {
                let (k, v) = map.iter().nth(c % map.len()).unwrap();
                path.push('.');
                path.push_str(k);
                cur = v;
            }
            _ => break,
        }
    }
    (path, cur)
}

/// Template text from pieces that hit every branch of the compiler, valid or not.
fn template_soup() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "<$.",
        "<$",
        "a",
        "value",
        ".",
        "[0]",
        "[*]",
        "*",
        ">",
        "<",
        "{",
        "}",
        "[",
        "]",
        "\"",
        ":",
        ",",
        " ",
        "\n",
        "\\",
        "\\u",
        "d83d",
        "1",
        "-",
        "e",
        "true",
        "null",
        "é",
        "<aws.pipes.",
        "<aws.pipes.event.json>",
        "<aws.pipes.event>",
        "<aws.pipes.pipe-name>",
        "<$.value>",
        "<$.a[1].*>",
    ]);
    prop::collection::vec(token, 0..40).prop_map(|tokens| tokens.concat())
}

proptest! {
    #[test]
    fn static_json_renders_to_itself(doc in value_with(text().boxed()), pretty in any::<bool>()) {
        let doc = match doc {
            d @ (Value::Array(_) | Value::Object(_)) => d,
            other => json!({"k": other}),
        };
        let template = if pretty {
            serde_json::to_string_pretty(&doc).unwrap()
        } else {
            serde_json::to_string(&doc).unwrap()
        };
        let t = Template::compile(&template).unwrap();
        prop_assert_eq!(t.form(), Form::StaticJson);
        prop_assert!(t.is_json());
        prop_assert_eq!(t.render(&Value::Null, &Context::default()), template);
    }

    #[test]
    fn json_templates_render_valid_json_with_the_values_in_place(
        tree in container(),
        pretty in any::<bool>(),
        event in event(),
    ) {
        let mut template = String::new();
        write_template(&tree, pretty, &mut template);
        let t = Template::compile(&template)
            .map_err(|e| TestCaseError::fail(format!("{template}: {e}")))?;
        prop_assert!(t.is_json());
        let ctx = context(&event);
        let out = t.render(&event, &ctx);
        let parsed: Value = serde_json::from_str(&out)
            .map_err(|e| TestCaseError::fail(format!("{template} rendered {out}: {e}")))?;
        prop_assert_eq!(parsed, expected(&tree, &event, &ctx), "template {} rendered {}", template, out);
    }

    #[test]
    fn rendering_never_panics_and_keeps_its_promises(template in template_soup(), event in event()) {
        let ctx = context(&event);
        if let Ok(t) = Template::compile(&template) {
            let out = t.render(&event, &ctx);
            if t.is_json() {
                prop_assert!(serde_json::from_str::<Value>(&out).is_ok(), "{} rendered {}", template, out);
            }
            if matches!(t.form(), Form::StaticJson | Form::StaticString) {
                prop_assert_eq!(out, template);
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(template in any::<String>(), event in event()) {
        if let Ok(t) = Template::compile(&template) {
            let _ = t.render(&event, &context(&event));
        }
        let _ = JsonPath::parse(&template).map(|p| p.resolve(&event).is_some());
        let _ = resolve_dynamic(&template, &event);
    }

    #[test]
    fn a_path_to_a_place_finds_what_is_there(event in event(), choices in prop::collection::vec(any::<usize>(), 0..5)) {
        let (path, want) = locate(&event, &choices);
        let p = JsonPath::parse(&path).unwrap();
        let got = p.resolve(&event);
        prop_assert_eq!(got.as_deref(), Some(want));
        prop_assert_eq!(p.to_string(), path);
    }

    #[test]
    fn a_bare_string_placeholder_yields_the_string_itself(s in any::<String>()) {
        let event = json!({"value": s});
        prop_assert_eq!(Template::compile("<$.value>").unwrap().render(&event, &Context::default()), s.clone());
        prop_assert_eq!(resolve_dynamic("$.value", &event).unwrap(), Some(s.clone()));
        // Quoted in JSON it is escaped, and parses back to the same string.
        let out = Template::compile(r#"{"v": "<$.value>", "w": <$.value>}"#).unwrap().render(&event, &Context::default());
        prop_assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!({"v": s, "w": s}));
    }
}
