//! Compiling template text: finding the placeholders, deciding whether the template is JSON-shaped,
//! and, for JSON-shaped templates, a small JSON scanner that decides how each placeholder renders
//! (unquoted value, or inside a string) and rejects what would not be JSON.
//!
//! The scanner treats every placeholder as one opaque token, which is the same as substituting a
//! dummy value and validating the result, but it also knows where each placeholder stood.

use crate::error::{preview, Position, TemplateError};
use crate::path::{JsonPath, MAX_PATH_LEN};

/// What a placeholder reads: a JSON path or a reserved variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Var {
    Path(JsonPath),
    PipeArn,
    PipeName,
    SourceArn,
    EnrichmentArn,
    TargetArn,
    IngestionTime,
    /// `<aws.pipes.event>`: the original record as text.
    Event,
    /// `<aws.pipes.event.json>`: the decoded record, inserted as JSON.
    EventJson,
}

/// How a placeholder's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// In text: the string form, strings without quotes; nothing when missing.
    Text,
    /// An unquoted JSON value: the value's JSON; `""` when missing.
    Json,
    /// Inside a JSON string: the string form, escaped; nothing when missing.
    Quoted,
}

/// A placeholder found in the text: byte range of `<...>` (both brackets included).
#[derive(Debug, Clone)]
pub(crate) struct Placeholder {
    pub start: usize,
    pub end: usize,
    pub source: Var,
}

impl Placeholder {
    /// The text between `<` and `>`.
    fn content<'t>(&self, text: &'t str) -> &'t str {
        text.get(self.start + 1..self.end - 1).unwrap_or("")
    }
}

const RESERVED: &[(&str, Var)] = &[
    ("aws.pipes.pipe-arn", Var::PipeArn),
    ("aws.pipes.pipe-name", Var::PipeName),
    ("aws.pipes.source-arn", Var::SourceArn),
    ("aws.pipes.enrichment-arn", Var::EnrichmentArn),
    ("aws.pipes.target-arn", Var::TargetArn),
    ("aws.pipes.event.ingestion-time", Var::IngestionTime),
    ("aws.pipes.event", Var::Event),
    ("aws.pipes.event.json", Var::EventJson),
];

fn parse_source(content: &str) -> Result<Var, String> {
    if let Some(rest) = content.strip_prefix('$') {
        let len = content.chars().count();
        if len > MAX_PATH_LEN {
            return Err(format!(
                "the JSON path is {len} characters long; the limit is {MAX_PATH_LEN}"
            ));
        }
        if !(rest.is_empty() || rest.starts_with(['.', '['])) {
            return Err(format!(
                "a JSON path starts with '$.' (<$.{}>)",
                preview(rest)
            ));
        }
        return JsonPath::parse_syntax(content)
            .map(Var::Path)
            .map_err(|e| format!("{} (character {} of the path)", e.reason, e.offset));
    }
    RESERVED
        .iter()
        .find(|(name, _)| *name == content)
        .map(|(_, source)| source.clone())
        .ok_or_else(|| {
            let names: Vec<&str> = RESERVED.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown reserved variable; the reserved variables are {}",
                names.join(", ")
            )
        })
}

/// Finds every placeholder. A `<` opens a placeholder only when followed by `$` (a JSON path) or
/// `aws.` (a reserved variable); any other `<` is plain text. A placeholder ends at the first `>`.
pub(crate) fn find_placeholders(text: &str) -> Result<Vec<Placeholder>, TemplateError> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(rel) = text.get(from..).and_then(|rest| rest.find('<')) {
        let start = from + rel;
        let rest = &text[start + 1..];
        if !(rest.starts_with('$') || rest.starts_with("aws.")) {
            from = start + 1;
            continue;
        }
        let at = || Position::of(text, start);
        let Some(len) = rest.find('>') else {
            return Err(TemplateError::UnterminatedPlaceholder { at: at() });
        };
        let content = &rest[..len];
        let source = parse_source(content).map_err(|reason| TemplateError::InvalidPlaceholder {
            placeholder: preview(content),
            at: at(),
            reason,
        })?;
        let end = start + 1 + len + 1;
        out.push(Placeholder { start, end, source });
        from = end;
    }
    Ok(out)
}

