//! The one error type of this crate: every way a template, a JSON path or a dynamic parameter can be
//! rejected, with a message a user can act on (where it is, what is wrong).

use std::fmt;

/// A place in the template text: 1-based line and column, counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The position of byte offset `byte` of `text` (clamped to the text, and to a char boundary).
    pub(crate) fn of(text: &str, byte: usize) -> Position {
        let mut byte = byte.min(text.len());
        while !text.is_char_boundary(byte) {
            byte -= 1;
        }
        let before = &text[..byte];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Position { line, column }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a template or a path was rejected. Every variant is the user's to fix: nothing here is
/// retryable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    #[error("InputTemplate is {len} characters long; the limit is {max}")]
    TemplateTooLong { len: usize, max: usize },

    #[error("JSON path '{path}' is {len} characters long; the limit is {max}")]
    PathTooLong {
        path: String,
        len: usize,
        max: usize,
    },

    /// `offset` is the 1-based character in the path where the problem is.
    #[error("invalid JSON path '{path}' at character {offset}: {reason}")]
    InvalidPath {
        path: String,
        offset: usize,
        reason: String,
    },

    #[error("invalid placeholder <{placeholder}> at {at}: {reason}")]
    InvalidPlaceholder {
        placeholder: String,
        at: Position,
        reason: String,
    },

    #[error(
        "placeholder starting at {at} has no closing '>' ('<' and '>' cannot be escaped in an \
         InputTemplate)"
    )]
    UnterminatedPlaceholder { at: Position },

    #[error(
        "<aws.pipes.event.json> at {at} can only be used as an unquoted value in a JSON \
         template, for example {{\"event\": <aws.pipes.event.json>}}"
    )]
    EventJsonNotAValue { at: Position },

    #[error(
        "placeholder <{placeholder}> at {at} is used as an object key; placeholders can only \
         be used as values"
    )]
    PlaceholderAsKey { placeholder: String, at: Position },

    #[error(
        "InputTemplate starts like JSON (with '{open}'), so it must be valid JSON, but it is not \
         at {at}: {reason}"
    )]
    InvalidJson {
        open: char,
        close: char,
        at: Position,
        reason: String,
    },
}

impl TemplateError {
    /// House convention: whether trying the same thing again could succeed. Never, here.
    pub fn is_retryable(&self) -> bool {
        false
    }

    /// House convention: whether the user (not the system) has to fix something. Always, here.
    pub fn is_user_error(&self) -> bool {
        true
    }
}

/// Shortens user text quoted in a message so that one bad input cannot produce a huge message.
pub(crate) fn preview(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}...", &text[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_counts_lines_and_characters() {
        let text = "ab\ncé<d";
        assert_eq!(Position::of(text, 0), Position { line: 1, column: 1 });
        assert_eq!(Position::of(text, 3), Position { line: 2, column: 1 });
        // 'é' is two bytes but one column.
        assert_eq!(Position::of(text, 6), Position { line: 2, column: 3 });
        // Past the end and inside a char are clamped, never a panic.
        assert_eq!(Position::of(text, 100), Position { line: 2, column: 5 });
        assert_eq!(Position::of(text, 5), Position { line: 2, column: 2 });
    }

    #[test]
    fn errors_are_user_errors_and_not_retryable() {
        let e = TemplateError::TemplateTooLong {
            len: 9000,
            max: 8192,
        };
        assert!(e.is_user_error());
        assert!(!e.is_retryable());
        assert_eq!(
            e.to_string(),
            "InputTemplate is 9000 characters long; the limit is 8192"
        );
    }

    #[test]
    fn preview_truncates_long_text_on_a_char_boundary() {
        assert_eq!(preview("short"), "short");
        let long = "é".repeat(100);
        let p = preview(&long);
        assert!(p.ends_with("..."));
        assert_eq!(p.chars().count(), 83);
    }
}
