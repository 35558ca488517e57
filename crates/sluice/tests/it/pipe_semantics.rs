//! `sluice run` against a real broker and a real HTTP receiver: ordering, batching, offsets,
//! retries, starting positions, consumer groups, rebalances, crashes, and the record JSON.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(120);

fn keyed(partitions: i32, per_partition: usize) -> Vec<Rec> {
    let mut recs = Vec::new();
    for i in 0..per_partition {
        for p in 0..partitions {
            recs.push(Rec::kv(
                p,
                &format!("k{p}-{}", i % 7),
                &format!("{{\"p\":{p},\"i\":{i}}}"),
            ));
        }
    }
    recs
}

/// Offsets per partition in arrival order, from per-record or batch bodies.
fn delivered(bodies: &[Value]) -> BTreeMap<i32, Vec<i64>> {
    let mut out: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for b in bodies {
        let items = match b {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        for it in &items {
            let (p, o) = position(it);
            out.entry(p).or_default().push(o);
        }
    }
    out
}

fn assert_strictly_increasing(per_partition: &BTreeMap<i32, Vec<i64>>) {
    for (p, offs) in per_partition {
        for w in offs.windows(2) {
            assert!(
                w[0] < w[1],
                "partition {p}: offset {} arrived after {}",
                w[1],
                w[0]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_run_in_parallel_and_each_stays_in_order() {
    let broker = Broker::start("order", &BrokerOptions::memory());
    broker.create_topic("orders", 8).await;
    let recs = keyed(8, 500);
    produce(&broker.producer(), "orders", &recs).await;
    // A slow target makes lanes overlap if, and only if, they run concurrently.
    let rx = Receiver::start(Arc::new(|_, _| Reply {
        delay: Duration::from_millis(20),
        ..Reply::ok()
    }))
    .await;
    let mut def = pipe("order", &broker, "orders", &rx.url);
    def["SourceParameters"]["SelfManagedKafkaParameters"]["BatchSize"] = json!(50);
    def["SluiceParameters"] = json!({"HttpDelivery": "BATCH"});
    let _s = Sluice::run(&def);
    wait_for("4000 records", LONG, || {
        rx.accepted()
            .iter()
            .map(|b| b.as_array().unwrap().len())
            .sum::<usize>()
            >= 4000
    })
    .await;
    let arrivals = rx.arrivals();
    let bodies = rx.accepted();
    let per = delivered(&bodies);
    assert_eq!(per.len(), 8);
    for (p, offs) in &per {
        assert_eq!(offs, &(0..500).collect::<Vec<i64>>(), "partition {p}");
    }
    // Every batch holds one partition's consecutive records.
    for b in &bodies {
        let items = b.as_array().unwrap();
        assert!(items.len() <= 50);
        let p = position(&items[0]).0;
        assert!(items.iter().all(|i| position(i).0 == p));
    }
    // Overlap: some request started while another partition's request was still being answered.
    let mut overlaps = 0;
    for (i, a) in arrivals.iter().enumerate() {
        let pa = position(&serde_json::from_slice::<Value>(&a.body).unwrap()[0]).0;
        for b in &arrivals[i + 1..] {
            let pb = position(&serde_json::from_slice::<Value>(&b.body).unwrap()[0]).0;
            if pa != pb && b.at < a.at + a.delay && a.at < b.at + b.delay {
                overlaps += 1;
            }
        }
    }
    assert!(overlaps > 10, "partitions never overlapped ({overlaps})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_json_is_exact() {
    let broker = Broker::start("recjson", &BrokerOptions::memory());
    broker.create_topic("rj", 1).await;
    let recs = vec![
        Rec {
            partition: 0,
            key: None,
            value: Some(b"hello".to_vec()),
            headers: vec![
                ("bin".into(), Some(vec![0x00, 0x7F, 0x80, 0xC3, 0xFF])),
                ("empty".into(), Some(vec![])),
                ("dup".into(), Some(b"a".to_vec())),
                ("dup".into(), Some(b"b".to_vec())),
            ],
        },
        Rec {
            partition: 0,
            key: Some(b"gone".to_vec()),
            value: None,
            headers: vec![],
        },
    ];
    produce(&broker.producer(), "rj", &recs).await;
    let rx = Receiver::ok().await;
    let _s = Sluice::run(&pipe("recjson", &broker, "rj", &rx.url));
    wait_for("2 records", LONG, || rx.accepted().len() >= 2).await;
    let got = rx.accepted();
    let mut first = got[0].clone();
    assert!(first["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    first.as_object_mut().unwrap().remove("timestamp");
    assert_eq!(
        first,
        json!({
            "eventSource": "SelfManagedKafka",
            "bootstrapServers": broker.bootstrap(),
            "eventSourceKey": "rj-0",
            "topic": "rj",
            "partition": "0",
            "offset": 0,
            "timestampType": "CREATE_TIME",
            "value": "aGVsbG8=",
            "headers": [
                {"bin": [0, 127, -128, -61, -1]},
                {"empty": []},
                {"dup": [97]},
                {"dup": [98]}
            ]
        })
    );
    assert!(first.get("key").is_none(), "a null key is omitted");
    assert_eq!(got[1]["key"], "Z29uZQ==");
    assert_eq!(got[1]["value"], Value::Null, "a tombstone's value is null");
    let ct = &rx.arrivals()[0].headers["content-type"];
    assert_eq!(ct, "application/json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_size_and_window_shape_batches() {
    let broker = Broker::start("batching", &BrokerOptions::memory());
    broker.create_topic("b", 1).await;
    produce(
        &broker.producer(),
        "b",
        &(0..250)
            .map(|i| Rec::kv(0, "k", &i.to_string()))
            .collect::<Vec<_>>(),
    )
    .await;
    let rx = Receiver::ok().await;
    let mut def = pipe("batching", &broker, "b", &rx.url);
    def["SourceParameters"]["SelfManagedKafkaParameters"]["BatchSize"] = json!(100);
    def["SourceParameters"]["SelfManagedKafkaParameters"]["MaximumBatchingWindowInSeconds"] =
        json!(2);
    def["SluiceParameters"] = json!({"HttpDelivery": "BATCH"});
    let _s = Sluice::run(&def);
    wait_for("3 batches", LONG, || rx.count() >= 3).await;
    let sizes: Vec<usize> = rx
        .accepted()
        .iter()
        .map(|b| b.as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![100, 100, 50]);
    // The window holds a partial batch back: 10 more records arrive as one batch, not ten.
    let before = rx.count();
    produce(
        &broker.producer(),
        "b",
        &(0..10)
            .map(|i| Rec::kv(0, "k", &i.to_string()))
            .collect::<Vec<_>>(),
    )
    .await;
    wait_for("the windowed batch", LONG, || rx.count() > before).await;
    let last = rx.accepted().last().unwrap().as_array().unwrap().len();
    assert_eq!(last, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_target_is_retried_whole_and_nothing_is_committed_until_it_recovers() {
    let broker = Broker::start("failing", &BrokerOptions::sqlite());
    broker.create_topic("f", 1).await;
    produce(
        &broker.producer(),
        "f",
        &(0..5)
            .map(|i| Rec::kv(0, "k", &i.to_string()))
            .collect::<Vec<_>>(),
    )
    .await;
    // Attempts 0-2: 500. 3-4: slower than the 300 ms timeout. 5: 429 + Retry-After 1 s. Then OK.
    let rx = Receiver::start(Arc::new(|n, _| match n {
        0..=2 => Reply::status(500),
        3 | 4 => Reply {
            delay: Duration::from_secs(2),
            ..Reply::ok()
        },
        5 => Reply {
            headers: vec![("retry-after".into(), "1".into())],
            ..Reply::status(429)
        },
        _ => Reply::ok(),
    }))
    .await;
    let mut def = pipe("failing", &broker, "f", &rx.url);
    def["SourceParameters"]["SelfManagedKafkaParameters"]["BatchSize"] = json!(5);
    def["SourceParameters"]["SelfManagedKafkaParameters"]["MaximumBatchingWindowInSeconds"] =
        json!(1);
    def["SluiceParameters"] = json!({"HttpTimeoutSeconds": 0.3, "MaximumRetryBackoffSeconds": 0.2});
    let s = Sluice::run(&def);
    wait_for("the 429", LONG, || rx.count() >= 6).await;
    assert_eq!(
        committed(&broker, "sluice-failing", "f", 1),
        vec![-1],
        "an offset was committed while the target failed"
    );
    wait_for("all 5 delivered", LONG, || rx.count() >= 6 + 5).await;
    let arrivals = rx.arrivals();
    // Every failed attempt started over at the batch's first record: the batch is retried whole.
    for a in &arrivals[..6] {
        let v: Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(position(&v), (0, 0));
    }
    // Retry-After: 1 was honoured.
    let gap = arrivals[6].at - arrivals[5].at;
    assert!(
        gap >= Duration::from_millis(950),
        "retried {gap:?} after a 429 with Retry-After: 1"
    );
    let offsets: Vec<i64> = arrivals[6..]
        .iter()
        .map(|a| position(&serde_json::from_slice(&a.body).unwrap()).1)
        .collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    wait_for("the commit", LONG, || {
        committed(&broker, "sluice-failing", "f", 1) == vec![5]
    })
    .await;
    let log = s.log_text();
    assert!(log.contains("HTTP 500"), "{log}");
    assert!(log.contains("did not answer within"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trim_horizon_reads_history_and_latest_only_new_records() {
    let broker = Broker::start("startpos", &BrokerOptions::sqlite());
    broker.create_topic("sp", 1).await;
    let producer = broker.producer();
    produce(
        &producer,
        "sp",
        &(0..10)
            .map(|i| Rec::kv(0, "old", &format!("\"old-{i}\"")))
            .collect::<Vec<_>>(),
    )
    .await;
    let from_start = Receiver::ok().await;
    let latest = Receiver::ok().await;
    let _a = Sluice::run(&pipe("from-start", &broker, "sp", &from_start.url));
    let mut def = pipe("latest", &broker, "sp", &latest.url);
    def["SourceParameters"]["SelfManagedKafkaParameters"]["StartingPosition"] = json!("LATEST");
    let b = Sluice::run(&def);
    b.wait_assigned().await;
    // LATEST resolves the end of the partition shortly after assignment; probe until a new record
    // gets through, so the test does not depend on how long that takes.
    let mut probes = 0;
    while latest.count() == 0 {
        assert!(probes < 300, "LATEST pipe never delivered a new record");
        produce(&producer, "sp", &[Rec::kv(0, "probe", "\"probe\"")]).await;
        probes += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    produce(&producer, "sp", &[Rec::kv(0, "new", "\"new\"")]).await;
    wait_for("the new record", LONG, || {
        latest.accepted().iter().any(|v| v["key"] == "bmV3")
    })
    .await;
    assert!(
        latest.accepted().iter().all(|v| v["key"] != "b2xk"),
        "LATEST delivered a record produced before the pipe started"
    );
    wait_for("history", LONG, || from_start.count() > 10 + probes).await;
    let keys: Vec<i64> = from_start
        .accepted()
        .iter()
        .map(|v| position(v).1)
        .collect();
    assert_eq!(keys, (0..(11 + probes) as i64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_group_resumes_from_its_committed_offsets() {
    let broker = Broker::start("resume", &BrokerOptions::sqlite());
    broker.create_topic("r", 2).await;
    produce(&broker.producer(), "r", &keyed(2, 10)).await;
    commit_for_group(&broker, "existing-group", "r", &[(0, 7), (1, 3)]);
    let rx = Receiver::ok().await;
    let mut def = pipe("resume", &broker, "r", &rx.url);
    def["SourceParameters"]["SelfManagedKafkaParameters"]["ConsumerGroupID"] =
        json!("existing-group");
    let _s = Sluice::run(&def);
    wait_for("10 records", LONG, || rx.count() >= 3 + 7).await;
    let per = delivered(&rx.accepted());
    assert_eq!(per[&0], vec![7, 8, 9]);
    assert_eq!(per[&1], (3..10).collect::<Vec<_>>());
    wait_for("commits", LONG, || {
        committed(&broker, "existing-group", "r", 2) == vec![10, 10]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_batch_in_flight_commits_and_exits_zero() {
    let broker = Broker::start("graceful", &BrokerOptions::sqlite());
    broker.create_topic("g", 1).await;
    produce(
        &broker.producer(),
        "g",
        &(0..20)
            .map(|i| Rec::kv(0, "k", &i.to_string()))
            .collect::<Vec<_>>(),
    )
    .await;
    // The first batch is slow; SIGTERM arrives while it is in flight.
    let rx = Receiver::start(Arc::new(|n, _| Reply {
        delay: if n == 0 {
            Duration::from_secs(2)
        } else {
            Duration::ZERO
        },
        ..Reply::ok()
    }))
    .await;
    let mut def = pipe("graceful", &broker, "g", &rx.url);
    def["SourceParameters"]["SelfManagedKafkaParameters"]["BatchSize"] = json!(10);
    def["SourceParameters"]["SelfManagedKafkaParameters"]["MaximumBatchingWindowInSeconds"] =
        json!(1);
    def["SluiceParameters"] = json!({"HttpDelivery": "BATCH"});
    let mut s = Sluice::run(&def);
    wait_for("the first batch", LONG, || rx.count() >= 1).await;
    assert_eq!(s.sigterm().await, Some(0), "{}", s.log_text());
    // The batch in flight finished and was committed; the next was not started.
    assert_eq!(rx.count(), 1);
    assert_eq!(committed(&broker, "sluice-graceful", "g", 1), vec![10]);
}

/// `OffsetCommitIntervalSeconds`: the batches delivered within the interval of the first commit
/// get no commit of their own, and the commit they are owed goes out when the pipe stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_commit_interval_batches_share_a_commit_sent_when_the_pipe_stops() {
    let broker = Broker::start("interval", &BrokerOptions::sqlite());
    broker.create_topic("ci", 1).await;
    produce(
        &broker.producer(),
        "ci",
        &(0..30)
            .map(|i| Rec::kv(0, "k", &i.to_string()))
            .collect::<Vec<_>>(),
    )
    .await;
    let rx = Receiver::start(Arc::new(|_, _| Reply::ok())).await;
    let mut def = pipe("interval", &broker, "ci", &rx.url);
    def["SourceParameters"]["SelfManagedKafkaParameters"]["BatchSize"] = json!(10);
    def["SluiceParameters"] = json!({"HttpDelivery": "BATCH", "OffsetCommitIntervalSeconds": 300});
    let mut s = Sluice::run(&def);
    let records = |rx: &Receiver| -> usize {
        rx.accepted()
            .iter()
            .map(|b| b.as_array().map_or(0, Vec::len))
            .sum()
    };
    wait_for("all 30 delivered", LONG, || records(&rx) >= 30).await;
    let bodies = rx.accepted();
    assert!(bodies.len() >= 3, "batches of at most 10: {}", bodies.len());
    let first_end = position(bodies[0].as_array().unwrap().last().unwrap()).1 + 1;
    // The second batch went out once the first batch's commit landed; the others are owed.
    assert_eq!(
        committed(&broker, "sluice-interval", "ci", 1),
        vec![first_end]
    );
    assert_eq!(s.sigterm().await, Some(0), "{}", s.log_text());
    assert_eq!(committed(&broker, "sluice-interval", "ci", 1), vec![30]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_across_sigkill() {
    let broker = Broker::start("crash", &BrokerOptions::sqlite());
    broker.create_topic("c", 4).await;
    let total = 4 * 300;
    produce(&broker.producer(), "c", &keyed(4, 300)).await;
    // Paced so that the first run is still delivering when its membership has settled.
    let rx = Receiver::start(Arc::new(|_, _| Reply {
        delay: Duration::from_millis(40),
        ..Reply::ok()
    }))
    .await;
    let mut def = pipe("crash", &broker, "c", &rx.url);
    def["SourceParameters"]["SelfManagedKafkaParameters"]["BatchSize"] = json!(20);
    let mut s = Sluice::run(&def);
    s.wait_settled().await;
    wait_for("a third of the records", LONG, || rx.count() >= total / 3).await;
    s.sigkill();
    let before_kill = rx.count();
    assert!(
        before_kill < total,
        "the first run delivered everything before the kill; pace the target slower"
    );
    let committed_at_kill = committed(&broker, "sluice-crash", "c", 4);
    outlive_session().await;
    let _s2 = Sluice::run(&def);
    let all: std::collections::HashSet<(i32, i64)> =
        (0..4).flat_map(|p| (0..300).map(move |o| (p, o))).collect();
    wait_for("every record", LONG, || {
        let seen: std::collections::HashSet<(i32, i64)> =
            rx.accepted().iter().map(position).collect();
        all.is_subset(&seen)
    })
    .await;
    let bodies = rx.accepted();
    let (first_run, second_run) = bodies.split_at(before_kill);
    let d1 = delivered(first_run);
    let d2 = delivered(second_run);
    assert_strictly_increasing(&d1);
    assert_strictly_increasing(&d2);
    let mut counts: HashMap<(i32, i64), usize> = HashMap::new();
    for v in &bodies {
        *counts.entry(position(v)).or_default() += 1;
    }
    for (p, offs) in &d2 {
        // The second run starts exactly at the committed offset...
        let start = committed_at_kill[*p as usize].max(0);
        assert_eq!(offs[0], start, "partition {p}");
        // ...so duplicates are only the records of the batch in flight at the kill: those after
        // the last commit, at most one batch.
        let dups: Vec<i64> = offs
            .iter()
            .copied()
            .filter(|o| counts[&(*p, *o)] > 1)
            .collect();
        assert!(dups.len() <= 20, "partition {p}: {} duplicates", dups.len());
        assert!(
            dups.iter().all(|o| *o >= start),
            "partition {p}: duplicate before the commit"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_shares_the_partitions_and_gives_them_back() {
    let broker = Broker::start("rebalance", &BrokerOptions::sqlite());
    broker.create_topic("rb", 4).await;
    let rx = Receiver::ok().await;
    let instance = |name: &str| {
        let mut def = pipe("shared", &broker, "rb", &rx.url);
        def["TargetParameters"] =
            json!({"HttpParameters": {"HeaderParameters": {"x-instance": name}}});
        def
    };
    let a = Sluice::run(&instance("a"));
    a.wait_assigned().await;
    let producer = broker.producer();
    let mut produced = 0;
    let next_batch = |produced: &mut i64| {
        let recs: Vec<Rec> = (0..4)
            .map(|p| Rec::kv(p, "k", &format!("{}", *produced + p as i64)))
            .collect();
        *produced += 1;
        recs
    };
    for _ in 0..25 {
        produce(&producer, "rb", &next_batch(&mut produced)).await;
    }
    let mut b = Sluice::run(&instance("b"));
    // Keep producing until b delivered something: the group split the partitions.
    let from = |who: &str| {
        rx.arrivals()
            .iter()
            .filter(|x| x.headers.get("x-instance").map(String::as_str) == Some(who))
            .count()
    };
    let mut rounds = 0;
    while from("b") == 0 {
        assert!(
            rounds < 600,
            "instance b never got a partition:\n{}",
            b.log_text()
        );
        produce(&producer, "rb", &next_batch(&mut produced)).await;
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.sigterm().await, Some(0));
    let a_before = from("a");
    for _ in 0..25 {
        produce(&producer, "rb", &next_batch(&mut produced)).await;
    }
    let total = (produced * 4) as usize;
    let all: std::collections::HashSet<(i32, i64)> = (0..4)
        .flat_map(|p| (0..produced).map(move |o| (p, o)))
        .collect();
    wait_for("every record", LONG, || {
        let seen: std::collections::HashSet<(i32, i64)> =
            rx.accepted().iter().map(position).collect();
        all.is_subset(&seen)
    })
    .await;
    assert!(from("a") > a_before, "a took the partitions back");
    assert!(rx.count() >= total);
    drop(a);
}
