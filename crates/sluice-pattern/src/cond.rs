//! Conditions: the compiled form of one element of a pattern leaf, and how it matches one value.
//!
//! This module owns operator semantics on a single JSON scalar (exact, prefix, suffix,
//! equals-ignore-case, anything-but, numeric, exists, cidr, wildcard). How values are found in an
//! event (arrays, nesting, absence) is the evaluator's business, not this module's.

use crate::number::Dec;
use std::cmp::Ordering;
use std::net::{Ipv4Addr, Ipv6Addr};

/// One JSON scalar found in an event. Strings are unescaped, valid UTF-8; numbers are their text.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scalar<'a> {
    Str(&'a [u8]),
    Num(&'a [u8]),
    Bool(bool),
    Null,
}

/// A scalar plus lazily computed views shared by all conditions tested against it.
#[derive(Debug)]
pub(crate) struct Val<'a> {
    pub s: Scalar<'a>,
    dec: Option<Option<Dec>>,
    /// [`Dec::fixed_of_text`] of a number, computed once.
    fixed: Option<Option<i128>>,
    folded: Option<String>,
}

impl<'a> Val<'a> {
    pub fn new(s: Scalar<'a>) -> Self {
        Val {
            s,
            dec: None,
            fixed: None,
            folded: None,
        }
    }

    /// The number's fixed-point value when it has one (see [`Dec::fixed`]).
    #[inline]
    fn fixed(&mut self) -> Option<i128> {
        let Scalar::Num(t) = self.s else { return None };
        *self.fixed.get_or_insert_with(|| Dec::fixed_of_text(t))
    }

    /// How this number compares with `x` (`None`: not a number).
    #[inline]
    fn cmp_num(&mut self, x: &Dec) -> Option<Ordering> {
        if let (Some(a), Some(b)) = (self.fixed(), x.fixed) {
            return Some(a.cmp(&b));
        }
        self.dec().map(|d| d.cmp(x))
    }

    fn dec(&mut self) -> Option<&Dec> {
        if self.dec.is_none() {
            self.dec = Some(match self.s {
                Scalar::Num(t) => Dec::parse(t),
                _ => None,
            });
        }
        self.dec.as_ref().and_then(|d| d.as_ref())
    }

    fn folded(&mut self) -> Option<&str> {
        let Scalar::Str(b) = self.s else { return None };
        if self.folded.is_none() {
            self.folded = Some(fold(&String::from_utf8_lossy(b)));
        }
        self.folded.as_deref()
    }
}

/// Unicode full case folding (what equals-ignore-case compares).
pub(crate) fn fold(s: &str) -> String {
    if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        unicase::UniCase::unicode(s).to_folded_case()
    }
}

/// A compiled wildcard: literal pieces separated by `*`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Wildcard {
    /// `pieces.len() == stars + 1`; a pattern without `*` has one piece.
    pieces: Vec<Vec<u8>>,
}

impl Wildcard {
    /// Parses a wildcard pattern; `Err` is the reason it is invalid.
    pub fn parse(p: &str) -> Result<Wildcard, String> {
        let mut pieces = vec![Vec::new()];
        let b = p.as_bytes();
        let mut i = 0;
        let mut last_star = false;
        while i < b.len() {
            match b[i] {
                b'*' => {
                    if last_star {
                        return Err(format!(
                            "wildcard pattern {p:?} has consecutive '*' characters at position {i}"
                        ));
                    }
                    pieces.push(Vec::new());
                    last_star = true;
                    i += 1;
                    continue;
                }
                b'\\' => match b.get(i + 1) {
                    Some(&c @ (b'*' | b'\\')) => {
                        if let Some(last) = pieces.last_mut() {
                            last.push(c);
                        }
                        i += 2;
                    }
                    _ => {
                        return Err(format!(
                            "wildcard pattern {p:?} has an invalid escape at position {i}: only \\* and \\\\ are allowed"
                        ))
                    }
                },
                c => {
                    if let Some(last) = pieces.last_mut() {
                        last.push(c);
                    }
                    i += 1;
                }
            }
            last_star = false;
        }
        Ok(Wildcard { pieces })
    }

    /// The literal pieces between the `*`s.
    pub fn pieces(&self) -> &[Vec<u8>] {
        &self.pieces
    }

