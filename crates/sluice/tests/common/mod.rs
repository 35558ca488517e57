//! Shared test harness: real brokers through `scripts/broker`, Kafka clients, a recording HTTP
//! receiver, `sluice` processes and the test venv's tools; `moto` for AWS targets, `serve` for
//! `sluice serve` driven by the AWS CLI and boto3. Everything started here is stopped when its
//! guard drops.

#![allow(dead_code)]

pub mod moto;
pub mod serve;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn broker_script() -> PathBuf {
    std::env::var_os("SLUICE_BROKER_SCRIPT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("scripts/broker"))
}

/// `name` from the test venv `scripts/setup` installs (`$SLUICE_CACHE/venv`, by default
/// `~/.cache/sluice/venv`: `aws`, `python` with boto3, `moto_server`), else from PATH.
pub fn tool(name: &str) -> PathBuf {
    let cache = std::env::var_os("SLUICE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/sluice")));
    cache
        .map(|c| c.join("venv/bin").join(name))
        .filter(|p| p.exists())
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!("{name} not found in the test venv nor on PATH; run scripts/setup")
        })
}

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

    pub fn admin(&self) -> AdminClient<DefaultClientContext> {
        self.client_config().create().expect("admin client")
    }

    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        let admin = self.admin();
        let res = admin
            .create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .expect("create_topics");
        for r in res {
            r.expect("topic created");
        }
    }

    pub fn producer(&self) -> FutureProducer {
        let mut c = self.client_config();
        c.set("linger.ms", "5").set("message.timeout.ms", "30000");
        c.create().expect("producer")
    }

    /// Stop the broker but keep its data (a later `start` does not reuse it; for crash tests).
    pub fn kill(&self) {
        stop_broker(&self.name);
    }
}

fn stop_broker(name: &str) {
    let _ = Command::new(broker_script())
        .args(["stop", "--name", name])
        .stderr(Stdio::inherit())
        .status();
}

impl Drop for Broker {
    fn drop(&mut self) {
        stop_broker(&self.name);
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

/// Poll `cond` until it holds or `timeout` passes.
pub async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Call `step` every `pause`, blocking the thread (for code without a runtime), until it gives
/// `Ok`; once `timeout` has passed, panic with its last `Err`.
pub fn poll_blocking<T>(
    timeout: Duration,
    pause: Duration,
    mut step: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match step() {
            Ok(v) => return v,
            Err(why) => assert!(Instant::now() < deadline, "{why}"),
        }
        std::thread::sleep(pause);
    }
}

// ------------------------------------------------------------------------------------------------
// HTTP receiver

/// One request the receiver saw.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// When the request came in (recorded before the reply's delay).
    pub at: Instant,
    /// How long the reply was held back.
    pub delay: Duration,
    pub body: Vec<u8>,
    pub headers: HashMap<String, String>,
    pub path_and_query: String,
    pub status: u16,
}

/// What the receiver answers to request number `n` (0-based).
pub type Behaviour = Arc<dyn Fn(usize, &[u8]) -> Reply + Send + Sync>;

/// An answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply {
            status: 200,
            delay: Duration::ZERO,
            headers: vec![],
        }
    }
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            ..Reply::ok()
        }
    }
}

