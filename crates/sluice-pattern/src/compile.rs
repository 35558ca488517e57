//! Pattern compilation: JSON text -> validated operators -> `$or`-free conjunctions.
//!
//! This module owns the pattern language's syntax and its error messages. A pattern becomes a list
//! of conjunctions, each a list of (field path, leaf) requirements; the evaluator builds its
//! path trie from those. `$or` is expanded here (bounded by the 1,000-combination limit, which is
//! checked before expanding so a hostile pattern cannot blow up memory).

use crate::complexity::{complexity, Pat, Rule, MAX_WILDCARD_COMPLEXITY};
use crate::cond::{fold, Cidr, Cond, Except, Range, Wildcard};
use crate::error::{PatternError, MAX_COMBINATIONS, MAX_PATTERN_CHARS};
use crate::json::{parse_tree, Tree, MAX_TREE_DEPTH};
use crate::number::Dec;
use std::cmp::Ordering;
use std::collections::HashMap;

/// A leaf: conditions ORed, plus whether absence satisfies it (`{"exists": false}`).
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub conds: Vec<Cond>,
    pub absent_ok: bool,
}

/// One `$or`-free alternative of a pattern: every (path id, leaf id) must hold. Paths live in
/// [`Program::paths`] so that expanding `$or` copies small ids, never the paths themselves.
pub(crate) type Conj = Vec<(usize, usize)>;

/// Field names a Kafka-source pattern may not use (AWS sets them per pipe or per poller).
pub(crate) const KAFKA_RESERVED: &[&str] = &[
    "eventSource",
    "eventSourceArn",
    "eventSourceKey",
    "awsRegion",
];

/// All filters of a matcher, compiled.
#[derive(Debug, Default)]
pub(crate) struct Program {
    pub leaves: Vec<Leaf>,
    /// Field paths of leaves, by id.
    pub paths: Vec<Vec<String>>,
    pub conjs: Vec<Conj>,
    /// Filter index of each conjunction.
    pub filter_of: Vec<usize>,
    pub filters: usize,
    leaf_ids: HashMap<String, usize>,
}

enum Item {
    Field { body: Body },
    Or(Vec<Vec<Item>>),
}

enum Body {
    /// Leaf id, path id.
    Leaf(usize, usize),
    Obj(Vec<Item>),
}

impl Program {
    /// Compiles one pattern and appends its conjunctions as a new filter.
    pub fn add(&mut self, pattern: &str, kafka: bool) -> Result<(), PatternError> {
        let chars = pattern.chars().count();
        if chars > MAX_PATTERN_CHARS {
            return Err(PatternError::TooLong { chars });
        }
        let tree = parse_tree(pattern.as_bytes()).map_err(|e| PatternError::Json {
            offset: e.offset,
            reason: if e.reason == "nested too deeply" {
                format!("nested more than {MAX_TREE_DEPTH} levels deep")
            } else {
                e.reason.to_string()
            },
        })?;
        let Tree::Obj(members) = &tree else {
            return Err(PatternError::NotAnObject);
        };
        let items = self.object(members, "", &[], kafka)?;
        let count = count_items(&items);
        if count > MAX_COMBINATIONS {
            return Err(PatternError::TooManyCombinations { count });
        }
        let conjs = expand_items(&items);
        self.check_complexity(&conjs)?;
        let filter = self.filters;
        for conj in conjs {
            self.conjs.push(conj);
            self.filter_of.push(filter);
        }
        self.filters += 1;
        Ok(())
    }

