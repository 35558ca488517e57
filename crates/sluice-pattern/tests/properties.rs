//! Property tests. The main one checks the one-pass matcher against a naive reference written
//! from the spec's definitions: flatten the event into (path, value, array positions)
//! occurrences, expand `$or`, and search every choice of occurrences by brute force.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use sluice_pattern::Matcher;

// ---------- the reference evaluator ----------

/// A scalar found at `path`, with the (array id, index) of every array it sits in.
#[derive(Debug, Clone)]
struct Occ {
    path: Vec<String>,
    value: Value,
    arrays: Vec<(usize, usize)>,
}

fn flatten(
    v: &Value,
    path: &mut Vec<String>,
    arrays: &mut Vec<(usize, usize)>,
    next_id: &mut usize,
    out: &mut Vec<Occ>,
) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                path.push(k.clone());
                flatten(x, path, arrays, next_id, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            let id = *next_id;
            *next_id += 1;
            for (i, x) in items.iter().enumerate() {
                arrays.push((id, i));
                flatten(x, path, arrays, next_id, out);
                arrays.pop();
            }
        }
        scalar => out.push(Occ {
            path: path.clone(),
            value: scalar.clone(),
            arrays: arrays.clone(),
        }),
    }
}

fn consistent(a: &Occ, b: &Occ) -> bool {
    a.arrays
        .iter()
        .all(|(id, i)| b.arrays.iter().all(|(id2, j)| id != id2 || i == j))
}

/// A leaf requirement: path + the leaf's condition array.
type Req = (Vec<String>, Vec<Value>);

fn expand(obj: &Map<String, Value>, prefix: &[String]) -> Vec<Vec<Req>> {
    let mut acc: Vec<Vec<Req>> = vec![vec![]];
    for (k, v) in obj {
        let options: Vec<Vec<Req>> = if k == "$or" {
            v.as_array()
                .unwrap()
                .iter()
                .flat_map(|b| expand(b.as_object().unwrap(), prefix))
                .collect()
        } else {
            let mut p = prefix.to_vec();
            p.push(k.clone());
            match v {
                Value::Array(conds) => vec![vec![(p, conds.clone())]],
                Value::Object(sub) => expand(sub, &p),
                _ => unreachable!(),
            }
        };
        let mut next = vec![];
        for a in &acc {
            for o in &options {
                let mut c = a.clone();
                c.extend(o.iter().cloned());
                next.push(c);
            }
        }
        acc = next;
    }
    acc
}

fn fold(s: &str) -> String {
    s.to_lowercase()
}

