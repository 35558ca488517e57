//! Kafka for the tests: brokers started through `scripts/broker` (stopped on drop), records
//! produced with the rdkafka crate, and the offsets a consumer group committed.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::{broker_script, Sluice, WAIT};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Broker flavours `scripts/broker start` offers.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    pub sqlite: bool,
    pub tls: bool,
    pub mtls: bool,
    pub scram: Vec<(String, String)>,
}

impl BrokerOptions {
    pub fn memory() -> Self {
        Self::default()
    }
    pub fn sqlite() -> Self {
        Self {
            sqlite: true,
            ..Self::default()
        }
    }
}

/// A running broker; stopped on drop.
#[derive(Debug)]
pub struct Broker {
    pub name: String,
    pub info: HashMap<String, String>,
}

impl Broker {
    pub fn start(prefix: &str, opts: &BrokerOptions) -> Broker {
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut cmd = Command::new(broker_script());
        cmd.args(["start", "--name", &name]);
        cmd.args(["--storage", if opts.sqlite { "sqlite" } else { "memory" }]);
        if opts.tls {
            cmd.arg("--tls");
        }
        if opts.mtls {
            cmd.arg("--mtls");
        }
        for (u, p) in &opts.scram {
            cmd.args(["--scram", &format!("{u}:{p}")]);
        }
        let out = cmd
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/broker");
        assert!(
            out.status.success(),
            "scripts/broker start failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let info = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Broker { name, info }
    }

    pub fn bootstrap(&self) -> &str {
        &self.info["BOOTSTRAP"]
    }

    /// Client settings that reach this broker (security protocol, CA, client certificate).
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap());
        c.set("security.protocol", &self.info["SECURITY_PROTOCOL"]);
        if let Some(ca) = self.info.get("CA_FILE") {
            c.set("ssl.ca.location", ca);
        }
        if let (Some(cert), Some(key)) = (self.info.get("CLIENT_CERT"), self.info.get("CLIENT_KEY"))
        {
            c.set("ssl.certificate.location", cert);
            c.set("ssl.key.location", key);
        }
        c.set("log_level", "3");
        c
    }

    /// [`Broker::client_config`] authenticating as `user` with SCRAM-SHA-512.
    pub fn client_config_as(&self, user: &str, password: &str) -> ClientConfig {
        let mut c = self.client_config();
        c.set("sasl.mechanism", "SCRAM-SHA-512")
            .set("sasl.username", user)
            .set("sasl.password", password);
        c
    }

    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        create_topics(&self.client_config(), &[topic], partitions).await;
    }

    pub fn producer(&self) -> FutureProducer {
        let mut c = self.client_config();
        c.set("linger.ms", "5").set("message.timeout.ms", "30000");
        c.create().expect("producer")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new(broker_script())
            .args(["stop", "--name", &self.name])
            .stderr(Stdio::inherit())
            .status();
    }
}

/// A record to produce.
#[derive(Debug, Clone)]
pub struct Rec {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Rec {
    pub fn kv(partition: i32, key: &str, value: &str) -> Rec {
        Rec {
            partition,
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: vec![],
        }
    }
}

/// Create `topics` with `partitions` each, through an admin client with the settings `cfg`.
pub async fn create_topics(cfg: &ClientConfig, topics: &[&str], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = cfg.create().expect("admin client");
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let res = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create_topics");
    for r in res {
        r.expect("topic created");
    }
}

/// Produce records and wait for every acknowledgement.
pub async fn produce(producer: &FutureProducer, topic: &str, recs: &[Rec]) {
    let mut futures = Vec::with_capacity(recs.len());
    for r in recs {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition(r.partition)
            .headers(headers);
        if let Some(k) = &r.key {
            fr = fr.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            fr = fr.payload(v.as_slice());
        }
        futures.push(producer.send(fr, Duration::from_secs(30)));
    }
    for f in futures {
        f.await.map_err(|(e, _)| e).expect("produce");
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
}

/// The group's committed offsets for partitions `0..n` of `topic` (-1 where none).
pub fn committed(broker: &Broker, group: &str, topic: &str, n: i32) -> Vec<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let mut cfg = broker.client_config();
    cfg.set("group.id", group);
    let c: BaseConsumer = cfg.create().unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..n {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    (0..n)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(rdkafka::Offset::Offset(o)) => o,
            _ => -1,
        })
        .collect()
}

/// Commit offsets for a group without joining it (as an earlier consumer would have).
pub fn commit_for_group(broker: &Broker, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    let mut cfg = broker.client_config();
    cfg.set("group.id", group)
        .set("enable.auto.commit", "false");
    let c: BaseConsumer = cfg.create().unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, rdkafka::Offset::Offset(*o))
            .unwrap();
    }
    c.commit(&tpl, CommitMode::Sync).expect("commit");
}

/// Wait until `group` committed `n` records of `topic` in all: the committed offsets of its
/// partitions `0..partitions` add up to `n` (a partition without a commit counts 0). Panics with
/// the log of `sluice` after [`WAIT`].
pub async fn wait_committed(
    sluice: &Sluice,
    broker: &Broker,
    group: &str,
    topic: &str,
    partitions: i32,
    n: i64,
) {
    let deadline = Instant::now() + WAIT;
    while committed(broker, group, topic, partitions)
        .iter()
        .map(|o| o.max(&0))
        .sum::<i64>()
        != n
    {
        assert!(
            Instant::now() < deadline,
            "offsets of {group} on {topic} never reached {n}:\n{}",
            sluice.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One record read back from a topic, bytes as (lossy) text.
#[derive(Debug, Clone)]
pub struct ReadBack {
    pub partition: i32,
    pub key: String,
    pub value: String,
    /// In record order, duplicates kept.
    pub headers: Vec<(String, String)>,
    pub timestamp: Option<i64>,
}

/// The first `n` records of `topic` in arrival order, read with `cfg` from the earliest offset by
/// a consumer group of its own; blocking (call it off a runtime whose tasks must keep running).
pub fn read_topic(mut cfg: ClientConfig, topic: &str, n: usize) -> Vec<ReadBack> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    cfg.set("group.id", format!("reader-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    let c: BaseConsumer = cfg.create().unwrap();
    c.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + WAIT;
    let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} records in {topic}",
            out.len()
        );
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| (x.key.to_string(), text(x.value)))
                        .collect()
                })
                .unwrap_or_default();
            out.push(ReadBack {
                partition: m.partition(),
                key: text(m.key()),
                value: text(m.payload()),
                headers,
                timestamp: m.timestamp().to_millis(),
            });
        }
    }
    out
}
