//! A small validating JSON scanner over bytes.
//!
//! This module owns reading JSON text: the event scanner ([`Scanner`]) that the evaluator drives
//! field by field (skipping whatever the patterns do not name without building a tree), and the
//! tree parser ([`parse_tree`]) used for patterns, which keeps numbers as their exact text.
//! Everything here is iterative or depth-bounded so that no input can overflow the stack.

use std::fmt;

/// Why a JSON text was rejected, and where (byte offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset of the offending input.
    pub offset: usize,
    /// What was wrong.
    pub reason: &'static str,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

pub(crate) type JResult<T> = Result<T, SyntaxError>;

/// Byte classes inside a string: 0 = ordinary, 1 = needs attention (`"`, `\`, control byte).
static STRING_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `x` equal to `c` (exact up to the first match; SWAR).
#[inline(always)]
fn eq_mask(x: u64, c: u8) -> u64 {
    let y = x ^ (LO * u64::from(c));
    y.wrapping_sub(LO) & !y & HI
}

/// Index of the first byte at or after `i` for which `hit` (8 bytes at a time) or `one`
/// (the scalar tail) says stop; `b.len()` if none.
#[inline(always)]
fn scan(b: &[u8], mut i: usize, hit: impl Fn(u64) -> u64, one: impl Fn(u8) -> bool) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let m = hit(u64::from_le_bytes(w));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if one(c) {
            return i;
        }
        i += 1;
    }
    i
}

/// First `"`, `\` or control byte (what ends a run of ordinary string bytes).
#[inline(always)]
fn scan_string(b: &[u8], i: usize) -> usize {
    scan(
        b,
        i,
        |x| eq_mask(x, b'"') | eq_mask(x, b'\\') | (x.wrapping_sub(LO * 0x20) & !x & HI),
        |c| STRING_SPECIAL[c as usize],
    )
}

/// First `"` or `\`.
#[inline(always)]
fn scan_quote(b: &[u8], i: usize) -> usize {
    scan(
        b,
        i,
        |x| eq_mask(x, b'"') | eq_mask(x, b'\\'),
        |c| c == b'"' || c == b'\\',
    )
}

/// First quote or bracket.
#[inline(always)]
fn scan_structural(b: &[u8], i: usize) -> usize {
    scan(
        b,
        i,
        |x| {
            // `[`/`{` and `]`/`}` differ only in bit 5: fold it away to test two bytes at once.
            let f = x | (LO * 0x20);
            eq_mask(x, b'"') | eq_mask(f, b'{') | eq_mask(f, b'}')
        },
        |c| LENIENT_SPECIAL[c as usize],
    )
}

/// A string token: its raw bytes (between the quotes) and whether it holds escapes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawStr {
    pub start: usize,
    pub end: usize,
    pub escaped: bool,
}

/// The scanner: a cursor over UTF-8 validated bytes.
#[derive(Debug)]
pub(crate) struct Scanner<'a> {
    pub b: &'a [u8],
    pub i: usize,
    /// Container stack for [`Scanner::skip_value`], kept to reuse its allocation (deep values only).
    deep: Vec<bool>,
}

impl<'a> Scanner<'a> {
    /// A scanner over `b`; fails unless `b` is UTF-8 (JSON text must be).
    pub fn new(b: &'a [u8]) -> JResult<Self> {
        if let Err(e) = std::str::from_utf8(b) {
            return Err(SyntaxError {
                offset: e.valid_up_to(),
                reason: "invalid UTF-8",
            });
        }
        Ok(Scanner {
            b,
            i: 0,
            deep: Vec::new(),
        })
    }

    /// A scanner that does not check UTF-8 up front (lenient matching checks what it reads).
    pub fn new_unchecked(b: &'a [u8]) -> Self {
        Scanner {
            b,
            i: 0,
            deep: Vec::new(),
        }
    }

    /// Errors are the rare path: kept out of line so the scanning loops stay small.
    #[cold]
    #[inline(never)]
    pub fn err<T>(&self, reason: &'static str) -> JResult<T> {
        Err(SyntaxError {
            offset: self.i,
            reason,
        })
    }

