//! Filtering throughput on synthetic San Francisco "city lots" GeoJSON features, sluice-pattern
//! vs the `quamina` crate, with the same rules on both.
//!
//! Run: `cargo bench -p sluice-pattern --bench citylots`. Besides criterion's report, it prints a
//! markdown table (events/s on one core, ratio vs quamina) measured over all 200,000 events,
//! and checks that both engines agree on how many events match.

use criterion::{BenchmarkId, Criterion, Throughput};
use sluice_pattern::{KafkaRecord, Matcher};
use std::hint::black_box;
use std::time::{Duration, Instant};

const EVENTS: usize = 200_000;
const SLICE: usize = 20_000;
/// 2,000 events (about 1.7 MB) fit in one core's L2.
const HOT: usize = 2_000;
const HOT_REPEAT: usize = 20;

/// splitmix64: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const STREETS: &[&str] = &[
    "UNKNOWN",
    "JEFFERSON",
    "BEACH",
    "NORTH POINT",
    "BAY",
    "FRANCISCO",
    "CHESTNUT",
    "LOMBARD",
    "GREENWICH",
    "FILBERT",
    "UNION",
    "GREEN",
    "VALLEJO",
    "BROADWAY",
    "PACIFIC",
    "JACKSON",
    "WASHINGTON",
    "CLAY",
    "SACRAMENTO",
    "CALIFORNIA",
    "PINE",
    "BUSH",
    "SUTTER",
    "POST",
    "GEARY",
    "OFARRELL",
    "ELLIS",
    "EDDY",
    "TURK",
    "GOLDEN GATE",
    "MCALLISTER",
    "FULTON",
    "GROVE",
    "HAYES",
    "FELL",
    "OAK",
    "PAGE",
    "HAIGHT",
    "WALLER",
    "DUBOCE",
    "MARKET",
    "MISSION",
    "HOWARD",
    "FOLSOM",
    "HARRISON",
    "BRYANT",
    "BRANNAN",
    "TOWNSEND",
    "KING",
    "BERRY",
    "CRANLEIGH",
    "ACADIA",
    "ALEMANY",
    "AGUA",
    "ALTA VISTA",
    "ANZA",
    "ARGUELLO",
    "BALBOA",
    "CABRILLO",
    "CORBETT",
    "DOLORES",
];
const ST_TYPES: &[&str] = &[
    "ST", "AVE", "BLVD", "WAY", "TER", "DR", "CT", "PL", "LN", "RD",
];

/// One feature, about 900 bytes.
fn feature(r: &mut Rng) -> String {
    let block = r.below(9000) + 1;
    let lot = r.below(300) + 1;
    let from = r.below(3000);
    let to = from + r.below(200);
    let street = r.pick(STREETS);
    let st_type = if r.below(10) == 0 {
        "null".to_string()
    } else {
        format!("\"{}\"", r.pick(ST_TYPES))
    };
    let odd_even = if from.is_multiple_of(2) { "E" } else { "O" };
    let lon0 = -122.52 + 0.16 * r.unit();
    let lat0 = 37.70 + 0.12 * r.unit();
    let ring = |r: &mut Rng, points: usize| {
        let mut s = String::from("[");
        for i in 0..points {
            if i > 0 {
                s.push_str(", ");
            }
            let lon = lon0 + 0.0005 * r.unit();
            let lat = lat0 + 0.0005 * r.unit();
            s.push_str(&format!("[ {lon:.15}, {lat:.15}, 0.0 ]"));
        }
        s.push(']');
        s
    };
    let (gtype, coords) = if r.below(8) == 0 {
        let a = ring(r, 6);
        let b = ring(r, 5);
        ("MultiPolygon", format!("[ [ {a} ], [ {b} ] ]"))
    } else {
        ("Polygon", format!("[ {} ]", ring(r, 12)))
    };
    format!(
        "{{ \"type\": \"Feature\", \"properties\": {{ \"MAPBLKLOT\": \"{block:04}{lot:03}\", \"BLKLOT\": \"{block:04}{lot:03}\", \"BLOCK_NUM\": \"{block:04}\", \"LOT_NUM\": \"{lot:03}\", \"FROM_ST\": {from}, \"TO_ST\": {to}, \"STREET\": \"{street}\", \"ST_TYPE\": {st_type}, \"ODD_EVEN\": \"{odd_even}\" }}, \"geometry\": {{ \"type\": \"{gtype}\", \"coordinates\": {coords} }} }}"
    )
}

