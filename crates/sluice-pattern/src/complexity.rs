//! Wildcard complexity, computed the way AWS's event-ruler computes it.
//!
//! AWS refuses a pattern whose wildcards are "too complex": it adds the pattern's `$or`-free rules
//! that hold a `wildcard` or `anything-but` `wildcard` to an empty event-ruler machine and asks its
//! `MachineComplexityEvaluator` for the largest number of wildcard rule prefixes one input value
//! can be in at once (the NFA states a traversal can occupy together, counting the wildcard
//! patterns each one can still lead to). The number depends on how event-ruler lays out its
//! byte NFA (which states two patterns share, the two ways into a state after `*`), so this
//! module rebuilds that layout, for wildcard patterns only (other patterns add no complexity),
//! and runs the same breadth-first walk over the sets of states.
//!
//! Patterns are walked as event-ruler stores them: UTF-8 bytes between the JSON string's quotes,
//! so every value ends in a literal `"` byte.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

/// Above this AWS answers "Rule is too complex": patterns measured at 8 are accepted by AWS,
/// patterns at 11 and 16 are refused (10 is the limit event-ruler's users apply).
pub(crate) const MAX_WILDCARD_COMPLEXITY: usize = 10;

/// One input character of a wildcard value: a byte, or `*`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ch {
    Byte(u8),
    Star,
}

/// A wildcard pattern of a field: its literal pieces (as `Wildcard` keeps them), one value for
/// `wildcard`, one or more for `anything-but` `wildcard` (one pattern with several byte paths).
pub(crate) type Values = Vec<Vec<Vec<u8>>>;

/// A pattern as a rule holds it, for the name-state layout: wildcard patterns keep their values,
/// every other pattern only needs an identity (equal patterns share a match and its next state).
#[derive(Clone, Debug)]
pub(crate) enum Pat {
    Wild {
        negated: bool,
        values: Values,
    },
    Other(String),
    /// `{"exists": false}`: event-ruler keeps it outside the byte machines, and its evaluator
    /// does not walk on from it.
    Absent,
}

impl Pat {
    fn identity(&self) -> String {
        match self {
            Pat::Wild { negated, values } => format!("w{negated}{values:?}"),
            Pat::Other(id) => id.clone(),
            Pat::Absent => "absent".into(),
        }
    }
}

/// One `$or`-free rule: (dotted field path, its patterns in order).
pub(crate) type Rule = Vec<(String, Vec<Pat>)>;

/// The pattern's most complex field and its complexity (capped just over the limit: a bigger
/// number changes nothing). Rules without a wildcard are left out, as AWS leaves them out.
pub(crate) fn complexity(rules: &[Rule]) -> Option<(String, usize)> {
    let mut layout = Layout {
        name_states: 1,
        ..Layout::default()
    };
    for rule in rules {
        if !rule
            .iter()
            .any(|(_, ps)| ps.iter().any(|p| matches!(p, Pat::Wild { .. })))
        {
            continue;
        }
        let mut keys: Vec<&(String, Vec<Pat>)> = rule.iter().collect();
        // Java sorts the keys as UTF-16 strings.
        keys.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
        layout.add_step(0, &keys);
    }
    // The evaluator walks on through matches only: name states behind `{"exists": false}`
    // alone are not measured (event-ruler before 2.1, which AWS runs).
    let mut reached = vec![false; layout.name_states];
    let mut todo = vec![0];
    while let Some(n) = todo.pop() {
        if std::mem::replace(&mut reached[n], true) {
            continue;
        }
        for ((_, _), m) in layout.machines.range((n, String::new())..) {
            todo.extend(m.next.values().copied());
            todo.extend(m.matches.iter().map(|&(_, ns)| ns));
        }
    }
    let mut worst: Option<(String, usize)> = None;
    for ((ns, key), m) in &layout.machines {
        if !reached[*ns] || m.matches.is_empty() {
            continue;
        }
        let c = m.bytes.evaluate(&m.matches, MAX_WILDCARD_COMPLEXITY + 1);
        if worst.as_ref().is_none_or(|(_, w)| c > *w) {
            worst = Some((key.clone(), c));
        }
    }
    worst
}

/// A wildcard value as event-ruler parses it: `"`, the bytes with `*` as [`Ch::Star`], `"`.
fn chars(pieces: &[Vec<u8>]) -> Vec<Ch> {
    let mut out = vec![Ch::Byte(b'"')];
    for (i, p) in pieces.iter().enumerate() {
        if i > 0 {
            out.push(Ch::Star);
        }
        out.extend(p.iter().map(|&b| Ch::Byte(b)));
    }
    out.push(Ch::Byte(b'"'));
    out
}