    #[inline(always)]
    pub fn ws(&mut self) {
        // A local cursor: the field is stored once, not once per byte.
        let mut i = self.i;
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(i) {
            i += 1;
        }
        self.i = i;
    }

    /// The next non-whitespace byte (not consumed).
    #[inline(always)]
    pub fn peek(&mut self) -> JResult<u8> {
        self.ws();
        match self.b.get(self.i) {
            Some(&c) => Ok(c),
            None => self.err("unexpected end of input"),
        }
    }

    #[inline]
    pub fn expect(&mut self, c: u8, reason: &'static str) -> JResult<()> {
        if self.peek()? == c {
            self.i += 1;
            Ok(())
        } else {
            self.err(reason)
        }
    }

    /// After the whole value: only whitespace may follow.
    pub fn end(&mut self) -> JResult<()> {
        self.ws();
        if self.i == self.b.len() {
            Ok(())
        } else {
            self.err("trailing characters after the JSON value")
        }
    }

    /// Reads a string token starting at `"`; validates escapes (including surrogate pairs).
    #[inline]
    pub fn string(&mut self) -> JResult<RawStr> {
        let b = self.b;
        if b.get(self.i) != Some(&b'"') {
            return self.err("expected a string");
        }
        let start = self.i + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            // Most bytes are ordinary: find the next special one 8 at a time.
            i = scan_string(b, i);
            match b.get(i) {
                Some(b'"') => {
                    self.i = i + 1;
                    return Ok(RawStr {
                        start,
                        end: i,
                        escaped,
                    });
                }
                Some(b'\\') => {
                    escaped = true;
                    self.i = i;
                    self.escape()?;
                    i = self.i;
                }
                Some(_) => {
                    self.i = i;
                    return self.err("control character in string");
                }
                None => {
                    self.i = i;
                    return self.err("unterminated string");
                }
            }
        }
    }

    /// Validates one escape sequence at `\`.
    fn escape(&mut self) -> JResult<()> {
        self.i += 1;
        match self.b.get(self.i) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.i += 1;
                Ok(())
            }
            Some(b'u') => {
                self.i += 1;
                let u = self.hex4()?;
                if (0xD800..0xDC00).contains(&u) {
                    if self.b.get(self.i) == Some(&b'\\') && self.b.get(self.i + 1) == Some(&b'u') {
                        self.i += 2;
                        let lo = self.hex4()?;
                        if (0xDC00..0xE000).contains(&lo) {
                            return Ok(());
                        }
                    }
                    self.err("unpaired surrogate in string escape")
                } else if (0xDC00..0xE000).contains(&u) {
                    self.err("unpaired surrogate in string escape")
                } else {
                    Ok(())
                }
            }
            _ => self.err("invalid escape in string"),
        }
    }

    fn hex4(&mut self) -> JResult<u32> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.b.get(self.i) {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return self.err("invalid \\u escape"),
            };
            v = v * 16 + u32::from(d);
            self.i += 1;
        }
        Ok(v)
    }

    /// The string's content, unescaped into `buf` when needed.
    #[inline]
    pub fn str_bytes<'s>(&'s self, s: RawStr, buf: &'s mut Vec<u8>) -> &'s [u8] {
        let raw = &self.b[s.start..s.end];
        if !s.escaped {
            return raw;
        }
        unescape(raw, buf);
        buf
    }

    /// Reads a number token, validating the JSON grammar; returns its text range.
    #[inline]
    pub fn number(&mut self) -> JResult<(usize, usize)> {
        let start = self.i;
        match number_end(self.b, start) {
            Some(end) => {
                self.i = end;
                Ok((start, end))
            }
            None => self.err("invalid number"),
        }
    }

    /// Reads `true`, `false` or `null` (the first byte already peeked).
    #[inline]
    pub fn literal(&mut self, word: &'static [u8]) -> JResult<()> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            self.err("invalid literal")
        }
    }

    /// Reads `"key":` inside an object (cursor on the key's quote).
    #[inline]
    pub fn key(&mut self) -> JResult<RawStr> {
        if self.peek()? != b'"' {
            return self.err("expected a string key");
        }
        let k = self.string()?;
        self.expect(b':', "expected ':' after key")?;
        Ok(k)
    }

    /// After a member or element: consumes `,` (returns true) or the closing byte (returns false).
    #[inline(always)]
    pub fn next_or_close(&mut self, close: u8) -> JResult<bool> {
        match self.peek()? {
            b',' => {
                self.i += 1;
                Ok(true)
            }
            c if c == close => {
                self.i += 1;
                Ok(false)
            }
            _ => self.err("expected ',' or a closing bracket"),
        }
    }

    /// Validates and skips one value of any depth, without recursion and without building anything.
    pub fn skip_value(&mut self) -> JResult<()> {
        let base = self.deep.len();
        let r = self.skip_inner(base);
        self.deep.truncate(base);
        r
    }

    /// The hot loop of strict skipping: a local cursor, and a container stack kept in a `u64`
    /// bit set (1 = object) for the first 64 levels, spilling to `deep` below that.
    fn skip_inner(&mut self, base: usize) -> JResult<()> {
        let b = self.b;
        let mut i = self.i;
        let mut bits: u64 = 0;
        let mut depth: usize = 0;
        macro_rules! fail {
            ($why:expr) => {{
                self.i = i;
                return self.err($why);
            }};
        }
        macro_rules! ws {
            () => {
                while let Some(&c) = b.get(i) {
                    if c == b' ' || c == b'\n' || c == b'\r' || c == b'\t' {
                        i += 1;
                    } else {
                        break;
                    }
                }
            };
        }
        macro_rules! key {
            () => {{
                ws!();
                if b.get(i) != Some(&b'"') {
                    fail!("expected a string key");
                }
                self.i = i;
                self.string()?;
                i = self.i;
                ws!();
                if b.get(i) != Some(&b':') {
                    fail!("expected ':' after key");
                }
                i += 1;
            }};
        }
        loop {
            // Expecting a value.
            ws!();
            let Some(&c) = b.get(i) else {
                fail!("unexpected end of input")
            };
            match c {
                b'-' | b'0'..=b'9' => match number_end(b, i) {
                    Some(e) => i = e,
                    None => fail!("invalid number"),
                },
                b'"' => {
                    self.i = i;
                    self.string()?;
                    i = self.i;
                }
                b'{' | b'[' => {
                    i += 1;
                    ws!();
                    let close = if c == b'{' { b'}' } else { b']' };
                    if b.get(i) == Some(&close) {
                        i += 1;
                    } else {
                        let obj = c == b'{';
                        if depth < 64 {
                            if obj {
                                bits |= 1 << depth;
                            } else {
                                bits &= !(1 << depth);
                            }
                        } else {
                            self.deep.push(obj);
                        }
                        depth += 1;
                        if obj {
                            key!();
                        }
                        continue;
                    }
                }
                b't' | b'f' | b'n' => {
                    let word: &[u8] = match c {
                        b't' => b"true",
                        b'f' => b"false",
                        _ => b"null",
                    };
                    if b.get(i..i + word.len()) != Some(word) {
                        fail!("invalid literal");
                    }
                    i += word.len();
                }
                _ => fail!("expected a JSON value"),
            }
            // After a value: close containers until one continues.
            loop {
                if depth == 0 {
                    self.i = i;
                    return Ok(());
                }
                let top = depth - 1;
                let is_obj = if top < 64 {
                    bits & (1 << top) != 0
                } else {
                    self.deep.get(base + top - 64).copied().unwrap_or(false)
                };
                ws!();
                match b.get(i) {
                    Some(b',') => {
                        i += 1;
                        if is_obj {
                            key!();
                        }
                        break;
                    }
                    Some(b'}') if is_obj => i += 1,
                    Some(b']') if !is_obj => i += 1,
                    _ => fail!("expected ',' or a closing bracket"),
                }
                depth -= 1;
                if top >= 64 {
                    self.deep.pop();
                }
            }
        }
    }
}

