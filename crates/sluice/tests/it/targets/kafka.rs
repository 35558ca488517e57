//! The Kafka target against the real broker: records are mirrored with their keys, headers and
//! values, in partition order; with a template and `KafkaTargetParameters` the value, key and
//! headers come from the record.
//!
//! Secured targets: the source is a plaintext broker, the target a second broker with SCRAM over
//! TLS or mTLS, declared in the config file (`[[targets.kafka_clusters]]`) and named by the pipe
//! (`kafka://<cluster>/topic`). Right settings deliver every record in order with its key and
//! headers; refused credentials or a missing client certificate stop the pipe at start (exit 1)
//! with a reason in the config's terms, and no secret in the output.
//!
//! SASL/PLAIN: Tansu 0.6.0 does not offer it (it builds rsasl without PLAIN), so a PLAIN cluster
//! is shown to be refused with "does not offer sasl.mechanism" here; its client settings are
//! unit-tested in `targets::kafka`.

use std::time::Instant;

use crate::support::tls::encrypted_client_key;
use crate::support::{
    committed, create_topics, file_ref, pipe, produce, read_topic, wait_committed, Broker,
    BrokerOptions, Launch, Rec, Sluice, WAIT,
};
use rdkafka::config::ClientConfig;
use serde_json::json;

/// A consumed record: key, value and headers, as text.
type Consumed = (String, String, Vec<(String, String)>);

/// (key, value, headers) of every record of `topic`, in partition order, partition by partition.
fn read_all(broker: &Broker, topic: &str, n: usize) -> Vec<Consumed> {
    read_all_with(broker.client_config(), topic, n)
}