fn is_json_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// A template is JSON-shaped, and must then be valid JSON (AWS refuses it otherwise), when,
/// without surrounding JSON whitespace, it starts with `{` and ends with `}` or starts with `[` and
/// ends with `]`, or when it starts like JSON whatever its end: `{` followed by `"` or `}`, or `[`
/// followed by a JSON value's first character other than a letter or a placeholder. So a missing
/// closing brace is an error, while text such as `{name} says ...` or `[INFO] ...` stays text.
/// Returns the pair.
pub(crate) fn json_shape(text: &str) -> Option<(char, char)> {
    let t = text.trim_matches(|c: char| c.is_ascii() && is_json_ws(c as u8));
    let pair = match (t.chars().next(), t.chars().next_back()) {
        (Some('{'), Some('}')) if t.len() >= 2 => return Some(('{', '}')),
        (Some('['), Some(']')) if t.len() >= 2 => return Some(('[', ']')),
        (Some('{'), _) => ('{', '}'),
        (Some('['), _) => ('[', ']'),
        _ => return None,
    };
    let after = t[1..].trim_start_matches(|c: char| c.is_ascii() && is_json_ws(c as u8));
    let starts_like_json = match pair.0 {
        '{' => after.starts_with(['"', '}']),
        _ => after.starts_with([
            '"', '{', '[', ']', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9',
        ]),
    };
    starts_like_json.then_some(pair)
}

/// Decides the mode of every placeholder of a JSON-shaped template, or says why it is not JSON.
pub(crate) fn scan_json(
    text: &str,
    placeholders: &[Placeholder],
    shape: (char, char),
) -> Result<Vec<Mode>, TemplateError> {
    Scanner {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        phs: placeholders,
        next_ph: 0,
        modes: vec![Mode::Json; placeholders.len()],
        shape,
    }
    .run()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A value (top level, after `:` or after `,` in an array).
    Value,
    /// A value or `]` (right after `[`).
    FirstValue,
    /// A key or `}` (right after `{`).
    FirstKey,
    /// A key (after `,` in an object).
    Key,
    Colon,
    CommaOrClose,
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    phs: &'a [Placeholder],
    next_ph: usize,
    modes: Vec<Mode>,
    shape: (char, char),
}