impl Scanner<'_> {
    /// Skips one value without validating it (only strings and bracket nesting are tracked).
    /// Used by lenient matching, which trusts its input the way quamina does.
    #[inline(always)]
    pub fn skip_lenient(&mut self) -> JResult<()> {
        match self.peek()? {
            b'"' => self.skip_string_lenient(),
            b'{' | b'[' => {
                self.i += 1;
                self.close_lenient()
            }
            _ => {
                // A scalar: up to the next delimiter.
                let b = self.b;
                let mut i = self.i;
                while let Some(&c) = b.get(i) {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                        break;
                    }
                    i += 1;
                }
                if i == self.i {
                    return self.err("expected a JSON value");
                }
                self.i = i;
                Ok(())
            }
        }
    }

    /// Skips (without validating) to just after the bracket closing the current container.
    pub fn close_lenient(&mut self) -> JResult<()> {
        let b = self.b;
        let mut depth = 1usize;
        let mut i = self.i;
        loop {
            i = scan_structural(b, i);
            match b.get(i) {
                Some(b'"') => {
                    self.i = i;
                    self.skip_string_lenient()?;
                    i = self.i;
                }
                Some(b'{' | b'[') => {
                    depth += 1;
                    i += 1;
                }
                Some(_) => {
                    depth -= 1;
                    i += 1;
                    if depth == 0 {
                        self.i = i;
                        return Ok(());
                    }
                }
                None => {
                    self.i = i;
                    return self.err("unexpected end of input");
                }
            }
        }
    }

    /// Lenient: skips the member value at the cursor, then consumes the `,` after it (returns
    /// true) or the `close` byte (false). Most members of an event are skipped like this, so
    /// everything it calls is inlined into one tight pass.
    #[inline(always)]
    pub fn skip_then_next_lenient(&mut self, close: u8) -> JResult<bool> {
        self.skip_lenient()?;
        self.next_or_close(close)
    }

    /// Reads a string token like [`Scanner::string`], without checking for control bytes
    /// (lenient matching does not validate); strings with escapes take the validating path.
    #[inline(always)]
    pub fn string_lenient(&mut self) -> JResult<RawStr> {
        let b = self.b;
        let start = self.i + 1;
        let end = scan_quote(b, start);
        if b.get(end) != Some(&b'"') {
            return self.string();
        }
        self.i = end + 1;
        Ok(RawStr {
            start,
            end,
            escaped: false,
        })
    }

    /// Reads `"key":` like [`Scanner::key`], without checking for control bytes in the key
    /// (lenient matching does not validate). Keys with escapes take the validating path.
    #[inline(always)]
    pub fn key_lenient(&mut self) -> JResult<RawStr> {
        self.ws();
        let b = self.b;
        if b.get(self.i) != Some(&b'"') {
            return self.err("expected a string key");
        }
        let start = self.i + 1;
        let end = scan_quote(b, start);
        if b.get(end) != Some(&b'"') {
            return self.key();
        }
        self.i = end + 1;
        // `"key": ` is by far the most common spelling: test for it before the general case.
        if b.get(self.i) == Some(&b':') {
            self.i += 1;
        } else {
            self.expect(b':', "expected ':' after key")?;
        }
        Ok(RawStr {
            start,
            end,
            escaped: false,
        })
    }

    #[inline(always)]
    fn skip_string_lenient(&mut self) -> JResult<()> {
        let b = self.b;
        let mut i = self.i + 1;
        loop {
            i = scan_quote(b, i);
            match b.get(i) {
                Some(b'"') => {
                    self.i = i + 1;
                    return Ok(());
                }
                Some(_) => i += 2,
                None => {
                    self.i = b.len();
                    return self.err("unterminated string");
                }
            }
        }
    }
}