/// event-ruler's name states (numbered; 0 is the start) and their field machines.
#[derive(Default)]
struct Layout {
    name_states: usize,
    /// (name state, field) -> its machine.
    machines: BTreeMap<(usize, String), FieldMachine>,
    /// (name state, field) -> the next state of the field's `{"exists": false}`.
    absent: HashMap<(usize, String), usize>,
}

#[derive(Default)]
struct FieldMachine {
    /// Other patterns: identity -> next name state (an equal pattern reuses its match).
    next: HashMap<String, usize>,
    /// Wildcard patterns, numbered by identity.
    patterns: HashMap<String, usize>,
    /// Matches: (wildcard pattern, next name state).
    matches: Vec<(usize, usize)>,
    bytes: ByteMachine,
}

impl Layout {
    /// `GenericMachine.addStep` with the default configuration: a field's first new pattern gets
    /// a new next state, its later new patterns share the last one; an equal pattern that
    /// event-ruler finds again keeps its own.
    fn add_step(&mut self, state: usize, keys: &[&(String, Vec<Pat>)]) {
        let Some(((key, pats), rest)) = keys.split_first().map(|(k, r)| (*k, r)) else {
            return;
        };
        let mut last: Option<usize> = None;
        let mut nexts = BTreeSet::new();
        for p in pats {
            let n = match p {
                Pat::Absent => match self.absent.get(&(state, key.clone())) {
                    Some(&n) => n,
                    None => {
                        let n = last.unwrap_or_else(|| self.new_name_state());
                        self.absent.insert((state, key.clone()), n);
                        n
                    }
                },
                Pat::Other(id) => {
                    let existing = self
                        .machines
                        .get(&(state, key.clone()))
                        .and_then(|m| m.next.get(id).copied());
                    match existing {
                        Some(n) => n,
                        None => {
                            let n = last.unwrap_or_else(|| self.new_name_state());
                            self.machine(state, key).next.insert(id.clone(), n);
                            n
                        }
                    }
                }
                Pat::Wild { values, .. } => {
                    let mut vs = values.clone();
                    vs.sort();
                    vs.dedup();
                    let id = p.identity();
                    let mut n = last;
                    for v in &vs {
                        n = Some(self.add_wildcard(state, key, &id, &chars(v), n));
                    }
                    n.unwrap_or_else(|| self.new_name_state())
                }
            };
            last = Some(n);
            nexts.insert(n);
        }
        if !rest.is_empty() {
            for n in nexts {
                self.add_step(n, rest);
            }
        }
    }

    fn new_name_state(&mut self) -> usize {
        self.name_states += 1;
        self.name_states - 1
    }

    fn machine(&mut self, state: usize, key: &str) -> &mut FieldMachine {
        self.machines.entry((state, key.to_string())).or_default()
    }

    fn add_wildcard(
        &mut self,
        state: usize,
        key: &str,
        id: &str,
        chars: &[Ch],
        candidate: Option<usize>,
    ) -> usize {
        let fresh = self.name_states;
        let m = self.machine(state, key);
        let next_pattern = m.patterns.len();
        let pattern = *m.patterns.entry(id.to_string()).or_insert(next_pattern);
        let (ns, used_fresh) = m
            .bytes
            .add(chars, pattern, candidate, fresh, &mut m.matches);
        if used_fresh {
            self.name_states += 1;
        }
        ns
    }
}

/// A single transition: into a state, a match (pattern id), or both (a match that a later
/// pattern extended past).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
enum Single {
    State(usize),
    Match(usize),
    /// (unique id, next state, match)
    Composite(usize, usize, usize),
}

impl Single {
    fn next_state(self) -> Option<usize> {
        match self {
            Single::State(s) | Single::Composite(_, s, _) => Some(s),
            Single::Match(_) => None,
        }
    }
    fn own_match(self) -> Option<usize> {
        match self {
            Single::Match(m) | Single::Composite(_, _, m) => Some(m),
            Single::State(_) => None,
        }
    }
}

/// A set of singles taken together (event-ruler's single or compound transition), sorted.
type Trans = Vec<Single>;

/// `ByteMap`: byte ranges (by exclusive upper bound, the last one 256) to sets of singles.
#[derive(Clone, Debug)]
struct ByteMap(Vec<(u16, Trans)>);