impl Scanner<'_> {
    fn run(mut self) -> Result<Vec<Mode>, TemplateError> {
        // Open containers, innermost last: b'{' or b'['.
        let mut stack: Vec<u8> = Vec::new();
        let mut expect = Expect::Value;
        loop {
            self.skip_ws();
            if stack.is_empty() && expect == Expect::CommaOrClose {
                if self.pos < self.bytes.len() {
                    return Err(self.err(
                        self.pos,
                        format!("unexpected {} after the end of the JSON value", self.here()),
                    ));
                }
                break;
            }
            if let Some(i) = self.placeholder_here() {
                match expect {
                    Expect::Value | Expect::FirstValue => {
                        self.take_placeholder(i, Mode::Json);
                        expect = Expect::CommaOrClose;
                        continue;
                    }
                    Expect::FirstKey | Expect::Key => return Err(self.as_key(i)),
                    Expect::Colon | Expect::CommaOrClose => {}
                }
            }
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(self.err(
                    self.pos,
                    "unexpected end of the template (an object or array is not closed)",
                ));
            };
            match expect {
                Expect::Value | Expect::FirstValue => match b {
                    b'{' => {
                        stack.push(b'{');
                        self.pos += 1;
                        expect = Expect::FirstKey;
                    }
                    b'[' => {
                        stack.push(b'[');
                        self.pos += 1;
                        expect = Expect::FirstValue;
                    }
                    b']' if expect == Expect::FirstValue => {
                        stack.pop();
                        self.pos += 1;
                        expect = Expect::CommaOrClose;
                    }
                    b'"' => {
                        self.string(false)?;
                        expect = Expect::CommaOrClose;
                    }
                    b'-' | b'0'..=b'9' => {
                        self.number()?;
                        expect = Expect::CommaOrClose;
                    }
                    b't' | b'f' | b'n' => {
                        self.literal()?;
                        expect = Expect::CommaOrClose;
                    }
                    b']' | b'}' if !stack.is_empty() => {
                        return Err(self.err(
                            self.pos,
                            format!(
                                "expected a value, found {} (trailing commas are not allowed)",
                                self.here()
                            ),
                        ))
                    }
                    b'<' => return Err(self.not_a_placeholder()),
                    _ => {
                        return Err(
                            self.err(self.pos, format!("expected a value, found {}", self.here()))
                        )
                    }
                },
                Expect::FirstKey | Expect::Key => {
                    match b {
                        b'"' => {
                            self.string(true)?;
                            expect = Expect::Colon;
                        }
                        b'}' if expect == Expect::FirstKey => {
                            stack.pop();
                            self.pos += 1;
                            expect = Expect::CommaOrClose;
                        }
                        b'}' => return Err(self.err(
                            self.pos,
                            "expected an object key, found '}' (trailing commas are not allowed)",
                        )),
                        _ => {
                            return Err(self.err(
                                self.pos,
                                format!(
                                    "expected an object key in double quotes, found {}",
                                    self.here()
                                ),
                            ))
                        }
                    }
                }
                Expect::Colon => {
                    if b != b':' {
                        return Err(self.err(
                            self.pos,
                            format!("expected ':' after the object key, found {}", self.here()),
                        ));
                    }
                    self.pos += 1;
                    expect = Expect::Value;
                }
                Expect::CommaOrClose => match (stack.last(), b) {
                    (Some(b'{'), b',') => {
                        self.pos += 1;
                        expect = Expect::Key;
                    }
                    (Some(b'['), b',') => {
                        self.pos += 1;
                        expect = Expect::Value;
                    }
                    (Some(b'{'), b'}') | (Some(b'['), b']') => {
                        stack.pop();
                        self.pos += 1;
                    }
                    (Some(b'{'), _) => {
                        return Err(self.err(
                            self.pos,
                            format!(
                                "expected ',' or '}}' after an object member, found {}",
                                self.here()
                            ),
                        ))
                    }
                    _ => {
                        return Err(self.err(
                            self.pos,
                            format!(
                                "expected ',' or ']' after an array element, found {}",
                                self.here()
                            ),
                        ))
                    }
                },
            }
        }
        if self.next_ph != self.phs.len() {
            // Every placeholder starts with '<', which no JSON token consumes, so the scan meets
            // them all; this only guards that reasoning.
            let at = self.phs.get(self.next_ph).map_or(0, |p| p.start);
            return Err(self.err(at, "placeholder outside of the JSON structure"));
        }
        Ok(self.modes)
    }

    fn err(&self, at: usize, reason: impl Into<String>) -> TemplateError {
        TemplateError::InvalidJson {
            open: self.shape.0,
            close: self.shape.1,
            at: Position::of(self.text, at),
            reason: reason.into(),
        }
    }

    /// `<value.id>` where a value belongs: the path lacks its `$.`.
    fn not_a_placeholder(&self) -> TemplateError {
        let rest = &self.text[self.pos + 1..];
        let inner = rest.find('>').map_or(rest, |end| &rest[..end]);
        self.err(
            self.pos,
            format!(
                "<{}> is not a placeholder: a JSON path starts with '$.' (<$.{}>), a reserved \
                 variable with 'aws.pipes.' (<aws.pipes.pipe-name>)",
                preview(inner),
                preview(inner.trim_start_matches(['$', '.']))
            ),
        )
    }

    fn as_key(&self, i: usize) -> TemplateError {
        let p = &self.phs[i];
        TemplateError::PlaceholderAsKey {
            placeholder: preview(p.content(self.text)),
            at: Position::of(self.text, p.start),
        }
    }

    /// What is at the current position, for messages.
    fn here(&self) -> String {
        if let Some(i) = self.placeholder_here() {
            return format!("placeholder <{}>", preview(self.phs[i].content(self.text)));
        }
        match self.text.get(self.pos..).and_then(|s| s.chars().next()) {
            Some(c) => format!("{c:?}"),
            None => "the end of the template".to_owned(),
        }
    }

    fn placeholder_here(&self) -> Option<usize> {
        let p = self.phs.get(self.next_ph)?;
        (p.start == self.pos).then_some(self.next_ph)
    }

    fn take_placeholder(&mut self, i: usize, mode: Mode) {
        self.modes[i] = mode;
        self.pos = self.phs[i].end;
        self.next_ph += 1;
    }

    fn skip_ws(&mut self) {
        while self.bytes.get(self.pos).is_some_and(|&b| is_json_ws(b)) {
            self.pos += 1;
        }
    }

    /// A string starting at the current `"`. Placeholders inside a value string render quoted;
    /// inside a key they are an error.
    fn string(&mut self, key: bool) -> Result<(), TemplateError> {
        let open = self.pos;
        self.pos += 1;
        loop {
            if let Some(i) = self.placeholder_here() {
                if key {
                    return Err(self.as_key(i));
                }
                if self.phs[i].source == Var::EventJson {
                    return Err(TemplateError::EventJsonNotAValue {
                        at: Position::of(self.text, self.phs[i].start),
                    });
                }
                self.take_placeholder(i, Mode::Quoted);
                continue;
            }
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(self.err(open, "this string is not closed"));
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' => self.escape()?,
                0..=0x1f => {
                    return Err(self.err(
                        self.pos,
                        format!("control character U+{b:04X} must be escaped in a string"),
                    ))
                }
                _ => self.pos += 1,
            }
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.bytes.get(at..at + 4)?;
        let s = std::str::from_utf8(digits).ok()?;
        if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(s, 16).ok()
    }

    fn escape(&mut self) -> Result<(), TemplateError> {
        let at = self.pos;
        match self.bytes.get(self.pos + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 2;
                Ok(())
            }
            Some(b'u') => {
                let unit = self
                    .hex4(self.pos + 2)
                    .ok_or_else(|| self.err(at, "\\u must be followed by four hex digits"))?;
                self.pos += 6;
                // Surrogates must come in pairs, or the output would not be valid JSON text.
                if (0xDC00..0xE000).contains(&unit) {
                    return Err(self.err(at, "unpaired surrogate in a \\u escape"));
                }
                if (0xD800..0xDC00).contains(&unit) {
                    let low = if self.bytes.get(self.pos..self.pos + 2) == Some(b"\\u") {
                        self.hex4(self.pos + 2)
                    } else {
                        None
                    };
                    match low {
                        Some(low) if (0xDC00..0xE000).contains(&low) => self.pos += 6,
                        _ => return Err(self.err(at, "unpaired surrogate in a \\u escape")),
                    }
                }
                Ok(())
            }
            _ => Err(self.err(
                at,
                "invalid escape sequence (valid: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
            )),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), TemplateError> {
        let start = self.pos;
        let bad = |s: &Self| s.err(start, "invalid number");
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.bytes.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(bad(self)),
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(bad(self));
            }
        }
        if matches!(self.bytes.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.bytes.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(bad(self));
            }
        }
        // Valid JSON grammar, but a number beyond f64 (1e400) is rejected by most parsers,
        // serde_json included; refuse it here so a JSON template always renders parsable JSON.
        let text = self.text.get(start..self.pos).unwrap_or("0");
        if text.parse::<f64>().map_or(true, |f| f.is_infinite()) {
            return Err(self.err(start, "number out of range"));
        }
        Ok(())
    }

    fn literal(&mut self) -> Result<(), TemplateError> {
        let rest = &self.bytes[self.pos..];
        for word in ["true", "false", "null"] {
            if rest.starts_with(word.as_bytes()) {
                self.pos += word.len();
                return Ok(());
            }
        }
        Err(self.err(self.pos, format!("expected a value, found {}", self.here())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dollar_and_aws_open_placeholders() {
        let text = "a < b <$.x> <b>bold</b> <aws.pipes.pipe-name> <awsome> 3<4>2";
        let phs = find_placeholders(text).unwrap();
        let found: Vec<&str> = phs.iter().map(|p| &text[p.start..p.end]).collect();
        assert_eq!(found, ["<$.x>", "<aws.pipes.pipe-name>"]);
    }

    #[test]
    fn json_shape_needs_both_ends() {
        assert_eq!(json_shape(" {\"a\": 1}\n"), Some(('{', '}')));
        assert_eq!(json_shape("[1]"), Some(('[', ']')));
        assert_eq!(json_shape("{} and {}"), Some(('{', '}')));
        assert_eq!(json_shape("[INFO] <$.msg>"), None);
        assert_eq!(json_shape("{name} says hi"), None);
        assert_eq!(json_shape("\"{}\""), None);
        assert_eq!(json_shape("{"), None);
        assert_eq!(json_shape("}"), None);
        assert_eq!(json_shape(""), None);
    }

    fn modes(text: &str) -> Result<Vec<Mode>, TemplateError> {
        let phs = find_placeholders(text)?;
        scan_json(text, &phs, json_shape(text).unwrap())
    }

    #[test]
    fn placeholders_get_their_mode_from_where_they_stand() {
        assert_eq!(
            modes(r#"{"a": <$.a>, "b": "<$.b>", "c": ["x <$.c> y", <$.d>], "e": {"f": <$.e>}}"#)
                .unwrap(),
            [
                Mode::Json,
                Mode::Quoted,
                Mode::Quoted,
                Mode::Json,
                Mode::Json
            ]
        );
        assert_eq!(modes("[<$.a>,<$.b>]").unwrap(), [Mode::Json, Mode::Json]);
        assert_eq!(modes(r#"{"s": "\"<$.a>\\"}"#).unwrap(), [Mode::Quoted]);
    }

    #[test]
    fn accepts_every_json_token() {
        let ok = [
            r#"{"a": [true, false, null, 0, -0, 1.5, -2e10, 3E+2, 4e-3, "\u00e9\ud83d\ude00\n\/"]}"#,
            "{}",
            "[]",
            "[[], {}, [{}]]",
            " \t\r\n{ \"a\" : 1 } \n",
        ];
        for t in ok {
            assert!(modes(t).is_ok(), "{t}");
            assert!(serde_json::from_str::<serde_json::Value>(t).is_ok(), "{t}");
        }
    }
}
