//! The JSON path subset of EventBridge Pipes: parsing (`$`, `.name`, `[3]`, `.*` / `[*]`) and
//! resolving a path against a record. Used by templates and by dynamic target parameters.
//!
//! A path with a wildcard is "indefinite": it yields an array of every match, in document order
//! (flattened across several wildcards), like AWS. No match at all yields nothing.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::error::{preview, TemplateError};

/// Longest accepted path, in characters.
pub const MAX_PATH_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(Box<str>),
    Index(usize),
    Wildcard,
}

/// A compiled JSON path of the subset (`$.a.b[3].*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: Box<str>,
    steps: Box<[Step]>,
    wildcard: bool,
}

/// A syntax error before it is given its user-facing shape (standalone path or placeholder).
#[derive(Debug)]
pub(crate) struct PathSyntaxError {
    /// 1-based character of the path where the problem is.
    pub offset: usize,
    pub reason: String,
}

/// What a path found, borrowed from the record: used by rendering to avoid cloning.
#[derive(Debug)]
pub(crate) enum Found<'v> {
    Nothing,
    One(&'v Value),
    Many(Vec<&'v Value>),
}

/// Characters allowed in a dot segment: letters, digits, `-`, `_`, `/`. Non-ASCII letters and
/// digits are accepted too (AWS says "alphanumeric"; keys of Kafka records are often not ASCII).
fn is_segment_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '-' | '_' | '/')
}

impl JsonPath {
    /// Parses a path of the subset. At most [`MAX_PATH_LEN`] characters.
    pub fn parse(path: &str) -> Result<JsonPath, TemplateError> {
        let len = path.chars().count();
        if len > MAX_PATH_LEN {
            return Err(TemplateError::PathTooLong {
                path: preview(path),
                len,
                max: MAX_PATH_LEN,
            });
        }
        Self::parse_syntax(path).map_err(|e| TemplateError::InvalidPath {
            path: path.to_owned(),
            offset: e.offset,
            reason: e.reason,
        })
    }

    /// The grammar alone, without the length limit (callers check it to shape their own error).
    pub(crate) fn parse_syntax(path: &str) -> Result<JsonPath, PathSyntaxError> {
        let chars: Vec<char> = path.chars().collect();
        let err = |i: usize, reason: String| PathSyntaxError {
            offset: i + 1,
            reason,
        };
        match chars.first() {
            Some('$') => {}
            _ => return Err(err(0, "a JSON path must start with '$'".to_owned())),
        }
        let mut steps = Vec::new();
        let mut i = 1;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    i += 1;
                    match chars.get(i) {
                        None => {
                            return Err(err(
                                i - 1,
                                "'.' must be followed by a name or '*'".to_owned(),
                            ))
                        }
                        Some('.') => {
                            return Err(err(
                                i - 1,
                                "recursive descent ('..') is not supported".to_owned(),
                            ))
                        }
                        Some('*') => {
                            steps.push(Step::Wildcard);
                            i += 1;
                        }
                        Some(&c) if is_segment_char(c) => {
                            let start = i;
                            while i < chars.len() && is_segment_char(chars[i]) {
                                i += 1;
                            }
                            steps.push(Step::Key(chars[start..i].iter().collect()));
                        }
                        Some(&c) => {
                            return Err(err(
                                i,
                                format!(
                                    "character {c:?} is not allowed in a path segment (letters, \
                                     digits, '-', '_' and '/' are)"
                                ),
                            ))
                        }
                    }
                }
                '[' => {
                    let open = i;
                    i += 1;
                    if chars.get(i) == Some(&'*') && chars.get(i + 1) == Some(&']') {
                        steps.push(Step::Wildcard);
                        i += 2;
                        continue;
                    }
                    let start = i;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                    if i == start || chars.get(i) != Some(&']') {
                        let reason = match chars.get(start) {
                            Some('\'' | '"') => {
                                "quoted names in brackets are not supported; use dot notation"
                            }
                            Some('-') => "negative array indices are not supported",
                            _ => "expected an array index like [3] or [*]",
                        };
                        return Err(err(open, reason.to_owned()));
                    }
                    let digits: String = chars[start..i].iter().collect();
                    let index = digits
                        .parse::<usize>()
                        .map_err(|_| err(start, "array index is too large".to_owned()))?;
                    steps.push(Step::Index(index));
                    i += 1;
                }
                c => return Err(err(i, format!("expected '.' or '[', found {c:?}"))),
            }
        }
        let wildcard = steps.iter().any(|s| matches!(s, Step::Wildcard));
        Ok(JsonPath {
            text: path.into(),
            steps: steps.into_boxed_slice(),
            wildcard,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the path has a wildcard (and so yields an array of matches).
    pub fn has_wildcard(&self) -> bool {
        self.wildcard
    }

    /// Resolves against a value; `None` when it resolves to nothing. A path with a wildcard yields
    /// an array of all the matches (owned), or `None` when nothing matches.
    pub fn resolve<'v>(&self, value: &'v Value) -> Option<Cow<'v, Value>> {
        match self.find(value) {
            Found::Nothing => None,
            Found::One(v) => Some(Cow::Borrowed(v)),
            Found::Many(vs) => Some(Cow::Owned(Value::Array(vs.into_iter().cloned().collect()))),
        }
    }

    /// Resolves without cloning anything.
    pub(crate) fn find<'v>(&self, value: &'v Value) -> Found<'v> {
        if !self.wildcard {
            let mut cur = value;
            for step in self.steps.iter() {
                match step_into(cur, step) {
                    Some(next) => cur = next,
                    None => return Found::Nothing,
                }
            }
            return Found::One(cur);
        }
        let mut out = Vec::new();
        collect(value, &self.steps, &mut out);
        if out.is_empty() {
            Found::Nothing
        } else {
            Found::Many(out)
        }
    }
}