fn wildcard(p: &str, s: &str) -> bool {
    // Backtracking glob over chars; `\*` and `\\` are literals.
    let mut toks: Vec<Option<char>> = vec![];
    let mut it = p.chars();
    while let Some(c) = it.next() {
        match c {
            '*' => toks.push(None),
            '\\' => toks.push(it.next()),
            c => toks.push(Some(c)),
        }
    }
    fn go(t: &[Option<char>], s: &[char]) -> bool {
        match t.split_first() {
            None => s.is_empty(),
            Some((None, rest)) => (0..=s.len()).any(|k| go(rest, &s[k..])),
            Some((Some(c), rest)) => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    go(&toks, &s.chars().collect::<Vec<_>>())
}

fn num_eq(a: &Value, b: &Value) -> bool {
    matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if a.is_number() && b.is_number() && x == y)
}

fn cond_matches(c: &Value, v: &Value) -> bool {
    let s = v.as_str();
    match c {
        Value::Number(_) => num_eq(c, v),
        Value::Object(m) => {
            let (op, arg) = m.iter().next().unwrap();
            match op.as_str() {
                "exists" => arg == &json!(true),
                "prefix" => match arg {
                    Value::String(p) => s.is_some_and(|s| s.starts_with(p.as_str())),
                    _ => {
                        let p = fold(arg["equals-ignore-case"].as_str().unwrap());
                        s.is_some_and(|s| fold(s).starts_with(&p))
                    }
                },
                "suffix" => match arg {
                    Value::String(p) => s.is_some_and(|s| s.ends_with(p.as_str())),
                    _ => {
                        let p = fold(arg["equals-ignore-case"].as_str().unwrap());
                        s.is_some_and(|s| fold(s).ends_with(&p))
                    }
                },
                "equals-ignore-case" => s.is_some_and(|s| fold(s) == fold(arg.as_str().unwrap())),
                "wildcard" => s.is_some_and(|s| wildcard(arg.as_str().unwrap(), s)),
                "numeric" => {
                    let Some(x) = v.as_f64().filter(|_| v.is_number()) else {
                        return false;
                    };
                    arg.as_array().unwrap().chunks(2).all(|pair| {
                        let b = pair[1].as_f64().unwrap();
                        match pair[0].as_str().unwrap() {
                            "<" => x < b,
                            "<=" => x <= b,
                            ">" => x > b,
                            ">=" => x >= b,
                            _ => x == b,
                        }
                    })
                }
                "anything-but" => {
                    let excluded = match arg {
                        Value::Array(xs) => {
                            xs.iter()
                                .any(|x| if x.is_number() { num_eq(x, v) } else { x == v })
                        }
                        Value::Object(inner) => {
                            let (iop, iarg) = inner.iter().next().unwrap();
                            let list: Vec<&str> = match iarg {
                                Value::Array(xs) => {
                                    xs.iter().map(|x| x.as_str().unwrap()).collect()
                                }
                                x => vec![x.as_str().unwrap()],
                            };
                            s.is_some_and(|s| {
                                list.iter().any(|p| match iop.as_str() {
                                    "prefix" => s.starts_with(p),
                                    "suffix" => s.ends_with(p),
                                    "equals-ignore-case" => fold(s) == fold(p),
                                    _ => wildcard(p, s),
                                })
                            })
                        }
                        x if x.is_number() => num_eq(x, v),
                        x => x == v,
                    };
                    !excluded
                }
                other => panic!("generator made {other}"),
            }
        }
        exact => exact == v,
    }
}

fn reference(pattern: &Value, event: &Value) -> bool {
    let mut occs = vec![];
    flatten(event, &mut vec![], &mut vec![], &mut 0, &mut occs);
    expand(pattern.as_object().unwrap(), &[])
        .iter()
        .any(|conj| satisfiable(conj, &occs, &mut vec![], 0))
}

/// Picks, leaf by leaf, an occurrence (or absence, where allowed); checks absences at the end.
fn satisfiable<'a>(
    conj: &'a [Req],
    occs: &'a [Occ],
    picked: &mut Vec<Option<&'a Occ>>,
    i: usize,
) -> bool {
    if i == conj.len() {
        let chosen: Vec<&Occ> = picked.iter().flatten().copied().collect();
        return conj.iter().zip(picked.iter()).all(|((path, _), p)| {
            p.is_some()
                || !occs
                    .iter()
                    .any(|o| &o.path == path && chosen.iter().all(|c| consistent(o, c)))
        });
    }
    let (path, conds) = &conj[i];
    for o in occs.iter().filter(|o| &o.path == path) {
        if conds.iter().any(|c| cond_matches(c, &o.value))
            && picked.iter().flatten().all(|p| consistent(o, p))
        {
            picked.push(Some(o));
            if satisfiable(conj, occs, picked, i + 1) {
                picked.pop();
                return true;
            }
            picked.pop();
        }
    }
    if conds.contains(&json!({"exists": false})) {
        picked.push(None);
        let ok = satisfiable(conj, occs, picked, i + 1);
        picked.pop();
        return ok;
    }
    false
}

// ---------- generators ----------

const KEYS: &[&str] = &["a", "b", "c"];

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS).prop_map(str::to_string)
}

fn text() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "", "a", "ab", "AB", "ba", "abc", "é", "É", "a*b", "x.png", "10.0.0.7", "b\\a",
    ])
    .prop_map(str::to_string)
}

fn number() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        json!(0),
        json!(1),
        json!(-1),
        json!(2.5),
        json!(300),
        json!(1e3),
        json!(-0.5),
    ])
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::String),
        number(),
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
    ]
}