    /// Refuses wildcards over AWS's complexity limit (see `complexity.rs`).
    fn check_complexity(&self, conjs: &[Conj]) -> Result<(), PatternError> {
        match self.wildcard_complexity(conjs) {
            Some((key, n)) if n > MAX_WILDCARD_COMPLEXITY => Err(PatternError::field(
                &key,
                format!(
                    "wildcard: Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character (at least {n} wildcard prefixes can match one value at once; AWS allows {MAX_WILDCARD_COMPLEXITY})"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The most complex field of one pattern's conjunctions and its complexity (capped just
    /// over the limit); `None` without wildcards.
    fn wildcard_complexity(&self, conjs: &[Conj]) -> Option<(String, usize)> {
        let has_wildcard = |leaf: usize| {
            self.leaves[leaf].conds.iter().any(|c| {
                matches!(
                    c,
                    Cond::Wildcard(_) | Cond::AnythingBut(Except::Wildcards(_))
                )
            })
        };
        if !conjs.iter().flatten().any(|&(_, leaf)| has_wildcard(leaf)) {
            return None;
        }
        let rules: Vec<Rule> = conjs
            .iter()
            .map(|conj| {
                // A field named twice in one rule (through `$or`): event-ruler keeps the last.
                let mut by_key: Vec<(String, Vec<Pat>)> = Vec::new();
                for &(path, leaf) in conj {
                    let key = self.paths[path].join(".");
                    by_key.retain(|(k, _)| *k != key);
                    by_key.push((key, ruler_patterns(&self.leaves[leaf])));
                }
                by_key
            })
            .collect();
        complexity(&rules)
    }

    /// A valid pattern's wildcard complexity, as AWS computes it (0 without wildcards).
    #[cfg(test)]
    pub fn measure(pattern: &str) -> Option<usize> {
        let mut p = Program::default();
        let tree = parse_tree(pattern.as_bytes()).ok()?;
        let Tree::Obj(members) = &tree else {
            return None;
        };
        let items = p.object(members, "", &[], false).ok()?;
        let conjs = expand_items(&items);
        Some(p.wildcard_complexity(&conjs).map_or(0, |(_, n)| n))
    }

    fn object(
        &mut self,
        members: &[(String, Tree)],
        path: &str,
        prefix: &[String],
        root: bool,
    ) -> Result<Vec<Item>, PatternError> {
        if members.is_empty() {
            return Err(PatternError::field(path, "must not be an empty object"));
        }
        let mut items = Vec::with_capacity(members.len());
        for (i, (key, value)) in members.iter().enumerate() {
            let sub = join(path, key);
            if members[..i].iter().any(|(k, _)| k == key) {
                return Err(PatternError::field(&sub, "is specified more than once"));
            }
            if key == "$or" {
                items.push(self.or(value, path, &sub, prefix, root)?);
                continue;
            }
            if root && KAFKA_RESERVED.contains(&key.as_str()) {
                return Err(PatternError::NotFilterable { field: key.clone() });
            }
            let mut fpath = prefix.to_vec();
            fpath.push(key.clone());
            let body = match value {
                Tree::Obj(m) => Body::Obj(self.object(m, &sub, &fpath, false)?),
                Tree::Arr(a) => {
                    let leaf = self.leaf(a, &sub)?;
                    self.paths.push(fpath);
                    Body::Leaf(leaf, self.paths.len() - 1)
                }
                _ => return Err(PatternError::field(&sub, "must be an object or an array")),
            };
            items.push(Item::Field { body });
        }
        Ok(items)
    }

    fn or(
        &mut self,
        value: &Tree,
        path: &str,
        or_path: &str,
        prefix: &[String],
        root: bool,
    ) -> Result<Item, PatternError> {
        let Tree::Arr(branches) = value else {
            return Err(PatternError::field(
                or_path,
                "must be an array of at least 2 objects",
            ));
        };
        if branches.len() < 2 {
            return Err(PatternError::field(
                or_path,
                "must be an array of at least 2 objects",
            ));
        }
        let mut out = Vec::with_capacity(branches.len());
        for b in branches {
            let Tree::Obj(m) = b else {
                return Err(PatternError::field(
                    or_path,
                    "must contain only objects (each one a branch of the $or)",
                ));
            };
            if m.is_empty() {
                return Err(PatternError::field(
                    or_path,
                    "must not contain an empty object",
                ));
            }
            out.push(self.object(m, path, prefix, root)?);
        }
        Ok(Item::Or(out))
    }

    fn leaf(&mut self, items: &[Tree], path: &str) -> Result<usize, PatternError> {
        if items.is_empty() {
            return Err(PatternError::field(path, "must not be an empty array"));
        }
        let mut leaf = Leaf {
            conds: Vec::new(),
            absent_ok: false,
        };
        for t in items {
            match t {
                Tree::Str(s) => leaf.conds.push(Cond::Str(s.as_bytes().to_vec())),
                Tree::Num(n) => leaf.conds.push(Cond::Num(num(n, path)?)),
                Tree::Bool(b) => leaf.conds.push(Cond::Bool(*b)),
                Tree::Null => leaf.conds.push(Cond::Null),
                Tree::Arr(_) => {
                    return Err(PatternError::field(
                        path,
                        "must not contain a nested array: each element is a value or an operator object",
                    ))
                }
                Tree::Obj(m) => {
                    if let Some(c) = operator(m, path, &mut leaf.absent_ok)? {
                        leaf.conds.push(c);
                    }
                }
            }
        }
        // Identical leaves share one id, so the evaluator tests them once per value.
        let key = format!("{:?}|{}", leaf.conds, leaf.absent_ok);
        if let Some(&id) = self.leaf_ids.get(&key) {
            return Ok(id);
        }
        self.leaves.push(leaf);
        let id = self.leaves.len() - 1;
        self.leaf_ids.insert(key, id);
        Ok(id)
    }
}

/// A leaf's conditions as event-ruler's patterns, for the complexity layout.
fn ruler_patterns(leaf: &Leaf) -> Vec<Pat> {
    let mut out = Vec::new();
    for c in &leaf.conds {
        match c {
            Cond::Wildcard(w) => out.push(Pat::Wild {
                negated: false,
                values: vec![w.pieces().to_vec()],
            }),
            Cond::AnythingBut(Except::Wildcards(ws)) => out.push(Pat::Wild {
                negated: true,
                values: ws.iter().map(|w| w.pieces().to_vec()).collect(),
            }),
            // A number in a leaf is two patterns to event-ruler: by value and by text.
            Cond::Num(d) => {
                out.push(Pat::Other(format!("num {d:?}")));
                out.push(Pat::Other(format!("text {d:?}")));
            }
            other => out.push(Pat::Other(format!("{other:?}"))),
        }
    }
    if leaf.absent_ok {
        out.push(Pat::Absent);
    }
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn num(text: &str, path: &str) -> Result<Dec, PatternError> {
    Dec::parse(text.as_bytes())
        .ok_or_else(|| PatternError::field(path, format!("has an invalid number {text}")))
}

fn kind(t: &Tree) -> &'static str {
    match t {
        Tree::Null => "null",
        Tree::Bool(_) => "a boolean",
        Tree::Num(_) => "a number",
        Tree::Str(_) => "a string",
        Tree::Arr(_) => "an array",
        Tree::Obj(_) => "an object",
    }
}

/// Parses one operator object; `None` for `{"exists": false}` (recorded in `absent_ok`).
fn operator(
    m: &[(String, Tree)],
    path: &str,
    absent_ok: &mut bool,
) -> Result<Option<Cond>, PatternError> {
    let [(op, v)] = m else {
        return Err(PatternError::field(
            path,
            format!(
                "has an operator object with {} keys; it must have exactly one (the match type)",
                m.len()
            ),
        ));
    };
    let err = |reason: String| Err(PatternError::field(path, reason));
    let c = match op.as_str() {
        "prefix" | "suffix" => {
            let pre = op == "prefix";
            match v {
                Tree::Str(s) if pre => Cond::Prefix(s.as_bytes().to_vec()),
                Tree::Str(s) => Cond::Suffix(s.as_bytes().to_vec()),
                Tree::Obj(inner) => match inner.as_slice() {
                    [(k, Tree::Str(s))] if k == "equals-ignore-case" => {
                        if pre {
                            Cond::PrefixFold(fold(s))
                        } else {
                            Cond::SuffixFold(fold(s))
                        }
                    }
                    _ => {
                        return err(format!(
                        "{op} match pattern must be a string or {{\"equals-ignore-case\": string}}"
                    ))
                    }
                },
                other => {
                    return err(format!(
                        "{op} match pattern must be a string, not {}",
                        kind(other)
                    ))
                }
            }
        }
        "equals-ignore-case" => match v {
            Tree::Str(s) => Cond::EqualsFold(fold(s)),
            other => {
                return err(format!(
                    "equals-ignore-case match pattern must be a string, not {}",
                    kind(other)
                ))
            }
        },
        "wildcard" => match v {
            Tree::Str(s) => {
                Cond::Wildcard(Wildcard::parse(s).map_err(|r| PatternError::field(path, r))?)
            }
            other => {
                return err(format!(
                    "wildcard match pattern must be a string, not {}",
                    kind(other)
                ))
            }
        },
        "cidr" => match v {
            Tree::Str(s) => Cond::Cidr(Cidr::parse(s).map_err(|r| PatternError::field(path, r))?),
            other => {
                return err(format!(
                    "cidr match pattern must be a string, not {}",
                    kind(other)
                ))
            }
        },
        "exists" => match v {
            Tree::Bool(true) => Cond::Present,
            Tree::Bool(false) => {
                *absent_ok = true;
                return Ok(None);
            }
            other => {
                return err(format!(
                    "exists match pattern must be either true or false, not {}",
                    kind(other)
                ))
            }
        },
        "numeric" => Cond::Numeric(numeric(v, path)?),
        "anything-but" => Cond::AnythingBut(anything_but(v, path)?),
        other => return err(unknown_match_type(other)),
    };
    Ok(Some(c))
}

/// The match types (operators) a condition object may use.
const MATCH_TYPES: &[&str] = &[
    "prefix",
    "suffix",
    "equals-ignore-case",
    "anything-but",
    "numeric",
    "exists",
    "cidr",
    "wildcard",
];

/// AWS's message for an unknown operator, plus the closest known one when it looks misspelled.
fn unknown_match_type(op: &str) -> String {
    let lower = op.to_ascii_lowercase();
    let close = MATCH_TYPES
        .iter()
        .map(|k| (strsim::levenshtein(&lower, k), *k))
        .filter(|(d, k)| *d <= (k.len().max(op.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d);
    match close {
        Some((_, k)) => format!("uses unrecognized match type {op:?}; did you mean {k:?}?"),
        None => format!(
            "uses unrecognized match type {op:?}; the match types are {}",
            MATCH_TYPES.join(", ")
        ),
    }
}

/// Parses a `numeric` operand with event-ruler's grammar: `["=", n]`, `["<" | "<=", n]`, or
/// `[">" | ">=", n]` optionally followed by one upper bound `"<" | "<=", m` with `n < m`. So a
/// range is always written lower bound first; AWS refuses `["<", 5, ">", 0]`. Grammar errors are
/// reported before number errors, as event-ruler parses the whole array before the numbers.
fn numeric(v: &Tree, path: &str) -> Result<Range, PatternError> {
    // Messages quote event-ruler (AWS returns them verbatim), plus a hint where it helps.
    macro_rules! fail {
        ($aws:expr, $hint:expr $(,)?) => {
            Err(PatternError::field(
                path,
                format!("numeric match: {} ({})", $aws, $hint),
            ))
        };
    }
    const RANGE_HINT: &str = "write the lower bound first, e.g. [\">\", 0, \"<=\", 5]";
    let Tree::Arr(items) = v else {
        return fail!(
            "Value of numeric must be an array.",
            "e.g. [\">\", 0, \"<=\", 5]",
        );
    };
    let Some(Tree::Str(op)) = items.first() else {
        let got = items.first().map_or("]".to_string(), token_text);
        return fail!(
            format!("Invalid member in numeric match: {got}"),
            "it must start with an operator: \"<\", \"<=\", \"=\", \">\" or \">=\"",
        );
    };
    let number = |i: usize, op: &str| match items.get(i) {
        Some(Tree::Num(n)) => Ok(n.as_str()),
        other => {
            let name = if op == "=" { "equals" } else { op };
            let not = other.map_or("the end of the list".to_string(), |t| kind(t).to_string());
            fail!(
                format!("Value of {name} must be numeric"),
                &format!("found {not}"),
            )
        }
    };
    match op.as_str() {
        "=" => {
            let n = number(1, "=")?;
            if items.len() > 2 {
                return fail!(
                    "Too many elements in numeric expression",
                    "\"=\" takes one number and no other bound",
                );
            }
            let d = comparable(n, path, "numeric match")?;
            Ok(Range {
                lo: Some((d.clone(), true)),
                hi: Some((d, true)),
            })
        }
        "<" | "<=" => {
            let n = number(1, op)?;
            if items.len() > 2 {
                return fail!(
                    "Too many elements in numeric expression",
                    &format!("an upper bound (< or <=) ends the range; {RANGE_HINT}"),
                );
            }
            Ok(Range {
                lo: None,
                hi: Some((comparable(n, path, "numeric match")?, op == "<=")),
            })
        }
        ">" | ">=" => {
            let bottom = number(1, op)?;
            let lo_incl = op == ">=";
            if items.len() == 2 {
                return Ok(Range {
                    lo: Some((comparable(bottom, path, "numeric match")?, lo_incl)),
                    hi: None,
                });
            }
            let Tree::Str(op2) = &items[2] else {
                return fail!(
                    format!("Bad value in numeric range: {}", token_text(&items[2])),
                    "the second bound must be \"<\" or \"<=\" and a number",
                );
            };
            if op2 != "<" && op2 != "<=" {
                return fail!(
                    format!("Bad numeric range operator: {op2}"),
                    "after a lower bound (> or >=) only an upper bound (< or <=) may follow",
                );
            }
            let top = number(3, op2)?;
            if items.len() > 4 {
                return fail!(
                    "Too many terms in numeric range expression",
                    "a range has at most two bounds",
                );
            }
            let (lo, hi) = (
                comparable(bottom, path, "numeric match")?,
                comparable(top, path, "numeric match")?,
            );
            if lo.cmp(&hi) != Ordering::Less {
                return fail!("Bottom must be less than top", "the range would be empty",);
            }
            Ok(Range {
                lo: Some((lo, lo_incl)),
                hi: Some((hi, op2 == "<=")),
            })
        }
        other => fail!(
            format!("Unrecognized numeric range operator: {other}"),
            "use \"<\", \"<=\", \"=\", \">\" or \">=\"",
        ),
    }
}

/// A token as event-ruler's JSON parser prints it in messages (strings without quotes).
fn token_text(t: &Tree) -> String {
    match t {
        Tree::Null => "null".into(),
        Tree::Bool(b) => b.to_string(),
        Tree::Num(n) => n.clone(),
        Tree::Str(s) => s.clone(),
        Tree::Arr(_) => "[".into(),
        Tree::Obj(_) => "{".into(),
    }
}

/// An operand event-ruler compares as a number (`numeric`, `anything-but` numbers). AWS keeps them
/// as IEEE-754 doubles and refuses any number that a double does not hold exactly: it must be
/// finite (`1e309` overflows) and equal to the shortest decimal of its nearest double (`1e-400`
/// underflows to 0, `9007199254740993` rounds). Matching still compares exact decimals, which
/// agrees with double comparison on every operand that passes.
fn comparable(text: &str, path: &str, what: &str) -> Result<Dec, PatternError> {
    let d = num(text, path)?;
    let exact = text
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        // `{:e}` is the shortest decimal that reads back as the same double.
        .and_then(|f| Dec::parse(format!("{f:e}").as_bytes()))
        .is_some_and(|shortest| shortest == d);
    if !exact {
        return Err(PatternError::field(
            path,
            format!(
                "{what}: Cannot compare number : {text} (numbers compared by value must be finite IEEE-754 doubles, written with no more precision than a double holds)"
            ),
        ));
    }
    Ok(d)
}

fn strings(v: &Tree, path: &str, what: &str) -> Result<Vec<String>, PatternError> {
    match v {
        Tree::Str(s) => Ok(vec![s.clone()]),
        Tree::Arr(items) if !items.is_empty() => items
            .iter()
            .map(|t| match t {
                Tree::Str(s) => Ok(s.clone()),
                other => Err(PatternError::field(
                    path,
                    format!("{what} list must contain only strings, not {}", kind(other)),
                )),
            })
            .collect(),
        Tree::Arr(_) => Err(PatternError::field(
            path,
            format!("{what} list must not be empty"),
        )),
        other => Err(PatternError::field(
            path,
            format!(
                "{what} must be a string or a list of strings, not {}",
                kind(other)
            ),
        )),
    }
}

fn anything_but(v: &Tree, path: &str) -> Result<Except, PatternError> {
    let err = |reason: String| Err(PatternError::field(path, reason));
    match v {
        Tree::Str(s) => Ok(Except::Strings(vec![s.as_bytes().to_vec()])),
        Tree::Num(n) => Ok(Except::Numbers(vec![comparable(n, path, "anything-but")?])),
        Tree::Arr(items) => {
            if items.is_empty() {
                return err("anything-but list must not be empty".into());
            }
            if items.iter().all(|t| matches!(t, Tree::Str(_))) {
                Ok(Except::Strings(
                    items
                        .iter()
                        .filter_map(|t| match t {
                            Tree::Str(s) => Some(s.as_bytes().to_vec()),
                            _ => None,
                        })
                        .collect(),
                ))
            } else if items.iter().all(|t| matches!(t, Tree::Num(_))) {
                let mut ds = Vec::with_capacity(items.len());
                for t in items {
                    if let Tree::Num(n) = t {
                        ds.push(comparable(n, path, "anything-but")?);
                    }
                }
                Ok(Except::Numbers(ds))
            } else {
                err("anything-but list must contain only strings or only numbers".into())
            }
        }
        Tree::Obj(m) => {
            let [(op, inner)] = m.as_slice() else {
                return err(format!(
                    "anything-but object must have exactly one key (prefix, suffix, equals-ignore-case or wildcard), found {}",
                    m.len()
                ));
            };
            let what = format!("anything-but {op}");
            match op.as_str() {
                "prefix" | "suffix" => {
                    let vs = strings(inner, path, &what)?;
                    // AWS refuses an empty one: it would exclude every string.
                    if vs.iter().any(String::is_empty) {
                        return err(format!(
                            "{what}: Null prefix/suffix not allowed (an empty {op} would exclude every string)"
                        ));
                    }
                    Ok(if op == "prefix" {
                        Except::Prefixes(bytes(vs))
                    } else {
                        Except::Suffixes(bytes(vs))
                    })
                }
                "equals-ignore-case" => Ok(Except::FoldedEquals(
                    strings(inner, path, &what)?
                        .iter()
                        .map(|s| fold(s))
                        .collect(),
                )),
                "wildcard" => {
                    let mut ws = Vec::new();
                    for s in strings(inner, path, &what)? {
                        ws.push(Wildcard::parse(&s).map_err(|r| PatternError::field(path, r))?);
                    }
                    Ok(Except::Wildcards(ws))
                }
                other => err(format!(
                    "anything-but supports prefix, suffix, equals-ignore-case and wildcard, not {other:?}"
                )),
            }
        }
        other => err(format!(
            "anything-but must be a string, a number, a list or an object, not {}",
            kind(other)
        )),
    }
}

fn bytes(v: Vec<String>) -> Vec<Vec<u8>> {
    v.into_iter().map(String::into_bytes).collect()
}

/// Number of conjunctions `items` expands to (saturating).
fn count_items(items: &[Item]) -> usize {
    items.iter().fold(1usize, |acc, it| {
        let c = match it {
            Item::Field {
                body: Body::Leaf(..),
                ..
            } => 1,
            Item::Field {
                body: Body::Obj(sub),
                ..
            } => count_items(sub),
            Item::Or(branches) => branches
                .iter()
                .fold(0usize, |s, b| s.saturating_add(count_items(b))),
        };
        acc.saturating_mul(c)
    })
}

fn expand_items(items: &[Item]) -> Vec<Conj> {
    let mut acc: Vec<Conj> = vec![Vec::new()];
    for it in items {
        let options: Vec<Conj> = match it {
            Item::Field {
                body: Body::Leaf(leaf, path),
                ..
            } => vec![vec![(*path, *leaf)]],
            Item::Field {
                body: Body::Obj(sub),
                ..
            } => expand_items(sub),
            Item::Or(branches) => branches.iter().flat_map(|b| expand_items(b)).collect(),
        };
        let mut next = Vec::with_capacity(acc.len() * options.len());
        for a in &acc {
            for o in &options {
                let mut c = a.clone();
                c.extend(o.iter().copied());
                next.push(c);
            }
        }
        acc = next;
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::Program;
    use crate::Matcher;

    /// Local differential check against event-ruler (not a CI test): set SLUICE_COMPLEXITY_IN
    /// to a file of patterns, one a line; prints each one's complexity.
    #[test]
    fn measure_from_file() {
        let Ok(path) = std::env::var("SLUICE_COMPLEXITY_IN") else {
            return;
        };
        for line in std::fs::read_to_string(path).unwrap().lines() {
            match Program::measure(line) {
                Some(n) => println!("C OK {n}"),
                None => println!("C ERR"),
            }
        }
    }

    fn leaf(op: &str) -> String {
        format!(r#"{{"detail":{{"qty":[{op}]}}}}"#)
    }

    fn error_of(op: &str) -> Option<String> {
        Matcher::compile(&leaf(op)).err().map(|e| e.to_string())
    }

    /// Refused operands: (operand, the AWS words the message must carry). The message also
    /// names the field.
    const REFUSED: &[(&str, &str)] = &[
        // Class 1: a range is a lower bound, then at most one upper bound.
        (
            r#"{"numeric":["<",5,">",0]}"#,
            "Too many elements in numeric expression",
        ),
        (
            r#"{"numeric":["<=",5,">=",0]}"#,
            "Too many elements in numeric expression",
        ),
        (
            r#"{"numeric":["<",5,"<=",6]}"#,
            "Too many elements in numeric expression",
        ),
        (
            r#"{"numeric":["=",5,"<",6]}"#,
            "Too many elements in numeric expression",
        ),
        (
            r#"{"numeric":["=",5,">",4]}"#,
            "Too many elements in numeric expression",
        ),
        (
            r#"{"numeric":[">",0,">",5]}"#,
            "Bad numeric range operator: >",
        ),
        (
            r#"{"numeric":[">",0,">=",5]}"#,
            "Bad numeric range operator: >=",
        ),
        (
            r#"{"numeric":[">=",0,"=",5]}"#,
            "Bad numeric range operator: =",
        ),
        (
            r#"{"numeric":[">",0,"!=",5]}"#,
            "Bad numeric range operator: !=",
        ),
        (
            r#"{"numeric":[">",0,5,"<"]}"#,
            "Bad value in numeric range: 5",
        ),
        (
            r#"{"numeric":[">",0,null,5]}"#,
            "Bad value in numeric range: null",
        ),
        (
            r#"{"numeric":[">",0,"<",5,"<",6]}"#,
            "Too many terms in numeric range expression",
        ),
        (r#"{"numeric":[">",0,"<"]}"#, "Value of < must be numeric"),
        (
            r#"{"numeric":[">",0,"<","5"]}"#,
            "Value of < must be numeric",
        ),
        (r#"{"numeric":[">"]}"#, "Value of > must be numeric"),
        (
            r#"{"numeric":["=","5"]}"#,
            "Value of equals must be numeric",
        ),
        (r#"{"numeric":[]}"#, "Invalid member in numeric match: ]"),
        (
            r#"{"numeric":[5,">"]}"#,
            "Invalid member in numeric match: 5",
        ),
        (
            r#"{"numeric":["==",5]}"#,
            "Unrecognized numeric range operator: ==",
        ),
        (r#"{"numeric":5}"#, "Value of numeric must be an array."),
        // Just invalid: equal bounds, whatever the inclusiveness.
        (
            r#"{"numeric":[">=",5,"<=",5]}"#,
            "Bottom must be less than top",
        ),
        (
            r#"{"numeric":[">",0,"<=",-0]}"#,
            "Bottom must be less than top",
        ),
        (
            r#"{"numeric":[">",0.5,"<",5e-1]}"#,
            "Bottom must be less than top",
        ),
        // Class 2: operands a double does not hold exactly.
        (
            r#"{"numeric":["=",1e309]}"#,
            "Cannot compare number : 1e309",
        ),
        (
            r#"{"numeric":["<",-1E+309]}"#,
            "Cannot compare number : -1E+309",
        ),
        (
            r#"{"numeric":[">",1.7976931348623158e308]}"#,
            "Cannot compare number : 1.7976931348623158e308",
        ),
        (
            r#"{"numeric":[">",0,"<",1e-400]}"#,
            "Cannot compare number : 1e-400",
        ),
        (
            r#"{"numeric":["=",9007199254740993]}"#,
            "Cannot compare number : 9007199254740993",
        ),
        (
            r#"{"numeric":["=",0.10000000000000001]}"#,
            "Cannot compare number : 0.10000000000000001",
        ),
        (r#"{"anything-but":1e309}"#, "Cannot compare number : 1e309"),
        (
            r#"{"anything-but":[1,2.00000000000000001]}"#,
            "Cannot compare number : 2.00000000000000001",
        ),
        // Class 4: anything-but prefix and suffix need a non-empty operand.
        (
            r#"{"anything-but":{"prefix":""}}"#,
            "Null prefix/suffix not allowed",
        ),
        (
            r#"{"anything-but":{"suffix":""}}"#,
            "Null prefix/suffix not allowed",
        ),
        (
            r#"{"anything-but":{"prefix":["a",""]}}"#,
            "Null prefix/suffix not allowed",
        ),
        (
            r#"{"anything-but":{"suffix":["",".png"]}}"#,
            "Null prefix/suffix not allowed",
        ),
    ];

    /// The same neighbourhood, just valid.
    const ACCEPTED: &[&str] = &[
        r#"{"numeric":[">",0,"<",5]}"#,
        r#"{"numeric":[">=",0,"<=",5]}"#,
        r#"{"numeric":[">",4.999999,"<",5]}"#,
        r#"{"numeric":[">",-0.000001,"<=",0]}"#,
        r#"{"numeric":["<",5]}"#,
        r#"{"numeric":["<=",5]}"#,
        r#"{"numeric":[">",5]}"#,
        r#"{"numeric":[">=",5]}"#,
        r#"{"numeric":["=",3.018e2]}"#,
        r#"{"numeric":["=",1.7976931348623157e308]}"#,
        r#"{"numeric":["=",-1.7976931348623157e308]}"#,
        r#"{"numeric":["=",2.2250738585072014e-308]}"#,
        r#"{"numeric":["=",9007199254740992]}"#,
        r#"{"numeric":["=",0.1]}"#,
        r#"{"numeric":["=",-0]}"#,
        r#"{"numeric":[">",-5e9,"<",5e9]}"#,
        r#"{"numeric":["=",4999999999.999999]}"#,
        r#"{"numeric":["=",-4999999999.999999]}"#,
        r#"{"anything-but":[1,1e308]}"#,
        r#"{"anything-but":{"prefix":"a"}}"#,
        r#"{"anything-but":{"suffix":["x",".png"]}}"#,
        // Empty operands AWS does accept.
        r#"{"prefix":""}"#,
        r#"{"suffix":""}"#,
        r#"{"equals-ignore-case":""}"#,
        r#"{"anything-but":""}"#,
        r#"{"anything-but":{"equals-ignore-case":""}}"#,
        r#"{"anything-but":{"wildcard":""}}"#,
        // Exact numbers are compared by value but never refused (AWS matches their text too).
        "1e309",
        "0.10000000000000001",
    ];

    #[test]
    fn refused_operands_name_the_field_and_say_why_in_aws_words() {
        let mut failures = Vec::new();
        for (op, aws) in REFUSED {
            match error_of(op) {
                None => failures.push(format!("{op}: accepted, want {aws:?}")),
                Some(e) if !e.starts_with("\"detail.qty\" ") || !e.contains(aws) => {
                    failures.push(format!("{op}: got {e:?}, want {aws:?}"))
                }
                Some(_) => {}
            }
        }
        for op in ACCEPTED {
            if let Some(e) = error_of(op) {
                failures.push(format!("{op}: refused with {e:?}"));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn a_refused_operand_reads_well() {
        assert_eq!(
            error_of(r#"{"numeric":["<",5,">",0]}"#).unwrap(),
            "\"detail.qty\" numeric match: Too many elements in numeric expression (an upper \
             bound (< or <=) ends the range; write the lower bound first, e.g. [\">\", 0, \"<=\", 5])"
        );
        assert_eq!(
            error_of(r#"{"anything-but":{"suffix":""}}"#).unwrap(),
            "\"detail.qty\" anything-but suffix: Null prefix/suffix not allowed (an empty suffix \
             would exclude every string)"
        );
    }

    fn bound(op: &str, n: i64) -> String {
        format!("\"{op}\",{n}")
    }

    proptest::proptest! {
        /// Two bounds are accepted exactly when a lower bound comes first, an upper bound
        /// second, and the lower is below the upper; one bound with any operator is accepted.
        #[test]
        fn range_order_and_operators(
            a in proptest::sample::select(vec!["<", "<=", "=", ">", ">="]),
            b in proptest::sample::select(vec!["<", "<=", "=", ">", ">="]),
            x in -3i64..3,
            y in -3i64..3,
        ) {
            let two = format!(r#"{{"numeric":[{},{}]}}"#, bound(a, x), bound(b, y));
            let want = a.starts_with('>') && b.starts_with('<') && x < y;
            proptest::prop_assert_eq!(error_of(&two).is_none(), want, "{}", two);
            let one = format!(r#"{{"numeric":[{}]}}"#, bound(a, x));
            proptest::prop_assert!(error_of(&one).is_none(), "{}", one);
        }

        /// Every finite double written in its shortest form is accepted; one more significant
        /// digit (not a zero) makes it a number no double holds, which is refused.
        #[test]
        fn operands_are_exact_doubles(f in proptest::num::f64::NORMAL | proptest::num::f64::ZERO) {
            let short = format!("{f:e}");
            let op = format!(r#"{{"numeric":["=",{short}]}}"#);
            proptest::prop_assert!(error_of(&op).is_none(), "{}", op);
            let (mantissa, exp) = short.split_once('e').unwrap();
            if f != 0.0 && mantissa.trim_start_matches('-').len() >= 3 {
                // 17 significant digits past the shortest: between two doubles.
                let digits = mantissa.trim_start_matches('-').replace('.', "").len();
                let pad = "0".repeat(17usize.saturating_sub(digits));
                let sep = if mantissa.contains('.') { "" } else { "." };
                let longer = format!("{mantissa}{sep}{pad}1e{exp}");
                let op = format!(r#"{{"numeric":["=",{longer}]}}"#);
                proptest::prop_assert!(error_of(&op).is_some(), "{}", op);
            }
        }
    }
}
