//! Error types: why a pattern was rejected, why an event could not be read.
//!
//! House convention: every error type says whether retrying could help (`is_retryable`) and
//! whether the user caused it (`is_user_error`). Messages are user-facing, AWS-style: they name
//! the field path and the reason, e.g. `"qty" must be an object or an array`.

/// The pattern limits (FilterCriteria, per AWS).
pub const MAX_PATTERN_CHARS: usize = 4096;
/// At most this many filters per pipe.
pub const MAX_FILTERS: usize = 5;
/// At most this many `$or` combinations per pattern.
pub const MAX_COMBINATIONS: usize = 1000;

/// Why a filter pattern is invalid. `Display` is the message for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern is not JSON at all.
    #[error("Event pattern is not valid JSON: {reason} at byte offset {offset}")]
    Json {
        /// Byte offset in the pattern text.
        offset: usize,
        /// What the parser expected.
        reason: String,
    },
    /// The pattern is JSON but not an object.
    #[error("Event pattern must be a JSON object")]
    NotAnObject,
    /// Over 4,096 characters.
    #[error("Event pattern is {chars} characters long; the maximum is {MAX_PATTERN_CHARS}")]
    TooLong {
        /// Characters in the pattern.
        chars: usize,
    },
    /// More than 5 filters.
    #[error("FilterCriteria has {count} filters; the maximum is {MAX_FILTERS}")]
    TooManyFilters {
        /// Filters given.
        count: usize,
    },
    /// `$or` expands to too many combinations.
    #[error(
        "Event pattern has {count} combinations of $or branches; the maximum is {MAX_COMBINATIONS}"
    )]
    TooManyCombinations {
        /// Combinations (saturating).
        count: usize,
    },
    /// A field of the pattern is invalid; `path` names it (dot-separated, `""` for the root).
    #[error("{}", field_message(path, reason))]
    Field {
        /// Dot-separated path of the offending field.
        path: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A Kafka-source pattern names a field that AWS sets per pipe and does not let filters use.
    #[error(
        "\"{field}\" cannot be used in a filter pattern for a Kafka source: it is not filterable"
    )]
    NotFilterable {
        /// The field name.
        field: String,
    },
    /// One filter of several is invalid (filters are numbered from 1).
    #[error("Filter {number}: {inner}")]
    InFilter {
        /// 1-based position of the filter.
        number: usize,
        /// Why it is invalid.
        inner: Box<PatternError>,
    },
}

fn field_message(path: &str, reason: &str) -> String {
    if path.is_empty() {
        format!("Event pattern {reason}")
    } else {
        format!("\"{path}\" {reason}")
    }
}

impl PatternError {
    pub(crate) fn field(path: &str, reason: impl Into<String>) -> Self {
        PatternError::Field {
            path: path.to_string(),
            reason: reason.into(),
        }
    }

    /// The dot-separated path of the offending field, when the error is about one field.
    pub fn path(&self) -> Option<&str> {
        match self {
            PatternError::Field { path, .. } => Some(path),
            PatternError::NotFilterable { field } => Some(field),
            PatternError::InFilter { inner, .. } => inner.path(),
            _ => None,
        }
    }

    /// Which filter (1-based) was invalid, when several were compiled together.
    pub fn filter_number(&self) -> Option<usize> {
        match self {
            PatternError::InFilter { number, .. } => Some(*number),
            _ => None,
        }
    }

    /// Never: the same pattern fails the same way every time.
    pub fn is_retryable(&self) -> bool {
        false
    }

    /// Always: the pattern came from the user (a `ValidationException`).
    pub fn is_user_error(&self) -> bool {
        true
    }
}

/// The event given to [`crate::Matcher::matches_json`] is not valid JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Event is not valid JSON: {reason} at byte {offset}")]
pub struct EventError {
    /// Byte offset of the problem.
    pub offset: usize,
    /// What was wrong.
    pub reason: String,
}

impl EventError {
    /// Never: the same event fails the same way every time.
    pub fn is_retryable(&self) -> bool {
        false
    }

    /// Always: the event came from the user.
    pub fn is_user_error(&self) -> bool {
        true
    }
}

impl From<crate::json::SyntaxError> for EventError {
    fn from(e: crate::json::SyntaxError) -> Self {
        EventError {
            offset: e.offset,
            reason: e.reason.to_string(),
        }
    }
}