fn event_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn event() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(key(), event_value(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn condition() -> impl Strategy<Value = Value> {
    let s = || text().prop_map(Value::String);
    let non_empty = || {
        text()
            .prop_filter("non-empty", |t| !t.is_empty())
            .prop_map(Value::String)
    };
    prop_oneof![
        scalar(),
        s().prop_map(|p| json!({"prefix": p})),
        s().prop_map(|p| json!({"suffix": p})),
        s().prop_map(|p| json!({"prefix": {"equals-ignore-case": p}})),
        s().prop_map(|p| json!({"suffix": {"equals-ignore-case": p}})),
        s().prop_map(|p| json!({"equals-ignore-case": p})),
        prop::sample::select(vec!["*", "a*", "*b", "a*b", "*.png", "a\\*b", "*a*"])
            .prop_map(|p| json!({"wildcard": p})),
        any::<bool>().prop_map(|b| json!({"exists": b})),
        s().prop_map(|p| json!({"anything-but": p})),
        number().prop_map(|n| json!({"anything-but": n})),
        prop::collection::vec(text(), 1..3).prop_map(|v| json!({"anything-but": v})),
        prop::collection::vec(number(), 1..3).prop_map(|v| json!({"anything-but": v})),
        // AWS refuses an empty anything-but prefix or suffix ("Null prefix/suffix not allowed").
        non_empty().prop_map(|p| json!({"anything-but": {"prefix": p}})),
        non_empty().prop_map(|p| json!({"anything-but": {"suffix": p}})),
        s().prop_map(|p| json!({"anything-but": {"equals-ignore-case": p}})),
        prop::sample::select(vec!["a*", "*b"])
            .prop_map(|p| json!({"anything-but": {"wildcard": p}})),
        (
            number(),
            prop::sample::select(vec!["<", "<=", ">", ">=", "="])
        )
            .prop_map(|(n, op)| json!({"numeric": [op, n]})),
        Just(json!({"numeric": [">", -1, "<=", 2.5]})),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop::collection::vec(condition(), 1..3).prop_map(Value::Array)
}

fn pattern_obj(depth: u32) -> BoxedStrategy<Map<String, Value>> {
    let field: BoxedStrategy<Value> = if depth == 0 {
        leaf().boxed()
    } else {
        prop_oneof![3 => leaf(), 1 => pattern_obj(depth - 1).prop_map(Value::Object)].boxed()
    };
    let fields = prop::collection::btree_map(key(), field, 1..3);
    if depth == 0 {
        fields.prop_map(|m| m.into_iter().collect()).boxed()
    } else {
        (
            fields,
            prop::option::weighted(0.25, prop::collection::vec(pattern_obj(depth - 1), 2..3)),
        )
            .prop_map(|(m, or)| {
                let mut obj: Map<String, Value> = m.into_iter().collect();
                if let Some(branches) = or {
                    obj.insert(
                        "$or".into(),
                        Value::Array(branches.into_iter().map(Value::Object).collect()),
                    );
                }
                obj
            })
            .boxed()
    }
}

/// Patterns whose numeric ranges are valid (generated pairs always are, single bounds too).
fn pattern() -> impl Strategy<Value = Value> {
    pattern_obj(2).prop_map(Value::Object)
}

/// The matcher, or a rejected case when AWS's wildcard-complexity limit refuses the generated
/// pattern (random `$or` trees with several wildcards reach it); any other refusal fails the test.
fn compiled<E: std::fmt::Display>(
    result: Result<Matcher, E>,
    text: &str,
) -> Result<Matcher, TestCaseError> {
    match result {
        Ok(m) => Ok(m),
        Err(err) if err.to_string().contains("Rule is too complex") => Err(TestCaseError::reject(
            "beyond AWS's wildcard complexity limit",
        )),
        Err(err) => Err(TestCaseError::fail(format!("{text}: {err}"))),
    }
}

// ---------- properties ----------

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_the_reference(p in pattern(), e in event()) {
        let text = p.to_string();
        let m = compiled(Matcher::compile(&text), &text)?;
        let ev = e.to_string();
        let got = m.matches_json(ev.as_bytes()).unwrap();
        prop_assert_eq!(got, reference(&p, &e), "pattern {} event {}", text, ev);
        prop_assert_eq!(m.matches_json_lenient(ev.as_bytes()).unwrap(), got);
        // Pretty-printed (whitespace everywhere) gives the same answer.
        let pretty = serde_json::to_string_pretty(&e).unwrap();
        prop_assert_eq!(m.matches_json(pretty.as_bytes()).unwrap(), got);
    }
}

/// A pattern of exact conditions taken from the event's own scalar fields.
fn self_pattern(v: &Map<String, Value>) -> Map<String, Value> {
    let mut p = Map::new();
    for (k, x) in v {
        match x {
            Value::Object(sub) => {
                let sp = self_pattern(sub);
                if !sp.is_empty() {
                    p.insert(k.clone(), Value::Object(sp));
                }
            }
            Value::Array(items) => {
                if let Some(s) = items.iter().find(|i| !i.is_object() && !i.is_array()) {
                    p.insert(k.clone(), json!([s]));
                }
            }
            s => {
                p.insert(k.clone(), json!([s]));
            }
        }
    }
    p
}

proptest! {
    #[test]
    fn a_pattern_built_from_the_events_values_matches_it(e in event()) {
        let p = self_pattern(e.as_object().unwrap());
        prop_assume!(!p.is_empty());
        let m = Matcher::compile(&Value::Object(p).to_string()).unwrap();
        prop_assert!(m.matches_json(e.to_string().as_bytes()).unwrap());
    }

    #[test]
    fn anything_but_x_never_matches_x(x in prop_oneof![text().prop_map(Value::String), number()]) {
        let m = Matcher::compile(&json!({"f": [{"anything-but": x}]}).to_string()).unwrap();
        let single = m.matches_json(json!({"f": x}).to_string().as_bytes()).unwrap();
        let twice = m.matches_json(json!({"f": [x, x]}).to_string().as_bytes()).unwrap();
        let missing = m.matches_json(b"{}").unwrap();
        let null = m.matches_json(br#"{"f": null}"#).unwrap();
        prop_assert!(!single && !twice && !missing && null);
    }

    #[test]
    fn numbers_match_whatever_their_spelling(int in -5_000_000_000i64..5_000_000_000, frac in 0u32..1_000_000) {
        let canonical = format!("{int}.{frac:06}");
        let m = Matcher::compile(&format!(r#"{{"n":[{canonical}]}}"#)).unwrap();
        let digits = format!("{}{frac:06}", int.abs());
        let sign = if int < 0 { "-" } else { "" };
        for spelling in [
            format!("{canonical}000"),
            format!("{sign}{digits}e-6"),
            format!("{sign}{digits}0E-7"),
        ] {
            let ok = m.matches_json(format!(r#"{{"n":{spelling}}}"#).as_bytes()).unwrap();
            prop_assert!(ok, "{}", spelling);
        }
        let r = Matcher::compile(&format!(r#"{{"n":[{{"numeric":[">",{canonical}]}}]}}"#)).unwrap();
        let at_bound = r.matches_json(format!(r#"{{"n":{canonical}}}"#).as_bytes()).unwrap();
        prop_assert!(!at_bound);
        let above = if frac == 999_999 { format!("{}.000000", int + 1) } else { format!("{int}.{:06}", frac + 1) };
        // Only meaningful for non-negative ints: +0.000001 moves away from zero there.
        if int >= 0 {
            let ok = r.matches_json(format!(r#"{{"n":{above}}}"#).as_bytes()).unwrap();
            prop_assert!(ok, "{}", above);
        }
    }

    #[test]
    fn never_panics_on_arbitrary_text(p in ".{0,64}", e in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(m) = Matcher::compile(&p) {
            let _ = m.matches_json(&e);
            let _ = m.matches_json_lenient(&e);
        }
    }
}

/// A Kafka record whose value is `value`, on `topic`.
fn kafka_record<'a>(topic: &'a str, value: &'a [u8]) -> sluice_pattern::KafkaRecord<'a> {
    sluice_pattern::KafkaRecord {
        topic,
        partition: 0,
        offset: 7,
        timestamp: 1,
        timestamp_type: "CREATE_TIME",
        key: None,
        value: Some(value),
        headers: &[],
        bootstrap_servers: Some("b:9092"),
        event_source_arn: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The Kafka path reads JSON values optimistically and validates only when the answer
    /// depends on it: it must agree with "decode, then match" on valid, broken and non-UTF-8
    /// values alike, including when another `$or` branch can match without the value.
    #[test]
    fn kafka_values_match_as_if_decoded_first(
        p in pattern(),
        e in event(),
        damage in 0usize..4,
        at in any::<prop::sample::Index>(),
        on_t1 in any::<bool>(),
    ) {
        let mut bytes = e.to_string().into_bytes();
        let k = at.index(bytes.len());
        match damage {
            1 => bytes.truncate(k.max(1)),
            2 => bytes[k] = 0xFF,
            3 => bytes.insert(k, b'}'),
            _ => {}
        }
        let topic = if on_t1 { "t1" } else { "t2" };
        let kafka = json!({"$or": [{"value": p}, {"topic": ["t1"]}]}).to_string();
        let m = compiled(Matcher::compile_kafka(&[&kafka]), &kafka)?;
        let valid = serde_json::from_slice::<Value>(&bytes).is_ok();
        let value_matches = valid && {
            let wrapped = [br#"{"value":"#.as_slice(), &bytes, b"}"].concat();
            Matcher::compile(&json!({"value": p}).to_string()).unwrap().matches_json(&wrapped).unwrap()
        };
        let got = m.matches_kafka(&kafka_record(topic, &bytes));
        prop_assert_eq!(got, value_matches || on_t1, "pattern {} value {}", kafka, String::from_utf8_lossy(&bytes));
    }
}
