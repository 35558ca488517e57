//! The evaluator: a field-path trie over all conjunctions of all filters, and one streaming pass
//! over the event that computes, for every conjunction at once, whether it holds.
//!
//! This module owns matching semantics beyond single values: nesting, arrays and the
//! "same array element" rule, absence (`exists: false`), and the one-pass scan.
//!
//! ## The "same element" rule, exactly
//! A conjunction holds if one can pick, for each positive leaf, a value occurrence matching it,
//! such that no two picked occurrences sit in different elements of the same array, and every
//! `exists: false` leaf has no occurrence that is consistent (in that sense) with the picks.
//! The scan computes this bottom-up with two bit sets per trie node instance, one bit per
//! conjunction:
//! - `pos`: satisfiable inside this value with at least one occurrence picked inside it;
//! - `neg`: satisfiable inside this value with nothing picked inside it (only absences).
//!
//! Conjunctions that name nothing under a node are neutral there (`pos = 0`, `neg = 1`).
//! Objects combine members (AND, with "some member picked" for `pos`); arrays combine elements
//! (`pos` = any element, `neg` = every element, because an absence must hold in all of them);
//! an empty array counts as absent. Bits never depend on which order fields come in.

// Word loops over several parallel bit sets read better indexed than zipped three ways.
#![allow(clippy::needless_range_loop)]

use crate::compile::Program;
use crate::cond::{Cond, Scalar, Val};
use crate::json::{JResult, Scanner};

/// Bit sets of `W` words: one bit per conjunction.
pub(crate) type Bits<const W: usize> = [u64; W];

#[derive(Debug, Clone, Copy)]
pub(crate) struct Out<const W: usize> {
    pos: Bits<W>,
    neg: Bits<W>,
}

#[inline]
fn and<const W: usize>(a: Bits<W>, b: Bits<W>) -> Bits<W> {
    std::array::from_fn(|i| a[i] & b[i])
}
#[inline]
fn or<const W: usize>(a: Bits<W>, b: Bits<W>) -> Bits<W> {
    std::array::from_fn(|i| a[i] | b[i])
}
#[inline]
fn not<const W: usize>(a: Bits<W>) -> Bits<W> {
    std::array::from_fn(|i| !a[i])
}

#[derive(Debug)]
pub(crate) struct Node<const W: usize> {
    /// Child field name -> node index.
    children: Vec<(Box<[u8]>, usize)>,
    /// Distinct leaves tested here (leaf id), each with the conjunctions that require it.
    leaves: Vec<(usize, Bits<W>)>,
    /// The conditions of each of `leaves`, in the same order: kept here, next to the node,
    /// so that testing a value does not chase leaf ids.
    leaf_conds: Vec<Box<[Cond]>>,
    /// Conjunctions with at least one leaf here.
    leaf_users: Bits<W>,
    /// Per conjunction: the leaf part holds when the value is absent or an object
    /// (non-users: 1; users: all their leaves here allow absence).
    leaf_absent: Bits<W>,
    /// Conjunctions naming something at or below this node.
    uses: Bits<W>,
    /// Conjunctions naming something strictly below this node.
    child_users: Bits<W>,
    /// AND of the children's `missing` (all ones without children).
    children_missing: Bits<W>,
    /// `neg` when the value here is missing: `leaf_absent & children_missing`.
    missing: Bits<W>,
}

/// The compiled trie for one word width.
#[derive(Debug)]
pub(crate) struct Trie<const W: usize> {
    nodes: Vec<Node<W>>,
    /// Bits of real conjunctions (the tail of the last word is padding).
    valid: Bits<W>,
    /// Per filter: bits of its conjunctions.
    filter_bits: Vec<Bits<W>>,
}

fn set<const W: usize>(b: &mut Bits<W>, c: usize) {
    if let Some(w) = b.get_mut(c / 64) {
        *w |= 1u64 << (c % 64);
    }
}

fn bit<const W: usize>(c: usize) -> Bits<W> {
    let mut b = [0u64; W];
    if let Some(w) = b.get_mut(c / 64) {
        *w |= 1u64 << (c % 64);
    }
    b
}