    pub fn matches(&self, s: &[u8]) -> bool {
        let n = self.pieces.len();
        if n == 1 {
            return same(s, &self.pieces[0]);
        }
        let first = &self.pieces[0];
        let last = &self.pieces[n - 1];
        if s.len() < first.len() + last.len() || !starts(s, first) || !ends(s, last) {
            return false;
        }
        // Middle pieces: leftmost occurrence in order is optimal for `*`-only globs.
        let mut rest = &s[first.len()..s.len() - last.len()];
        for piece in &self.pieces[1..n - 1] {
            match find(rest, piece) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

// Event strings and operands are short: inline byte loops beat `memcmp` calls here.

#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

#[inline]
fn starts(s: &[u8], p: &[u8]) -> bool {
    s.len() >= p.len() && same(&s[..p.len()], p)
}

#[inline]
fn ends(s: &[u8], p: &[u8]) -> bool {
    s.len() >= p.len() && same(&s[s.len() - p.len()..], p)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let Some((&first, rest)) = needle.split_first() else {
        return Some(0);
    };
    let last_start = hay.len().checked_sub(needle.len())?;
    (0..=last_start).find(|&i| hay[i] == first && same(&hay[i + 1..i + needle.len()], rest))
}

/// An IPv4 or IPv6 range.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cidr {
    V4 { net: u32, mask: u32 },
    V6 { net: u128, mask: u128 },
}

impl Cidr {
    /// Parses `addr/len`; host bits are allowed (and ignored). `Err` is the reason.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let Some((addr, len)) = s.split_once('/') else {
            return Err(format!(
                "cidr {s:?} is malformed: expected an address, '/' and a prefix length"
            ));
        };
        let bad = |why: &str| Err(format!("cidr {s:?} is malformed: {why}"));
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|c| c.is_ascii_digit()) {
            return bad("the prefix length must be a number");
        }
        let bits: u32 = len.parse().unwrap_or(u32::MAX);
        if let Ok(a) = addr.parse::<Ipv4Addr>() {
            if bits > 32 {
                return bad("an IPv4 prefix length must be 0 to 32");
            }
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            return Ok(Cidr::V4 {
                net: u32::from(a) & mask,
                mask,
            });
        }
        if let Ok(a) = addr.parse::<Ipv6Addr>() {
            if bits > 128 {
                return bad("an IPv6 prefix length must be 0 to 128");
            }
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            return Ok(Cidr::V6 {
                net: u128::from(a) & mask,
                mask,
            });
        }
        bad("not an IPv4 or IPv6 address")
    }

    pub fn matches(&self, s: &[u8]) -> bool {
        let Ok(s) = std::str::from_utf8(s) else {
            return false;
        };
        match self {
            Cidr::V4 { net, mask } => s
                .parse::<Ipv4Addr>()
                .is_ok_and(|a| u32::from(a) & mask == *net),
            Cidr::V6 { net, mask } => s
                .parse::<Ipv6Addr>()
                .is_ok_and(|a| u128::from(a) & mask == *net),
        }
    }
}

/// A numeric range; `=` is a range with equal inclusive bounds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Range {
    pub lo: Option<(Dec, bool)>,
    pub hi: Option<(Dec, bool)>,
}

impl Range {
    /// Whether the value is a number inside the range.
    fn contains(&self, v: &mut Val<'_>) -> bool {
        if !matches!(v.s, Scalar::Num(_)) {
            return false;
        }
        if let Some((lo, incl)) = &self.lo {
            match v.cmp_num(lo) {
                None | Some(Ordering::Less) => return false,
                Some(Ordering::Equal) if !incl => return false,
                _ => {}
            }
        }
        if let Some((hi, incl)) = &self.hi {
            match v.cmp_num(hi) {
                None | Some(Ordering::Greater) => return false,
                Some(Ordering::Equal) if !incl => return false,
                _ => {}
            }
        }
        // A range without bounds still needs a number (the grammar guarantees one).
        self.lo.is_some() || self.hi.is_some() || v.dec().is_some()
    }
}

/// What `anything-but` excludes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Except {
    Strings(Vec<Vec<u8>>),
    Numbers(Vec<Dec>),
    Prefixes(Vec<Vec<u8>>),
    Suffixes(Vec<Vec<u8>>),
    /// Already case-folded.
    FoldedEquals(Vec<String>),
    Wildcards(Vec<Wildcard>),
}

/// One condition of a leaf.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    Str(Vec<u8>),
    Num(Dec),
    Bool(bool),
    Null,
    /// `{"exists": true}`: any present scalar.
    Present,
    Prefix(Vec<u8>),
    Suffix(Vec<u8>),
    /// Folded operand.
    PrefixFold(String),
    SuffixFold(String),
    EqualsFold(String),
    Wildcard(Wildcard),
    Numeric(Range),
    Cidr(Cidr),
    /// Matches any present value (including null and other types) that is not excluded.
    AnythingBut(Except),
}

impl Cond {
    /// [`Cond::matches`], with the commonest string tests inlined at the call site: the full
    /// `match` over every operator costs more than the comparison itself on short values.
    #[inline(always)]
    pub fn matches_fast(&self, v: &mut Val<'_>) -> bool {
        match (self, v.s) {
            (Cond::Str(x), Scalar::Str(s)) => same(s, x),
            (Cond::Prefix(p), Scalar::Str(s)) => starts(s, p),
            (Cond::Suffix(p), Scalar::Str(s)) => ends(s, p),
            (Cond::EqualsFold(p), Scalar::Str(s)) if s.is_ascii() => {
                s.eq_ignore_ascii_case(p.as_bytes())
            }
            _ => self.matches(v),
        }
    }

