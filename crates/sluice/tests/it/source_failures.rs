//! Source problems only the user can fix stop the pipe with a reason, instead of retrying forever;
//! problems that may heal keep it retrying. Real brokers (`scripts/broker`), the real `sluice`
//! binary, and for the API the real AWS CLI against `sluice serve`:
//!
//! - a topic still missing after `missing_topic_grace_seconds` fails the pipe (exit 1, the topic
//!   named), and is not created by the pipe; a topic created during the grace period is consumed;
//! - TLS against a plaintext listener, and plaintext against a TLS listener, fail the pipe;
//! - an unreachable broker does not: the pipe keeps retrying past every grace period;
//! - through the API: CREATE_FAILED with the reason, RUNNING after the topic exists and the pipe is
//!   started again.
//!
//! Not here: a topic deleted under a running pipe (STOPPED with the reason, `state::on_failure`).
//! Tansu answers a fetch of an unknown topic with a zero topic id and a current-leader hint, on
//! which librdkafka 2.12 dereferences a null topic name and the process crashes.

use std::time::{Duration, Instant};

use crate::support::serve::{Aws, Serve, ROLE};
use crate::support::{
    free_port, pipe, produce, wait_for, Broker, BrokerOptions, Launch, Rec, Receiver, Sluice,
};
use serde_json::{json, Value};

/// Longest a failing pipe may take to stop by itself (the TLS checks need ~20 s).
const FAIL_WITHIN: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(60);

fn grace(secs: u64) -> String {
    format!("missing_topic_grace_seconds = {secs}\n")
}

/// `sluice run` of `pipe` with a config file holding `config`.
fn run(pipe: &Value, config: &str, log: &str) -> Sluice {
    let launch = Launch {
        args: &["--shutdown-timeout-secs", "5"],
        config: Some(config),
        log,
        ..Launch::default()
    };
    Sluice::spawn(pipe, &launch)
}

/// Whether `topic` exists on `broker`, asked with a client that cannot create it.
fn topic_exists(broker: &Broker, topic: &str) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let mut cfg = broker.client_config();
    cfg.set("allow.auto.create.topics", "false");
    let c: BaseConsumer = cfg.create().unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    md.topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none())
}