/// [`read_all`] with a client configuration of its own (a secured broker's).
fn read_all_with(cfg: ClientConfig, topic: &str, n: usize) -> Vec<Consumed> {
    let mut by_partition: std::collections::BTreeMap<i32, Vec<_>> = Default::default();
    for r in read_topic(cfg, topic, n) {
        by_partition
            .entry(r.partition)
            .or_default()
            .push((r.key, r.value, r.headers));
    }
    by_partition.into_values().flatten().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn records_are_mirrored_with_keys_headers_and_order() {
    let broker = Broker::start("target-kafka", &BrokerOptions::memory());
    broker.create_topic("src", 2).await;
    broker.create_topic("dst", 1).await;
    let mut recs = Vec::new();
    for i in 0..40 {
        let mut r = Rec::kv(0, "same-key", &format!("v{i}"));
        r.headers = vec![("trace".into(), Some(format!("t{i}").into_bytes()))];
        recs.push(r);
    }
    produce(&broker.producer(), "src", &recs).await;
    let target = format!("kafka://{}/dst", broker.bootstrap());
    let sluice = Sluice::run(&pipe("mirror", &broker, "src", &target));
    wait_committed(&sluice, &broker, "sluice-mirror", "src", 2, 40).await;
    let got = read_all(&broker, "dst", 40);
    let want: Vec<_> = (0..40)
        .map(|i| {
            (
                "same-key".to_string(),
                format!("v{i}"),
                vec![("trace".to_string(), format!("t{i}"))],
            )
        })
        .collect();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn template_key_and_headers_come_from_the_record() {
    let broker = Broker::start("target-kafka-tpl", &BrokerOptions::memory());
    broker.create_topic("orders", 1).await;
    broker.create_topic("out", 1).await;
    let recs: Vec<Rec> = (0..5)
        .map(|i| {
            Rec::kv(
                0,
                "orig",
                &json!({"id": format!("o{i}"), "region": "eu"}).to_string(),
            )
        })
        .collect();
    produce(&broker.producer(), "orders", &recs).await;
    let mut p = pipe(
        "tpl",
        &broker,
        "orders",
        &format!("kafka://{}/out", broker.bootstrap()),
    );
    p["TargetParameters"] = json!({
        "InputTemplate": "{\"order\": <$.value.id>}",
        "KafkaTargetParameters": {"Key": "$.value.id", "Headers": {"region": "$.value.region", "via": "sluice"}}
    });
    let sluice = Sluice::run(&p);
    wait_committed(&sluice, &broker, "sluice-tpl", "orders", 1, 5).await;
    let got = read_all(&broker, "out", 5);
    for (i, (key, value, headers)) in got.iter().enumerate() {
        assert_eq!(key, &format!("o{i}"));
        let v: serde_json::Value = serde_json::from_str(value).unwrap();
        assert_eq!(v, json!({"order": format!("o{i}")}));
        assert!(
            headers.contains(&("region".into(), "eu".into())),
            "{headers:?}"
        );
        assert!(
            headers.contains(&("via".into(), "sluice".into())),
            "{headers:?}"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// secured target clusters

const USER: &str = "kt-producer";
const PASSWORD: &str = "Kt-scr4m-Pa55word-wibble";
const WRONG_PASSWORD: &str = "Kt-not-the-Pa55word-wobble";
const KEY_PASSWORD: &str = "Kt-k3y-Pa55word-wubble";
/// Never in the output of a pipe of the secured tests.
const SECRETS: &[&str] = &[PASSWORD, WRONG_PASSWORD, KEY_PASSWORD];

/// A plaintext source broker whose topic `src` holds `n` records with one key and a header each.
async fn source_with_records(n: usize) -> Broker {
    let source = Broker::start("kt-src", &BrokerOptions::memory());
    source.create_topic("src", 1).await;
    let recs: Vec<Rec> = (0..n)
        .map(|i| {
            let mut r = Rec::kv(0, "order-key", &format!("{{\"i\":{i}}}"));
            r.headers = vec![("trace".into(), Some(format!("t{i}").into_bytes()))];
            r
        })
        .collect();
    produce(&source.producer(), "src", &recs).await;
    source
}

fn expected(n: usize) -> Vec<Consumed> {
    (0..n)
        .map(|i| {
            (
                "order-key".to_string(),
                format!("{{\"i\":{i}}}"),
                vec![("trace".to_string(), format!("t{i}"))],
            )
        })
        .collect()
}

/// A `[targets]` config declaring cluster `name` at `b`, with `security` (TOML lines).
fn cluster_config(name: &str, b: &Broker, security: &str) -> String {
    format!(
        "[[targets.kafka_clusters]]\nname = \"{name}\"\nbootstrap_servers = [\"{}\"]\n{security}\n",
        b.bootstrap()
    )
}

/// Run the pipe `name` from `source`'s `src` to `target` with `config` and `env`.
fn run_pipe(
    name: &str,
    source: &Broker,
    target: &str,
    config: &str,
    env: &[(&str, String)],
) -> Sluice {
    let launch = Launch {
        args: &["--shutdown-timeout-secs", "5"],
        config: Some(config),
        env,
        secrets: SECRETS,
        ..Launch::default()
    };
    Sluice::spawn(&pipe(name, source, "src", target), &launch)
}

/// Wait until the pipe committed all `n` records, then stop it; returns its log.
async fn delivered_all(mut sluice: Sluice, source: &Broker, group: &str, n: i64) -> String {
    wait_committed(&sluice, source, group, "src", 1, n).await;
    let code = sluice.sigterm().await;
    let log = sluice.log_text();
    assert_eq!(code, Some(0), "{log}");
    log
}

/// Wait for `sluice run` to stop by itself and expect exit code 1, a failed pipe and `cause`.
async fn fails_at_start(mut sluice: Sluice, source: &Broker, group: &str, cause: &str) -> String {
    let code = sluice.exited(WAIT).await;
    let log = sluice.log_text();
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("pipe failed"), "{log}");
    assert!(log.contains(cause), "expected {cause:?} in:\n{log}");
    // It failed before consuming anything.
    assert_eq!(committed(source, group, "src", 1), vec![-1]);
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_512_and_256_over_tls_deliver_in_order_and_a_wrong_password_fails_the_pipe() {
    let started = Instant::now();
    let n = 30;
    let source = source_with_records(n).await;
    let target = Broker::start(
        "kt-scram",
        &BrokerOptions {
            sqlite: true,
            tls: true,
            scram: vec![(USER.into(), PASSWORD.into())],
            ..Default::default()
        },
    );
    let reader = target.client_config_as(USER, PASSWORD);
    create_topics(&reader, &["dst512", "dst256"], 1).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = file_ref(&target.info["CA_FILE"]);

    // SCRAM-SHA-512, the password from an environment variable, the CA from a file.
    let config512 = cluster_config(
        "secure",
        &target,
        &format!(
            "tls = {{ ca_certificate = \"{ca}\" }}\nsasl = {{ mechanism = \"SCRAM-SHA-512\", username = \"{USER}\", password = \"env:KT_TARGET_PASSWORD\" }}"
        ),
    );
    // SCRAM-SHA-256, the password from a file (with the usual trailing newline), TLS implied
    // by SASL and the CA trusted through OpenSSL's default store (SSL_CERT_FILE).
    let pw_file = dir.path().join("password");
    std::fs::write(&pw_file, format!("{PASSWORD}\n")).unwrap();
    let config256 = cluster_config(
        "secure256",
        &target,
        &format!(
            "sasl = {{ mechanism = \"SCRAM-SHA-256\", username = \"{USER}\", password = \"{}\" }}",
            file_ref(&pw_file)
        ),
    );
    let run512 = run_pipe(
        "kt512",
        &source,
        "kafka://secure/dst512",
        &config512,
        &[("KT_TARGET_PASSWORD", PASSWORD.into())],
    );
    let run256 = run_pipe(
        "kt256",
        &source,
        "kafka://secure256/dst256",
        &config256,
        &[("SSL_CERT_FILE", target.info["CA_FILE"].clone())],
    );
    let log512 = delivered_all(run512, &source, "sluice-kt512", n as i64).await;
    let log256 = delivered_all(run256, &source, "sluice-kt256", n as i64).await;
    for (log, description) in [
        (&log512, "SCRAM-SHA-512 over TLS"),
        (&log256, "SCRAM-SHA-256 over TLS"),
    ] {
        assert!(log.contains(description), "{log}");
        assert!(
            log.contains("connected to the target Kafka cluster"),
            "{log}"
        );
    }
    assert_eq!(read_all_with(reader.clone(), "dst512", n), expected(n));
    assert_eq!(read_all_with(reader.clone(), "dst256", n), expected(n));

    // Refused credentials stop the pipe at start, in the config's terms.
    let wrong = run_pipe(
        "ktwrong",
        &source,
        "kafka://secure/dst512",
        &config512,
        &[("KT_TARGET_PASSWORD", WRONG_PASSWORD.into())],
    );
    let log = fails_at_start(
        wrong,
        &source,
        "sluice-ktwrong",
        "target Kafka cluster \"secure\": the broker refused the credentials (wrong sasl.username or sasl.password?)",
    )
    .await;
    assert!(log.contains("SCRAM-SHA-512"), "{log}");

    // SASL/PLAIN: Tansu does not offer it; the pipe says so instead of retrying.
    let plain = cluster_config(
        "plain",
        &target,
        &format!(
            "tls = {{ ca_certificate = \"{ca}\" }}\nsasl = {{ mechanism = \"PLAIN\", username = \"{USER}\", password = \"env:KT_TARGET_PASSWORD\" }}"
        ),
    );
    let run = run_pipe(
        "ktplain",
        &source,
        "kafka://plain/dst512",
        &plain,
        &[("KT_TARGET_PASSWORD", PASSWORD.into())],
    );
    fails_at_start(
        run,
        &source,
        "sluice-ktplain",
        "target Kafka cluster \"plain\": the broker does not offer sasl.mechanism",
    )
    .await;
    eprintln!("scram test took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_delivers_in_order_and_a_missing_or_locked_client_key_fails_the_pipe() {
    let started = Instant::now();
    let n = 30;
    let source = source_with_records(n).await;
    let target = Broker::start(
        "kt-mtls",
        &BrokerOptions {
            mtls: true,
            ..Default::default()
        },
    );
    let reader = target.client_config();
    create_topics(&reader, &["dst"], 1).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = file_ref(&target.info["CA_FILE"]);
    let cert = file_ref(&target.info["CLIENT_CERT"]);
    let key = file_ref(encrypted_client_key(
        &target,
        &dir.path().join("client-key.enc.pem"),
        &["-v2", "aes-256-cbc"],
        KEY_PASSWORD,
    ));
    let mtls = |key_password: &str| {
        cluster_config(
            "mutual",
            &target,
            &format!(
                "[targets.kafka_clusters.tls]\nca_certificate = \"{ca}\"\nclient_certificate = \"{cert}\"\nclient_key = \"{key}\"\nclient_key_password = \"{key_password}\""
            ),
        )
    };
    let run = run_pipe(
        "ktmtls",
        &source,
        "kafka://mutual/dst",
        &mtls("env:KT_KEY_PASSWORD"),
        &[("KT_KEY_PASSWORD", KEY_PASSWORD.into())],
    );
    let log = delivered_all(run, &source, "sluice-ktmtls", n as i64).await;
    assert!(
        !log.contains(KEY_PASSWORD),
        "the key password is in the output"
    );
    assert!(log.contains("mTLS client certificate over TLS"), "{log}");
    assert_eq!(read_all_with(reader, "dst", n), expected(n));

    // A wrong key password is found before connecting, and named.
    let run = run_pipe(
        "ktkeypw",
        &source,
        "kafka://mutual/dst",
        &mtls("env:KT_KEY_PASSWORD"),
        &[("KT_KEY_PASSWORD", WRONG_PASSWORD.into())],
    );
    fails_at_start(
        run,
        &source,
        "sluice-ktkeypw",
        "targets.kafka_clusters.mutual.tls: `tls.client_key` could not be decrypted with `tls.client_key_password` (wrong password?)",
    )
    .await;

    // TLS without a client certificate: the broker's refusal stops the pipe.
    let no_cert = cluster_config(
        "mutual",
        &target,
        &format!("tls = {{ ca_certificate = \"{ca}\" }}"),
    );
    let run = run_pipe("ktnocert", &source, "kafka://mutual/dst", &no_cert, &[]);
    fails_at_start(
        run,
        &source,
        "sluice-ktnocert",
        "the broker requires a client certificate: set tls.client_certificate and tls.client_key",
    )
    .await;
    eprintln!("mtls test took {:?}", started.elapsed());
}
