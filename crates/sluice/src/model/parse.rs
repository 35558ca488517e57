//! Reading definition text (JSON or YAML) into typed values with every shape error at once: serde
//! stops at the first wrong type or unknown field, so the text is parsed into a JSON tree first and
//! deserialized again after each error with the offending field taken out, until the rest fits.
//! Each error names the field's path (AWS names joined by dots, `Filters[0]`) and says what is
//! wrong in the user's words: no Rust type names, a suggestion for a misspelled field.
//!
//! Hand-written rather than `eserde` because the definition types keep plain `serde` derives (the
//! API and the store serialize them too), YAML needs the same treatment, and the messages are
//! reworded anyway.

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::{Path, Segment};

use super::FieldError;

/// At most this many shape errors are collected (each costs one more pass over the tree).
const MAX_SHAPE_ERRORS: usize = 50;

/// A document read as far as its shape allows: the value with every wrongly shaped field left out,
/// and an error for each of those fields.
#[derive(Debug, Clone)]
pub struct Lenient<T> {
    /// The value without the fields in `errors`.
    pub value: T,
    /// One error per field that had the wrong shape (type, unknown name).
    pub errors: Vec<FieldError>,
}

impl<T> Lenient<T> {
    /// Run the checks of the value `check` and report its errors together with the shape errors,
    /// leaving out what `check` says about a field whose shape was already wrong (it was removed,
    /// so `check` may find it missing).
    pub fn check<R>(
        self,
        check: impl FnOnce(&T) -> Result<R, Vec<FieldError>>,
    ) -> Result<R, Vec<FieldError>> {
        let checked = check(&self.value);
        if self.errors.is_empty() {
            return checked;
        }
        let mut errors = self.errors;
        if let Err(more) = checked {
            let shaped: Vec<String> = errors.iter().map(|e| e.name.clone()).collect();
            errors.extend(
                more.into_iter()
                    .filter(|e| !shaped.iter().any(|s| overlaps(s, &e.name))),
            );
        }
        Err(errors)
    }
}

/// Whether one field path is the other or lies inside it.
fn overlaps(a: &str, b: &str) -> bool {
    let inside = |outer: &str, inner: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    };
    a.is_empty() || b.is_empty() || inside(a, b) || inside(b, a)
}

/// Parse JSON or YAML text into a JSON tree; a syntax error is the one error there is.
pub fn syntax(text: &str, yaml: bool) -> Result<Value, FieldError> {
    let parsed = if yaml {
        serde_yaml::from_str::<Value>(text).map_err(|e| e.to_string())
    } else {
        serde_json::from_str::<Value>(text).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| {
        let what = if yaml { "YAML" } else { "JSON" };
        FieldError::new("", format!("the document is not valid {what}: {e}"))
    })
}

/// Deserialize `tree` into `T`, collecting one error per wrongly shaped field; `prefix` is the
/// path of `tree` in the document (`""` for the document itself), prepended to every field name.
pub fn lenient<T: DeserializeOwned + Default>(mut tree: Value, prefix: &str) -> Lenient<T> {
    let mut errors = Vec::new();
    if !tree.is_object() {
        // serde would read a list as the fields in order and blame its first element.
        let what = if prefix.is_empty() {
            "a pipe definition object"
        } else {
            "an object"
        };
        errors.push(FieldError::new(
            prefix,
            format!("must be {what}, not {}", kind(&tree)),
        ));
        return Lenient {
            value: T::default(),
            errors,
        };
    }
    while errors.len() < MAX_SHAPE_ERRORS {
        let err = match serde_path_to_error::deserialize::<_, T>(&tree) {
            Ok(value) => return Lenient { value, errors },
            Err(e) => e,
        };
        let path = err.path().clone();
        let name = join(prefix, &path_name(&path));
        errors.push(FieldError::new(
            name.clone(),
            reword(&err.into_inner().to_string(), &name),
        ));
        if !remove(&mut tree, &path) {
            break;
        }
    }
    Lenient {
        value: T::default(),
        errors,
    }
}