/// A real HTTP server on loopback that records every request.
pub struct Receiver {
    pub url: String,
    pub arrivals: Arc<Mutex<Vec<Arrival>>>,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> Receiver {
        use axum::body::Bytes;
        use axum::http::{HeaderMap, StatusCode, Uri};
        let arrivals: Arc<Mutex<Vec<Arrival>>> = Arc::default();
        let counter = Arc::new(AtomicUsize::new(0));
        let a = arrivals.clone();
        let handler = move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let a = a.clone();
            let behaviour = behaviour.clone();
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                let reply = behaviour(n, &body);
                a.lock().unwrap().push(Arrival {
                    at: Instant::now(),
                    delay: reply.delay,
                    body: body.to_vec(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                        .collect(),
                    path_and_query: uri
                        .path_and_query()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    status: reply.status,
                });
                if !reply.delay.is_zero() {
                    tokio::time::sleep(reply.delay).await;
                }
                let mut resp = axum::response::Response::new(axum::body::Body::from("ok"));
                *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap();
                for (k, v) in reply.headers {
                    resp.headers_mut().insert(
                        axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                        v.parse().unwrap(),
                    );
                }
                resp
            }
        };
        let app = axum::Router::new().fallback(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let s = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await
                .unwrap();
        });
        Receiver {
            url: format!("http://{addr}/in"),
            arrivals,
            shutdown,
        }
    }

    pub async fn ok() -> Receiver {
        Self::start(Arc::new(|_, _| Reply::ok())).await
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().unwrap().clone()
    }

    /// Bodies of successful (2xx) requests.
    pub fn accepted(&self) -> Vec<serde_json::Value> {
        self.arrivals()
            .into_iter()
            .filter(|a| (200..300).contains(&a.status))
            .map(|a| serde_json::from_slice(&a.body).unwrap())
            .collect()
    }

    pub fn count(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

// ------------------------------------------------------------------------------------------------
// sluice processes

/// The `sluice` binary under test.
pub fn sluice_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// A `sluice` child process (`sluice run` here, `sluice serve` in [`serve::Serve`]) whose stderr
/// goes to a log file; killed on drop.
pub struct Sluice {
    pub child: Child,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sluice {
    /// Start `sluice run` on a pipe definition (JSON value).
    pub fn run(pipe: &serde_json::Value) -> Sluice {
        Self::run_with(pipe, &[])
    }

    pub fn run_with(pipe: &serde_json::Value, extra_args: &[&str]) -> Sluice {
        Self::spawn(pipe, extra_args, None, &[], "info")
    }

    /// `sluice run` on `pipe` with `extra_args`, a config file holding `config_toml` (when given),
    /// `envs` added to the environment, and `RUST_LOG` from `SLUICE_TEST_LOG` or `log_default`.
    pub fn spawn(
        pipe: &serde_json::Value,
        extra_args: &[&str],
        config_toml: Option<&str>,
        envs: &[(&str, String)],
        log_default: &str,
    ) -> Sluice {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pipe.json");
        std::fs::write(&file, serde_json::to_vec_pretty(pipe).unwrap()).unwrap();
        let mut cmd = sluice_command();
        cmd.arg("run").arg(&file).args(extra_args);
        if let Some(toml) = config_toml {
            let config = dir.path().join("sluice.toml");
            std::fs::write(&config, toml).unwrap();
            cmd.arg("--config").arg(config);
        }
        cmd.envs(envs.iter().map(|(k, v)| (*k, v.as_str())));
        Self::start(cmd, dir, log_default)
    }

    /// Spawn `cmd` (a [`sluice_command`]) with stdout dropped, stderr in a log file of `dir` (kept
    /// as long as the process), and `RUST_LOG` from `SLUICE_TEST_LOG` or `log_default`.
    pub fn start(mut cmd: Command, dir: tempfile::TempDir, log_default: &str) -> Sluice {
        let log = dir.path().join("sluice.log");
        let child = cmd
            .env(
                "RUST_LOG",
                std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| log_default.into()),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn sluice");
        Sluice {
            child,
            log,
            _dir: dir,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Send SIGTERM, without waiting.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// `Some(exit code)` once the process has exited (`Some(None)`: killed by a signal).
    pub fn exit_code(&mut self) -> Option<Option<i32>> {
        self.child.try_wait().unwrap().map(|st| st.code())
    }

    /// SIGTERM and wait for exit; returns the exit code.
    pub async fn sigterm(&mut self) -> Option<i32> {
        self.terminate();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(code) = self.exit_code() {
                return code;
            }
            assert!(
                Instant::now() < deadline,
                "sluice did not exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait for the process to exit by itself within `timeout`; its exit code (`None` when it
    /// still runs then, or was killed by a signal).
    pub async fn exited(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(code) = self.exit_code() {
                return code;
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until the log says the group assigned partitions.
    pub async fn wait_assigned(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.log_text().contains("partitions assigned") {
            assert!(
                Instant::now() < deadline,
                "sluice never got partitions:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal pipe definition from a broker topic to a URL.
pub fn pipe(name: &str, broker: &Broker, topic: &str, target: &str) -> serde_json::Value {
    serde_json::json!({
        "Name": name,
        "Source": format!("smk://{}", broker.bootstrap()),
        "Target": target,
        "SourceParameters": {
            "SelfManagedKafkaParameters": {
                "TopicName": topic,
                "StartingPosition": "TRIM_HORIZON",
                "BatchSize": 100
            }
        }
    })
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

/// (partition, offset) of a delivered record JSON.
pub fn position(v: &serde_json::Value) -> (i32, i64) {
    (
        v["partition"].as_str().unwrap().parse().unwrap(),
        v["offset"].as_i64().unwrap(),
    )
}
