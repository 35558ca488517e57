//! Writing JSON values into the output text, in the two styles templates need:
//! - `Json`: valid JSON (`{"k": "v", "n": [1, 2]}`), for unquoted placeholders in JSON templates;
//! - `Text`: the string form (`{k: v, n: [1, 2]}`, strings without quotes), for string text.
//!
//! Either style goes through a [`Sink`]: raw, or escaped as the inside of a JSON string (a quoted
//! placeholder). Walking is iterative so that a deeply nested record cannot overflow the stack, and
//! nothing is allocated except the walk's stack for nested containers.

use std::fmt::Write as _;

use serde_json::Value;

/// Where rendered text goes.
pub(crate) trait Sink {
    fn put(&mut self, s: &str);
}

/// Appends text as is.
pub(crate) struct Raw<'a>(pub &'a mut String);

impl Sink for Raw<'_> {
    #[inline]
    fn put(&mut self, s: &str) {
        self.0.push_str(s);
    }
}

/// Appends text escaped as the content of a JSON string (without the surrounding quotes).
pub(crate) struct Escaped<'a>(pub &'a mut String);

impl Sink for Escaped<'_> {
    #[inline]
    fn put(&mut self, s: &str) {
        escape_into(s, &mut Raw(self.0));
    }
}

/// JSON string escaping: `"`, `\` and control characters; everything else is copied in runs.
pub(crate) fn escape_into<S: Sink>(s: &str, sink: &mut S) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        // `i` is at an ASCII byte, so both slices are on char boundaries.
        if run < i {
            sink.put(&s[run..i]);
        }
        if short.is_empty() {
            let buf = [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ];
            // The buffer is ASCII.
            sink.put(std::str::from_utf8(&buf).unwrap_or("\\u0000"));
        } else {
            sink.put(short);
        }
        run = i + 1;
    }
    if run < bytes.len() {
        sink.put(&s[run..]);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Json,
    Text,
}

/// A string in the given style: quoted and escaped for JSON, as is for text.
#[inline]
pub(crate) fn write_str<S: Sink>(s: &str, style: Style, sink: &mut S) {
    match style {
        Style::Json => {
            sink.put("\"");
            escape_into(s, sink);
            sink.put("\"");
        }
        Style::Text => sink.put(s),
    }
}

enum Frame<'v> {
    Array(std::slice::Iter<'v, Value>),
    Object(serde_json::map::Iter<'v>),
}

fn write_scalar<S: Sink>(v: &Value, style: Style, sink: &mut S) {
    match v {
        Value::Null => sink.put("null"),
        Value::Bool(true) => sink.put("true"),
        Value::Bool(false) => sink.put("false"),
        Value::Number(n) => {
            // serde_json's Display of a number is its JSON form. The stack buffer fits every
            // u64/i64/f64; only `arbitrary_precision` numbers can be longer.
            let mut buf = NumBuf::default();
            if write!(buf, "{n}").is_ok() {
                sink.put(buf.as_str());
            } else {
                sink.put(&n.to_string());
            }
        }
        Value::String(s) => write_str(s, style, sink),
        // Containers are handled by the walk.
        Value::Array(_) | Value::Object(_) => {}
    }
}

/// A value in the given style. Separators are `", "` and `": "` in both styles; object members come
/// in serde_json's map order (sorted keys, or insertion order with its `preserve_order` feature).
pub(crate) fn write_value<S: Sink>(root: &Value, style: Style, sink: &mut S) {
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut next = Some(root);
    let mut first = true;
    loop {
        if let Some(v) = next.take() {
            match v {
                Value::Array(items) => {
                    sink.put("[");
                    stack.push(Frame::Array(items.iter()));
                    first = true;
                }
                Value::Object(map) => {
                    sink.put("{");
                    stack.push(Frame::Object(map.iter()));
                    first = true;
                }
                scalar => write_scalar(scalar, style, sink),
            }
        }
        let Some(top) = stack.last_mut() else {
            return;
        };
        let item = match top {
            Frame::Array(it) => it.next().map(|v| (None, v)),
            Frame::Object(it) => it.next().map(|(k, v)| (Some(k), v)),
        };
        match item {
            Some((key, v)) => {
                if !first {
                    sink.put(", ");
                }
                first = false;
                if let Some(k) = key {
                    write_str(k, style, sink);
                    sink.put(": ");
                }
                next = Some(v);
            }
            None => {
                sink.put(match top {
                    Frame::Array(_) => "]",
                    Frame::Object(_) => "}",
                });
                stack.pop();
                first = false;
            }
        }
    }
}

/// Several values as one array (the matches of a wildcard path).
pub(crate) fn write_many<S: Sink>(values: &[&Value], style: Style, sink: &mut S) {
    sink.put("[");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            sink.put(", ");
        }
        write_value(v, style, sink);
    }
    sink.put("]");
}