impl<const W: usize> Trie<W> {
    pub fn build(p: &Program) -> Self {
        let mut nodes: Vec<Node<W>> = vec![Node::empty()];
        let mut valid = [0u64; W];
        let mut filter_bits = vec![[0u64; W]; p.filters];
        for (c, conj) in p.conjs.iter().enumerate() {
            // Setting one bit in place: O(1) per step even with 79-word sets.
            set(&mut valid, c);
            if let Some(f) = filter_bits.get_mut(p.filter_of[c]) {
                set(f, c);
            }
            for &(path, leaf) in conj {
                let path = &p.paths[path];
                let mut n = 0;
                set(&mut nodes[0].uses, c);
                for key in path {
                    set(&mut nodes[n].child_users, c);
                    let found = nodes[n]
                        .children
                        .iter()
                        .find(|(k, _)| **k == *key.as_bytes())
                        .map(|&(_, i)| i);
                    n = match found {
                        Some(i) => i,
                        None => {
                            nodes.push(Node::empty());
                            let i = nodes.len() - 1;
                            nodes[n].children.push((key.as_bytes().into(), i));
                            i
                        }
                    };
                    set(&mut nodes[n].uses, c);
                }
                let node = &mut nodes[n];
                set(&mut node.leaf_users, c);
                match node.leaves.iter_mut().find(|(l, _)| *l == leaf) {
                    Some((_, m)) => set(m, c),
                    None => node.leaves.push((leaf, bit::<W>(c))),
                }
            }
        }
        // leaf_absent: start at all ones, clear conjunctions with a leaf that needs presence.
        for node in &mut nodes {
            let mut absent = [u64::MAX; W];
            for (l, m) in &node.leaves {
                if !p.leaves[*l].absent_ok {
                    absent = and(absent, not(*m));
                }
            }
            node.leaf_absent = absent;
            node.leaf_conds = node
                .leaves
                .iter()
                .map(|&(l, _)| p.leaves[l].conds.clone().into_boxed_slice())
                .collect();
        }
        // Children are always created after their parent, so a reverse sweep is bottom-up.
        for n in (0..nodes.len()).rev() {
            let mut cm = [u64::MAX; W];
            for &(_, c) in &nodes[n].children {
                cm = and(cm, nodes[c].missing);
            }
            nodes[n].children_missing = cm;
            nodes[n].missing = and(nodes[n].leaf_absent, cm);
        }
        Trie {
            nodes,
            valid,
            filter_bits,
        }
    }

    /// Which filters hold, given the root outcome.
    fn filters(&self, out: Out<W>) -> FilterSet {
        let hold = and(or(out.pos, out.neg), self.valid);
        let mut set = FilterSet(0);
        // Most events match nothing.
        if hold == [0; W] {
            return set;
        }
        for (i, fb) in self.filter_bits.iter().enumerate() {
            if and(hold, *fb).iter().any(|&w| w != 0) {
                set.0 |= 1 << i;
            }
        }
        set
    }

    /// Matches a JSON text (the whole event), validating all of it.
    pub fn match_json(&self, text: &[u8]) -> JResult<FilterSet> {
        let out = Eval::<W, true>::new(self, text)?.document()?;
        Ok(self.filters(out))
    }

    /// Matches a JSON text, reading only as far as the patterns need and without validating
    /// what it skips.
    pub fn match_json_lenient(&self, text: &[u8]) -> JResult<FilterSet> {
        let out = Eval::<W, false>::new(self, text)?.document()?;
        Ok(self.filters(out))
    }

    /// Matches a Kafka record view (see [`crate::KafkaRecord`]).
    ///
    /// A key or value that looks like a JSON document is first matched leniently (reading only
    /// what the patterns name, as [`Trie::match_json_lenient`]), assuming it is valid. Whether it
    /// really is (UTF-8 and JSON) is checked only when that could change the answer: if it is
    /// not, every condition on the field fails, which can only turn matches into non-matches.
    /// So a record that fails the filter on the optimistic reading is dropped without
    /// validating its value, and most filters drop most records.
    pub fn match_kafka(&self, r: &crate::KafkaRecord<'_>) -> FilterSet {
        let (set, unchecked) = self.kafka_fields(r, [false; 2]);
        if set.0 == 0 || unchecked == [false; 2] {
            return set;
        }
        let invalid = [
            unchecked[0] && !r.key.is_some_and(crate::json::is_valid_json),
            unchecked[1] && !r.value.is_some_and(crate::json::is_valid_json),
        ];
        if invalid == [false; 2] {
            set
        } else {
            self.kafka_fields(r, invalid).0
        }
    }

