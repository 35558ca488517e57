//! Helpers for `scripts/bench` (not part of Sluice):
//!
//!   bench_tool produce --bootstrap B --topic T --partitions 8 --count 1000000 --size 200
//!   bench_tool consume --bootstrap B --topic T --count 1000000      (raw rdkafka consumer: the ceiling)
//!   bench_tool consume-split --bootstrap B --topic T --count 1000000 --partitions 8 [--commit-every N]
//!                                                                  (a queue per partition, as Sluice;
//!                                                                   with N, each partition's thread
//!                                                                   commits synchronously after
//!                                                                   every N of its records)
//!   bench_tool receive --port-file F --expect 1000000 [--delay-ms 20]
//!                                                                   (HTTP receiver counting records,
//!                                                                    answering after the delay)
//!
//! `consume` and `consume-split` take `--set key=value` (repeatable) to try other librdkafka
//! settings.
//!
//! Each prints one JSON line with what it measured.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

/// `cfg` with the extra librdkafka settings of the raw consumers: every `--set key=value`.
fn with_extra_settings(args: &[String], cfg: &ClientConfig) -> ClientConfig {
    let mut cfg = cfg.clone();
    for w in args.windows(2) {
        if w[0] == "--set" {
            let (k, v) = w[1].split_once('=').expect("--set key=value");
            cfg.set(k, v);
        }
    }
    cfg
}

fn arg(args: &[String], name: &str) -> String {
    opt_arg(args, name).unwrap_or_else(|| panic!("missing {name}"))
}

/// The value after `name`, when given.
fn opt_arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("produce") => produce(&args).await,
        Some("consume") => consume(&args).await,
        Some("consume-split") => consume_split(&args),
        Some("receive") => receive(&args).await,
        _ => eprintln!("usage: bench_tool produce|consume|receive ..."),
    }
}

async fn produce(args: &[String]) {
    let bootstrap = arg(args, "--bootstrap");
    let topic = arg(args, "--topic");
    let partitions: i32 = arg(args, "--partitions").parse().unwrap();
    let count: usize = arg(args, "--count").parse().unwrap();
    let size: usize = arg(args, "--size").parse().unwrap();
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
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("compression.type", "none")
        .create()
        .unwrap();
    let started = Instant::now();
    // Realistic JSON values of about `size` bytes.
    let filler = "x".repeat(size.saturating_sub(90));
    let mut pending = Vec::with_capacity(10_000);
    for i in 0..count {
        let value = format!(
            "{{\"orderId\":\"o-{i:09}\",\"customer\":\"c-{:05}\",\"amount\":{},\"note\":\"{filler}\"}}",
            i % 10_000,
            i % 977
        );
        let key = format!("c-{:05}", i % 10_000);
        let fut = producer.send_result(
            FutureRecord::to(&topic)
                .partition((i % partitions as usize) as i32)
                .key(&key)
                .payload(&value)
                .headers(OwnedHeaders::new().insert(Header {
                    key: "source",
                    value: Some("bench"),
                })),
        );
        match fut {
            Ok(f) => pending.push(f),
            Err((e, _)) => panic!("enqueue: {e}"),
        }
        if pending.len() == 10_000 {
            for f in pending.drain(..) {
                f.await.unwrap().unwrap();
            }
        }
    }
    for f in pending.drain(..) {
        f.await.unwrap().unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"produced\":{count},\"secs\":{secs:.3},\"rate\":{:.0}}}",
        count as f64 / secs
    );
}

/// The ceiling: a plain BaseConsumer poll loop on its own thread with librdkafka's default
/// (generous) prefetch, touching each payload and doing nothing else.
async fn consume(args: &[String]) {
    let bootstrap = arg(args, "--bootstrap");
    let topic = arg(args, "--topic");
    let count: u64 = arg(args, "--count").parse().unwrap();
    let args = args.to_vec();
    let line = tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::BaseConsumer;
        let consumer: BaseConsumer = with_extra_settings(
            &args,
            ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", format!("bench-raw-{}", std::process::id()))
                .set("auto.offset.reset", "earliest")
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                // As Sluice sets it: Tansu answers a fetch only when this expires.
                .set("fetch.wait.max.ms", "100"),
        )
        .create()
        .unwrap();
        consumer.subscribe(&[&topic]).unwrap();
        let mut n = 0u64;
        let mut bytes = 0usize;
        let mut first: Option<Instant> = None;
        while n < count {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    first.get_or_insert_with(Instant::now);
                    bytes += rdkafka::Message::payload(&m).map_or(0, <[u8]>::len);
                    n += 1;
                }
                Some(Err(e)) => eprintln!("consume: {e}"),
                None => {}
            }
        }
        let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
        format!(
            "{{\"records\":{n},\"bytes\":{bytes},\"secs\":{secs:.3},\"rate\":{:.0}}}",
            n as f64 / secs
        )
    })
    .await
    .unwrap();
    println!("{line}");
}