/// Deserialize one parameter block (`tree`, at `path` in the document) into `T`, adding an error
/// per wrongly shaped field to `errs`; the fields that fit are kept.
pub fn block<T: DeserializeOwned + Default>(
    tree: &Value,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> T {
    let parsed = lenient::<T>(tree.clone(), path);
    errs.extend(parsed.errors);
    parsed.value
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn join(prefix: &str, name: &str) -> String {
    match (prefix.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) if name.starts_with('[') => format!("{prefix}{name}"),
        (false, false) => format!("{prefix}.{name}"),
    }
}

/// The path as AWS names fields: `A.B[0].C`; `""` for the document. Segments serde could not
/// follow (inside flattened blocks) are left out rather than shown as `?`.
fn path_name(path: &Path) -> String {
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Take the field at `path` out of `tree`; `false` when the path cannot be followed (then the
/// error cannot be stepped over and collecting stops). A wrong element of a list takes the whole
/// list out, so that the indices of the errors still to come stay those of the document.
fn remove(tree: &mut Value, path: &Path) -> bool {
    let mut segments: Vec<&Segment> = path.iter().collect();
    while matches!(segments.last(), Some(Segment::Seq { .. })) {
        segments.pop();
    }
    let Some((Segment::Map { key }, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = tree;
    for seg in parents {
        node = match (seg, node) {
            (Segment::Map { key }, Value::Object(m)) => match m.get_mut(key.as_str()) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Seq { index }, Value::Array(a)) => match a.get_mut(*index) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match node {
        Value::Object(m) => m.remove(key.as_str()).is_some(),
        _ => false,
    }
}

/// serde's message in the user's words: what was expected without Rust type names, what was
/// found, and for an unknown field the closest known name.
fn reword(msg: &str, field: &str) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        return unknown_field(rest);
    }
    if let Some(rest) = msg.strip_prefix("invalid type: ") {
        if let Some((found, expected)) = rest.rsplit_once(", expected ") {
            return type_message(found, expected, field);
        }
    }
    // A list where a struct was expected: serde reads it as the struct's fields in order.
    if let Some((_, expected)) = msg
        .strip_prefix("invalid length ")
        .and_then(|r| r.split_once(", expected "))
    {
        if expected.starts_with("struct ") {
            return format!("must be {}, not a list", expected_words(expected));
        }
    }
    if let Some(rest) = msg.strip_prefix("invalid value: ") {
        if let Some((found, expected)) = rest.rsplit_once(", expected ") {
            return format!(
                "must be {}, not {}",
                expected_words(expected),
                found_words(found)
            );
        }
    }
    msg.to_string()
}

/// `X`, expected one of `A`, `B`  ->  unknown field `X`; did you mean `A`?
fn unknown_field(rest: &str) -> String {
    let (name, after) = rest.split_once('`').unwrap_or((rest, ""));
    let known: Vec<&str> = after.split('`').skip(1).step_by(2).collect();
    unknown_field_message(name, &known)
}

/// The message for a field `name` that is not one of `known`: the closest known name when it
/// looks like a misspelling of it, else the list of known names.
pub fn unknown_field_message(name: &str, known: &[&str]) -> String {
    match suggest(name, known) {
        Some(s) => format!("unknown field `{name}`; did you mean `{s}`?"),
        None if known.is_empty() => format!("unknown field `{name}`: this block has no fields"),
        None => format!(
            "unknown field `{name}`; the fields here are {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The known name closest to `name`, when it is close enough to be a misspelling of it.
pub fn suggest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (strsim::levenshtein(&lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.len().max(name.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn type_message(found: &str, expected: &str, field: &str) -> String {
    if (field == "Pattern" || field.ends_with(".Pattern"))
        && matches!(found, "map" | "sequence")
        && expected == "a string"
    {
        return "Pattern must be a JSON string: quote it (Pattern: '{\"value\": ...}' in YAML, \
                \"Pattern\": \"{\\\"value\\\": ...}\" in JSON)"
            .into();
    }
    format!(
        "must be {}, not {}",
        expected_words(expected),
        found_words(found)
    )
}

fn expected_words(expected: &str) -> String {
    let e = expected.trim();
    if e == "struct PipeDefinition" || e.starts_with("struct PipeDefinition ") {
        return "a pipe definition object".into();
    }
    if e.starts_with("struct ") || e == "a map" || e.starts_with("map") {
        return "an object".into();
    }
    match e {
        "i8" | "i16" | "i32" | "i64" | "i128" | "u8" | "u16" | "u32" | "u64" | "u128" | "isize"
        | "usize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a sequence" => "a list".into(),
        "a string" | "a borrowed string" => "a string".into(),
        other => other.to_string(),
    }
}

/// serde's `Unexpected` text: `string "x"`, `integer `5``, `map`, ...
fn found_words(found: &str) -> String {
    let unquote = |s: &str| s.trim_matches('`').to_string();
    if let Some(s) = found.strip_prefix("string ") {
        return format!("the string {s}");
    }
    for p in ["integer ", "floating point "] {
        if let Some(n) = found.strip_prefix(p) {
            return format!("the number {}", unquote(n));
        }
    }
    if let Some(b) = found.strip_prefix("boolean ") {
        return unquote(b);
    }
    match found {
        "map" => "an object".into(),
        "sequence" => "a list".into(),
        "unit value" | "null" => "null".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PipeDefinition;

    fn errors(text: &str, yaml: bool) -> Vec<FieldError> {
        lenient::<PipeDefinition>(syntax(text, yaml).unwrap(), "").errors
    }

    #[test]
    fn every_shape_error_is_reported_with_its_path() {
        let errs = errors(
            r#"{"Name": 5, "Source": "smk://h:1", "Target": ["x"],
               "SourceParameters": {"SelfManagedKafkaParameters":
                 {"TopicName": "t", "StartingPostion": "LATEST", "BatchSize": "many"}}}"#,
            false,
        );
        let got: Vec<(&str, &str)> = errs
            .iter()
            .map(|e| (e.name.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("Name", "must be a string, not the number 5"),
                (
                    "SourceParameters.SelfManagedKafkaParameters.BatchSize",
                    "must be a whole number, not the string \"many\""
                ),
                (
                    "SourceParameters.SelfManagedKafkaParameters.StartingPostion",
                    "unknown field `StartingPostion`; did you mean `StartingPosition`?"
                ),
                ("Target", "must be a string, not a list"),
            ]
        );
    }

    #[test]
    fn yaml_errors_name_the_path_once_and_no_rust_types() {
        let errs = errors(
            "Name: p\nSourceParameters:\n  SelfManagedKafkaParameters:\n    BatchSize: many\n",
            true,
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].name,
            "SourceParameters.SelfManagedKafkaParameters.BatchSize"
        );
        assert_eq!(
            errs[0].message,
            "must be a whole number, not the string \"many\""
        );
        for (text, yaml) in [("- a\n- b\n", true), ("[1, 2]", false)] {
            let errs = errors(text, yaml);
            assert_eq!(errs.len(), 1);
            assert_eq!(errs[0].name, "");
            assert_eq!(
                errs[0].message,
                "must be a pipe definition object, not a list"
            );
        }
    }

    #[test]
    fn a_pattern_given_as_an_object_is_told_to_be_quoted() {
        let errs = errors(
            "SourceParameters:\n  FilterCriteria:\n    Filters:\n      - Pattern: {value: {n: [1]}}\n      - Pattern: 5\n",
            true,
        );
        assert_eq!(
            errs[0].name,
            "SourceParameters.FilterCriteria.Filters[0].Pattern"
        );
        assert!(
            errs[0]
                .message
                .starts_with("Pattern must be a JSON string: quote it"),
            "{}",
            errs[0].message
        );
        assert_eq!(
            errs[1].name,
            "SourceParameters.FilterCriteria.Filters[1].Pattern"
        );
        assert_eq!(errs[1].message, "must be a string, not the number 5");
    }

    #[test]
    fn paths_through_flattened_blocks_have_no_question_marks() {
        let errs = errors(
            r#"{"TargetParameters": {"InputTemplate": 5, "HttpParameters": {"HeaderParameter": {}}}}"#,
            false,
        );
        let names: Vec<&str> = errs.iter().map(|e| e.name.as_str()).collect();
        assert!(names.iter().all(|n| !n.contains('?')), "{names:?}");
        assert!(
            errs.iter()
                .any(|e| e.message.contains("did you mean `HeaderParameters`?")),
            "{errs:?}"
        );
    }

    #[test]
    fn syntax_errors_say_which_language() {
        let e = syntax("{\"Name\": ", false).unwrap_err();
        assert!(e.message.starts_with("the document is not valid JSON: "));
        let e = syntax("a: [", true).unwrap_err();
        assert!(e.message.starts_with("the document is not valid YAML: "));
    }

    #[test]
    fn later_checks_do_not_repeat_a_field_whose_shape_was_wrong() {
        let parsed = Lenient {
            value: (),
            errors: vec![FieldError::new("Source", "must be a string, not a list")],
        };
        let r: Result<(), _> = parsed.check(|_| {
            Err(vec![
                FieldError::new("Source", "is required"),
                FieldError::new("Name", "is required"),
                FieldError::new("SourceParameters", "x"),
            ])
        });
        let names: Vec<String> = r.unwrap_err().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["Source", "Name", "SourceParameters"]);
        assert!(overlaps("A.B", "A.B[0].C") && overlaps("A.B.C", "A.B"));
        assert!(!overlaps("A.B", "A.BC"));
    }

    #[test]
    fn suggestions_need_a_close_name() {
        assert_eq!(
            suggest("StartingPostion", &["TopicName", "StartingPosition"]),
            Some("StartingPosition")
        );
        assert_eq!(suggest("batchsize", &["BatchSize"]), Some("BatchSize"));
        assert_eq!(suggest("Color", &["TopicName", "BatchSize"]), None);
    }
}
