//! Key-ordered parallelism and adaptive concurrency (`concurrency.md`) against the real broker and
//! a real HTTP receiver that records arrival order, adds latency, and (for the adaptive limit)
//! answers 429 above a number of requests in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::support::{
    committed, create_topics, free_port, outlive_session, produce, wait_committed, wait_for,
    Broker, BrokerOptions, Launch, Rec, Sluice, WAIT,
};

/// One request the receiver saw.
#[derive(Debug, Clone)]
struct Seen {
    key: String,
    offset: i64,
    start: Instant,
    end: Instant,
    status: u16,
}

/// A per-record receiver: each request is answered after `latency`, or at once with 429 when more
/// than `capacity` requests are in flight.
#[derive(Clone)]
struct SlowTarget {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    _shutdown: Arc<tokio_util::sync::DropGuard>,
}

impl SlowTarget {
    async fn start(latency: Duration, capacity: Option<usize>) -> SlowTarget {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let active = Arc::new(AtomicUsize::new(0));
        let s = seen.clone();
        let handler = move |body: axum::body::Bytes| {
            let (s, active) = (s.clone(), active.clone());
            async move {
                let start = Instant::now();
                let rec: Value = serde_json::from_slice(&body).unwrap();
                let key = base64::engine::general_purpose::STANDARD
                    .decode(rec["key"].as_str().unwrap_or_default())
                    .unwrap();
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                let status = if capacity.is_some_and(|c| now > c) {
                    429
                } else {
                    tokio::time::sleep(latency).await;
                    200
                };
                active.fetch_sub(1, Ordering::SeqCst);
                s.lock().unwrap().push(Seen {
                    key: String::from_utf8(key).unwrap(),
                    offset: rec["offset"].as_i64().unwrap(),
                    start,
                    end: Instant::now(),
                    status,
                });
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        };
        let app = axum::Router::new().fallback(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = tokio_util::sync::CancellationToken::new();
        let t = token.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { t.cancelled().await })
                .await
                .unwrap();
        });
        SlowTarget {
            url: format!("http://{addr}/in"),
            seen,
            _shutdown: Arc::new(token.drop_guard()),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        let mut v = self.seen.lock().unwrap().clone();
        v.sort_by_key(|s| s.start);
        v
    }

    fn accepted(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.status == 200)
            .collect()
    }
}

/// `n` records over `keys` keys on partition 0, key `k{i mod keys}` for record `i`.
fn keyed(n: usize, keys: usize) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec::kv(0, &format!("k{}", i % keys), &format!("{{\"i\":{i}}}")))
        .collect()
}

fn pipe(name: &str, broker: &Broker, topic: &str, url: &str, ext: Value) -> Value {
    json!({
        "Name": name,
        "Source": format!("smk://{}", broker.bootstrap()),
        "Target": url,
        "SourceParameters": {"SelfManagedKafkaParameters": {
            "TopicName": topic, "StartingPosition": "TRIM_HORIZON", "BatchSize": 10}},
        "SluiceParameters": ext,
    })
}

/// Offsets per key in arrival order, each offset once (its first arrival).
fn first_arrivals(seen: &[Seen]) -> HashMap<String, Vec<i64>> {
    let mut by_key: HashMap<String, Vec<i64>> = HashMap::new();
    for s in seen {
        let offsets = by_key.entry(s.key.clone()).or_default();
        if !offsets.contains(&s.offset) {
            offsets.push(s.offset);
        }
    }
    by_key
}

fn assert_per_key_order(seen: &[Seen]) {
    for (key, offsets) in first_arrivals(seen) {
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "key {key} out of order: {offsets:?}"
        );
    }
}