    /// One evaluation of the record. `invalid[0]`/`[1]`: the key/value is known not to be
    /// valid JSON text. Also returns which of them were read on the unchecked assumption
    /// that they are.
    fn kafka_fields(
        &self,
        r: &crate::KafkaRecord<'_>,
        invalid: [bool; 2],
    ) -> (FilterSet, [bool; 2]) {
        let root = &self.nodes[0];
        let mut sat = root.leaf_absent;
        let mut anyp = [0u64; W];
        let mut alln = root.leaf_absent;
        let mut unchecked = [false; 2];
        for (key, child) in &root.children {
            let o = self.kafka_field(key, *child, r, invalid, &mut unchecked);
            sat = and(sat, or(o.pos, o.neg));
            anyp = or(anyp, o.pos);
            alln = and(alln, o.neg);
        }
        let set = self.filters(Out {
            pos: and(sat, anyp),
            neg: alln,
        });
        (set, unchecked)
    }

    fn kafka_field(
        &self,
        key: &[u8],
        n: usize,
        r: &crate::KafkaRecord<'_>,
        invalid: [bool; 2],
        unchecked: &mut [bool; 2],
    ) -> Out<W> {
        let node = &self.nodes[n];
        let missing = Out {
            pos: [0; W],
            neg: node.missing,
        };
        let s = |v: &str| self.scalar(n, Scalar::Str(v.as_bytes()));
        match key {
            b"topic" => s(r.topic),
            b"partition" => s(&r.partition.to_string()),
            b"offset" => self.scalar(n, Scalar::Num(r.offset.to_string().as_bytes())),
            b"timestamp" => self.scalar(n, Scalar::Num(r.timestamp.to_string().as_bytes())),
            b"timestampType" => s(r.timestamp_type),
            b"eventSource" => s(if r.bootstrap_servers.is_some() {
                "SelfManagedKafka"
            } else {
                "aws:kafka"
            }),
            b"eventSourceKey" => s(&format!("{}-{}", r.topic, r.partition)),
            b"eventSourceArn" => r.event_source_arn.map_or(missing, s),
            b"bootstrapServers" => r.bootstrap_servers.map_or(missing, s),
            b"key" => r.key.map_or(missing, |k| {
                self.decoded(n, k, invalid[0], &mut unchecked[0])
            }),
            b"value" => match r.value {
                Some(v) => self.decoded(n, v, invalid[1], &mut unchecked[1]),
                None => self.scalar(n, Scalar::Null),
            },
            b"headers" => {
                let json = headers_json(r.headers);
                match Eval::<W, true>::new(self, json.as_bytes()) {
                    Ok(mut e) => e.value(n, false).unwrap_or(missing),
                    Err(_) => missing,
                }
            }
            _ => missing,
        }
    }

    /// A Kafka key or value: JSON if it parses, else a plain string; non-UTF-8 matches nothing.
    ///
    /// `invalid`: already known not to be JSON text. `unchecked` is set when the outcome
    /// assumes, without having checked, that `bytes` are valid JSON (see [`Trie::match_kafka`]).
    fn decoded(&self, n: usize, bytes: &[u8], invalid: bool, unchecked: &mut bool) -> Out<W> {
        let node = &self.nodes[n];
        // Every conjunction naming this field fails; the others stay neutral.
        let fail = Out {
            pos: [0; W],
            neg: not(node.uses),
        };
        let first = bytes
            .iter()
            .copied()
            .find(|c| !matches!(c, b' ' | b'\n' | b'\r' | b'\t'));
        // Fields named under this one, none tested on it as a whole: for a document the
        // optimistic outcome is the lenient one, and for anything else (plain text, invalid
        // JSON, non-UTF-8) every user fails.
        if node.leaf_users == [0; W] && matches!(first, Some(b'{' | b'[')) {
            if invalid {
                return fail;
            }
            return match Eval::<W, false>::new(self, bytes).and_then(|mut e| e.value(n, true)) {
                Ok(o) => {
                    *unchecked = true;
                    o
                }
                // Lenient reading only fails on text that is not JSON.
                Err(_) => fail,
            };
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            return fail;
        };
        if let Ok(mut e) = Eval::<W, true>::new(self, bytes) {
            if let Ok(first) = e.sc.peek() {
                if let Ok(o) = e.value(n, false) {
                    if e.sc.end().is_ok() {
                        if first == b'{' || first == b'[' {
                            // JSON document vs a plain-string pattern leaf here: format mismatch.
                            let keep = not(node.leaf_users);
                            return Out {
                                pos: and(o.pos, keep),
                                neg: and(o.neg, keep),
                            };
                        }
                        return o;
                    }
                }
            }
        }
        // Plain text vs a JSON pattern (fields under this one): format mismatch.
        let o = self.scalar(n, Scalar::Str(text.as_bytes()));
        let keep = not(node.child_users);
        Out {
            pos: and(o.pos, keep),
            neg: and(o.neg, keep),
        }
    }

