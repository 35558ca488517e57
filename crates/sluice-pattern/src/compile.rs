//! Pattern compilation: JSON text -> validated operators -> `$or`-free conjunctions.
//!
//! This module owns the pattern language's syntax and its error messages. A pattern becomes a list
//! of conjunctions, each a list of (field path, leaf) requirements; the evaluator builds its
//! path trie from those. `$or` is expanded here (bounded by the 1,000-combination limit, which is
//! checked before expanding so a hostile pattern cannot blow up memory).

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
        let filter = self.filters;
        for conj in expand_items(&items) {
            self.conjs.push(conj);
            self.filter_of.push(filter);
        }
        self.filters += 1;
        Ok(())
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
        other => return err(format!("uses unrecognized match type {other:?}")),
    };
    Ok(Some(c))
}

fn numeric(v: &Tree, path: &str) -> Result<Range, PatternError> {
    let err = |reason: &str| Err(PatternError::field(path, reason.to_string()));
    let Tree::Arr(items) = v else {
        return err("numeric match pattern must be an array like [\">\", 0, \"<=\", 5]");
    };
    if items.len() != 2 && items.len() != 4 {
        return err("numeric match pattern must have one or two (operator, number) pairs");
    }
    let mut range = Range { lo: None, hi: None };
    for pair in items.chunks(2) {
        let Tree::Str(op) = &pair[0] else {
            return err("numeric operator must be one of \"<\", \"<=\", \"=\", \">\", \">=\"");
        };
        let Tree::Num(n) = &pair[1] else {
            return Err(PatternError::field(
                path,
                format!(
                    "numeric operator \"{op}\" must be followed by a number, not {}",
                    kind(&pair[1])
                ),
            ));
        };
        let d = num(n, path)?;
        match op.as_str() {
            "=" => {
                if items.len() != 2 {
                    return err("numeric \"=\" cannot be combined with another bound");
                }
                range.lo = Some((d.clone(), true));
                range.hi = Some((d, true));
            }
            ">" | ">=" => {
                if range.lo.is_some() {
                    return err("numeric range has two lower bounds (> or >=)");
                }
                range.lo = Some((d, op == ">="));
            }
            "<" | "<=" => {
                if range.hi.is_some() {
                    return err("numeric range has two upper bounds (< or <=)");
                }
                range.hi = Some((d, op == "<="));
            }
            other => {
                return Err(PatternError::field(
                    path,
                    format!(
                    "numeric operator {other:?} is not one of \"<\", \"<=\", \"=\", \">\", \">=\""
                ),
                ))
            }
        }
    }
    if let (Some((lo, _)), Some((hi, _))) = (&range.lo, &range.hi) {
        if items.len() == 4 && lo.cmp(hi) != Ordering::Less {
            return err(
                "numeric range is empty: the lower bound must be less than the upper bound",
            );
        }
    }
    Ok(range)
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
        Tree::Num(n) => Ok(Except::Numbers(vec![num(n, path)?])),
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
                        ds.push(num(n, path)?);
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
                "prefix" => Ok(Except::Prefixes(bytes(strings(inner, path, &what)?))),
                "suffix" => Ok(Except::Suffixes(bytes(strings(inner, path, &what)?))),
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