/// 1 partition, 100 keys, 20,000 records, F = 16, a target adding latency: per-key order holds,
/// different keys overlap, offsets are committed to the end.
#[tokio::test]
async fn sixteen_sub_lanes_keep_each_keys_order_and_overlap_keys() {
    let broker = Broker::start("conc-order", &BrokerOptions::memory());
    create_topics(&broker.client_config(), &["keyed"], 1).await;
    produce(&broker.producer(), "keyed", &keyed(20_000, 100)).await;
    let target = SlowTarget::start(Duration::from_millis(2), None).await;
    let def = pipe(
        "keyed",
        &broker,
        "keyed",
        &target.url,
        json!({"ParallelizationFactor": 16}),
    );
    let sluice = Sluice::run(&def);
    wait_committed(&sluice, &broker, "sluice-keyed", "keyed", 1, 20_000).await;
    let seen = target.accepted();
    assert_per_key_order(&seen);
    assert_eq!(
        first_arrivals(&seen).values().map(Vec::len).sum::<usize>(),
        20_000
    );
    // Requests of different keys were in flight at the same time.
    let overlapping = seen
        .windows(2)
        .filter(|w| w[1].start < w[0].end && w[0].key != w[1].key)
        .count();
    assert!(
        overlapping > 1_000,
        "only {overlapping} overlapping requests"
    );
}

/// SIGKILL mid-stream with F = 16, then a restart: every record arrives at least once, and per-key
/// order holds apart from replays of what lay above the watermark.
#[tokio::test]
async fn sigkill_with_sub_lanes_replays_only_above_the_watermark() {
    let broker = Broker::start("conc-kill", &BrokerOptions::sqlite());
    create_topics(&broker.client_config(), &["killed"], 1).await;
    produce(&broker.producer(), "killed", &keyed(5_000, 100)).await;
    // Paced (20 ms a request: about 600 a second here) so that the first run is still
    // delivering when its membership has settled.
    let target = SlowTarget::start(Duration::from_millis(20), None).await;
    let def = pipe(
        "killed",
        &broker,
        "killed",
        &target.url,
        json!({"ParallelizationFactor": 16}),
    );
    let mut first = Sluice::run(&def);
    first.wait_settled().await;
    wait_for("2,000 deliveries", WAIT, || {
        target.accepted().len() >= 2_000
    })
    .await;
    first.sigkill();
    assert!(
        target.accepted().len() < 5_000,
        "the first run delivered everything before the kill; pace the target slower"
    );
    let at_kill = committed(&broker, "sluice-killed", "killed", 1)[0];
    outlive_session().await;
    let second = Sluice::run(&def);
    wait_committed(&second, &broker, "sluice-killed", "killed", 1, 5_000).await;
    let seen = target.accepted();
    assert_per_key_order(&seen);
    let delivered = first_arrivals(&seen);
    assert_eq!(delivered.values().map(Vec::len).sum::<usize>(), 5_000);
    // Only records at or above the watermark committed before the kill were delivered twice.
    let mut count: HashMap<i64, usize> = HashMap::new();
    for s in &seen {
        *count.entry(s.offset).or_default() += 1;
    }
    assert!(
        count.iter().all(|(o, c)| *c == 1 || *o >= at_kill),
        "a record below {at_kill} was replayed"
    );
}