    /// Outcome of a scalar at node `n` (its children, if any, see it as missing).
    fn scalar(&self, n: usize, s: Scalar<'_>) -> Out<W> {
        let mut out = Out {
            pos: [0; W],
            neg: [0; W],
        };
        self.scalar_into(n, s, &mut out);
        out
    }

    /// [`Trie::scalar`] writing into `out`: the recursive scan keeps its frames small this way.
    fn scalar_into(&self, n: usize, s: Scalar<'_>, out: &mut Out<W>) {
        let node = &self.nodes[n];
        if node.leaves.is_empty() {
            out.pos = [0; W];
            out.neg = node.children_missing;
            return;
        }
        let mut v = Val::new(s);
        // pos starts as "every leaf user", then loses the users of each failing leaf.
        out.pos = node.leaf_users;
        for ((_, m), conds) in node.leaves.iter().zip(&node.leaf_conds) {
            if !conds.iter().any(|c| c.matches_fast(&mut v)) {
                for i in 0..W {
                    out.pos[i] &= !m[i];
                }
            }
        }
        for i in 0..W {
            out.pos[i] &= node.children_missing[i];
            out.neg[i] = !node.leaf_users[i] & node.children_missing[i];
        }
    }
}

impl<const W: usize> Node<W> {
    fn empty() -> Self {
        Node {
            children: Vec::new(),
            leaves: Vec::new(),
            leaf_conds: Vec::new(),
            leaf_users: [0; W],
            leaf_absent: [u64::MAX; W],
            uses: [0; W],
            child_users: [0; W],
            children_missing: [u64::MAX; W],
            missing: [u64::MAX; W],
        }
    }
}

/// Folds one member's outcome into an object's running (all hold, some picked, all absent).
/// In place: with 79-word sets, by-value temporaries would bloat every recursion frame.
#[inline]
fn absorb<const W: usize>(sat: &mut Bits<W>, anyp: &mut Bits<W>, alln: &mut Bits<W>, o: &Out<W>) {
    for i in 0..W {
        sat[i] &= o.pos[i] | o.neg[i];
        anyp[i] |= o.pos[i];
        alln[i] &= o.neg[i];
    }
}

/// Byte equality without a `memcmp` call: field names are short.
#[inline]
fn eq_key(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Starts loading the next few cache lines of an event that is probably not in cache yet, so
/// that their misses overlap the first one's instead of following it one by one (a lenient pass
/// typically reads the first few hundred bytes). Plain loads, so no `unsafe` prefetch is needed:
/// nothing waits for their values.
#[inline(always)]
fn touch_ahead(b: &[u8]) {
    let mut x = 0u8;
    for at in [64, 128, 192] {
        if let Some(&c) = b.get(at) {
            x ^= c;
        }
    }
    std::hint::black_box(x);
}

/// Set of filter indexes (at most 5, so a bit mask).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct FilterSet(pub u8);

fn headers_json(h: &[(&str, Option<&[u8]>)]) -> String {
    let mut s = String::from("[");
    for (i, (k, v)) in h.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('{');
        s.push_str(&serde_json::Value::from(*k).to_string());
        s.push(':');
        match v {
            None => s.push_str("null"),
            Some(bytes) => {
                s.push('[');
                for (j, b) in bytes.iter().enumerate() {
                    if j > 0 {
                        s.push(',');
                    }
                    // Java's signed bytes, as AWS sends them.
                    s.push_str(&(*b as i8).to_string());
                }
                s.push(']');
            }
        }
        s.push('}');
    }
    s.push(']');
    s
}