    pub fn matches(&self, v: &mut Val<'_>) -> bool {
        match self {
            Cond::Str(x) => matches!(v.s, Scalar::Str(s) if same(s, x)),
            Cond::Num(x) => v.cmp_num(x) == Some(Ordering::Equal),
            Cond::Bool(x) => matches!(v.s, Scalar::Bool(b) if b == *x),
            Cond::Null => matches!(v.s, Scalar::Null),
            Cond::Present => true,
            Cond::Prefix(p) => matches!(v.s, Scalar::Str(s) if starts(s, p)),
            Cond::Suffix(p) => matches!(v.s, Scalar::Str(s) if ends(s, p)),
            // ASCII text folds to ASCII lowercase: compare in place, no folded copy.
            Cond::PrefixFold(p) => match v.s {
                Scalar::Str(s) if s.is_ascii() => {
                    s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p.as_bytes())
                }
                _ => v.folded().is_some_and(|f| f.starts_with(p.as_str())),
            },
            Cond::SuffixFold(p) => match v.s {
                Scalar::Str(s) if s.is_ascii() => {
                    s.len() >= p.len() && s[s.len() - p.len()..].eq_ignore_ascii_case(p.as_bytes())
                }
                _ => v.folded().is_some_and(|f| f.ends_with(p.as_str())),
            },
            Cond::EqualsFold(p) => match v.s {
                Scalar::Str(s) if s.is_ascii() => s.eq_ignore_ascii_case(p.as_bytes()),
                _ => v.folded().is_some_and(|f| f == p),
            },
            Cond::Wildcard(w) => matches!(v.s, Scalar::Str(s) if w.matches(s)),
            Cond::Numeric(r) => r.contains(v),
            Cond::Cidr(c) => matches!(v.s, Scalar::Str(s) if c.matches(s)),
            Cond::AnythingBut(e) => !excluded(e, v),
        }
    }
}

fn excluded(e: &Except, v: &mut Val<'_>) -> bool {
    match e {
        Except::Numbers(xs) => xs.iter().any(|x| v.cmp_num(x) == Some(Ordering::Equal)),
        Except::FoldedEquals(xs) => match v.s {
            Scalar::Str(s) if s.is_ascii() => {
                xs.iter().any(|x| s.eq_ignore_ascii_case(x.as_bytes()))
            }
            _ => v.folded().is_some_and(|f| xs.iter().any(|x| x == f)),
        },
        _ => {
            let Scalar::Str(s) = v.s else { return false };
            match e {
                Except::Strings(xs) => xs.iter().any(|x| same(x, s)),
                Except::Prefixes(xs) => xs.iter().any(|x| starts(s, x)),
                Except::Suffixes(xs) => xs.iter().any(|x| ends(s, x)),
                Except::Wildcards(xs) => xs.iter().any(|w| w.matches(s)),
                Except::Numbers(_) | Except::FoldedEquals(_) => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*.png", "a.png", true),
            ("*.png", ".png", true),
            ("*.png", "a.jpg", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "acb", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("*", "", true),
            ("*", "anything", true),
            ("", "", true),
            ("", "x", false),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("a\\\\b", "a\\b", true),
            ("*ab*ab*", "xabyab", true),
            ("*ab*ab*", "xab", false),
            ("ü*", "über", true),
        ];
        for (p, s, want) in cases {
            let w = Wildcard::parse(p).unwrap();
            assert_eq!(w.matches(s.as_bytes()), *want, "{p} on {s}");
        }
        for bad in ["a**", "**", "a\\b", "a\\", "\\n"] {
            assert!(Wildcard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidr_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("10.0.0.0/24", "10.0.0.255", true),
            ("10.0.0.0/24", "10.0.1.0", false),
            ("10.0.0.77/24", "10.0.0.1", true),
            ("0.0.0.0/0", "1.2.3.4", true),
            ("10.0.0.1/32", "10.0.0.1", true),
            ("10.0.0.1/32", "10.0.0.2", false),
            ("2001:db8::/32", "2001:DB8:0:0::1", true),
            ("2001:db8::/32", "2001:0db8:ffff::", true),
            ("2001:db8::/32", "2001:db9::", false),
            ("2001:db8::/32", "10.0.0.1", false),
            ("10.0.0.0/8", "2001:db8::", false),
            ("10.0.0.0/8", "not an ip", false),
        ];
        for (c, s, want) in cases {
            let p = Cidr::parse(c).unwrap();
            assert_eq!(p.matches(s.as_bytes()), *want, "{c} on {s}");
        }
        for bad in [
            "10.0.0.0",
            "10.0.0/24",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/x",
            "/8",
            "10.0.0.0/",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn folding_is_unicode() {
        assert_eq!(fold("AbC"), "abc");
        assert_eq!(fold("STRASSE"), fold("straße"));
        assert_eq!(fold("ΣΑΣ"), fold("σας"));
        assert_ne!(fold("a"), fold("b"));
    }
}
