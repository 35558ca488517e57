//! Helpers for `scripts/bench-latency` (not part of Sluice): end-to-end latency of a pipe against a
//! raw consumer, same records, same receiver, same run.
//!
//!   latency_tool produce --bootstrap B --topic T --partitions 4 --rate 200 --warmup-secs 10 --secs 120
//!       creates the topic, then sends records paced at --rate, each value
//!       `{"sent_us": <send time, µs since the epoch>, "warmup": bool, "pad": "..."}`
//!   latency_tool relay --bootstrap B --topic T --url U [--commit-each]
//!       the raw consumer: an rdkafka consumer (Sluice's fetch settings) that POSTs each record's
//!       value to U, one at a time, until SIGTERM; with --commit-each it also commits each
//!       record's offset synchronously before taking the next (what Sluice does per batch)
//!   latency_tool receive --port-file F --expect N --paths P --timeout-secs S
//!       an HTTP receiver: for each measured record (not warm-up), arrival minus `sent_us`, kept
//!       per path (`/sluice`, `/raw`, ...); takes a value as the body or Sluice's events (one
//!       object or an array, `value` in base64); prints the percentiles per path as one JSON line
//!       once P paths have N records each, or at the timeout
//!   latency_tool slow-receive --port-file F --delay-ms D
//!       a slow target for the backlog memory case: answers each request after D ms; on SIGTERM
//!       prints how many records it received
//!
//! The clocks are the same machine's, so send and arrival times compare directly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use base64::Engine as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use serde_json::{json, Value};

fn arg(args: &[String], name: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| panic!("missing {name}"))
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("produce") => produce(&args).await,
        Some("relay") => relay(&args).await,
        Some("receive") => receive(&args).await,
        Some("slow-receive") => slow_receive(&args).await,
        _ => eprintln!("usage: latency_tool produce|relay|receive|slow-receive ..."),
    }
}