impl Default for ByteMap {
    fn default() -> Self {
        ByteMap(vec![(256, Vec::new())])
    }
}

impl ByteMap {
    fn get(&self, b: u8) -> &Trans {
        let i = self.0.partition_point(|(ceil, _)| *ceil <= u16::from(b));
        &self.0[i].1
    }

    fn update(&mut self, b: u8, f: impl FnOnce(&mut Trans)) {
        let idx = u16::from(b);
        let i = self.0.partition_point(|(ceil, _)| *ceil <= idx);
        let floor = if i == 0 { 0 } else { self.0[i - 1].0 };
        let mut t = self.0[i].1.clone();
        f(&mut t);
        t.sort();
        t.dedup();
        // Split [floor, ceil) into [floor, b), [b, b + 1), [b + 1, ceil).
        let (ceil, old) = self.0.remove(i);
        let mut parts = Vec::new();
        if floor < idx {
            parts.push((idx, old.clone()));
        }
        parts.push((idx + 1, t));
        if idx + 1 < ceil {
            parts.push((ceil, old));
        }
        for (k, p) in parts.into_iter().enumerate() {
            self.0.insert(i + k, p);
        }
        self.0.dedup_by(|later, earlier| {
            if later.1 == earlier.1 {
                earlier.0 = later.0;
                true
            } else {
                false
            }
        });
    }

    fn add_all(&mut self, s: Single) {
        for (_, t) in &mut self.0 {
            if !t.contains(&s) {
                t.push(s);
                t.sort();
            }
        }
    }

    /// The singles every byte leads to (`getTransitionForAllBytes`).
    fn all_bytes(&self) -> Trans {
        let mut it = self.0.iter();
        let mut acc = it.next().map(|(_, t)| t.clone()).unwrap_or_default();
        for (_, t) in it {
            acc.retain(|s| t.contains(s));
        }
        acc
    }

    fn ceilings(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().map(|(c, _)| *c)
    }
}

#[derive(Default, Clone)]
struct ByteState {
    map: ByteMap,
    indeterminate: bool,
}

#[derive(Default)]
struct ByteMachine {
    states: Vec<ByteState>,
    composites: usize,
}

impl ByteMachine {
    fn new_state(&mut self, indeterminate: bool) -> usize {
        if self.states.is_empty() {
            self.states.push(ByteState::default());
        }
        self.states.push(ByteState {
            map: ByteMap::default(),
            indeterminate,
        });
        self.states.len() - 1
    }

    fn start(&mut self) -> usize {
        if self.states.is_empty() {
            self.states.push(ByteState::default());
        }
        0
    }

    fn trans(&self, s: usize, c: Ch) -> Trans {
        match c {
            Ch::Byte(b) => self.states[s].map.get(b).clone(),
            Ch::Star => self.states[s].map.all_bytes(),
        }
    }

    /// `CompoundByteTransition.getNextByteState`: a determinate next state if any, else any.
    fn next_of(&self, t: &Trans) -> Option<usize> {
        let nexts: Vec<usize> = t.iter().filter_map(|s| s.next_state()).collect();
        nexts
            .iter()
            .copied()
            .find(|&n| !self.states[n].indeterminate)
            .or_else(|| nexts.first().copied())
    }

    fn add_transition(&mut self, s: usize, c: Ch, single: Single) {
        match c {
            Ch::Byte(b) => self.states[s].map.update(b, |t| t.push(single)),
            Ch::Star => self.states[s].map.add_all(single),
        }
    }

    /// `ByteMachine.addMatchValue` for one value of wildcard pattern `pattern`. Returns the next
    /// name state: that of an equal pattern's match found at the end of the path, else
    /// `candidate`, else `fresh` (and whether `fresh` was used).
    fn add(
        &mut self,
        chars: &[Ch],
        pattern: usize,
        candidate: Option<usize>,
        fresh: usize,
        matches: &mut Vec<(usize, usize)>,
    ) -> (usize, bool) {
        let len = chars.len();
        let mut state = self.start();
        let mut prev: Option<usize> = None;
        let mut i = 0;
        while i + 1 < len {
            let t = self.trans(state, chars[i]);
            if t.is_empty() {
                break;
            }
            let reuse = t
                .iter()
                .filter_map(|s| s.next_state())
                .find(|&n| self.can_reuse(state, n, chars, i));
            let Some(n) = reuse else { break };
            prev = Some(state);
            state = n;
            i += 1;
        }
        let (state, prev) = self.walk_to_end(state, prev, chars, i);
        // The last character is the closing `"`: a byte.
        let last = chars[len - 1];
        let found = self
            .trans(state, last)
            .iter()
            .filter_map(|s| s.own_match())
            .find(|&m| matches[m].0 == pattern);
        if let Some(m) = found {
            return (matches[m].1, false);
        }
        let (ns, used_fresh) = match candidate {
            Some(c) => (c, false),
            None => (fresh, true),
        };
        let m = match matches.iter().position(|&x| x == (pattern, ns)) {
            Some(m) => m,
            None => {
                matches.push((pattern, ns));
                matches.len() - 1
            }
        };
        self.add_transition(state, last, Single::Match(m));
        if let Some(p) = prev {
            if chars[len - 2] == Ch::Star {
                self.add_transition(p, last, Single::Match(m));
            }
        }
        (ns, used_fresh)
    }