/// Bytes the lenient skipper stops at: quotes and brackets.
static LENIENT_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'{' as usize] = true;
    t[b'}' as usize] = true;
    t[b'[' as usize] = true;
    t[b']' as usize] = true;
    t
};

/// End of the run of ASCII digits starting at `i` (8 bytes at a time).
#[inline(always)]
fn digits_end(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        // Digits become 0..=9; adding 0x76 to the low 7 bits carries into bit 7 for 10 and up,
        // and bytes that had bit 7 set are not digits either. No carry crosses a byte.
        let y = u64::from_le_bytes(w) ^ (LO * u64::from(b'0'));
        let m = (((y & !HI) + LO * 0x76) | y) & HI;
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(b'0'..=b'9') = b.get(i) {
        i += 1;
    }
    i
}

/// End of the number starting at `i`, if it follows the JSON grammar.
#[inline(always)]
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits_end(b, i + 1),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !matches!(b.get(i), Some(b'0'..=b'9')) {
            return None;
        }
        i = digits_end(b, i + 1);
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        if !matches!(b.get(i), Some(b'0'..=b'9')) {
            return None;
        }
        i = digits_end(b, i + 1);
    }
    Some(i)
}

/// Unescapes a validated JSON string body into `out` (cleared first).
pub(crate) fn unescape(raw: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let e = raw.get(i + 1).copied().unwrap_or(b'\\');
        i += 2;
        let ch = match e {
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex_at(raw, i);
                i += 4;
                let cp = if (0xD800..0xDC00).contains(&hi) {
                    let lo = hex_at(raw, i + 2);
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF)
                } else {
                    hi
                };
                char::from_u32(cp).unwrap_or('\u{FFFD}')
            }
            other => char::from(other),
        };
        let mut tmp = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
    }
}