/// One pass over one JSON text. `STRICT` validates everything; lenient passes skip unnamed
/// values without validating them and stop as soon as every named field has been read.
struct Eval<'t, 'a, const W: usize, const STRICT: bool> {
    t: &'t Trie<W>,
    sc: Scanner<'a>,
    /// Unescaped strings (keys and values) land here.
    buf: Vec<u8>,
    /// Lenient only: the top-level object was left early, the rest of the text is unread.
    stopped: bool,
}

enum ArrState {
    Open,
    Elem,
    After,
}

impl<'t, 'a, const W: usize, const STRICT: bool> Eval<'t, 'a, W, STRICT> {
    fn new(t: &'t Trie<W>, text: &'a [u8]) -> JResult<Self> {
        Ok(Eval {
            t,
            sc: if STRICT {
                Scanner::new(text)?
            } else {
                Scanner::new_unchecked(text)
            },
            buf: Vec::new(),
            stopped: false,
        })
    }

    /// The whole text against the root.
    fn document(&mut self) -> JResult<Out<W>> {
        if !STRICT {
            touch_ahead(self.sc.b);
        }
        let out = self.value(0, true)?;
        if !self.stopped {
            self.sc.end()?;
        }
        Ok(out)
    }

    #[inline]
    fn skip(&mut self) -> JResult<()> {
        if STRICT {
            self.sc.skip_value()
        } else {
            self.sc.skip_lenient()
        }
    }

    /// Evaluates the value at the cursor against node `n` (not recursive callers: see `value_into`).
    fn value(&mut self, n: usize, top: bool) -> JResult<Out<W>> {
        let mut out = Out {
            pos: [0; W],
            neg: [0; W],
        };
        self.value_into(n, top, &mut out)?;
        Ok(out)
    }

    /// Evaluates the value at the cursor against node `n`, into `out`. `top`: nothing after this
    /// value can change the outcome (the document's own value, or the last field a top object
    /// waits for), so a lenient pass may stop reading once this value is decided.
    fn value_into(&mut self, n: usize, top: bool, out: &mut Out<W>) -> JResult<()> {
        let t = self.t;
        let node = &t.nodes[n];
        match self.sc.peek()? {
            b'{' => {
                if node.children.is_empty() {
                    self.skip()?;
                    out.pos = [0; W];
                    out.neg = node.leaf_absent;
                    Ok(())
                } else {
                    self.object(n, top, out)
                }
            }
            b'[' => self.array(n, out),
            b'"' => {
                let r = if STRICT {
                    self.sc.string()?
                } else {
                    self.sc.string_lenient()?
                };
                if node.leaves.is_empty() {
                    t.scalar_into(n, Scalar::Null, out);
                    return Ok(());
                }
                let bytes = self.sc.str_bytes(r, &mut self.buf);
                if !STRICT && !bytes.is_ascii() && std::str::from_utf8(bytes).is_err() {
                    return self.sc.err("invalid UTF-8");
                }
                t.scalar_into(n, Scalar::Str(bytes), out);
                Ok(())
            }
            b'-' | b'0'..=b'9' => {
                let (a, b) = self.sc.number()?;
                t.scalar_into(n, Scalar::Num(&self.sc.b[a..b]), out);
                Ok(())
            }
            b't' => {
                self.sc.literal(b"true")?;
                t.scalar_into(n, Scalar::Bool(true), out);
                Ok(())
            }
            b'f' => {
                self.sc.literal(b"false")?;
                t.scalar_into(n, Scalar::Bool(false), out);
                Ok(())
            }
            b'n' => {
                self.sc.literal(b"null")?;
                t.scalar_into(n, Scalar::Null, out);
                Ok(())
            }
            _ => self.sc.err("expected a JSON value"),
        }
    }