    fn can_reuse(&self, state: usize, next: usize, chars: &[Ch], i: usize) -> bool {
        if next == state {
            return false;
        }
        // Values end in a `"` byte, so event-ruler's trailing-`*` case never applies.
        if !self.states[next].indeterminate {
            return true;
        }
        !self.converges(state, chars, i)
    }

    /// `doMultipleTransitionsConvergeForInputByte` (no suffix patterns in a wildcard machine).
    fn converges(&self, state: usize, chars: &[Ch], i: usize) -> bool {
        let Ch::Byte(b) = chars[i] else { return false };
        if (0x80..0xC0).contains(&b) {
            return false;
        }
        let all = self.states[state].map.all_bytes();
        if !all.is_empty() && all != [Single::State(state)] {
            return true;
        }
        // event-ruler then asks whether the next character has distinct lower and upper case
        // forms (its equals-ignore-case parser makes a two-way set for those); it always
        // finds a transition, so a cased letter alone decides.
        has_case(chars, i)
    }

    /// `addEndOfMatch` up to the last character: walks the determinate prefix, then lays new
    /// states; returns the state before the last character and the one before it.
    fn walk_to_end(
        &mut self,
        mut state: usize,
        mut prev: Option<usize>,
        chars: &[Ch],
        from: usize,
    ) -> (usize, Option<usize>) {
        let len = chars.len();
        let mut j = from;
        while j + 1 < len {
            let t = self.trans(state, chars[j]);
            if t.is_empty() {
                break;
            }
            match self.next_of(&t) {
                Some(n) if self.states[n].indeterminate => break,
                Some(n) => {
                    prev = Some(state);
                    state = n;
                }
                None => {
                    // A match without a next state: extend it into a state (a composite).
                    let ind = self.states[state].indeterminate;
                    let n = self.new_state(ind);
                    let old = t[0];
                    let Ch::Byte(b) = chars[j] else { break };
                    let Some(om) = old.own_match() else { break };
                    let c = self.composite(n, om);
                    self.states[state].map.update(b, |t| {
                        t.retain(|s| *s != old);
                        t.push(c);
                    });
                    prev = Some(state);
                    state = n;
                }
            }
            j += 1;
        }
        while j + 1 < len {
            let n = self.find_or_make_next(state, prev, chars, j);
            prev = Some(state);
            state = n;
            j += 1;
        }
        (state, prev)
    }

    fn composite(&mut self, next: usize, m: usize) -> Single {
        self.composites += 1;
        Single::Composite(self.composites, next, m)
    }

    fn find_or_make_next(
        &mut self,
        state: usize,
        prev: Option<usize>,
        chars: &[Ch],
        j: usize,
    ) -> usize {
        let t = self.trans(state, chars[j]);
        if let Some(n) = self.next_of(&t) {
            if !self.states[n].indeterminate {
                return n;
            }
        }
        let ind = self.states[state].indeterminate;
        let n = self.new_state(ind);
        match chars[j] {
            Ch::Star => {
                // A new state that loops on every byte, entered on every byte.
                self.states[n].map.add_all(Single::State(n));
                self.states[n].indeterminate = true;
                self.states[state].map.add_all(Single::State(n));
            }
            c @ Ch::Byte(_) => {
                self.add_transition(state, c, Single::State(n));
                // After `*` the byte can also be taken from the state before it (empty match).
                if let Some(p) = prev {
                    if j > 0 && chars[j - 1] == Ch::Star {
                        self.add_transition(p, c, Single::State(n));
                    }
                }
            }
        }
        n
    }