fn hex_at(raw: &[u8], i: usize) -> u32 {
    let mut v = 0u32;
    for k in 0..4 {
        let d = match raw.get(i + k) {
            Some(c @ b'0'..=b'9') => c - b'0',
            Some(c @ b'a'..=b'f') => c - b'a' + 10,
            Some(c @ b'A'..=b'F') => c - b'A' + 10,
            _ => 0,
        };
        v = v * 16 + u32::from(d);
    }
    v
}

/// A parsed pattern value. Numbers keep their exact text so they compare by decimal value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tree {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Tree>),
    /// Members in document order (duplicates kept; the compiler rejects them).
    Obj(Vec<(String, Tree)>),
}

/// Deepest nesting accepted in a pattern: far beyond any real pattern, and keeps recursion bounded.
pub(crate) const MAX_TREE_DEPTH: usize = 64;

/// Parses a whole JSON text into a [`Tree`] (used for patterns; depth-limited).
pub(crate) fn parse_tree(text: &[u8]) -> JResult<Tree> {
    let mut s = Scanner::new(text)?;
    let mut buf = Vec::new();
    let t = tree_value(&mut s, &mut buf, 0)?;
    s.end()?;
    Ok(t)
}

fn tree_value(s: &mut Scanner<'_>, buf: &mut Vec<u8>, depth: usize) -> JResult<Tree> {
    if depth > MAX_TREE_DEPTH {
        return s.err("nested too deeply");
    }
    match s.peek()? {
        b'{' => {
            s.i += 1;
            let mut members = Vec::new();
            if s.peek()? == b'}' {
                s.i += 1;
                return Ok(Tree::Obj(members));
            }
            loop {
                let k = s.key()?;
                let key = String::from_utf8_lossy(s.str_bytes(k, buf)).into_owned();
                let v = tree_value(s, buf, depth + 1)?;
                members.push((key, v));
                if !s.next_or_close(b'}')? {
                    return Ok(Tree::Obj(members));
                }
            }
        }
        b'[' => {
            s.i += 1;
            let mut items = Vec::new();
            if s.peek()? == b']' {
                s.i += 1;
                return Ok(Tree::Arr(items));
            }
            loop {
                items.push(tree_value(s, buf, depth + 1)?);
                if !s.next_or_close(b']')? {
                    return Ok(Tree::Arr(items));
                }
            }
        }
        b'"' => {
            let r = s.string()?;
            Ok(Tree::Str(
                String::from_utf8_lossy(s.str_bytes(r, buf)).into_owned(),
            ))
        }
        b't' => s.literal(b"true").map(|_| Tree::Bool(true)),
        b'f' => s.literal(b"false").map(|_| Tree::Bool(false)),
        b'n' => s.literal(b"null").map(|_| Tree::Null),
        b'-' | b'0'..=b'9' => {
            let (a, b) = s.number()?;
            Ok(Tree::Num(String::from_utf8_lossy(&s.b[a..b]).into_owned()))
        }
        _ => s.err("expected a JSON value"),
    }
}

