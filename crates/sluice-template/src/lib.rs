//! EventBridge Pipes `InputTemplate`s and the JSON path subset: parse, validate and render.
//! Pure: no I/O, no clock; the caller passes the record and the reserved variables.
//!
//! Modules, and what each owns:
//! - [`path`] owns the JSON path subset (`$.a.b[3].*`) and resolving it against a record;
//! - `compile` finds placeholders and runs the JSON scanner that decides how each one renders;
//! - [`template`] owns the compiled [`Template`] and its per-record rendering;
//! - `write` writes JSON values as JSON or in string form, raw or escaped;
//! - [`error`] owns [`TemplateError`];
//! - this file owns dynamic target parameters ([`DynamicParam`], [`resolve_dynamic`]).
//!
//! ```
//! use serde_json::json;
//! use sluice_template::{Context, Template};
//!
//! let t = Template::compile(r#"{"id": <$.value.id>, "msg": "Order <$.value.id>"}"#).unwrap();
//! let out = t.render(&json!({"value": {"id": "A1"}}), &Context::default());
//! assert_eq!(out, r#"{"id": "A1", "msg": "Order A1"}"#);
//! assert!(t.is_json());
//! ```

mod compile;
pub mod error;
pub mod path;
pub mod template;
mod write;

use std::borrow::Cow;

use serde_json::Value;

pub use error::{Position, TemplateError};
pub use path::{JsonPath, MAX_PATH_LEN};
pub use template::{Context, Form, RenderReport, Template, MAX_TEMPLATE_LEN};

/// A target parameter that may be dynamic: a JSON path (it starts with `$.`) resolved against
/// each record, or a literal. Compile once per pipe with [`DynamicParam::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DynamicParam {
    Literal(String),
    Path(JsonPath),
}

impl DynamicParam {
    /// A parameter starting with `$.` must be a valid path; anything else is a literal.
    pub fn parse(param: &str) -> Result<DynamicParam, TemplateError> {
        if param.starts_with("$.") {
            JsonPath::parse(param).map(DynamicParam::Path)
        } else {
            Ok(DynamicParam::Literal(param.to_owned()))
        }
    }

    /// Whether the value depends on the record.
    pub fn is_dynamic(&self) -> bool {
        matches!(self, DynamicParam::Path(_))
    }

    /// The value for one record: the literal, or the string form of what the path resolves to
    /// (strings without quotes; numbers, booleans and `null` as in JSON; objects and arrays as
    /// compact JSON). `None` when the path resolves to nothing.
    pub fn resolve<'a>(&'a self, event: &'a Value) -> Option<Cow<'a, str>> {
        match self {
            DynamicParam::Literal(s) => Some(Cow::Borrowed(s)),
            DynamicParam::Path(path) => match path.resolve(event)? {
                Cow::Borrowed(Value::String(s)) => Some(Cow::Borrowed(s)),
                Cow::Owned(Value::String(s)) => Some(Cow::Owned(s)),
                v => Some(Cow::Owned(string_form(&v))),
            },
        }
    }
}

fn string_form(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null | Value::Bool(_) | Value::Number(_) => v.to_string(),
        Value::Array(_) | Value::Object(_) => write::compact_json(v),
    }
}

/// Resolves one dynamic parameter (see [`DynamicParam::resolve`]); prefer [`DynamicParam`] to
/// parse once per pipe rather than once per record.
pub fn resolve_dynamic(param: &str, event: &Value) -> Result<Option<String>, TemplateError> {
    Ok(DynamicParam::parse(param)?
        .resolve(event)
        .map(Cow::into_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dynamic_parameters_resolve_paths_and_keep_literals() {
        let e = json!({"value": {"customerId": "c-42", "n": 7, "ok": true, "none": null,
                                 "tags": ["a", "b"], "o": {"k": "v"}}});
        let cases: &[(&str, Option<&str>)] = &[
            ("$.value.customerId", Some("c-42")),
            ("$.value.n", Some("7")),
            ("$.value.ok", Some("true")),
            ("$.value.none", Some("null")),
            ("$.value.tags", Some(r#"["a","b"]"#)),
            ("$.value.tags[1]", Some("b")),
            ("$.value.tags.*", Some(r#"["a","b"]"#)),
            ("$.value.o", Some(r#"{"k":"v"}"#)),
            ("$.value.missing", None),
            ("literal", Some("literal")),
            ("", Some("")),
            ("$", Some("$")),
            ("$value", Some("$value")),
            ("a $.b", Some("a $.b")),
        ];
        for (param, want) in cases {
            let got = resolve_dynamic(param, &e).unwrap();
            assert_eq!(got.as_deref(), *want, "param {param:?}");
        }
    }

    #[test]
    fn dynamic_parameters_borrow_when_they_can() {
        let e = json!({"k": "v"});
        let p = DynamicParam::parse("$.k").unwrap();
        assert!(p.is_dynamic());
        assert!(matches!(p.resolve(&e), Some(Cow::Borrowed("v"))));
        let lit = DynamicParam::parse("x").unwrap();
        assert!(!lit.is_dynamic());
    }

    #[test]
    fn invalid_dynamic_path_is_a_user_error() {
        let err = resolve_dynamic("$.a..b", &json!({})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid JSON path '$.a..b' at character 4: recursive descent ('..') is not supported"
        );
        assert!(err.is_user_error());
        assert!(!err.is_retryable());
    }
}