fn p(field: &str, cond: &str) -> String {
    format!(r#"{{"properties": {{"{field}": [{cond}]}}}}"#)
}

/// (name, 5 rules)
fn rule_sets() -> Vec<(&'static str, Vec<String>)> {
    vec![
        (
            "exact",
            ["CRANLEIGH", "ACADIA", "MARKET", "BUSH", "OAK"]
                .iter()
                .map(|s| p("STREET", &format!("\"{s}\"")))
                .collect(),
        ),
        (
            "prefix",
            ["AC", "CRAN", "MAR", "GO", "BR"]
                .iter()
                .map(|s| p("STREET", &format!(r#"{{"prefix": "{s}"}}"#)))
                .collect(),
        ),
        (
            "suffix",
            ["LEIGH", "DIA", "KET", "ATE", "ANT"]
                .iter()
                .map(|s| p("STREET", &format!(r#"{{"suffix": "{s}"}}"#)))
                .collect(),
        ),
        (
            "equals-ignore-case",
            ["cranleigh", "Acadia", "mArKeT", "bush", "OAK"]
                .iter()
                .map(|s| p("STREET", &format!(r#"{{"equals-ignore-case": "{s}"}}"#)))
                .collect(),
        ),
        (
            "anything-but",
            [
                r#"["ST", "AVE"]"#,
                r#""BLVD""#,
                r#"["WAY", "TER", "DR"]"#,
                r#"["CT"]"#,
                r#"["PL", "LN", "RD"]"#,
            ]
            .iter()
            .map(|s| p("ST_TYPE", &format!(r#"{{"anything-but": {s}}}"#)))
            .collect(),
        ),
        (
            "numeric",
            [
                ("FROM_ST", r#"[">", 100, "<", 200]"#),
                ("FROM_ST", r#"[">=", 2500]"#),
                ("TO_ST", r#"["<", 50]"#),
                ("TO_ST", r#"["=", 1234]"#),
                ("FROM_ST", r#"[">", 1000.5, "<=", 1010]"#),
            ]
            .iter()
            .map(|(f, s)| p(f, &format!(r#"{{"numeric": {s}}}"#)))
            .collect(),
        ),
        (
            "wildcard",
            ["*LEIGH", "AC*A", "*ARK*", "G*N G*", "*I*S*"]
                .iter()
                .map(|s| p("STREET", &format!(r#"{{"wildcard": "{s}"}}"#)))
                .collect(),
        ),
        (
            "combined",
            vec![
                r#"{"properties": {"STREET": ["CRANLEIGH"], "ST_TYPE": [{"anything-but": ["AVE"]}]}}"#.to_string(),
                r#"{"properties": {"STREET": [{"prefix": "AC"}], "FROM_ST": [{"numeric": [">", 100]}]}}"#.to_string(),
                r#"{"properties": {"STREET": [{"suffix": "KET"}], "ODD_EVEN": [{"equals-ignore-case": "e"}]}}"#.to_string(),
                r#"{"properties": {"STREET": [{"wildcard": "*ARK*"}], "TO_ST": [{"numeric": ["<", 1500]}]}}"#.to_string(),
                r#"{"properties": {"STREET": [{"equals-ignore-case": "bush"}], "BLOCK_NUM": [{"prefix": "0"}]}, "geometry": {"type": ["Polygon"]}}"#.to_string(),
            ],
        ),
    ]
}

fn quamina_for(rules: &[String]) -> quamina::Quamina<usize> {
    let mut q = quamina::Quamina::<usize>::new();
    for (i, r) in rules.iter().enumerate() {
        q.add_pattern(i, r).expect("quamina accepts the rule");
    }
    q
}

fn count_sluice(m: &Matcher, events: &[String]) -> usize {
    events
        .iter()
        .filter(|e| m.matches_json(e.as_bytes()).unwrap_or(false))
        .count()
}

fn count_lenient(m: &Matcher, events: &[String]) -> usize {
    events
        .iter()
        .filter(|e| m.matches_json_lenient(e.as_bytes()).unwrap_or(false))
        .count()
}

/// The same rules as a pipe's filter on a Kafka source: each rule under `value`.
fn kafka_matcher(rules: &[String]) -> Matcher {
    let wrapped: Vec<String> = rules
        .iter()
        .map(|r| format!(r#"{{"value": {r}}}"#))
        .collect();
    Matcher::compile_kafka(&wrapped).expect("valid rules")
}

/// Each event as the value of a Kafka record (what a pipe's filter sees).
fn count_kafka(m: &Matcher, events: &[String]) -> usize {
    events
        .iter()
        .enumerate()
        .filter(|(i, e)| {
            m.matches_kafka(&KafkaRecord {
                topic: "citylots",
                partition: 0,
                offset: *i as i64,
                timestamp: 1_700_000_000_000,
                timestamp_type: "CREATE_TIME",
                key: None,
                value: Some(e.as_bytes()),
                headers: &[],
                bootstrap_servers: Some("localhost:9092"),
                event_source_arn: None,
            })
        })
        .count()
}

fn count_quamina(q: &quamina::Quamina<usize>, events: &[String]) -> usize {
    events
        .iter()
        .filter(|e| q.has_matches(e.as_bytes()).unwrap_or(false))
        .count()
}

/// One engine's pass over some events: how many matched.
type Count<'a> = &'a dyn Fn(&[String]) -> usize;

/// Rounds per measurement; engines take turns within each round (see [`measure_all`]).
const ROUNDS: usize = 5;

/// Events per second, cold and hot, of each of `counts` (and what each counted).
///
/// Cold is one pass over all events (they do not fit in cache); hot is a small slice passed
/// repeatedly (it stays in L2, as a just-decoded record would). The engines take turns within
/// each of [`ROUNDS`] rounds and each keeps its best time, so a slow spell on this shared machine
/// hits all of them alike instead of skewing one engine's figure against another's.
fn measure_all(counts: &[Count<'_>], events: &[String]) -> Vec<(f64, f64, usize)> {
    let hot_slice = &events[..HOT];
    let mut best = vec![(Duration::MAX, Duration::MAX, 0usize); counts.len()];
    for _ in 0..ROUNDS {
        for (count, b) in counts.iter().zip(best.iter_mut()) {
            let t = Instant::now();
            b.2 = black_box(count(events));
            b.0 = b.0.min(t.elapsed());
            let t = Instant::now();
            black_box((0..HOT_REPEAT).map(|_| count(hot_slice)).sum::<usize>());
            b.1 = b.1.min(t.elapsed());
        }
    }
    best.into_iter()
        .map(|(cold, hot, n)| {
            (
                events.len() as f64 / cold.as_secs_f64(),
                (HOT * HOT_REPEAT) as f64 / hot.as_secs_f64(),
                n,
            )
        })
        .collect()
}

fn main() {
    let mut r = Rng(0x5EED_C17F_1075);
    let events: Vec<String> = (0..EVENTS).map(|_| feature(&mut r)).collect();
    let avg = events.iter().map(String::len).sum::<usize>() / EVENTS;
    let sets = rule_sets();

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    for (name, rules) in &sets {
        let m = Matcher::compile_all(rules).expect("valid rules");
        let mk = kafka_matcher(rules);
        let q = quamina_for(rules);
        let mut g = c.benchmark_group(format!("citylots/{name}"));
        g.throughput(Throughput::Elements(SLICE as u64));
        let mut k = 0usize;
        g.bench_function(BenchmarkId::new("sluice", SLICE), |b| {
            b.iter(|| {
                k = (k + 1) % (EVENTS / SLICE);
                count_sluice(&m, &events[k * SLICE..(k + 1) * SLICE])
            })
        });
        g.bench_function(BenchmarkId::new("sluice-lenient", SLICE), |b| {
            b.iter(|| {
                k = (k + 1) % (EVENTS / SLICE);
                count_lenient(&m, &events[k * SLICE..(k + 1) * SLICE])
            })
        });
        g.bench_function(BenchmarkId::new("sluice-kafka", SLICE), |b| {
            b.iter(|| {
                k = (k + 1) % (EVENTS / SLICE);
                count_kafka(&mk, &events[k * SLICE..(k + 1) * SLICE])
            })
        });
        g.bench_function(BenchmarkId::new("quamina", SLICE), |b| {
            b.iter(|| {
                k = (k + 1) % (EVENTS / SLICE);
                count_quamina(&q, &events[k * SLICE..(k + 1) * SLICE])
            })
        });
        g.finish();
    }
    c.final_summary();
    // `CITYLOTS_TABLE=0`: criterion only (e.g. under a profiler with `--profile-time`).
    if std::env::var("CITYLOTS_TABLE").as_deref() == Ok("0") {
        return;
    }

    println!("\n{EVENTS} events, {avg} bytes on average; events/s on one core, best of {ROUNDS} rounds, engines taking turns.");
    println!("cold = one pass over all {EVENTS} (memory-bound); hot = a {HOT}-event slice passed {HOT_REPEAT} times (in L2).");
    println!("strict = matches_json, lenient = matches_json_lenient, kafka = matches_kafka (each event a record value).\n");
    println!("| rules (5 each) | matched | quamina cold | strict cold | lenient cold | kafka cold | quamina hot | strict hot | lenient hot | kafka hot | lenient / quamina (cold, hot) | kafka / quamina (cold, hot) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, rules) in &sets {
        let m = Matcher::compile_all(rules).expect("valid rules");
        let mk = kafka_matcher(rules);
        let q = quamina_for(rules);
        let strict = |e: &[String]| count_sluice(&m, e);
        let lenient = |e: &[String]| count_lenient(&m, e);
        let kafka = |e: &[String]| count_kafka(&mk, e);
        let quamina = |e: &[String]| count_quamina(&q, e);
        let r = measure_all(&[&strict, &lenient, &kafka, &quamina], &events);
        let [(sc, sh, ns), (lc, lh, nl), (kc, kh, nk), (qc, qh, nq)] = r[..] else {
            unreachable!("four engines measured")
        };
        assert_eq!(ns, nl, "strict and lenient disagree on {name}");
        assert_eq!(ns, nk, "strict and kafka disagree on {name}");
        let agree = if ns == nq {
            String::new()
        } else {
            format!(" (quamina: {nq})")
        };
        println!(
            "| {name} | {ns}{agree} | {qc:.0} | {sc:.0} | {lc:.0} | {kc:.0} | {qh:.0} | {sh:.0} | {lh:.0} | {kh:.0} | {:.2}x, {:.2}x | {:.2}x, {:.2}x |",
            lc / qc,
            lh / qh,
            kc / qc,
            kh / qh
        );
    }
}