async fn produce(args: &[String]) {
    let bootstrap = arg(args, "--bootstrap");
    let topic = arg(args, "--topic");
    let partitions: i32 = arg(args, "--partitions").parse().unwrap();
    let rate: f64 = arg(args, "--rate").parse().unwrap();
    let warmup = Duration::from_secs(arg(args, "--warmup-secs").parse().unwrap());
    let total = warmup + Duration::from_secs(arg(args, "--secs").parse().unwrap());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    admin
        .create_topics(
            &[NewTopic::new(
                &topic,
                partitions,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    // No lingering: each record leaves when it is sent.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "0")
        .create()
        .unwrap();
    let started = Instant::now();
    let pad = "x".repeat(120);
    let mut sent = 0u64;
    let mut pending = Vec::new();
    while started.elapsed() < total {
        let due = started + Duration::from_secs_f64(sent as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let value = json!({"sent_us": now_us(), "warmup": started.elapsed() < warmup, "pad": pad})
            .to_string();
        let key = format!("k{}", sent % 64);
        let record = FutureRecord::to(&topic).key(&key).payload(&value);
        match producer.send_result(record) {
            Ok(f) => pending.push(f),
            Err((e, _)) => panic!("enqueue: {e}"),
        }
        sent += 1;
        if pending.len() >= 1000 {
            for f in pending.drain(..) {
                f.await.unwrap().unwrap();
            }
        }
    }
    for f in pending.drain(..) {
        f.await.unwrap().unwrap();
    }
    println!("{{\"produced\":{sent}}}");
}

/// The baseline: consume with Sluice's fetch settings, POST each value, next record after the
/// answer (as Sluice's lanes, without batching, filtering or commits).
async fn relay(args: &[String]) {
    let bootstrap = arg(args, "--bootstrap");
    let topic = arg(args, "--topic");
    let url = arg(args, "--url");
    let commit_each = args.iter().any(|a| a == "--commit-each");
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", format!("latency-raw-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .set(
            "fetch.max.bytes",
            sluice::sources::kafka::FETCH_MAX_BYTES.to_string(),
        )
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .unwrap();
    let consumer = Arc::new(consumer);
    consumer.subscribe(&[&topic]).unwrap();
    let client = reqwest::Client::new();
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    loop {
        let msg = tokio::select! {
            _ = term.recv() => return,
            m = consumer.recv() => m,
        };
        let Ok(msg) = msg else { continue };
        let body = msg.payload().unwrap_or_default().to_vec();
        while client.post(&url).body(body.clone()).send().await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if commit_each {
            // As Sluice's lanes commit: synchronously, on a blocking thread.
            let c = consumer.clone();
            let mut one = rdkafka::TopicPartitionList::new();
            let next = rdkafka::Offset::Offset(msg.offset() + 1);
            one.add_partition_offset(msg.topic(), msg.partition(), next)
                .unwrap();
            let _ = tokio::task::spawn_blocking(move || c.commit(&one, CommitMode::Sync)).await;
        }
    }
}

/// Latencies (µs) per path.
type Latencies = Arc<Mutex<BTreeMap<String, Vec<u64>>>>;

/// The `sent_us` of each measured record in a body: a value itself, or Sluice's event(s).
fn sent_times(body: &[u8]) -> Vec<u64> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let values: Vec<Value> = match v {
        Value::Array(events) => events.iter().filter_map(event_value).collect(),
        Value::Object(ref o) if o.contains_key("sent_us") => vec![v],
        Value::Object(_) => event_value(&v).into_iter().collect(),
        _ => Vec::new(),
    };
    values
        .iter()
        .filter(|v| v["warmup"] == false)
        .filter_map(|v| v["sent_us"].as_u64())
        .collect()
}

fn event_value(event: &Value) -> Option<Value> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(event["value"].as_str()?)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn summary(lat: &BTreeMap<String, Vec<u64>>) -> Value {
    let mut out = serde_json::Map::new();
    for (path, v) in lat {
        let mut s = v.clone();
        s.sort_unstable();
        out.insert(
            path.clone(),
            json!({
                "records": s.len(),
                "p50_ms": percentile(&s, 50.0),
                "p99_ms": percentile(&s, 99.0),
                "p99_9_ms": percentile(&s, 99.9),
                "max_ms": percentile(&s, 100.0),
                "mean_ms": s.iter().sum::<u64>() as f64 / s.len().max(1) as f64 / 1000.0,
            }),
        );
    }
    Value::Object(out)
}

async fn receive(args: &[String]) {
    let port_file = arg(args, "--port-file");
    let expect: usize = arg(args, "--expect").parse().unwrap();
    let paths: usize = arg(args, "--paths").parse().unwrap();
    let timeout = Duration::from_secs(arg(args, "--timeout-secs").parse().unwrap());
    let lat: Latencies = Arc::default();
    let l = lat.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: Bytes| {
        let l = l.clone();
        async move {
            let arrived = now_us();
            let times = sent_times(&body);
            let mut l = l.lock().unwrap();
            let v = l.entry(uri.path().to_string()).or_default();
            v.extend(times.iter().map(|s| arrived.saturating_sub(*s)));
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    std::fs::write(
        &port_file,
        listener.local_addr().unwrap().port().to_string(),
    )
    .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let l = lat.lock().unwrap();
        let done = l.len() >= paths && l.values().all(|v| v.len() >= expect);
        if done || started.elapsed() > timeout {
            println!("{}", summary(&l));
            return;
        }
    }
}

async fn slow_receive(args: &[String]) {
    let port_file = arg(args, "--port-file");
    let delay = Duration::from_millis(arg(args, "--delay-ms").parse().unwrap());
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c = count.clone();
    let app = axum::Router::new().fallback(move |body: Bytes| {
        let c = c.clone();
        async move {
            tokio::time::sleep(delay).await;
            let n =
                serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&body).map_or(1, |v| v.len());
            c.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            "ok"
        }
    });
    // A batch of 10,000 events is over axum's default 2 MB body limit; Sluice caps it at 6 MiB.
    let app = app.layer(axum::extract::DefaultBodyLimit::max(8 * 1024 * 1024));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    std::fs::write(
        &port_file,
        listener.local_addr().unwrap().port().to_string(),
    )
    .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    term.recv().await;
    println!(
        "{{\"received\":{}}}",
        count.load(std::sync::atomic::Ordering::Relaxed)
    );
}
