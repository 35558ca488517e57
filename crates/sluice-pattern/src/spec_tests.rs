//! Table-driven tests of `shared/spec/filtering.md`: every operator and rule, matching and not.

use crate::{Matcher, PatternError};

/// (pattern, event, expected)
type Case = (&'static str, &'static str, bool);

fn run(cases: &[Case]) {
    let mut failures = Vec::new();
    for (i, (p, e, want)) in cases.iter().enumerate() {
        let m = match Matcher::compile(p) {
            Ok(m) => m,
            Err(err) => {
                failures.push(format!("#{i} {p}: compile error {err}"));
                continue;
            }
        };
        match m.matches_json(e.as_bytes()) {
            Ok(got) if got == *want => {}
            Ok(got) => failures.push(format!("#{i} {p} on {e}: got {got}, want {want}")),
            Err(err) => failures.push(format!("#{i} {p} on {e}: event error {err}")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn exact_values() {
    run(&[
        (r#"{"a":["x"]}"#, r#"{"a":"x"}"#, true),
        (r#"{"a":["x"]}"#, r#"{"a":"X"}"#, false),
        (r#"{"a":["x","y"]}"#, r#"{"a":"y"}"#, true),
        (r#"{"a":["x"]}"#, r#"{"b":"x"}"#, false),
        (r#"{"a":["x"]}"#, r#"{"A":"x"}"#, false),
        (r#"{"a":[300]}"#, r#"{"a":300}"#, true),
        (r#"{"a":[300]}"#, r#"{"a":300.0}"#, true),
        (r#"{"a":[300]}"#, r#"{"a":3.0e2}"#, true),
        (r#"{"a":[3.0e2]}"#, r#"{"a":300}"#, true),
        (r#"{"a":[300]}"#, r#"{"a":301}"#, false),
        (r#"{"a":["300"]}"#, r#"{"a":300}"#, false),
        (r#"{"a":[300]}"#, r#"{"a":"300"}"#, false),
        (r#"{"a":[0]}"#, r#"{"a":-0.0}"#, true),
        (r#"{"a":[true]}"#, r#"{"a":true}"#, true),
        (r#"{"a":[true]}"#, r#"{"a":"true"}"#, false),
        (r#"{"a":[false]}"#, r#"{"a":true}"#, false),
        (r#"{"a":[null]}"#, r#"{"a":null}"#, true),
        (r#"{"a":[null]}"#, r#"{}"#, false),
        (r#"{"a":[null]}"#, r#"{"a":""}"#, false),
        (r#"{"a":[""]}"#, r#"{"a":""}"#, true),
        (r#"{"a":[""]}"#, r#"{"a":null}"#, false),
        (r#"{"a":[""]}"#, r#"{}"#, false),
        (r#"{"a":["é\u00e9"]}"#, r#"{"a":"\u00e9é"}"#, true),
        (
            r#"{"a":{"b":["x"]}}"#,
            r#"{"a":{"b":"x","c":1},"d":[1,2]}"#,
            true,
        ),
        (r#"{"a":{"b":["x"]}}"#, r#"{"a":{"c":"x"}}"#, false),
        (r#"{"a":{"b":["x"]}}"#, r#"{"a":"x"}"#, false),
        (r#"{"a":["x"],"b":[1]}"#, r#"{"a":"x","b":1}"#, true),
        (r#"{"a":["x"],"b":[1]}"#, r#"{"a":"x","b":2}"#, false),
        // Keys with escapes match their unescaped names.
        (r#"{"a\"b":["x"]}"#, r#"{"a\u0022b":"x"}"#, true),
        // Duplicate keys in an event: the first one counts, later ones are skipped.
        (r#"{"a":["x"]}"#, r#"{"a":"x","a":"y"}"#, true),
        (r#"{"a":["y"]}"#, r#"{"a":"x","a":"y"}"#, false),
        (
            r#"{"a":{"b":["y"]}}"#,
            r#"{"a":{"b":"x"},"a":{"b":"y"}}"#,
            false,
        ),
    ]);
}

#[test]
fn arrays_in_events() {
    run(&[
        (r#"{"a":["x"]}"#, r#"{"a":["y","x"]}"#, true),
        (r#"{"a":["x"]}"#, r#"{"a":["y","z"]}"#, false),
        (r#"{"a":[1]}"#, r#"{"a":[[0,[1]]]}"#, true),
        (r#"{"a":["x"]}"#, r#"{"a":[]}"#, false),
        (
            r#"{"a":{"b":["x"]}}"#,
            r#"{"a":[{"b":"y"},{"b":"x"}]}"#,
            true,
        ),
        (r#"{"a":{"b":["x"]}}"#, r#"{"a":[{"b":["y","x"]}]}"#, true),
        // Fields of one array element combine only with each other.
        (
            r#"{"a":{"b":["x"],"c":[1]}}"#,
            r#"{"a":[{"b":"x","c":2},{"b":"y","c":1}]}"#,
            false,
        ),
        (
            r#"{"a":{"b":["x"],"c":[1]}}"#,
            r#"{"a":[{"b":"x","c":2},{"b":"x","c":1}]}"#,
            true,
        ),
        (
            r#"{"a":{"b":{"c":["x"]},"d":[1]}}"#,
            r#"{"a":[{"b":[{"c":"x"}],"d":2},{"b":[{"c":"y"}],"d":1}]}"#,
            false,
        ),
        (
            r#"{"a":{"b":{"c":["x"]},"d":[1]}}"#,
            r#"{"a":[{"b":[{"c":"y"},{"c":"x"}],"d":1}]}"#,
            true,
        ),
        // Nested arrays: elements of different inner arrays are different elements too.
        (
            r#"{"a":{"b":["x"],"c":[1]}}"#,
            r#"{"a":[[{"b":"x"}],[{"c":1}]]}"#,
            false,
        ),
        // Different arrays do not constrain each other.
        (
            r#"{"a":{"b":["x"]},"c":{"d":[1]}}"#,
            r#"{"a":[{"b":"y"},{"b":"x"}],"c":[{"d":1},{"d":2}]}"#,
            true,
        ),
        // A top-level array field alongside an array-of-objects field.
        (
            r#"{"tags":["t"],"a":{"b":[1]}}"#,
            r#"{"tags":["s","t"],"a":[{"b":0},{"b":1}]}"#,
            true,
        ),
        // Event root that is an array of objects: each element is a candidate.
        (
            r#"{"a":["x"],"b":["y"]}"#,
            r#"[{"a":"x"},{"b":"y"}]"#,
            false,
        ),
        (r#"{"a":["x"],"b":["y"]}"#, r#"[{"a":"x","b":"y"}]"#, true),
    ]);
}

#[test]
fn prefix_and_suffix() {
    run(&[
        (r#"{"a":[{"prefix":"ab"}]}"#, r#"{"a":"abc"}"#, true),
        (r#"{"a":[{"prefix":"ab"}]}"#, r#"{"a":"ab"}"#, true),
        (r#"{"a":[{"prefix":"ab"}]}"#, r#"{"a":"xab"}"#, false),
        (r#"{"a":[{"prefix":"ab"}]}"#, r#"{"a":"Abc"}"#, false),
        (r#"{"a":[{"prefix":"1"}]}"#, r#"{"a":12}"#, false),
        (r#"{"a":[{"prefix":""}]}"#, r#"{"a":"anything"}"#, true),
        (
            r#"{"a":[{"prefix":{"equals-ignore-case":"aB"}}]}"#,
            r#"{"a":"ABCD"}"#,
            true,
        ),
        (
            r#"{"a":[{"prefix":{"equals-ignore-case":"aB"}}]}"#,
            r#"{"a":"xAB"}"#,
            false,
        ),
        (r#"{"a":[{"suffix":".png"}]}"#, r#"{"a":"img.png"}"#, true),
        (r#"{"a":[{"suffix":".png"}]}"#, r#"{"a":"img.PNG"}"#, false),
        (r#"{"a":[{"suffix":".png"}]}"#, r#"{"a":"png"}"#, false),
        (
            r#"{"a":[{"suffix":{"equals-ignore-case":".PNG"}}]}"#,
            r#"{"a":"img.png"}"#,
            true,
        ),
        (
            r#"{"a":[{"suffix":{"equals-ignore-case":".PNG"}}]}"#,
            r#"{"a":"img.jpg"}"#,
            false,
        ),
        (r#"{"a":[{"prefix":"ab"}]}"#, r#"{"a":["zz","abz"]}"#, true),
    ]);
}

#[test]
fn equals_ignore_case() {
    run(&[
        (
            r#"{"a":[{"equals-ignore-case":"alice"}]}"#,
            r#"{"a":"ALICE"}"#,
            true,
        ),
        (
            r#"{"a":[{"equals-ignore-case":"alice"}]}"#,
            r#"{"a":"AlIcE"}"#,
            true,
        ),
        (
            r#"{"a":[{"equals-ignore-case":"alice"}]}"#,
            r#"{"a":"alicex"}"#,
            false,
        ),
        (
            r#"{"a":[{"equals-ignore-case":"straße"}]}"#,
            r#"{"a":"STRASSE"}"#,
            true,
        ),
        (
            r#"{"a":[{"equals-ignore-case":"ΣΊΣΥΦΟΣ"}]}"#,
            r#"{"a":"σίσυφος"}"#,
            true,
        ),
        (
            r#"{"a":[{"equals-ignore-case":"Ünï"}]}"#,
            r#"{"a":"üNÏ"}"#,
            true,
        ),
        (r#"{"a":[{"equals-ignore-case":"1"}]}"#, r#"{"a":1}"#, false),
    ]);
}

#[test]
fn anything_but() {
    run(&[
        (r#"{"a":[{"anything-but":"x"}]}"#, r#"{"a":"y"}"#, true),
        (r#"{"a":[{"anything-but":"x"}]}"#, r#"{"a":"x"}"#, false),
        (r#"{"a":[{"anything-but":"x"}]}"#, r#"{}"#, false),
        (r#"{"a":[{"anything-but":"x"}]}"#, r#"{"a":null}"#, true),
        (r#"{"a":[{"anything-but":"x"}]}"#, r#"{"a":5}"#, true),
        (r#"{"a":[{"anything-but":"x"}]}"#, r#"{"a":true}"#, true),
        (r#"{"a":[{"anything-but":"x"}]}"#, r#"{"a":[]}"#, false),
        (
            r#"{"a":[{"anything-but":"x"}]}"#,
            r#"{"a":["x","y"]}"#,
            true,
        ),
        (r#"{"a":[{"anything-but":"x"}]}"#, r#"{"a":["x"]}"#, false),
        (
            r#"{"a":[{"anything-but":["a","b"]}]}"#,
            r#"{"a":"b"}"#,
            false,
        ),
        (
            r#"{"a":[{"anything-but":["a","b"]}]}"#,
            r#"{"a":"c"}"#,
            true,
        ),
        (r#"{"a":[{"anything-but":[1,2]}]}"#, r#"{"a":2.0}"#, false),
        (r#"{"a":[{"anything-but":[1,2]}]}"#, r#"{"a":3}"#, true),
        (r#"{"a":[{"anything-but":[1,2]}]}"#, r#"{"a":"1"}"#, true),
        (r#"{"a":[{"anything-but":5}]}"#, r#"{"a":5e0}"#, false),
        (
            r#"{"a":[{"anything-but":{"prefix":"p"}}]}"#,
            r#"{"a":"pq"}"#,
            false,
        ),
        (
            r#"{"a":[{"anything-but":{"prefix":"p"}}]}"#,
            r#"{"a":"qp"}"#,
            true,
        ),
        (
            r#"{"a":[{"anything-but":{"prefix":"p"}}]}"#,
            r#"{"a":7}"#,
            true,
        ),
        (
            r#"{"a":[{"anything-but":{"suffix":"s"}}]}"#,
            r#"{"a":"xs"}"#,
            false,
        ),
        (
            r#"{"a":[{"anything-but":{"suffix":"s"}}]}"#,
            r#"{"a":"sx"}"#,
            true,
        ),
        (
            r#"{"a":[{"anything-but":{"equals-ignore-case":"X"}}]}"#,
            r#"{"a":"x"}"#,
            false,
        ),
        (
            r#"{"a":[{"anything-but":{"equals-ignore-case":["X","y"]}}]}"#,
            r#"{"a":"Y"}"#,
            false,
        ),
        (
            r#"{"a":[{"anything-but":{"equals-ignore-case":"X"}}]}"#,
            r#"{"a":"z"}"#,
            true,
        ),
        (
            r#"{"a":[{"anything-but":{"wildcard":"*.png"}}]}"#,
            r#"{"a":"a.png"}"#,
            false,
        ),
        (
            r#"{"a":[{"anything-but":{"wildcard":"*.png"}}]}"#,
            r#"{"a":"a.jpg"}"#,
            true,
        ),
        (
            r#"{"a":[{"anything-but":{"prefix":["p","q"]}}]}"#,
            r#"{"a":"qq"}"#,
            false,
        ),
    ]);
}

#[test]
fn numeric() {
    run(&[
        (r#"{"a":[{"numeric":[">",0]}]}"#, r#"{"a":0.000001}"#, true),
        (r#"{"a":[{"numeric":[">",0]}]}"#, r#"{"a":0}"#, false),
        (r#"{"a":[{"numeric":[">=",0]}]}"#, r#"{"a":0}"#, true),
        (r#"{"a":[{"numeric":["<",0]}]}"#, r#"{"a":-1e-6}"#, true),
        (r#"{"a":[{"numeric":["<=",0]}]}"#, r#"{"a":1e-6}"#, false),
        (r#"{"a":[{"numeric":[">",0,"<=",5]}]}"#, r#"{"a":5}"#, true),
        (
            r#"{"a":[{"numeric":[">",0,"<=",5]}]}"#,
            r#"{"a":5.000001}"#,
            false,
        ),
        (r#"{"a":[{"numeric":[">",0,"<=",5]}]}"#, r#"{"a":0}"#, false),
        (r#"{"a":[{"numeric":[">",0,"<",5]}]}"#, r#"{"a":3}"#, true),
        (r#"{"a":[{"numeric":["=",3.5]}]}"#, r#"{"a":3.50}"#, true),
        (
            r#"{"a":[{"numeric":["=",3.5]}]}"#,
            r#"{"a":3.500001}"#,
            false,
        ),
        (r#"{"a":[{"numeric":[">",0]}]}"#, r#"{"a":"5"}"#, false),
        (r#"{"a":[{"numeric":[">",0]}]}"#, r#"{"a":true}"#, false),
        (r#"{"a":[{"numeric":[">",0]}]}"#, r#"{}"#, false),
        (r#"{"a":[{"numeric":[">",0]}]}"#, r#"{"a":[-1,2]}"#, true),
        (
            r#"{"a":[{"numeric":["<",0]},{"numeric":[">",10]}]}"#,
            r#"{"a":11}"#,
            true,
        ),
        (
            r#"{"a":[{"numeric":["<",0]},{"numeric":[">",10]}]}"#,
            r#"{"a":5}"#,
            false,
        ),
        // Exact at the documented range: +/-5e9 with 6 decimals.
        (
            r#"{"a":[{"numeric":[">",4999999999.999998]}]}"#,
            r#"{"a":4999999999.999999}"#,
            true,
        ),
        (
            r#"{"a":[{"numeric":[">",4999999999.999999]}]}"#,
            r#"{"a":4999999999.999999}"#,
            false,
        ),
        (
            r#"{"a":[{"numeric":["<",-4999999999.999998]}]}"#,
            r#"{"a":-4999999999.999999}"#,
            true,
        ),
        (
            r#"{"a":[{"numeric":["=",-5e9]}]}"#,
            r#"{"a":-5000000000.000000}"#,
            true,
        ),
        (r#"{"a":[{"numeric":["=",0.1]}]}"#, r#"{"a":1e-1}"#, true),
    ]);
}

#[test]
fn exists() {
    run(&[
        (r#"{"a":[{"exists":true}]}"#, r#"{"a":"x"}"#, true),
        (r#"{"a":[{"exists":true}]}"#, r#"{"a":null}"#, true),
        (r#"{"a":[{"exists":true}]}"#, r#"{"a":""}"#, true),
        (r#"{"a":[{"exists":true}]}"#, r#"{}"#, false),
        (r#"{"a":[{"exists":true}]}"#, r#"{"a":{"b":1}}"#, false),
        (r#"{"a":[{"exists":true}]}"#, r#"{"a":[]}"#, false),
        (r#"{"a":[{"exists":true}]}"#, r#"{"a":[[]]}"#, false),
        (r#"{"a":[{"exists":true}]}"#, r#"{"a":[1]}"#, true),
        (r#"{"a":[{"exists":false}]}"#, r#"{}"#, true),
        (r#"{"a":[{"exists":false}]}"#, r#"{"a":"x"}"#, false),
        (r#"{"a":[{"exists":false}]}"#, r#"{"a":null}"#, false),
        (r#"{"a":[{"exists":false}]}"#, r#"{"a":{"b":1}}"#, true),
        (r#"{"a":[{"exists":false}]}"#, r#"{"a":[]}"#, true),
        (r#"{"a":[{"exists":false}]}"#, r#"{"a":[1]}"#, false),
        (r#"{"a":{"b":[{"exists":false}]}}"#, r#"{"a":5}"#, true),
        (r#"{"a":{"b":[{"exists":false}]}}"#, r#"{"a":[]}"#, true),
        (
            r#"{"a":{"b":[{"exists":false}]}}"#,
            r#"{"a":[{"b":1},{"c":1}]}"#,
            false,
        ),
        // Absence relative to the chosen element: element 1 has c=1 and no b.
        (
            r#"{"a":{"b":[{"exists":false}],"c":[1]}}"#,
            r#"{"a":[{"b":1,"c":2},{"c":1}]}"#,
            true,
        ),
        (
            r#"{"a":{"b":[{"exists":false}],"c":[1]}}"#,
            r#"{"a":[{"b":1,"c":1},{"c":2}]}"#,
            false,
        ),
        // exists:false or a value.
        (r#"{"a":[{"exists":false},"x"]}"#, r#"{"a":"x"}"#, true),
        (r#"{"a":[{"exists":false},"x"]}"#, r#"{}"#, true),
        (r#"{"a":[{"exists":false},"x"]}"#, r#"{"a":"y"}"#, false),
        (
            r#"{"a":["x"],"b":[{"exists":false}]}"#,
            r#"{"a":"x"}"#,
            true,
        ),
        (
            r#"{"a":["x"],"b":[{"exists":false}]}"#,
            r#"{"a":"x","b":0}"#,
            false,
        ),
    ]);
}

#[test]
fn cidr() {
    run(&[
        (
            r#"{"ip":[{"cidr":"10.0.0.0/24"}]}"#,
            r#"{"ip":"10.0.0.7"}"#,
            true,
        ),
        (
            r#"{"ip":[{"cidr":"10.0.0.0/24"}]}"#,
            r#"{"ip":"10.0.1.7"}"#,
            false,
        ),
        (
            r#"{"ip":[{"cidr":"10.0.0.9/24"}]}"#,
            r#"{"ip":"10.0.0.200"}"#,
            true,
        ),
        (
            r#"{"ip":[{"cidr":"2001:db8::/64"}]}"#,
            r#"{"ip":"2001:DB8::1"}"#,
            true,
        ),
        (
            r#"{"ip":[{"cidr":"2001:db8::/64"}]}"#,
            r#"{"ip":"2001:0db8:0000:0000:ffff::"}"#,
            true,
        ),
        (
            r#"{"ip":[{"cidr":"2001:db8::/64"}]}"#,
            r#"{"ip":"2001:db8:0:1::"}"#,
            false,
        ),
        (
            r#"{"ip":[{"cidr":"10.0.0.0/8"}]}"#,
            r#"{"ip":"hello"}"#,
            false,
        ),
        (
            r#"{"ip":[{"cidr":"10.0.0.0/8"}]}"#,
            r#"{"ip":167772161}"#,
            false,
        ),
    ]);
}

#[test]
fn wildcard() {
    run(&[
        (r#"{"a":[{"wildcard":"*.png"}]}"#, r#"{"a":"x.png"}"#, true),
        (r#"{"a":[{"wildcard":"*.png"}]}"#, r#"{"a":"x.jpg"}"#, false),
        (r#"{"a":[{"wildcard":"a*c"}]}"#, r#"{"a":"ac"}"#, true),
        (r#"{"a":[{"wildcard":"a*c"}]}"#, r#"{"a":"abbc"}"#, true),
        (r#"{"a":[{"wildcard":"a*c"}]}"#, r#"{"a":"abcd"}"#, false),
        (r#"{"a":[{"wildcard":"a\\*c"}]}"#, r#"{"a":"a*c"}"#, true),
        (r#"{"a":[{"wildcard":"a\\*c"}]}"#, r#"{"a":"abc"}"#, false),
        (r#"{"a":[{"wildcard":"a\\\\c"}]}"#, r#"{"a":"a\\c"}"#, true),
        (r#"{"a":[{"wildcard":"*"}]}"#, r#"{"a":""}"#, true),
        (r#"{"a":[{"wildcard":"*"}]}"#, r#"{"a":1}"#, false),
    ]);
}

#[test]
fn or_at_any_level() {
    run(&[
        (r#"{"$or":[{"a":["x"]},{"b":[1]}]}"#, r#"{"b":1}"#, true),
        (
            r#"{"$or":[{"a":["x"]},{"b":[1]}]}"#,
            r#"{"a":"y","b":2}"#,
            false,
        ),
        (
            r#"{"c":[true],"$or":[{"a":["x"]},{"b":[1]}]}"#,
            r#"{"a":"x","c":false}"#,
            false,
        ),
        (
            r#"{"c":[true],"$or":[{"a":["x"]},{"b":[1]}]}"#,
            r#"{"a":"x","c":true}"#,
            true,
        ),
        (
            r#"{"d":{"$or":[{"a":["x"]},{"b":{"$or":[{"e":[1]},{"f":[2]}]}}]}}"#,
            r#"{"d":{"b":{"f":2}}}"#,
            true,
        ),
        (
            r#"{"d":{"$or":[{"a":["x"]},{"b":{"$or":[{"e":[1]},{"f":[2]}]}}]}}"#,
            r#"{"d":{"b":{"f":3}}}"#,
            false,
        ),
        // The same field in a branch and beside the $or: both must hold.
        (
            r#"{"a":[{"prefix":"x"}],"$or":[{"a":[{"suffix":"y"}]},{"b":[1]}]}"#,
            r#"{"a":"xy"}"#,
            true,
        ),
        (
            r#"{"a":[{"prefix":"x"}],"$or":[{"a":[{"suffix":"y"}]},{"b":[1]}]}"#,
            r#"{"a":"xz"}"#,
            false,
        ),
        // "$or" in an event is just a field name when the pattern nests it as one.
        (
            r#"{"$or":[{"a":[{"exists":false}]},{"b":[{"exists":false}]}]}"#,
            r#"{"a":1}"#,
            true,
        ),
    ]);
}

#[test]
fn multiple_filters_are_ored() {
    let m = Matcher::compile_all(&[r#"{"a":["x"]}"#, r#"{"b":["y"]}"#]).unwrap();
    assert!(m.matches_json(br#"{"b":"y"}"#).unwrap());
    assert!(m.matches_json(br#"{"a":"x"}"#).unwrap());
    assert!(!m.matches_json(br#"{"a":"y","b":"x"}"#).unwrap());
    assert_eq!(
        m.matching_filters_json(br#"{"a":"x","b":"y"}"#).unwrap(),
        0b11
    );
    assert_eq!(m.matching_filters_json(br#"{"b":"y"}"#).unwrap(), 0b10);
    assert_eq!(m.filter_count(), 2);
    let none: [&str; 0] = [];
    assert!(!Matcher::compile_all(&none)
        .unwrap()
        .matches_json(b"{}")
        .unwrap());
}

#[test]
fn invalid_events_are_errors() {
    let m = Matcher::compile(r#"{"a":["x"]}"#).unwrap();
    for bad in [
        &b""[..],
        b"{",
        b"{\"a\":\"x\"",
        b"{\"a\":\"x\"} x",
        b"{\"b\":[1,}",
        b"{\"b\":01,\"a\":\"x\"}",
        b"{\"a\":\"\xff\"}",
        b"{\"b\":\"\\q\",\"a\":\"x\"}",
    ] {
        assert!(
            m.matches_json(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

/// (pattern, exact message)
const INVALID: &[(&str, &str)] = &[
    ("", "Event pattern is not valid JSON: unexpected end of input at byte offset 0"),
    ("[1]", "Event pattern must be a JSON object"),
    ("\"x\"", "Event pattern must be a JSON object"),
    ("{}", "Event pattern must not be an empty object"),
    (r#"{"qty":5}"#, "\"qty\" must be an object or an array"),
    (r#"{"a":{"qty":"x"}}"#, "\"a.qty\" must be an object or an array"),
    (r#"{"a":null}"#, "\"a\" must be an object or an array"),
    (r#"{"a":[]}"#, "\"a\" must not be an empty array"),
    (r#"{"a":{}}"#, "\"a\" must not be an empty object"),
    (r#"{"a":[[1]]}"#, "\"a\" must not contain a nested array: each element is a value or an operator object"),
    (r#"{"a":[{"foo":1}]}"#, "\"a\" uses unrecognized match type \"foo\"; the match types are prefix, suffix, equals-ignore-case, anything-but, numeric, exists, cidr, wildcard"),
    (r#"{"a":[{"numerc":[">",1]}]}"#, "\"a\" uses unrecognized match type \"numerc\"; did you mean \"numeric\"?"),
    (r#"{"a":[{"Prefix":"x"}]}"#, "\"a\" uses unrecognized match type \"Prefix\"; did you mean \"prefix\"?"),
    (r#"{"a":[{}]}"#, "\"a\" has an operator object with 0 keys; it must have exactly one (the match type)"),
    (r#"{"a":[{"prefix":"x","suffix":"y"}]}"#, "\"a\" has an operator object with 2 keys; it must have exactly one (the match type)"),
    (r#"{"a":[{"prefix":5}]}"#, "\"a\" prefix match pattern must be a string, not a number"),
    (r#"{"a":[{"suffix":{"wildcard":"x"}}]}"#, "\"a\" suffix match pattern must be a string or {\"equals-ignore-case\": string}"),
    (r#"{"a":[{"equals-ignore-case":["x"]}]}"#, "\"a\" equals-ignore-case match pattern must be a string, not an array"),
    (r#"{"a":[{"numeric":[">","5"]}]}"#, "\"a\" numeric match: Value of > must be numeric (found a string)"),
    (r#"{"a":[{"numeric":5}]}"#, "\"a\" numeric match: Value of numeric must be an array. (e.g. [\">\", 0, \"<=\", 5])"),
    (r#"{"a":[{"numeric":[">"]}]}"#, "\"a\" numeric match: Value of > must be numeric (found the end of the list)"),
    (r#"{"a":[{"numeric":["==",5]}]}"#, "\"a\" numeric match: Unrecognized numeric range operator: == (use \"<\", \"<=\", \"=\", \">\" or \">=\")"),
    (r#"{"a":[{"numeric":[5,">"]}]}"#, "\"a\" numeric match: Invalid member in numeric match: 5 (it must start with an operator: \"<\", \"<=\", \"=\", \">\" or \">=\")"),
    (r#"{"a":[{"numeric":[">",5,">",6]}]}"#, "\"a\" numeric match: Bad numeric range operator: > (after a lower bound (> or >=) only an upper bound (< or <=) may follow)"),
    (r#"{"a":[{"numeric":["<",5,"<=",6]}]}"#, "\"a\" numeric match: Too many elements in numeric expression (an upper bound (< or <=) ends the range; write the lower bound first, e.g. [\">\", 0, \"<=\", 5])"),
    (r#"{"a":[{"numeric":[">",5,"<",5]}]}"#, "\"a\" numeric match: Bottom must be less than top (the range would be empty)"),
    (r#"{"a":[{"numeric":[">",6,"<",5]}]}"#, "\"a\" numeric match: Bottom must be less than top (the range would be empty)"),
    (r#"{"a":[{"numeric":["=",5,"<",6]}]}"#, "\"a\" numeric match: Too many elements in numeric expression (\"=\" takes one number and no other bound)"),
    (r#"{"a":[{"anything-but":[1,"a"]}]}"#, "\"a\" anything-but list must contain only strings or only numbers"),
    (r#"{"a":[{"anything-but":null}]}"#, "\"a\" anything-but must be a string, a number, a list or an object, not null"),
    (r#"{"a":[{"anything-but":true}]}"#, "\"a\" anything-but must be a string, a number, a list or an object, not a boolean"),
    (r#"{"a":[{"anything-but":[]}]}"#, "\"a\" anything-but list must not be empty"),
    (r#"{"a":[{"anything-but":{"numeric":[">",1]}}]}"#, "\"a\" anything-but supports prefix, suffix, equals-ignore-case and wildcard, not \"numeric\""),
    (r#"{"a":[{"anything-but":{"prefix":5}}]}"#, "\"a\" anything-but prefix must be a string or a list of strings, not a number"),
    (r#"{"a":[{"exists":"yes"}]}"#, "\"a\" exists match pattern must be either true or false, not a string"),
    (r#"{"a":[{"cidr":"10.0.0.0"}]}"#, "\"a\" cidr \"10.0.0.0\" is malformed: expected an address, '/' and a prefix length"),
    (r#"{"a":[{"cidr":"10.0.0.0/33"}]}"#, "\"a\" cidr \"10.0.0.0/33\" is malformed: an IPv4 prefix length must be 0 to 32"),
    (r#"{"a":[{"cidr":"10.0.0/8"}]}"#, "\"a\" cidr \"10.0.0/8\" is malformed: not an IPv4 or IPv6 address"),
    (r#"{"a":[{"cidr":"::1/129"}]}"#, "\"a\" cidr \"::1/129\" is malformed: an IPv6 prefix length must be 0 to 128"),
    (r#"{"a":[{"wildcard":"a**b"}]}"#, "\"a\" wildcard pattern \"a**b\" has consecutive '*' characters at position 2"),
    (r#"{"a":[{"wildcard":"a\\nb"}]}"#, "\"a\" wildcard pattern \"a\\\\nb\" has an invalid escape at position 1: only \\* and \\\\ are allowed"),
    (r#"{"a":[{"wildcard":"a\\b"}]}"#, "\"a\" wildcard pattern \"a\\\\b\" has an invalid escape at position 1: only \\* and \\\\ are allowed"),
    (r#"{"$or":[{"a":["x"]}]}"#, "\"$or\" must be an array of at least 2 objects"),
    (r#"{"$or":{"a":["x"]}}"#, "\"$or\" must be an array of at least 2 objects"),
    (r#"{"b":{"$or":[{"a":["x"]},5]}}"#, "\"b.$or\" must contain only objects (each one a branch of the $or)"),
    (r#"{"$or":[{"a":["x"]},{}]}"#, "\"$or\" must not contain an empty object"),
    (r#"{"a":["x"],"a":["y"]}"#, "\"a\" is specified more than once"),
];

#[test]
fn invalid_patterns_name_path_and_reason() {
    let mut failures = Vec::new();
    for (p, want) in INVALID {
        match Matcher::compile(p) {
            Ok(_) => failures.push(format!("{p}: compiled, want error {want}")),
            Err(e) => {
                if e.to_string() != *want {
                    failures.push(format!("{p}:\n   got  {e}\n   want {want}"));
                }
                assert!(e.is_user_error() && !e.is_retryable());
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn limits() {
    // 4,096 characters (not bytes) is the limit.
    let pad = "é".repeat(4096 - r#"{"a":[""]}"#.chars().count());
    let at_limit = format!(r#"{{"a":["{pad}"]}}"#);
    assert_eq!(at_limit.chars().count(), 4096);
    assert!(Matcher::compile(&at_limit).is_ok());
    let over = format!(r#"{{"a":["{pad}x"]}}"#);
    assert_eq!(
        Matcher::compile(&over).unwrap_err(),
        PatternError::TooLong { chars: 4097 }
    );
    // 5 filters.
    let six = vec![r#"{"a":["x"]}"#; 6];
    assert_eq!(
        Matcher::compile_all(&six).unwrap_err().to_string(),
        "FilterCriteria has 6 filters; the maximum is 5"
    );
    assert!(Matcher::compile_all(&six[..5]).is_ok());
    // 1,000 combinations: 10 x 10 x 10 is fine, 10 x 10 x 11 is not.
    let or_n = |k: &str, n: usize| {
        let branches: Vec<String> = (0..n).map(|i| format!(r#"{{"{k}":[{i}]}}"#)).collect();
        format!(r#"{{"$or":[{}]}}"#, branches.join(","))
    };
    let nest = |n3: usize| {
        format!(
            r#"{{"x":{},"y":{},"z":{}}}"#,
            or_n("a", 10),
            or_n("b", 10),
            or_n("c", n3)
        )
    };
    let m = Matcher::compile(&nest(10)).unwrap();
    assert_eq!(m.conjunction_count(), 1000);
    assert!(m
        .matches_json(br#"{"x":{"a":9},"y":{"b":0},"z":{"c":5}}"#)
        .unwrap());
    assert!(!m
        .matches_json(br#"{"x":{"a":9},"y":{"b":0},"z":{"c":10}}"#)
        .unwrap());
    assert_eq!(
        Matcher::compile(&nest(11)).unwrap_err().to_string(),
        "Event pattern has 1100 combinations of $or branches; the maximum is 1000"
    );
    // A filter's error names the filter.
    let e = Matcher::compile_all(&[r#"{"a":["x"]}"#, r#"{"qty":5}"#]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Filter 2: \"qty\" must be an object or an array"
    );
    assert_eq!(e.path(), Some("qty"));
    assert_eq!(e.filter_number(), Some(2));
}

#[test]
fn five_filters_of_a_thousand_combinations() {
    // The widest matcher there can be: 5,000 conjunctions.
    let leaves: Vec<String> = (0..10).map(|i| format!(r#"{{"a{i}":[1]}}"#)).collect();
    let ten = format!(r#"{{"$or":[{}]}}"#, leaves.join(","));
    let thousand = format!(r#"{{"x":{ten},"y":{ten},"z":{ten}}}"#);
    let m = Matcher::compile_all(&[thousand.as_str(); 5]).unwrap();
    assert_eq!(m.conjunction_count(), 5000);
    assert!(m
        .matches_json(br#"{"x":{"a3":1},"y":{"a9":1},"z":{"a0":1}}"#)
        .unwrap());
    assert!(!m.matches_json(br#"{"x":{"a3":1},"y":{"a9":1}}"#).unwrap());
}