/// True if `b` is one complete, valid JSON text.
pub(crate) fn is_valid_json(b: &[u8]) -> bool {
    match Scanner::new(b) {
        Ok(mut s) => s.skip_value().is_ok() && s.end().is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_like_a_strict_parser() {
        let ok: &[&str] = &[
            "0",
            "-0.5e+10",
            "\"a\\u00e9\\ud83d\\ude00\"",
            "{\"a\":[1,{\"b\":null}],\"c\":true}",
            " [ ] ",
            "{}",
        ];
        for t in ok {
            assert!(is_valid_json(t.as_bytes()), "{t}");
            assert!(serde_json::from_str::<serde_json::Value>(t).is_ok());
        }
        let bad: &[&str] = &[
            "",
            "01",
            "1.",
            "-",
            "1e",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "tru",
            "[1 2]",
            "{1:2}",
            "\"a\u{1}\"",
            "[] x",
            "[",
            "{\"a\":",
        ];
        for t in bad {
            assert!(!is_valid_json(t.as_bytes()), "{t:?}");
        }
        assert!(!is_valid_json(b"\"\xff\""));
    }

    #[test]
    fn skips_very_deep_values_without_recursion() {
        let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(is_valid_json(deep.as_bytes()));
        let deep_obj = format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000));
        assert!(is_valid_json(deep_obj.as_bytes()));
        let unbalanced = format!("{}1{}", "[".repeat(1000), "]".repeat(999));
        assert!(!is_valid_json(unbalanced.as_bytes()));
    }

    #[test]
    fn swar_scans_agree_with_bytewise_ones() {
        let mut seed = 7u64;
        for _ in 0..20_000 {
            let len = (seed % 40) as usize;
            let mut v = Vec::with_capacity(len);
            for _ in 0..len {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let pool = b"ab\"\\[]{}\x01\x1f \x7f\x80\xff0";
                v.push(pool[(seed >> 33) as usize % pool.len()]);
            }
            let naive = |f: &dyn Fn(u8) -> bool| v.iter().position(|&c| f(c)).unwrap_or(v.len());
            assert_eq!(
                scan_string(&v, 0),
                naive(&|c| STRING_SPECIAL[c as usize]),
                "{v:?}"
            );
            assert_eq!(
                scan_quote(&v, 0),
                naive(&|c| c == b'"' || c == b'\\'),
                "{v:?}"
            );
            assert_eq!(
                scan_structural(&v, 0),
                naive(&|c| LENIENT_SPECIAL[c as usize]),
                "{v:?}"
            );
        }
    }

    #[test]
    fn swar_digit_runs() {
        let pool = b"0123456789/:a\x80 .e";
        for n in 0..300usize {
            let v: Vec<u8> = (0..(n % 23))
                .map(|k| pool[(n * 7 + k * 13) % pool.len()])
                .collect();
            let naive = v
                .iter()
                .position(|c| !c.is_ascii_digit())
                .unwrap_or(v.len());
            assert_eq!(digits_end(&v, 0), naive, "{v:?}");
        }
    }

    #[test]
    fn unescapes() {
        let mut out = Vec::new();
        unescape(br#"a\n\"\\\/\u0041\ud83d\ude00"#, &mut out);
        assert_eq!(std::str::from_utf8(&out).unwrap(), "a\n\"\\/A😀");
    }

    #[test]
    fn tree_keeps_number_text_and_limits_depth() {
        let t = parse_tree(br#"{"a":[3.0e2, "x"]}"#).unwrap();
        assert_eq!(
            t,
            Tree::Obj(vec![(
                "a".into(),
                Tree::Arr(vec![Tree::Num("3.0e2".into()), Tree::Str("x".into())])
            )])
        );
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse_tree(deep.as_bytes()).is_err());
    }
}