/// Run `pipe` and expect it to stop by itself: exit code 1, "pipe failed" and every `needle` in
/// its output. Returns the output and how long it ran.
async fn fails(pipe: &Value, config: &str, needles: &[&str]) -> (String, Duration) {
    let started = Instant::now();
    let mut s = run(pipe, config, "info");
    let code = s.exited(FAIL_WITHIN).await;
    let took = started.elapsed();
    let out = s.log_text();
    assert_eq!(
        code,
        Some(1),
        "sluice should have failed within {FAIL_WITHIN:?}:\n{out}"
    );
    assert!(out.contains("pipe failed"), "{out}");
    for n in needles {
        assert!(out.contains(n), "expected {n:?} in:\n{out}");
    }
    (out, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_still_missing_after_the_grace_period_fails_the_pipe() {
    let broker = Broker::start("sf-missing", &BrokerOptions::memory());
    let rx = Receiver::ok().await;
    let p = pipe("ghost", &broker, "ghost-topic", &rx.url);
    let (out, took) = fails(
        &p,
        &grace(3),
        &["the source topic ghost-topic does not exist", "TopicName"],
    )
    .await;
    // It waited for the grace period first (the topic may have been created meanwhile).
    assert!(
        took >= Duration::from_secs(3),
        "failed after {took:?}:\n{out}"
    );
    assert!(
        out.contains("the source topic does not exist; the pipe fails if it is still missing"),
        "{out}"
    );
    // The consumer did not create the topic, as AWS would not.
    assert!(!topic_exists(&broker, "ghost-topic"));
    assert_eq!(rx.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_created_during_the_grace_period_is_consumed() {
    let broker = Broker::start("sf-late", &BrokerOptions::memory());
    let rx = Receiver::ok().await;
    let p = pipe("late", &broker, "late-topic", &rx.url);
    let mut s = run(&p, &grace(120), "info");
    wait_for("the pipe to see the topic missing", WAIT, || {
        s.log_text().contains("the source topic does not exist")
    })
    .await;
    broker.create_topic("late-topic", 2).await;
    produce(
        &broker.producer(),
        "late-topic",
        &[
            Rec::kv(0, "a", r#"{"n":1}"#),
            Rec::kv(1, "b", r#"{"n":2}"#),
            Rec::kv(0, "c", r#"{"n":3}"#),
        ],
    )
    .await;
    wait_for("three records delivered", WAIT, || rx.accepted().len() >= 3).await;
    let mut got: Vec<(String, i64)> = rx
        .accepted()
        .iter()
        .map(|v| {
            (
                v["key"].as_str().unwrap().to_string(),
                v["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    // Keys are base64: a, b, c.
    assert_eq!(
        got,
        vec![("YQ==".into(), 0), ("Yg==".into(), 0), ("Yw==".into(), 1)]
    );
    wait_for("the pipe to see the topic", WAIT, || {
        s.log_text().contains("the source topic exists now")
    })
    .await;
    let out = s.log_text();
    assert!(!out.contains("pipe failed"), "{out}");
    assert_eq!(s.sigterm().await, Some(0), "{}", s.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_against_a_plaintext_listener_fails_the_pipe() {
    let broker = Broker::start("sf-plain", &BrokerOptions::memory());
    broker.create_topic("orders", 1).await;
    let rx = Receiver::ok().await;
    let mut p = pipe("tls-to-plain", &broker, "orders", &rx.url);
    p["SluiceParameters"] = json!({"KafkaTls": true});
    fails(
        &p,
        &grace(60),
        &[
            "TLS handshake with the Kafka cluster failed: is the listener plaintext?",
            broker.bootstrap(),
        ],
    )
    .await;
    assert_eq!(rx.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_against_a_tls_listener_fails_the_pipe() {
    let broker = Broker::start(
        "sf-tls",
        &BrokerOptions {
            tls: true,
            ..BrokerOptions::default()
        },
    );
    let rx = Receiver::ok().await;
    let p = pipe("plain-to-tls", &broker, "orders", &rx.url);
    fails(
        &p,
        &grace(60),
        &[
            "cannot connect to the Kafka cluster in plaintext: is the listener TLS?",
            broker.bootstrap(),
            "ServerRootCaCertificate",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_keeps_the_pipe_retrying() {
    // A port nothing listens on: connections are refused, and that may heal.
    let port = free_port();
    let rx = Receiver::ok().await;
    let started = Instant::now();
    let mut runs: Vec<Sluice> = [false, true]
        .into_iter()
        .map(|tls| {
            let p = json!({
                "Name": format!("down-{tls}"),
                "Source": format!("smk://127.0.0.1:{port}"),
                "Target": rx.url,
                "SourceParameters": {"SelfManagedKafkaParameters": {"TopicName": "orders"}},
                "SluiceParameters": {"KafkaTls": tls}
            });
            run(&p, &grace(1), "info,sluice::runtime=debug")
        })
        .collect();
    // Several checks found no broker, over longer than every grace period (1 s for the topic,
    // 10 s for a TLS/plaintext mismatch).
    wait_for("failed source checks over 12 s", WAIT, || {
        started.elapsed() > Duration::from_secs(12)
            && runs.iter().all(|s| {
                s.log_text()
                    .matches("no broker answered the source check")
                    .count()
                    >= 3
            })
    })
    .await;
    for s in &mut runs {
        let out = s.log_text();
        assert_eq!(s.child.try_wait().unwrap(), None, "{out}");
        assert!(!out.contains("pipe failed"), "{out}");
        assert_eq!(s.sigterm().await, Some(0), "{}", s.log_text());
    }
}

/// A `sluice serve` whose exit status and log are printed when the test fails.
struct Served(Serve);

impl Drop for Served {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let status = self.0.child.try_wait();
            eprintln!("sluice serve ({status:?}) log:\n{}", self.0.log_text());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_api_a_missing_topic_is_a_state_reason() {
    // sqlite: Tansu's memory storage serves a restarted consumer wrongly.
    let broker = Broker::start("sf-api", &BrokerOptions::sqlite());
    let rx = Receiver::ok().await;
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("sluice.toml");
    std::fs::write(&config, grace(2)).unwrap();
    let serve = Served(Serve::start(
        &data.path().join("store"),
        &["--config", config.to_str().unwrap()],
    ));
    let aws = Aws::new(&serve.0.url);
    let create = |name: &str, topic: &str| {
        let params = json!({"SelfManagedKafkaParameters": {
            "TopicName": topic, "StartingPosition": "TRIM_HORIZON"}})
        .to_string();
        let source = format!("smk://{}", broker.bootstrap());
        let created = aws
            .pipes(&[
                "create-pipe",
                "--name",
                name,
                "--source",
                &source,
                "--target",
                &rx.url,
                "--role-arn",
                ROLE,
                "--source-parameters",
                &params,
            ])
            .json();
        assert_eq!(created["CurrentState"], "CREATING");
    };

    // Created on a topic that does not exist: CREATING, then CREATE_FAILED naming the topic.
    create("early", "later-topic");
    let seen = aws.wait_state("early", "CREATE_FAILED", WAIT);
    assert!(!seen.iter().any(|s| s == "RUNNING"), "{seen:?}");
    let d = aws.describe("early").unwrap();
    let reason = d["StateReason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("the source topic later-topic does not exist"),
        "{d}"
    );
    assert_eq!(d["DesiredState"], "RUNNING");

    // The user creates the topic and starts the pipe: it runs and delivers; the reason is gone.
    broker.create_topic("later-topic", 1).await;
    produce(
        &broker.producer(),
        "later-topic",
        &[Rec::kv(0, "k", r#"{"id":"E1"}"#)],
    )
    .await;
    aws.pipes(&["start-pipe", "--name", "early"]).json();
    aws.wait_state("early", "RUNNING", WAIT);
    assert!(aws.describe("early").unwrap().get("StateReason").is_none());
    wait_for("E1 delivered", WAIT, || rx.accepted().len() == 1).await;
}
