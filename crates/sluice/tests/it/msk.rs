//! Amazon MSK by cluster ARN alone (`kafka-source.md`, "Resolving an MSK cluster ARN"): `sluice`
//! asks the MSK API (a local server speaking its REST protocol: moto has no `GetBootstrapBrokers`)
//! for the cluster's broker strings and connects to the listener of the strongest method, never a
//! weaker one. Each row of the spec's table runs against a real Tansu listener (plaintext, TLS via
//! the socat terminator, mTLS, SCRAM over TLS; MSK IAM against a recording listener, as Tansu has
//! no OAUTHBEARER) while every weaker method's string points at a decoy that must see no
//! connection. Then: a secret whose listener is absent, an AccessDenied answer in `StateReason`,
//! brokers that move, `StartingPositionTimestamp`, and an AWS-shaped pipe file running unchanged.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::moto::{self, Moto};
use crate::support::msk::{Decoy, MskAnswer, MskApi};
use crate::support::serve::{Aws, Serve, ROLE};
use crate::support::{
    create_topics, file_ref, produce, wait_committed, Broker, BrokerOptions, Launch, Rec, Receiver,
    Sluice, WAIT,
};

const ARN: &str =
    "arn:aws:kafka:us-east-1:123456789012:cluster/orders/6b1e2c3d-4f5a-4b6c-8d7e-9f0a1b2c3d4e-2";
const USER: &str = "msk-user";
const PASSWORD: &str = "Msk-Scr4m-pa55-quux";

const PLAIN: &str = "BootstrapBrokerString";
const TLS: &str = "BootstrapBrokerStringTls";
const SCRAM: &str = "BootstrapBrokerStringSaslScram";
const IAM: &str = "BootstrapBrokerStringSaslIam";

// ------------------------------------------------------------------------------------------------
// helpers

/// An MSK pipe as AWS takes it: the ARN, the topic, nothing of Sluice's.
fn msk_pipe(name: &str, topic: &str, target: &str, credentials: Option<Value>) -> Value {
    let mut p = json!({
        "Name": name,
        "Source": ARN,
        "Target": target,
        "RoleArn": ROLE,
        "SourceParameters": {"ManagedStreamingKafkaParameters": {
            "TopicName": topic, "StartingPosition": "TRIM_HORIZON", "BatchSize": 10}}
    });
    if let Some(c) = credentials {
        p["SourceParameters"]["ManagedStreamingKafkaParameters"]["Credentials"] = c;
    }
    p
}