/// The ceiling for Sluice's design: one BaseConsumer, every partition assigned from the start and
/// split into its own queue, one thread per partition polling it (what Sluice's lanes do, minus
/// the pipe). With `--commit-every N` a thread also commits its partition's offset, and waits for
/// the broker's answer, after every N records: the offset commit per batch that the spec asks of a
/// pipe, without the pipe.
fn consume_split(args: &[String]) {
    use rdkafka::consumer::BaseConsumer;
    let bootstrap = arg(args, "--bootstrap");
    let topic = arg(args, "--topic");
    let count: u64 = arg(args, "--count").parse().unwrap();
    let partitions: i32 = arg(args, "--partitions").parse().unwrap();
    let commit_every: Option<u64> = opt_arg(args, "--commit-every").map(|n| n.parse().unwrap());
    let consumer: Arc<BaseConsumer> = Arc::new(
        with_extra_settings(
            args,
            ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", format!("bench-split-{}", std::process::id()))
                .set("enable.auto.commit", "false")
                .set("fetch.wait.max.ms", "100")
                // Sluice's prefetch bounds and fetch settings (`RuntimeOptions`, `client_config`).
                .set("queued.min.messages", "5000")
                .set("queued.max.messages.kbytes", "4096")
                .set(
                    "fetch.max.bytes",
                    sluice::sources::kafka::FETCH_MAX_BYTES.to_string(),
                )
                .set("fetch.queue.backoff.ms", "10"),
        )
        .create()
        .unwrap(),
    );
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(&topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let total = Arc::new(AtomicU64::new(0));
    let first: Arc<Mutex<Option<Instant>>> = Arc::default();
    let mut threads = Vec::new();
    for p in 0..partitions {
        let queue = consumer.split_partition_queue(&topic, p).unwrap();
        let (total, first) = (total.clone(), first.clone());
        let (consumer, topic) = (consumer.clone(), topic.clone());
        threads.push(std::thread::spawn(move || {
            let mut mine = 0u64;
            while total.load(Ordering::Relaxed) < count {
                if let Some(Ok(m)) = queue.poll(Duration::from_millis(100)) {
                    first.lock().unwrap().get_or_insert_with(Instant::now);
                    let _ = rdkafka::Message::payload(&m).map_or(0, <[u8]>::len);
                    total.fetch_add(1, Ordering::Relaxed);
                    mine += 1;
                    if commit_every.is_some_and(|n| mine.is_multiple_of(n)) {
                        commit_next(&consumer, &topic, p, rdkafka::Message::offset(&m) + 1);
                    }
                }
            }
        }));
    }
    while total.load(Ordering::Relaxed) < count {
        // Serves the consumer's events; records go to the partition queues.
        let _ = consumer.poll(Duration::from_millis(10));
    }
    let secs = first
        .lock()
        .unwrap()
        .map_or(0.0, |f| f.elapsed().as_secs_f64());
    for t in threads {
        t.join().unwrap();
    }
    let n = total.load(Ordering::Relaxed);
    println!(
        "{{\"records\":{n},\"secs\":{secs:.3},\"rate\":{:.0}}}",
        n as f64 / secs
    );
}

/// Commit `offset` for one partition and wait for the broker's answer.
fn commit_next(
    consumer: &rdkafka::consumer::BaseConsumer,
    topic: &str,
    partition: i32,
    offset: i64,
) {
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset))
        .unwrap();
    if let Err(e) = consumer.commit(&tpl, rdkafka::consumer::CommitMode::Sync) {
        eprintln!("consume-split: commit: {e}");
    }
}

async fn receive(args: &[String]) {
    use axum::body::Bytes;
    let expect: u64 = arg(args, "--expect").parse().unwrap();
    let port_file = arg(args, "--port-file");
    let delay =
        Duration::from_millis(opt_arg(args, "--delay-ms").map_or(0, |ms| ms.parse().unwrap()));
    let count = Arc::new(AtomicU64::new(0));
    let times: Arc<Mutex<(Option<Instant>, Option<Instant>)>> = Arc::default();
    let done = Arc::new(tokio::sync::Notify::new());
    let (c, t, d) = (count.clone(), times.clone(), done.clone());
    let app = axum::Router::new().fallback(move |body: Bytes| {
        let (c, t, d) = (c.clone(), t.clone(), d.clone());
        async move {
            let n = if body.first() == Some(&b'[') {
                serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&body)
                    .map(|v| v.len())
                    .unwrap_or(0)
            } else {
                1
            } as u64;
            {
                let mut t = t.lock().unwrap();
                t.0.get_or_insert_with(Instant::now);
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let total = c.fetch_add(n, Ordering::Relaxed) + n;
            if total >= expect {
                t.lock().unwrap().1.get_or_insert_with(Instant::now);
                d.notify_one();
            }
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
    done.notified().await;
    let (first, last) = *times.lock().unwrap();
    let secs = match (first, last) {
        (Some(f), Some(l)) => (l - f).as_secs_f64(),
        _ => 0.0,
    };
    let n = count.load(Ordering::Relaxed);
    println!(
        "{{\"records\":{n},\"secs\":{secs:.3},\"rate\":{:.0}}}",
        n as f64 / secs
    );
}