/// Compact JSON (no spaces) of an object or array, for dynamic parameters.
pub(crate) fn compact_json(v: &Value) -> String {
    // Serializing a `Value` cannot fail (keys are strings, numbers are finite).
    serde_json::to_string(v).unwrap_or_default()
}

/// A stack buffer for formatting one number without allocating.
#[derive(Default)]
struct NumBuf {
    buf: [u8; 32],
    len: usize,
}

impl NumBuf {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("0")
    }
}

impl std::fmt::Write for NumBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn styled(v: &Value, style: Style) -> String {
        let mut out = String::new();
        write_value(v, style, &mut Raw(&mut out));
        out
    }

    fn escaped_text(v: &Value) -> String {
        let mut out = String::new();
        write_value(v, Style::Text, &mut Escaped(&mut out));
        out
    }

    #[test]
    fn json_style_is_valid_json_with_spaced_separators() {
        let cases = [
            (json!(null), "null"),
            (json!(true), "true"),
            (json!(18446744073709551615u64), "18446744073709551615"),
            (json!("a\"b\\c\nd\u{1}é"), r#""a\"b\\c\nd\u0001é""#),
            (json!([]), "[]"),
            (json!({}), "{}"),
            (json!({"id": "A1", "n": 3}), r#"{"id": "A1", "n": 3}"#),
            (json!([1, [2, {"a": []}], {}]), r#"[1, [2, {"a": []}], {}]"#),
            (json!({"k\"": {"x": [null]}}), r#"{"k\"": {"x": [null]}}"#),
        ];
        for (v, want) in cases {
            let got = styled(&v, Style::Json);
            assert_eq!(got, want);
            assert_eq!(serde_json::from_str::<Value>(&got).unwrap(), v);
        }
        // Numbers are written exactly as serde_json writes them.
        for n in [
            json!(-1.5e300),
            json!(0.1),
            json!(-0.0),
            json!(i64::MIN),
            json!(1e-7),
        ] {
            assert_eq!(styled(&n, Style::Json), serde_json::to_string(&n).unwrap());
            assert_eq!(styled(&n, Style::Text), serde_json::to_string(&n).unwrap());
        }
    }

    #[test]
    fn text_style_drops_quotes() {
        let cases = [
            (json!("A1"), "A1"),
            (json!(3), "3"),
            (json!(null), "null"),
            (json!({"id": "A1", "n": 3}), "{id: A1, n: 3}"),
            (json!(["a", "b"]), "[a, b]"),
            (
                json!({"a": {"b": ["c", 1, false]}}),
                "{a: {b: [c, 1, false]}}",
            ),
            (json!([]), "[]"),
        ];
        for (v, want) in cases {
            assert_eq!(styled(&v, Style::Text), want);
        }
    }

    #[test]
    fn escaped_sink_keeps_json_strings_valid() {
        let v = json!({"q": "say \"hi\"\t"});
        let inner = escaped_text(&v);
        assert_eq!(inner, r#"{q: say \"hi\"\t}"#);
        let s: String = serde_json::from_str(&format!("\"{inner}\"")).unwrap();
        assert_eq!(s, "{q: say \"hi\"\t}");
    }

    #[test]
    fn escapes_every_control_character() {
        for b in 0u8..0x20 {
            let s = format!("x{}y", char::from(b));
            let mut out = String::new();
            escape_into(&s, &mut Raw(&mut out));
            let back: String = serde_json::from_str(&format!("\"{out}\"")).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        // Built by hand: serde_json's parser would stop at 128 levels.
        let mut v = json!(1);
        for _ in 0..100_000 {
            v = Value::Array(vec![v]);
        }
        let out = styled(&v, Style::Json);
        assert_eq!(out.len(), 200_001);
        // Dropping such a value recursively would overflow; take it apart iteratively.
        let mut cur = v;
        while let Value::Array(mut items) = cur {
            cur = items.pop().unwrap_or(Value::Null);
        }
    }

    #[test]
    fn wildcard_matches_render_as_an_array() {
        let a = json!("x");
        let b = json!({"k": 1});
        let mut out = String::new();
        write_many(&[&a, &b], Style::Json, &mut Raw(&mut out));
        assert_eq!(out, r#"["x", {"k": 1}]"#);
        assert_eq!(compact_json(&json!({"a": [1, 2]})), r#"{"a":[1,2]}"#);
    }
}
