//! [`FieldError`]: one entry of AWS's `ValidationException.fieldList`, the shape every validation
//! in the crate reports (pipe definitions, target parameters, `[targets]` configuration). A leaf:
//! it imports nothing of the crate, so any layer may use it.

use serde::Serialize;

/// One entry of AWS's `fieldList`: which field is wrong and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's path in the definition, AWS names joined by dots (`SourceParameters.SelfManagedKafkaParameters.BatchSize`).
    pub name: String,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

impl FieldError {
    /// A field error for `name`.
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            message: message.into(),
        }
    }
}
