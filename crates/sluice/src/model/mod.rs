//! Pipe definitions: the user-written shape ([`definition`]), loading it from JSON or YAML files, and
//! the pure validation ([`validate`]) that turns it into a [`PipeSpec`] the runtime can trust, or into
//! every field error at once in AWS's `ValidationException.fieldList` shape.

pub mod concurrency;
pub mod definition;
pub mod failure;
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
/// come back as a field error naming the path.
pub fn parse_definition(text: &str, yaml: bool) -> Result<PipeDefinition, ValidationError> {
    let result = if yaml {
        let de = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de)
            .map_err(|e| (e.path().to_string(), e.inner().to_string()))
    } else {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de)
            .map_err(|e| (e.path().to_string(), e.inner().to_string()))
    };
    result.map_err(|(path, msg)| ValidationError {
        fields: vec![FieldError::new(
            if path == "." { String::new() } else { path },
            msg,
        )],
    })
}

/// Read a pipe file; `.yaml`/`.yml` files are YAML, anything else JSON.
pub fn load_definition(path: &Path) -> Result<PipeDefinition, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    Ok(parse_definition(&text, yaml)?)
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