fn step_into<'v>(value: &'v Value, step: &Step) -> Option<&'v Value> {
    match (step, value) {
        (Step::Key(k), Value::Object(map)) => map.get(&**k),
        (Step::Index(i), Value::Array(items)) => items.get(*i),
        _ => None,
    }
}

/// Depth of the recursion is bounded by the number of steps, so by the path length limit.
fn collect<'v>(value: &'v Value, steps: &[Step], out: &mut Vec<&'v Value>) {
    let Some((step, rest)) = steps.split_first() else {
        out.push(value);
        return;
    };
    match step {
        Step::Wildcard => match value {
            Value::Array(items) => items.iter().for_each(|v| collect(v, rest, out)),
            Value::Object(map) => map.values().for_each(|v| collect(v, rest, out)),
            _ => {}
        },
        _ => {
            if let Some(next) = step_into(value, step) {
                collect(next, rest, out);
            }
        }
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for JsonPath {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JsonPath::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        // Keys in sorted order, so that the expectations hold whether or not serde_json keeps
        // insertion order (its `preserve_order` feature may be on in the workspace build).
        json!({
            "a-b": {"c_d": {"e/f": true}},
            "empty": [],
            "héllo": 1,
            "nul": null,
            "value": {"id": "A1", "items": [{"q": 1, "sku": "x"}, {"q": 2, "sku": "y"}], "n": 3}
        })
    }

    #[test]
    fn resolves_the_subset() {
        let e = event();
        let cases: &[(&str, Option<Value>)] = &[
            ("$", Some(e.clone())),
            ("$.value.id", Some(json!("A1"))),
            ("$.value.n", Some(json!(3))),
            ("$.value.items[1].sku", Some(json!("y"))),
            ("$.value.items[2]", None),
            ("$.a-b.c_d.e/f", Some(json!(true))),
            ("$.héllo", Some(json!(1))),
            ("$.nul", Some(Value::Null)),
            ("$.missing", None),
            ("$.value.id.deeper", None),
            ("$.value[0]", None),
            ("$.value.items.0", None),
            ("$.value.items.*.sku", Some(json!(["x", "y"]))),
            ("$.value.items[*].q", Some(json!([1, 2]))),
            (
                "$.value.items[*]",
                Some(json!([{"q": 1, "sku": "x"}, {"q": 2, "sku": "y"}])),
            ),
            (
                "$.value.*",
                Some(json!(["A1", [{"q": 1, "sku": "x"}, {"q": 2, "sku": "y"}], 3])),
            ),
            ("$.*.*.sku", None),
            ("$.value.items.*.*", Some(json!([1, "x", 2, "y"]))),
            ("$.empty.*", None),
            ("$.value.id.*", None),
            ("$[0]", None),
        ];
        for (path, want) in cases {
            let p = JsonPath::parse(path).unwrap();
            assert_eq!(p.resolve(&e).map(Cow::into_owned), *want, "path {path}");
        }
    }

    #[test]
    fn definite_paths_borrow() {
        let e = event();
        let p = JsonPath::parse("$.value.id").unwrap();
        assert!(matches!(p.resolve(&e), Some(Cow::Borrowed(_))));
        assert!(!p.has_wildcard());
        assert!(JsonPath::parse("$.a[*]").unwrap().has_wildcard());
    }

    #[test]
    fn rejects_what_is_outside_the_subset() {
        let cases: &[(&str, &str)] = &[
            ("", "invalid JSON path '' at character 1: a JSON path must start with '$'"),
            ("value.id", "invalid JSON path 'value.id' at character 1: a JSON path must start with '$'"),
            ("$.", "invalid JSON path '$.' at character 2: '.' must be followed by a name or '*'"),
            ("$..a", "invalid JSON path '$..a' at character 2: recursive descent ('..') is not supported"),
            ("$.a b", "invalid JSON path '$.a b' at character 4: expected '.' or '[', found ' '"),
            ("$.a.b c", "invalid JSON path '$.a.b c' at character 6: expected '.' or '[', found ' '"),
            ("$.$a", "invalid JSON path '$.$a' at character 3: character '$' is not allowed in a path segment (letters, digits, '-', '_' and '/' are)"),
            ("$.a*", "invalid JSON path '$.a*' at character 4: expected '.' or '[', found '*'"),
            ("$a", "invalid JSON path '$a' at character 2: expected '.' or '[', found 'a'"),
            ("$.a[", "invalid JSON path '$.a[' at character 4: expected an array index like [3] or [*]"),
            ("$.a[1", "invalid JSON path '$.a[1' at character 4: expected an array index like [3] or [*]"),
            ("$.a[x]", "invalid JSON path '$.a[x]' at character 4: expected an array index like [3] or [*]"),
            ("$.a[-1]", "invalid JSON path '$.a[-1]' at character 4: negative array indices are not supported"),
            ("$['a']", "invalid JSON path '$['a']' at character 2: quoted names in brackets are not supported; use dot notation"),
            ("$.a[99999999999999999999999]", "invalid JSON path '$.a[99999999999999999999999]' at character 5: array index is too large"),
            ("$.a.[0]", "invalid JSON path '$.a.[0]' at character 5: character '[' is not allowed in a path segment (letters, digits, '-', '_' and '/' are)"),
        ];
        for (path, msg) in cases {
            let err = JsonPath::parse(path).unwrap_err();
            assert_eq!(err.to_string(), *msg, "path {path:?}");
            assert!(err.is_user_error() && !err.is_retryable());
        }
    }

    #[test]
    fn limits_the_length_to_256_characters() {
        let ok = format!("$.{}", "é".repeat(254));
        assert_eq!(ok.chars().count(), 256);
        assert!(JsonPath::parse(&ok).is_ok());
        let long = format!("$.{}", "a".repeat(255));
        let err = JsonPath::parse(&long).unwrap_err();
        assert!(matches!(
            err,
            TemplateError::PathTooLong {
                len: 257,
                max: 256,
                ..
            }
        ));
        assert!(err
            .to_string()
            .ends_with("is 257 characters long; the limit is 256"));
    }

    #[test]
    fn displays_as_written_and_parses_from_str() {
        let p: JsonPath = "$.value.items[0].*".parse().unwrap();
        assert_eq!(p.to_string(), "$.value.items[0].*");
        assert_eq!(p.as_str(), "$.value.items[0].*");
    }
}