    /// An object: members combine as they come. A repeated key counts once (the first one),
    /// so the outcome never depends on what follows the last named field.
    fn object(&mut self, n: usize, top: bool, out: &mut Out<W>) -> JResult<()> {
        let t = self.t;
        let node = &t.nodes[n];
        self.sc.i += 1;
        let mut sat = node.leaf_absent;
        let mut anyp = [0u64; W];
        let mut alln = node.leaf_absent;
        let nkids = node.children.len();
        // Which children were seen: inline for up to 64, heap beyond (rare, wide patterns).
        let mut seen_small: u64 = 0;
        let mut seen_big: Vec<bool> = Vec::new();
        if nkids > 64 {
            seen_big = vec![false; nkids];
        }
        let mut left = nkids;
        if self.sc.peek()? == b'}' {
            self.sc.i += 1;
        } else {
            loop {
                let k = if STRICT {
                    self.sc.key()?
                } else {
                    self.sc.key_lenient()?
                };
                let key = self.sc.str_bytes(k, &mut self.buf);
                let found = node.children.iter().position(|(name, _)| eq_key(name, key));
                let fresh = match found {
                    Some(ci) if ci < 64 && nkids <= 64 => seen_small & (1 << ci) == 0,
                    Some(ci) => !seen_big.get(ci).copied().unwrap_or(true),
                    None => false,
                };
                match found {
                    Some(ci) if fresh => {
                        // The last field a top-level object waits for may stop the whole pass.
                        let last = top && left == 1;
                        self.value_into(node.children[ci].1, last, out)?;
                        absorb(&mut sat, &mut anyp, &mut alln, out);
                        if nkids <= 64 {
                            seen_small |= 1 << ci;
                        } else if let Some(s) = seen_big.get_mut(ci) {
                            *s = true;
                        }
                        left -= 1;
                    }
                    _ if !STRICT => {
                        // Nothing changed: go straight on to the next member.
                        if self.sc.skip_then_next_lenient(b'}')? {
                            continue;
                        }
                        break;
                    }
                    _ => self.skip()?,
                }
                if !STRICT && (left == 0 || self.stopped) {
                    // Every named field is read: nothing later can change the outcome.
                    if top {
                        self.stopped = true;
                    } else {
                        self.sc.close_lenient()?;
                    }
                    break;
                }
                if !self.sc.next_or_close(b'}')? {
                    break;
                }
            }
        }
        if left > 0 {
            for (ci, &(_, c)) in node.children.iter().enumerate() {
                let seen = if nkids <= 64 {
                    seen_small & (1 << ci) != 0
                } else {
                    seen_big.get(ci).copied().unwrap_or(false)
                };
                if !seen {
                    let m = &t.nodes[c].missing;
                    for i in 0..W {
                        sat[i] &= m[i];
                        alln[i] &= m[i];
                    }
                }
            }
        }
        for i in 0..W {
            out.pos[i] = sat[i] & anyp[i];
        }
        out.neg = alln;
        Ok(())
    }

    /// Arrays, nested to any depth, without recursion: elements' outcomes fold into one.
    fn array(&mut self, n: usize, out: &mut Out<W>) -> JResult<()> {
        let missing = &self.t.nodes[n].missing;
        let mut pos = [0u64; W];
        let mut neg = [u64::MAX; W];
        let mut depth = 0usize;
        let mut st = ArrState::Open;
        loop {
            match st {
                ArrState::Open => {
                    self.sc.i += 1;
                    depth += 1;
                    if self.sc.peek()? == b']' {
                        self.sc.i += 1;
                        depth -= 1;
                        for i in 0..W {
                            neg[i] &= missing[i];
                        }
                        st = ArrState::After;
                    } else {
                        st = ArrState::Elem;
                    }
                }
                ArrState::Elem => {
                    if self.sc.peek()? == b'[' {
                        st = ArrState::Open;
                    } else {
                        self.value_into(n, false, out)?;
                        for i in 0..W {
                            pos[i] |= out.pos[i];
                            neg[i] &= out.neg[i];
                        }
                        st = ArrState::After;
                    }
                }
                ArrState::After => {
                    if depth == 0 {
                        out.pos = pos;
                        out.neg = neg;
                        return Ok(());
                    }
                    if self.sc.next_or_close(b']')? {
                        st = ArrState::Elem;
                    } else {
                        depth -= 1;
                    }
                }
            }
        }
    }
}