    fn state_transitions(&self, states: &[usize]) -> Vec<Trans> {
        let mut ceilings = BTreeSet::new();
        for &s in states {
            ceilings.extend(self.states[s].map.ceilings());
        }
        let mut out: Vec<Trans> = Vec::new();
        for c in ceilings {
            let b = (c - 1) as u8;
            let mut t: Trans = Vec::new();
            for &s in states {
                t.extend(self.states[s].map.get(b).iter().copied());
            }
            t.sort();
            t.dedup();
            if !t.is_empty() && !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }

    /// `MachineComplexityEvaluator.evaluate` from the start state, capped at `cap`.
    fn evaluate(&self, matches: &[(usize, usize)], cap: usize) -> usize {
        if self.states.is_empty() {
            return 0;
        }
        let reach = self.matches_reachable();
        // Distinct patterns, as event-ruler counts them (matches of one pattern count once).
        let count = |s: &Single| {
            reach.get(s).map_or(0, |ms| {
                ms.iter()
                    .map(|&m| matches[m].0)
                    .collect::<BTreeSet<_>>()
                    .len()
            })
        };
        let mut visited: HashSet<Trans> = HashSet::new();
        visited.insert(vec![Single::State(0)]);
        let mut queue: VecDeque<Trans> = self.state_transitions(&[0]).into();
        let mut max = 0;
        while let Some(t) = queue.pop_front() {
            if !visited.insert(t.clone()) {
                continue;
            }
            let mut size = 0;
            for s in &t {
                size += count(s);
                if let Some(n) = s.next_state() {
                    for w in self.states[n].map.all_bytes() {
                        if !t.contains(&w) {
                            size += count(&w);
                        }
                    }
                }
            }
            if size >= cap {
                return cap;
            }
            max = max.max(size);
            let mut nexts: Vec<usize> = t.iter().filter_map(|s| s.next_state()).collect();
            nexts.sort_unstable();
            nexts.dedup();
            if !nexts.is_empty() {
                queue.extend(self.state_transitions(&nexts));
            }
        }
        max
    }

    /// For every single, the wildcard patterns (match ids) it can still lead to.
    fn matches_reachable(&self) -> HashMap<Single, BTreeSet<usize>> {
        let mut memo: HashMap<Single, BTreeSet<usize>> = HashMap::new();
        let mut visited: HashSet<Single> = HashSet::new();
        let mut stack = vec![Single::State(0)];
        // Depth first, without recursion; a single's set is complete once all below it are.
        while let Some(&t) = stack.last() {
            memo.entry(t).or_default();
            if visited.contains(&t) {
                let mut acc = memo[&t].clone();
                if let Some(n) = t.next_state() {
                    for (_, tr) in &self.states[n].map.0 {
                        for s in tr {
                            if let Some(m) = memo.get(s) {
                                acc.extend(m.iter().copied());
                            }
                        }
                    }
                }
                memo.insert(t, acc);
                stack.pop();
                continue;
            }
            visited.insert(t);
            if let Some(m) = t.own_match() {
                memo.entry(t).or_default().insert(m);
            }
            if let Some(n) = t.next_state() {
                for (_, tr) in &self.states[n].map.0 {
                    for s in tr {
                        if !visited.contains(s) {
                            stack.push(*s);
                        }
                    }
                }
            }
        }
        memo
    }
}

/// Whether the character starting at `chars[i]` has distinct lower and upper case forms.
fn has_case(chars: &[Ch], i: usize) -> bool {
    let Ch::Byte(b) = chars[i] else { return false };
    let n = match b {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        // event-ruler reads three bytes of a four-byte character: never a cased letter.
        _ => return false,
    };
    let bytes: Vec<u8> = chars[i..]
        .iter()
        .take(n)
        .filter_map(|c| match c {
            Ch::Byte(b) => Some(*b),
            Ch::Star => None,
        })
        .collect();
    let Ok(s) = std::str::from_utf8(&bytes) else {
        return false;
    };
    let Some(c) = s.chars().next() else {
        return false;
    };
    let lower: String = c.to_lowercase().collect();
    let upper: String = c.to_uppercase().collect();
    lower != upper
}

#[cfg(test)]
mod tests {
    use crate::compile::Program;
    use crate::Matcher;