/// The metric `name` of `pipe` from `/metrics` on `addr`.
async fn metric(addr: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Run `pipe` against a target that answers 429 above 8 requests in flight; (throttled share of the
/// requests after the first 3 seconds, the limit seen then).
async fn throttled_share(broker: &Broker, name: &str, adaptive: bool) -> (f64, Option<f64>) {
    create_topics(&broker.client_config(), &[name], 1).await;
    produce(&broker.producer(), name, &keyed(3_000, 200)).await;
    let target = SlowTarget::start(Duration::from_millis(20), Some(8)).await;
    let ext = json!({"ParallelizationFactor": 32, "AdaptiveConcurrency": adaptive,
                     "MaximumRetryBackoffSeconds": 0.2});
    let mut def = pipe(name, broker, name, &target.url, ext);
    def["SourceParameters"]["SelfManagedKafkaParameters"]["BatchSize"] = json!(1);
    let addr = format!("127.0.0.1:{}", free_port());
    let sluice = Sluice::spawn(
        &def,
        &Launch {
            args: &["--metrics-addr", &addr],
            ..Launch::default()
        },
    );
    let started = Instant::now();
    wait_for("3 s of deliveries", WAIT, || {
        started.elapsed() > Duration::from_secs(3)
    })
    .await;
    let limit = metric(&addr, "sluice_target_concurrency_limit").await;
    let converged = Instant::now();
    wait_committed(&sluice, broker, &format!("sluice-{name}"), name, 1, 3_000).await;
    let after: Vec<Seen> = target
        .seen()
        .into_iter()
        .filter(|s| s.start >= converged)
        .collect();
    let throttled = after.iter().filter(|s| s.status == 429).count();
    assert_eq!(
        first_arrivals(&target.accepted())
            .values()
            .map(Vec::len)
            .sum::<usize>(),
        3_000
    );
    (throttled as f64 / after.len().max(1) as f64, limit)
}

/// A target that answers 429 above 8 requests in flight: the adaptive limit converges at or below
/// 8 within seconds and fewer than 5% of requests are throttled after that; nothing is lost.
/// Without it, the same pipe is throttled far more.
#[tokio::test]
async fn the_adaptive_limit_converges_below_an_overloaded_targets_capacity() {
    let broker = Broker::start("conc-aimd", &BrokerOptions::memory());
    let (adaptive, limit) = throttled_share(&broker, "aimd-on", true).await;
    assert!(
        limit.is_some_and(|l| (1.0..=8.0).contains(&l)),
        "limit after 3 s: {limit:?}"
    );
    assert!(
        adaptive < 0.05,
        "{:.1}% throttled with the adaptive limit",
        adaptive * 100.0
    );
    let (fixed, _) = throttled_share(&broker, "aimd-off", false).await;
    assert!(
        fixed > 4.0 * adaptive && fixed > 0.2,
        "{:.1}% throttled without it",
        fixed * 100.0
    );
    println!(
        "throttled after 3 s: {:.1}% adaptive, {:.1}% without",
        adaptive * 100.0,
        fixed * 100.0
    );
}

/// A failing key with bounded retries and a dead-letter topic: other keys of the partition keep
/// flowing; the watermark passes the poison record only after it is given up.
#[tokio::test]
async fn a_failing_key_is_dead_lettered_while_the_other_keys_flow() {
    let broker = Broker::start("conc-poison", &BrokerOptions::memory());
    create_topics(&broker.client_config(), &["mixed", "mixed-dlq"], 1).await;
    produce(&broker.producer(), "mixed", &keyed(400, 40)).await;
    // Key k5's first record (offset 5) fails every time.
    let seen: Arc<Mutex<Vec<(i64, u16)>>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let s = s.clone();
        async move {
            let rec: Value = serde_json::from_slice(&body).unwrap();
            let offset = rec["offset"].as_i64().unwrap();
            let status = if offset == 5 { 500 } else { 200 };
            s.lock().unwrap().push((offset, status));
            axum::http::StatusCode::from_u16(status).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/in", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let ext = json!({"ParallelizationFactor": 8, "MaximumRetryAttempts": 3,
                     "MaximumRetryBackoffSeconds": 1, "DeadLetterConfig": {"Arn": "kafka://mixed-dlq"}});
    let mut def = pipe("mixed", &broker, "mixed", &url, ext);
    // One record per batch: only the failing record is given up, not its batch.
    def["SourceParameters"]["SelfManagedKafkaParameters"]["BatchSize"] = json!(1);
    let sluice = Sluice::run(&def);
    // While offset 5 still fails, records after it (of other keys) are delivered, and the
    // committed offset stays at 5.
    wait_for("deliveries past the poison record", WAIT, || {
        let seen = seen.lock().unwrap();
        seen.iter().filter(|(o, st)| *o > 5 && *st == 200).count() >= 50
            && seen.iter().filter(|(o, _)| *o == 5).count() < 4
    })
    .await;
    let held = committed(&broker, "sluice-mixed", "mixed", 1)[0];
    assert!(held <= 5, "committed {held} past the failing record");
    wait_committed(&sluice, &broker, "sluice-mixed", "mixed", 1, 400).await;
    let attempts = seen.lock().unwrap().iter().filter(|(o, _)| *o == 5).count();
    assert_eq!(attempts, 4, "1 + 3 attempts at offset 5");
    let delivered: std::collections::HashSet<i64> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, st)| *st == 200)
        .map(|(o, _)| *o)
        .collect();
    assert_eq!(delivered.len(), 399);
}