/// `sluice run` of `pipe` with AWS credentials, the MSK API at `api` and `extra` env.
fn run(
    pipe: &Value,
    api: &MskApi,
    extra: &[(&'static str, String)],
    config: Option<&str>,
) -> Sluice {
    let mut env = moto::aws_env();
    env.push(("AWS_ENDPOINT_URL_KAFKA", api.url.clone()));
    // The assertions read log fields (`servers=...`), which colours would split.
    env.push(("NO_COLOR", "1".into()));
    env.extend(extra.iter().cloned());
    let launch = Launch {
        args: &["--shutdown-timeout-secs", "5"],
        config,
        env: &env,
        secrets: &[PASSWORD],
        ..Launch::default()
    };
    Sluice::spawn(pipe, &launch)
}

/// Wait until `receiver` got `n` records (one request each), failing early if `sluice` exits.
async fn wait_delivered(sluice: &mut Sluice, receiver: &Receiver, n: usize) {
    let deadline = Instant::now() + WAIT;
    while receiver.count() < n {
        if let Some(code) = sluice.exit_code() {
            panic!("sluice exited ({code:?}):\n{}", sluice.log_text());
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} records within {WAIT:?}:\n{}",
            receiver.count(),
            sluice.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `topic` with `n` records, created and produced with `cfg` (a broker's settings, with SCRAM
/// where it has users).
async fn records(cfg: rdkafka::ClientConfig, topic: &str, n: usize) {
    create_topics(&cfg, &[topic], 1).await;
    let mut pc = cfg;
    pc.set("message.timeout.ms", "30000");
    let producer = pc.create().unwrap();
    let recs: Vec<Rec> = (0..n)
        .map(|i| Rec::kv(0, &format!("k{i}"), &format!("{{\"i\":{i}}}")))
        .collect();
    produce(&producer, topic, &recs).await;
}

/// One row of the table: the cluster's `real` string points at `broker`, each field of `decoys`
/// at a decoy listener. The pipe delivers the topic's 3 records, and no decoy saw a connection.
async fn uses_listener(
    name: &str,
    real: &str,
    broker: &str,
    decoys: &[&str],
    credentials: Option<Value>,
    env: &[(&'static str, String)],
) {
    let mut fields = vec![(real.to_string(), broker.to_string())];
    let mut listeners = Vec::new();
    for d in decoys {
        let decoy = Decoy::start().await;
        fields.push((d.to_string(), decoy.addr.clone()));
        listeners.push((*d, decoy));
    }
    let api = MskApi::start(MskAnswer::Brokers(fields)).await;
    let receiver = Receiver::ok().await;
    let pipe = msk_pipe(name, "orders", &receiver.url, credentials);
    let mut sluice = run(&pipe, &api, env, None);
    wait_delivered(&mut sluice, &receiver, 3).await;
    sluice.sigterm().await;
    assert_eq!(receiver.count(), 3);
    assert_eq!(api.calls(), vec![ARN.to_string()]);
    for (field, decoy) in &listeners {
        assert_eq!(decoy.connections(), 0, "{field} was connected to");
    }
    let log = sluice.log_text();
    assert!(log.contains(&format!("servers={broker}")), "{log}");
    let record = &receiver.accepted()[0];
    assert_eq!(record["eventSourceArn"], ARN);
}

fn ssl_cert_file(b: &Broker) -> Vec<(&'static str, String)> {
    vec![("SSL_CERT_FILE", b.info["CA_FILE"].clone())]
}

fn scram_tls_broker() -> Broker {
    Broker::start(
        "msk-scram",
        &BrokerOptions {
            sqlite: true,
            tls: true,
            scram: vec![(USER.into(), PASSWORD.into())],
            ..Default::default()
        },
    )
}

fn scram_secret(dir: &std::path::Path) -> String {
    let path = dir.join("scram.json");
    std::fs::write(
        &path,
        json!({"username": USER, "password": PASSWORD}).to_string(),
    )
    .unwrap();
    file_ref(path)
}

// ------------------------------------------------------------------------------------------------
// the table, row by row

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_uses_the_tls_listener() {
    let b = Broker::start(
        "msk-mtls",
        &BrokerOptions {
            mtls: true,
            ..Default::default()
        },
    );
    records(b.client_config(), "orders", 3).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cert.json");
    let cert = json!({
        "certificate": std::fs::read_to_string(&b.info["CLIENT_CERT"]).unwrap(),
        "privateKey": std::fs::read_to_string(&b.info["CLIENT_KEY"]).unwrap(),
    });
    std::fs::write(&secret, cert.to_string()).unwrap();
    uses_listener(
        "msk-mtls",
        TLS,
        b.bootstrap(),
        &[SCRAM, IAM, PLAIN],
        Some(json!({"ClientCertificateTlsAuth": file_ref(&secret)})),
        &ssl_cert_file(&b),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scram_secret_uses_the_sasl_scram_listener() {
    let b = scram_tls_broker();
    records(b.client_config_as(USER, PASSWORD), "orders", 3).await;
    let dir = tempfile::tempdir().unwrap();
    uses_listener(
        "msk-scram",
        SCRAM,
        b.bootstrap(),
        &[IAM, TLS, PLAIN],
        Some(json!({"SaslScram512Auth": scram_secret(dir.path())})),
        &ssl_cert_file(&b),
    )
    .await;
}

/// Tansu has no OAUTHBEARER: the IAM listener is a recording one that must be the one connected
/// to, with an IAM token, while the TLS and plaintext decoys see nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_and_an_iam_listener_use_msk_iam() {
    let iam = Decoy::start().await;
    let (tls, plain) = (Decoy::start().await, Decoy::start().await);
    let api = MskApi::start(MskAnswer::brokers(&[
        (IAM, &iam.addr),
        (TLS, &tls.addr),
        (PLAIN, &plain.addr),
    ]))
    .await;
    let pipe = msk_pipe("msk-iam", "orders", "http://127.0.0.1:9/", None);
    let mut sluice = run(&pipe, &api, &[], None);
    let deadline = Instant::now() + WAIT;
    while iam.connections() == 0 {
        assert!(
            Instant::now() < deadline,
            "the IAM listener saw no connection:\n{}",
            sluice.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sluice.sigterm().await;
    let log = sluice.log_text();
    assert!(
        log.contains("security=MSK IAM (OAUTHBEARER) over TLS"),
        "{log}"
    );
    assert_eq!((tls.connections(), plain.connections()), (0, 0), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_and_no_iam_use_the_tls_listener_unauthenticated() {
    let b = Broker::start(
        "msk-tls",
        &BrokerOptions {
            tls: true,
            ..Default::default()
        },
    );
    records(b.client_config(), "orders", 3).await;
    uses_listener(
        "msk-tls",
        TLS,
        b.bootstrap(),
        &[PLAIN],
        None,
        &ssl_cert_file(&b),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_and_neither_use_plaintext() {
    let b = Broker::start("msk-plain", &BrokerOptions::memory());
    records(b.client_config(), "orders", 3).await;
    uses_listener("msk-plain", PLAIN, b.bootstrap(), &[], None, &[]).await;
}

// ------------------------------------------------------------------------------------------------
// failures

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_whose_listener_is_absent_fails_naming_the_method() {
    let decoys = [
        Decoy::start().await,
        Decoy::start().await,
        Decoy::start().await,
    ];
    let api = MskApi::start(MskAnswer::brokers(&[
        (IAM, &decoys[0].addr),
        (TLS, &decoys[1].addr),
        (PLAIN, &decoys[2].addr),
    ]))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let creds = json!({"SaslScram512Auth": scram_secret(dir.path())});
    let pipe = msk_pipe("msk-noscram", "orders", "http://127.0.0.1:9/", Some(creds));
    let mut sluice = run(&pipe, &api, &[], None);
    let code = sluice.exited(WAIT).await;
    let log = sluice.log_text();
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("no SASL/SCRAM listener"), "{log}");
    assert!(log.contains("BootstrapBrokerStringSaslScram"), "{log}");
    let seen: Vec<usize> = decoys.iter().map(Decoy::connections).collect();
    assert_eq!(seen, [0, 0, 0], "another method was tried");
}

/// Through `sluice serve`: the endpoint from the config file, the AWS error code and message in
/// `StateReason`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_fails_the_pipe_with_the_code_and_message_in_state_reason() {
    let message = format!(
        "User: arn:aws:iam::123456789012:user/sluice is not authorized to perform: kafka:GetBootstrapBrokers on resource: {ARN}"
    );
    let api = MskApi::start(MskAnswer::Error(
        403,
        "AccessDeniedException".into(),
        message.clone(),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[targets.aws]\nservice_endpoints = {{ kafka = \"{}\" }}\n",
            api.url
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let serve = Serve::start_with_env(
        &data,
        &["--config", config.to_str().unwrap()],
        &moto::aws_env(),
    );
    let aws = Aws::new(&serve.url);
    aws.pipes(&[
        "create-pipe",
        "--name",
        "denied",
        "--source",
        ARN,
        "--target",
        "http://127.0.0.1:9/",
        "--role-arn",
        ROLE,
        "--source-parameters",
        r#"{"ManagedStreamingKafkaParameters": {"TopicName": "orders"}}"#,
    ])
    .json();
    aws.wait_state("denied", "CREATE_FAILED", WAIT);
    let reason = aws.describe("denied").unwrap()["StateReason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("AccessDeniedException"), "{reason}");
    assert!(reason.contains(&message), "{reason}");
    assert_eq!(api.calls(), vec![ARN.to_string()]);
}

// ------------------------------------------------------------------------------------------------
// brokers that move

/// The brokers move to new ports (the old broker stops, a new one starts): once none answered for
/// `msk_lookup_again_after_seconds`, the brokers are looked up again and the pipe goes on there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_that_move_are_looked_up_again() {
    let old = Broker::start("msk-old", &BrokerOptions::memory());
    records(old.client_config(), "orders", 3).await;
    let api = MskApi::start(MskAnswer::brokers(&[(PLAIN, old.bootstrap())])).await;
    let receiver = Receiver::ok().await;
    let pipe = msk_pipe("msk-moves", "orders", &receiver.url, None);
    let config = "msk_lookup_again_after_seconds = 2\n";
    let mut sluice = run(&pipe, &api, &[], Some(config));
    wait_delivered(&mut sluice, &receiver, 3).await;

    let new = Broker::start("msk-new", &BrokerOptions::memory());
    records(new.client_config(), "orders", 2).await;
    api.set(MskAnswer::brokers(&[(PLAIN, new.bootstrap())]));
    let moved_at = Instant::now();
    drop(old);
    wait_delivered(&mut sluice, &receiver, 5).await;
    let took = moved_at.elapsed();
    sluice.sigterm().await;
    let log = sluice.log_text();
    assert!(api.calls().len() >= 2, "{log}");
    assert!(log.contains("the MSK cluster's brokers moved"), "{log}");
    assert!(
        log.contains(&format!("servers={}", new.bootstrap())),
        "{log}"
    );
    assert_eq!(receiver.count(), 5);
    eprintln!("moved brokers delivered after {took:?}");
}

// ------------------------------------------------------------------------------------------------
// StartingPositionTimestamp

/// Records at t0..t9 on two partitions (partition 1 half a second later each); a pipe starting at
/// t5 delivers exactly the records from t5 on. Run again with the same group, it resumes from the
/// committed offsets and delivers only what is new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_timestamp_starts_fresh_groups_there_and_resumes_others() {
    let b = Broker::start("msk-ts", &BrokerOptions::sqlite());
    create_topics(&b.client_config(), &["orders"], 2).await;
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t0_ms = (now_s - 100) * 1000;
    let producer = b.producer();
    let at = |p: i32, i: i64| {
        let ms = t0_ms + i * 1000 + i64::from(p) * 500;
        (p, format!("p{p}-t{i}"), ms)
    };
    let first: Vec<_> = (0..10).flat_map(|i| [at(0, i), at(1, i)]).collect();
    produce_at(&producer, "orders", &first).await;

    let api = MskApi::start(MskAnswer::brokers(&[(PLAIN, b.bootstrap())])).await;
    let receiver = Receiver::ok().await;
    let mut pipe = msk_pipe("msk-ts", "orders", &receiver.url, None);
    pipe["SourceParameters"]["ManagedStreamingKafkaParameters"]["ConsumerGroupID"] =
        json!("msk-ts-group");
    pipe["SluiceParameters"] = json!({"StartingPositionTimestamp": t0_ms / 1000 + 5});
    let mut sluice = run(&pipe, &api, &[], None);
    wait_committed(&sluice, &b, "msk-ts-group", "orders", 2, 20).await;
    sluice.sigterm().await;
    let mut got = values(&receiver);
    got.sort();
    let mut want: Vec<String> = (5..10)
        .flat_map(|i| [format!("p0-t{i}"), format!("p1-t{i}")])
        .collect();
    want.sort();
    assert_eq!(got, want, "{}", sluice.log_text());

    // The group has offsets now: the timestamp no longer applies.
    produce_at(&producer, "orders", &[at(0, 10), at(1, 10)]).await;
    let again = Receiver::ok().await;
    pipe["Target"] = json!(again.url);
    let mut sluice = run(&pipe, &api, &[], None);
    wait_committed(&sluice, &b, "msk-ts-group", "orders", 2, 22).await;
    sluice.sigterm().await;
    let mut got = values(&again);
    got.sort();
    assert_eq!(got, ["p0-t10", "p1-t10"], "{}", sluice.log_text());
}

/// Produce `(partition, value, timestamp ms)` records and wait for them.
async fn produce_at(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    recs: &[(i32, String, i64)],
) {
    use rdkafka::producer::FutureRecord;
    for (p, v, ms) in recs {
        let r: FutureRecord<'_, str, str> = FutureRecord::to(topic)
            .partition(*p)
            .payload(v.as_str())
            .timestamp(*ms);
        producer
            .send(r, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }
}

/// The decoded values of the records `receiver` got.
fn values(receiver: &Receiver) -> Vec<String> {
    use base64::Engine;
    receiver
        .accepted()
        .iter()
        .map(|r| {
            let v = base64::engine::general_purpose::STANDARD
                .decode(r["value"].as_str().unwrap())
                .unwrap();
            String::from_utf8(v).unwrap()
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// a pipe moved from AWS

/// The pipe file AWS would take (plus `Name`): the cluster ARN, a SCRAM secret by Secrets Manager
/// ARN, an SQS queue as target; nothing Sluice-specific. The AWS endpoints come from the standard
/// variables (moto for Secrets Manager and SQS, the local MSK API for Kafka).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_shaped_msk_pipe_file_runs_unchanged() {
    let b = scram_tls_broker();
    records(b.client_config_as(USER, PASSWORD), "orders", 3).await;
    let moto = Moto::start().await;
    let secret = moto.aws(&[
        "secretsmanager",
        "create-secret",
        "--name",
        "AmazonMSK_orders",
        "--secret-string",
        &json!({"username": USER, "password": PASSWORD}).to_string(),
    ])["ARN"]
        .as_str()
        .unwrap()
        .to_string();
    let queue = moto.aws(&["sqs", "create-queue", "--queue-name", "orders"])["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let api = MskApi::start(MskAnswer::brokers(&[
        (SCRAM, b.bootstrap()),
        (TLS, "b-1.orders.example:9094"),
        (IAM, "b-1.orders.example:9098"),
    ]))
    .await;
    let pipe = json!({
        "Name": "orders-from-msk",
        "Source": ARN,
        "Target": "arn:aws:sqs:us-east-1:123456789012:orders",
        "RoleArn": "arn:aws:iam::123456789012:role/pipes-orders",
        "SourceParameters": {
            "ManagedStreamingKafkaParameters": {
                "TopicName": "orders",
                "StartingPosition": "TRIM_HORIZON",
                "BatchSize": 10,
                "Credentials": {"SaslScram512Auth": secret}
            }
        }
    });
    let mut env = ssl_cert_file(&b);
    env.push(("AWS_ENDPOINT_URL", moto.url.clone()));
    let mut sluice = run(&pipe, &api, &env, None);
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < 3 {
        if let Some(code) = sluice.exit_code() {
            panic!("sluice exited ({code:?}):\n{}", sluice.log_text());
        }
        assert!(Instant::now() < deadline, "{}", sluice.log_text());
        got.extend(moto::sqs_receive_all(&moto, &queue, 3 - got.len()));
    }
    sluice.sigterm().await;
    for m in &got {
        let body: Value = serde_json::from_str(m["Body"].as_str().unwrap()).unwrap();
        assert_eq!(body["eventSource"], "aws:kafka");
        assert_eq!(body["eventSourceArn"], ARN);
        assert_eq!(body["topic"], "orders");
    }
    assert_eq!(api.calls(), vec![ARN.to_string()]);
}