    /// (pattern, complexity as event-ruler's `MachineComplexityEvaluator` reports it for the
    /// machine AWS builds, capped at 11 here). The expected numbers were taken from event-ruler.
    const MEASURED: &[(&str, usize)] = &[
        (r#"{"a":[{"wildcard":"abc"}]}"#, 1),
        (r#"{"a":[{"wildcard":"*"}]}"#, 2),
        (r#"{"a":[{"wildcard":"/Users/*/doc.txt"}]}"#, 2),
        (
            r#"{"a":[{"wildcard":"arn:aws:events:us-east-1:*:event-bus/*"}]}"#,
            3,
        ),
        (
            r#"{"a":[{"anything-but":{"wildcard":["*/init/*","*/dir/*"]}}]}"#,
            5,
        ),
        (
            r#"{"a":[{"wildcard":"ab*cd"},{"wildcard":"ab*wx"},{"wildcard":"ab*yz"}]}"#,
            6,
        ),
        (
            r#"{"a":[{"wildcard":"/Users/*/dir/dir/dir/dir/dir/doc.txt"}]}"#,
            7,
        ),
        (r#"{"a":[{"wildcard":"a*aaa"},{"wildcard":"aa*aa"}]}"#, 7),
        (
            r#"{"k":[{"wildcard":"*.bif"},{"wildcard":"*.tiff"},{"wildcard":"*.tif"},{"wildcard":"*.svs"}]}"#,
            8,
        ),
        // The largest AWS accepts: 10.
        (
            r#"{"a":[{"wildcard":"F*eatureFeature"},{"wildcard":"Fe*atureFeature"},{"wildcard":"Fea*tureFeature"}]}"#,
            10,
        ),
        // Just over: refused.
        (r#"{"a":[{"wildcard":"*:*:*:*:*:event-bus/*"}]}"#, 11),
        (
            r#"{"k":[{"wildcard":"*/datasync/*.bif"},{"wildcard":"*/datasync/*.tif"},{"wildcard":"*/datasync/*.tiff"},{"wildcard":"*/datasync/*.svs"}]}"#,
            11,
        ),
        (r#"{"a":[{"wildcard":"*a*a*a*a*a*a*a*a*"}]}"#, 11),
        // Machines behind other fields count too.
        (
            r#"{"abc":[{"prefix":"a"},"abcdef"],"def":[{"prefix":"b"},{"wildcard":"a*a*a*a*a*a*"},{"suffix":"c"}]}"#,
            11,
        ),
        // Repeated patterns: event-ruler lays a second path (3, not 2).
        (r#"{"a":[{"wildcard":"*b"},{"wildcard":"*b"}]}"#, 3),
        // $or branches share a field's machine only where event-ruler's name states meet.
        (
            r#"{"$or":[{"b":[{"wildcard":"x*"}]},{"b":[{"wildcard":"*a"}]}]}"#,
            4,
        ),
        (
            r#"{"a":[{"wildcard":"A.aa*.A"}],"$or":[{"b":[{"wildcard":".*\\*"},{"wildcard":"bx\"bxbA"}]},{"b":[{"wildcard":"*a"},{"wildcard":"xéb\"bé"},{"wildcard":""},{"wildcard":"*ax"}]}]}"#,
            6,
        ),
        (
            r#"{"b":[{"wildcard":".*\\*"},{"wildcard":"bx\"bxbA"},{"wildcard":"*a"},{"wildcard":"xéb\"bé"},{"wildcard":""},{"wildcard":"*ax"}]}"#,
            8,
        ),
        (r#"{"a":["x"]}"#, 0),
    ];

    #[test]
    fn complexity_is_event_rulers() {
        let mut failures = Vec::new();
        for (p, want) in MEASURED {
            let got = Program::measure(p);
            if got != Some(*want) {
                failures.push(format!("{p}: got {got:?}, want {want}"));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn over_ten_is_refused_naming_the_field() {
        for (p, n) in MEASURED {
            let r = Matcher::compile(p);
            assert_eq!(r.is_err(), *n > 10, "{p}: {r:?}");
        }
        let e = Matcher::compile(r#"{"detail":{"bus":[{"wildcard":"*:*:*:*:*:event-bus/*"}]}}"#)
            .unwrap_err();
        assert_eq!(e.path(), Some("detail.bus"));
        assert_eq!(
            e.to_string(),
            "\"detail.bus\" wildcard: Rule is too complex - try using fewer wildcard characters or \
             fewer repeating character sequences after a wildcard character (at least 11 wildcard \
             prefixes can match one value at once; AWS allows 10)"
        );
        // Each filter is measured on its own, as AWS validates each pattern.
        let one = r#"{"a":[{"wildcard":"F*eatureFeature"},{"wildcard":"Fe*atureFeature"},{"wildcard":"Fea*tureFeature"}]}"#;
        assert!(Matcher::compile_all(&[one, one]).is_ok());
    }
}
