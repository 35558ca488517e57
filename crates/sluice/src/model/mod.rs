//! Pipe definitions: the user-written shape ([`definition`]), loading it from JSON or YAML files, and
//! the pure validation ([`validate`]) that turns it into a [`PipeSpec`] the runtime can trust, or into
//! every field error at once in AWS's `ValidationException.fieldList` shape.

pub mod concurrency;
pub mod definition;
pub mod failure;
pub mod offsets;
pub mod parse;
pub mod timestamp;
pub mod update;
pub mod validate;

use std::fmt;
use std::path::Path;

pub use crate::field_error::FieldError;
pub use definition::PipeDefinition;
pub use validate::{
    validate, HttpDelivery, KafkaSourceKind, KafkaSourceSpec, PipeSpec, StartingPosition,
    ValidationContext,
};

/// Every field error found in a definition. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    /// The errors, in the order the fields were checked.
    pub fields: Vec<FieldError>,
}

impl ValidationError {
    /// Always the user's to fix; retrying the same definition cannot help.
    pub fn is_user_error(&self) -> bool {
        true
    }

    /// Validation errors never go away on their own.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} validation error(s) detected", self.fields.len())?;
        for e in &self.fields {
            write!(f, "\n  {}: {}", e.name, e.message)?;
        }
        Ok(())
    }
}

/// Why a pipe file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a definition (syntax, wrong types, unknown fields).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

/// Parse a definition from JSON or YAML text. Syntax and shape errors (wrong type, unknown field)
/// come back as field errors naming the path, every one of them.
pub fn parse_definition(text: &str, yaml: bool) -> Result<PipeDefinition, ValidationError> {
    let parsed = parse_lenient(text, yaml)?;
    if parsed.errors.is_empty() {
        Ok(parsed.value)
    } else {
        Err(ValidationError {
            fields: parsed.errors,
        })
    }
}

/// Parse a definition as far as its shape allows: the definition without its wrongly shaped
/// fields, and an error for each of them (see [`parse`]). Only a syntax error fails outright.
pub fn parse_lenient(
    text: &str,
    yaml: bool,
) -> Result<parse::Lenient<PipeDefinition>, ValidationError> {
    let tree = parse::syntax(text, yaml).map_err(|e| ValidationError { fields: vec![e] })?;
    Ok(parse::lenient(tree, ""))
}

/// Parse and validate in one pass: every shape error and every validation error of the fields
/// whose shape was right. `check` is the validation (`validate`, or the API's rules).
pub fn parse_and_check<R>(
    text: &str,
    yaml: bool,
    check: impl FnOnce(&PipeDefinition) -> Result<R, ValidationError>,
) -> Result<R, ValidationError> {
    parse_lenient(text, yaml)?
        .check(|def| check(def).map_err(|e| e.fields))
        .map_err(|fields| ValidationError { fields })
}

/// Read a pipe file's text and whether it is YAML (`.yaml`/`.yml`; anything else is JSON).
pub fn read_definition(path: &Path) -> Result<(String, bool), LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    Ok((text, yaml))
}

/// Read a pipe file; `.yaml`/`.yml` files are YAML, anything else JSON.
pub fn load_definition(path: &Path) -> Result<PipeDefinition, LoadError> {
    let (text, yaml) = read_definition(path)?;
    Ok(parse_definition(&text, yaml)?)
}

/// Read and validate a pipe file, reporting every shape and validation error at once.
pub fn load_and_check<R>(
    path: &Path,
    check: impl FnOnce(&PipeDefinition) -> Result<R, ValidationError>,
) -> Result<R, LoadError> {
    let (text, yaml) = read_definition(path)?;
    Ok(parse_and_check(&text, yaml, check)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let err = parse_definition(
            r#"{"Name":"p","SourceParameters":{"SelfManagedKafkaParameters":{"TopicName":"t","BatchSzie":5}}}"#,
            false,
        )
        .unwrap_err();
        assert_eq!(err.fields.len(), 1);
        assert_eq!(
            err.fields[0].name,
            "SourceParameters.SelfManagedKafkaParameters.BatchSzie"
        );
        assert!(err.fields[0].message.contains("unknown field `BatchSzie`"));
    }

    #[test]
    fn wrong_type_is_named_with_its_path() {
        let err = parse_definition(
            "Name: p\nSourceParameters:\n  SelfManagedKafkaParameters:\n    BatchSize: many\n",
            true,
        )
        .unwrap_err();
        assert_eq!(
            err.fields[0].name,
            "SourceParameters.SelfManagedKafkaParameters.BatchSize"
        );
    }

    #[test]
    fn one_pass_reports_shape_and_validation_errors_together() {
        let err = parse_and_check(
            r#"{"Name":"bad name!","Source":"smk://h:1","Target":"http://x/",
               "SourceParameters":{"SelfManagedKafkaParameters":{"TopicName":"t","BatchSize":"ten","StartingPostion":"LATEST"}}}"#,
            false,
            |d| validate(d, &ValidationContext::default()),
        )
        .unwrap_err();
        let names: Vec<&str> = err.fields.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "SourceParameters.SelfManagedKafkaParameters.BatchSize",
                "SourceParameters.SelfManagedKafkaParameters.StartingPostion",
                "Name",
            ]
        );
    }

    #[test]
    fn yaml_and_json_give_the_same_definition() {
        let json = parse_definition(
            r#"{"Name":"p","Source":"smk://h:9092","Target":"http://x/","SourceParameters":{"SelfManagedKafkaParameters":{"TopicName":"t","BatchSize":5}}}"#,
            false,
        )
        .unwrap();
        let yaml = parse_definition(
            "Name: p\nSource: smk://h:9092\nTarget: http://x/\nSourceParameters:\n  SelfManagedKafkaParameters:\n    TopicName: t\n    BatchSize: 5\n",
            true,
        )
        .unwrap();
        assert_eq!(json, yaml);
    }
}
