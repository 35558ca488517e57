//! Kafka authentication and TLS end to end: `sluice run` against real brokers (`scripts/broker`
//! with SCRAM users, TLS and mTLS terminators), with secrets given as `file://`, `env:` and Secrets
//! Manager ARNs (resolved against a moto server started here). Right credentials deliver records;
//! wrong ones stop the pipe with a reason that names the cause, and `sluice run` exits non-zero.
//! Finally every credential kind runs at TRACE logging and no secret byte may appear in the output.
//!
//! SASL/PLAIN: no broker here offers it; the unit tests of `sources::kafka::auth` check its client
//! settings, and the redaction test below runs a BasicAuth pipe against a SCRAM-only broker.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::moto::{self, Moto, AWS_SECRET_KEY};
use crate::support::tls::{encrypted_client_key, stranger_ca};
use crate::support::{
    create_topics, file_ref, produce, Broker, BrokerOptions, Launch, Rec, Receiver, Sluice, WAIT,
};
use rdkafka::producer::FutureProducer;
use serde_json::{json, Value};

const USER: &str = "alice";
const PASSWORD: &str = "Scr4m-pa55word-xyzzy";
const KEY_PASSWORD: &str = "k3y-pa55word-plugh";

// ------------------------------------------------------------------------------------------------
// helpers

async fn topic_with_records(b: &Broker, scram: bool, topic: &str, n: usize) {
    // Set-up clients (admin, producer) sign in with SCRAM when the broker has users.
    let setup = if scram {
        b.client_config_as(USER, PASSWORD)
    } else {
        b.client_config()
    };
    create_topics(&setup, &[topic], 1).await;
    let mut pc = setup;
    pc.set("message.timeout.ms", "30000");
    let producer: FutureProducer = pc.create().unwrap();
    let recs: Vec<Rec> = (0..n)
        .map(|i| Rec::kv(0, &format!("k{i}"), &format!("{{\"i\":{i}}}")))
        .collect();
    produce(&producer, topic, &recs).await;
}

fn pipe(name: &str, bootstrap: &str, topic: &str, target: &str) -> Value {
    json!({
        "Name": name,
        "Source": format!("smk://{bootstrap}"),
        "Target": target,
        "SourceParameters": {"SelfManagedKafkaParameters": {
            "TopicName": topic, "StartingPosition": "TRIM_HORIZON", "BatchSize": 10}},
        "SluiceParameters": {"HttpDelivery": "BATCH"}
    })
}

fn params(p: &mut Value) -> &mut Value {
    &mut p["SourceParameters"]["SelfManagedKafkaParameters"]
}

/// A `sluice run` of `pipe` with `env`, its stdout and stderr in one log (the secret checks read
/// both).
fn sluice_run(pipe: &Value, env: &[(&str, String)], rust_log: &str) -> Sluice {
    let mut env = env.to_vec();
    // Never reach for an instance metadata service from a test.
    env.push(("AWS_EC2_METADATA_DISABLED", "true".into()));
    let launch = Launch {
        args: &["--shutdown-timeout-secs", "5"],
        env: &env,
        log: rust_log,
        stdout: true,
        ..Launch::default()
    };
    Sluice::spawn(pipe, &launch)
}

/// Records delivered to `receiver` (BATCH delivery: each body is an array).
fn delivered(receiver: &Receiver) -> usize {
    receiver
        .accepted()
        .iter()
        .map(|b| b.as_array().map_or(1, Vec::len))
        .sum()
}

/// Run `pipe` until `n` records arrived, then stop it; returns the output.
async fn delivers(pipe: &Value, env: &[(&str, String)], n: usize) -> String {
    let receiver = Receiver::ok().await;
    let mut p = pipe.clone();
    p["Target"] = json!(receiver.url);
    let mut run = sluice_run(&p, env, "info");
    let deadline = Instant::now() + WAIT;
    while delivered(&receiver) < n {
        if let Some(code) = run.exit_code() {
            panic!(
                "sluice exited ({code:?}) before delivering:\n{}",
                run.log_text()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no delivery within {WAIT:?}:\n{}",
            run.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    run.sigterm().await;
    assert_eq!(delivered(&receiver), n, "{}", run.log_text());
    run.log_text()
}

/// Run `pipe` and expect it to fail by itself: exit code 1 and a reason containing `cause`.
async fn fails(pipe: &Value, env: &[(&str, String)], cause: &str) -> String {
    let receiver = Receiver::ok().await;
    let mut p = pipe.clone();
    p["Target"] = json!(receiver.url);
    let mut run = sluice_run(&p, env, "info");
    let code = run.exited(WAIT).await;
    let out = run.log_text();
    assert_eq!(code, Some(1), "exit code; output:\n{out}");
    assert!(out.contains("pipe failed"), "{out}");
    assert!(out.contains(cause), "expected {cause:?} in:\n{out}");
    assert_eq!(receiver.count(), 0);
    out
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    file_ref(p)
}

/// The broker's client key re-encrypted with `how` (openssl pkcs8 arguments).
fn encrypted_key(b: &Broker, dir: &Path, name: &str, how: &[&str]) -> String {
    std::fs::read_to_string(encrypted_client_key(b, &dir.join(name), how, KEY_PASSWORD)).unwrap()
}

fn client_secret(b: &Broker, key: &str, password: Option<&str>) -> String {
    let mut s = json!({
        "certificate": std::fs::read_to_string(&b.info["CLIENT_CERT"]).unwrap(),
        "privateKey": key,
    });
    if let Some(p) = password {
        s["privateKeyPassword"] = json!(p);
    }
    s.to_string()
}

fn scram_broker(tls: bool) -> Broker {
    Broker::start(
        "auth-scram",
        &BrokerOptions {
            sqlite: true,
            tls,
            scram: vec![(USER.into(), PASSWORD.into())],
            ..Default::default()
        },
    )
}

fn ca(b: &Broker) -> String {
    std::fs::read_to_string(&b.info["CA_FILE"]).unwrap()
}

const AWS_SESSION: &str = "session-TOKEN-value-for-aws-77";

/// moto's credentials with a session token (which must not be logged either).
fn aws_env() -> Vec<(&'static str, String)> {
    let mut env = moto::aws_env();
    env.push(("AWS_SESSION_TOKEN", AWS_SESSION.into()));
    env
}

/// Create a Secrets Manager secret in moto; returns its ARN.
fn create_secret(moto: &Moto, name: &str, value: &str) -> String {
    let v = moto.aws(&[
        "secretsmanager",
        "create-secret",
        "--name",
        name,
        "--secret-string",
        value,
    ]);
    v["ARN"].as_str().unwrap().to_string()
}

// ------------------------------------------------------------------------------------------------
// tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_512_and_256_deliver_over_tls_and_a_wrong_password_fails_the_pipe() {
    let b = scram_broker(true);
    topic_with_records(&b, true, "scram", 5).await;
    let dir = tempfile::tempdir().unwrap();
    let good = json!({"username": USER, "password": PASSWORD}).to_string();
    let ca_ref = write(dir.path(), "ca.pem", &ca(&b));

    // SCRAM-SHA-512 from a file, SCRAM-SHA-256 from an environment variable; TLS is the default.
    let mut p512 = pipe("scram512", b.bootstrap(), "scram", "");
    params(&mut p512)["Credentials"] =
        json!({"SaslScram512Auth": write(dir.path(), "user.json", &good)});
    params(&mut p512)["ServerRootCaCertificate"] = json!(ca_ref);
    let out = delivers(&p512, &[], 5).await;
    assert!(out.contains("SCRAM-SHA-512 over TLS"), "{out}");

    let mut p256 = pipe("scram256", b.bootstrap(), "scram", "");
    params(&mut p256)["Credentials"] = json!({"SaslScram256Auth": "env:SLUICE_TEST_SCRAM"});
    params(&mut p256)["ServerRootCaCertificate"] = json!(ca_ref);
    delivers(&p256, &[("SLUICE_TEST_SCRAM", good.clone())], 5).await;

    let bad = json!({"username": USER, "password": "not-the-password"}).to_string();
    let mut wrong = pipe("scramwrong", b.bootstrap(), "scram", "");
    params(&mut wrong)["Credentials"] = json!({"SaslScram512Auth": "env:SLUICE_TEST_SCRAM"});
    params(&mut wrong)["ServerRootCaCertificate"] = json!(ca_ref);
    let out = fails(
        &wrong,
        &[("SLUICE_TEST_SCRAM", bad)],
        "authentication with the Kafka cluster failed",
    )
    .await;
    assert!(!out.contains("not-the-password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_over_plaintext_with_kafka_tls_false() {
    let b = scram_broker(false);
    topic_with_records(&b, true, "plain", 3).await;
    let good = json!({"username": USER, "password": PASSWORD}).to_string();
    let env = [("SLUICE_TEST_SCRAM", good)];
    let mut p = pipe("scramplain", b.bootstrap(), "plain", "");
    params(&mut p)["Credentials"] = json!({"SaslScram512Auth": "env:SLUICE_TEST_SCRAM"});
    // By default SCRAM runs over TLS, as AWS (unit-tested in sources::kafka::auth); plaintext
    // SASL is an explicit opt-in.
    p["SluiceParameters"]["KafkaTls"] = json!(false);
    let out = delivers(&p, &env, 3).await;
    assert!(out.contains("SCRAM-SHA-512 over plaintext"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verifies_the_broker_against_the_given_ca_or_the_system_roots() {
    let b = Broker::start(
        "auth-tls",
        &BrokerOptions {
            tls: true,
            ..Default::default()
        },
    );
    topic_with_records(&b, false, "tls", 4).await;
    let dir = tempfile::tempdir().unwrap();

    // The CA as raw PEM in a file.
    let mut p = pipe("tlsca", b.bootstrap(), "tls", "");
    params(&mut p)["ServerRootCaCertificate"] = json!(write(dir.path(), "ca.pem", &ca(&b)));
    let out = delivers(&p, &[], 4).await;
    assert!(out.contains("no authentication over TLS"), "{out}");

    // No CA given: OpenSSL's default trust store, here pointed at the test CA.
    let mut sys = pipe("tlssys", b.bootstrap(), "tls", "");
    sys["SluiceParameters"]["KafkaTls"] = json!(true);
    delivers(&sys, &[("SSL_CERT_FILE", b.info["CA_FILE"].clone())], 4).await;

    // A CA that did not sign the broker's certificate.
    let mut other = pipe("tlsother", b.bootstrap(), "tls", "");
    params(&mut other)["ServerRootCaCertificate"] = json!(write(
        dir.path(),
        "other.json",
        &json!({"certificate": stranger_ca(dir.path())}).to_string()
    ));
    fails(&other, &[], "not trusted (unknown CA)").await;

    // The system trust store does not know the test CA either.
    fails(
        &sys,
        &[("SSL_CERT_FILE", "/dev/null".into())],
        "not trusted (unknown CA)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_with_plain_pbes1_and_pbes2_keys_and_clear_failures() {
    let b = Broker::start(
        "auth-mtls",
        &BrokerOptions {
            mtls: true,
            ..Default::default()
        },
    );
    topic_with_records(&b, false, "mtls", 3).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_ref = write(dir.path(), "ca.pem", &ca(&b));
    let plain_key = std::fs::read_to_string(&b.info["CLIENT_KEY"]).unwrap();
    let keys = [
        ("plain", plain_key.clone(), None),
        (
            "pbes1-3des",
            encrypted_key(&b, dir.path(), "k1.pem", &["-v1", "PBE-SHA1-3DES"]),
            Some(KEY_PASSWORD),
        ),
        (
            "pbes1-des",
            encrypted_key(
                &b,
                dir.path(),
                "k2.pem",
                &[
                    "-v1",
                    "PBE-SHA1-DES",
                    "-provider",
                    "legacy",
                    "-provider",
                    "default",
                ],
            ),
            Some(KEY_PASSWORD),
        ),
        (
            "pbes2",
            encrypted_key(&b, dir.path(), "k3.pem", &["-v2", "aes-256-cbc"]),
            Some(KEY_PASSWORD),
        ),
    ];
    for (name, key, pw) in &keys {
        let mut p = pipe(&format!("mtls-{name}"), b.bootstrap(), "mtls", "");
        params(&mut p)["Credentials"] = json!({"ClientCertificateTlsAuth":
            write(dir.path(), &format!("{name}.json"), &client_secret(&b, key, *pw))});
        params(&mut p)["ServerRootCaCertificate"] = json!(ca_ref);
        let out = delivers(&p, &[], 3).await;
        assert!(
            out.contains("mTLS client certificate over TLS"),
            "{name}: {out}"
        );
    }

    // A wrong key password is found before connecting.
    let mut wrong = pipe("mtls-wrongpw", b.bootstrap(), "mtls", "");
    params(&mut wrong)["Credentials"] = json!({"ClientCertificateTlsAuth": write(
        dir.path(),
        "wrong.json",
        &client_secret(&b, &keys[3].1, Some("not-the-key-password"))
    )});
    params(&mut wrong)["ServerRootCaCertificate"] = json!(ca_ref);
    let out = fails(
        &wrong,
        &[],
        "could not be decrypted with field `privateKeyPassword` (wrong password?)",
    )
    .await;
    assert!(
        out.contains("Credentials.ClientCertificateTlsAuth"),
        "{out}"
    );

    // TLS without a client certificate against a broker that requires one.
    let mut none = pipe("mtls-nocert", b.bootstrap(), "mtls", "");
    params(&mut none)["ServerRootCaCertificate"] = json!(ca_ref);
    fails(&none, &[], "requires a client certificate").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_manager_arns_resolve_through_the_sdk() {
    let b = scram_broker(true);
    topic_with_records(&b, true, "sm", 2).await;
    let moto = Moto::start().await;
    let user_arn = create_secret(
        &moto,
        "AmazonMSK_alice",
        &json!({"username": USER, "password": PASSWORD}).to_string(),
    );
    // The CA as AWS stores it: JSON with a `certificate` field.
    let ca_arn = create_secret(
        &moto,
        "broker-ca",
        &json!({"certificate": ca(&b)}).to_string(),
    );
    assert!(user_arn.starts_with("arn:aws:secretsmanager:us-east-1:"));

    // Endpoint from the standard environment variable.
    let mut p = pipe("smenv", b.bootstrap(), "sm", "");
    params(&mut p)["Credentials"] = json!({ "SaslScram512Auth": user_arn });
    params(&mut p)["ServerRootCaCertificate"] = json!(ca_arn);
    let mut env = aws_env();
    env.push(("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.url.clone()));
    delivers(&p, &env, 2).await;

    // Endpoint from the pipe's own setting.
    let mut q = p.clone();
    q["Name"] = json!("smexplicit");
    q["SluiceParameters"]["SecretsManagerEndpoint"] = json!(moto.url);
    delivers(&q, &aws_env(), 2).await;

    // A secret that does not exist is named.
    let mut missing = q.clone();
    let gone = user_arn.replace("AmazonMSK_alice", "AmazonMSK_nobody");
    params(&mut missing)["Credentials"] = json!({ "SaslScram512Auth": gone });
    let out = fails(&missing, &aws_env(), "not found").await;
    assert!(out.contains("Credentials.SaslScram512Auth"), "{out}");
}

/// Every credential kind at TRACE: no password, key, key password, AWS secret key or IAM token
/// may appear anywhere in the process output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_output_even_at_trace() {
    let scram = scram_broker(true);
    let mtls = Broker::start(
        "auth-redact",
        &BrokerOptions {
            mtls: true,
            ..Default::default()
        },
    );
    let tls = Broker::start(
        "auth-redact-tls",
        &BrokerOptions {
            tls: true,
            ..Default::default()
        },
    );
    topic_with_records(&scram, true, "r", 2).await;
    topic_with_records(&mtls, false, "r", 2).await;
    topic_with_records(&tls, false, "r", 2).await;
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let creds = json!({"username": USER, "password": PASSWORD}).to_string();
    let user_arn = create_secret(&moto, "redact-user", &creds);
    let enc_key = encrypted_key(&mtls, dir.path(), "k.pem", &["-v1", "PBE-SHA1-3DES"]);
    let plain_key = std::fs::read_to_string(&mtls.info["CLIENT_KEY"]).unwrap();
    let scram_ca = write(dir.path(), "scram-ca.pem", &ca(&scram));
    let mtls_ca = write(dir.path(), "mtls-ca.pem", &ca(&mtls));
    let wrong_plain = "basic-PLAIN-pa55word-q9";

    type Env = Vec<(&'static str, String)>;
    let mut runs: Vec<(&str, Value, Env)> = Vec::new();
    for (name, kind, reference) in [
        ("sm512", "SaslScram512Auth", user_arn.clone()),
        (
            "file256",
            "SaslScram256Auth",
            write(dir.path(), "u.json", &creds),
        ),
        ("basic", "BasicAuth", "env:SLUICE_TEST_BASIC".to_string()),
    ] {
        let mut p = pipe(name, scram.bootstrap(), "r", "");
        params(&mut p)["Credentials"] = json!({ kind: reference });
        params(&mut p)["ServerRootCaCertificate"] = json!(scram_ca);
        let mut env = aws_env();
        env.push(("AWS_ENDPOINT_URL", moto.url.clone()));
        env.push((
            "SLUICE_TEST_BASIC",
            json!({"username": USER, "password": wrong_plain}).to_string(),
        ));
        runs.push((name, p, env));
    }
    let mut m = pipe("mtls", mtls.bootstrap(), "r", "");
    params(&mut m)["Credentials"] = json!({"ClientCertificateTlsAuth": "env:SLUICE_TEST_CERT"});
    params(&mut m)["ServerRootCaCertificate"] = json!(mtls_ca);
    runs.push((
        "mtls",
        m,
        vec![(
            "SLUICE_TEST_CERT",
            client_secret(&mtls, &enc_key, Some(KEY_PASSWORD)),
        )],
    ));
    // MSK IAM against a TLS broker (trusted through SSL_CERT_FILE): tokens are made and sent.
    let iam = json!({
        "Name": "iam",
        "Source": "arn:aws:kafka:us-east-1:123456789012:cluster/c/abc-1",
        "Target": "",
        "SourceParameters": {"ManagedStreamingKafkaParameters": {
            "TopicName": "r", "StartingPosition": "TRIM_HORIZON"}},
        "SluiceParameters": {"BootstrapServers": [tls.bootstrap()]}
    });
    let mut iam_env = aws_env();
    iam_env.push(("SSL_CERT_FILE", tls.info["CA_FILE"].clone()));
    runs.push(("iam", iam, iam_env));

    let receiver = Receiver::ok().await;
    let mut started = Vec::new();
    for (name, mut p, env) in runs {
        p["Target"] = json!(receiver.url);
        started.push((name, sluice_run(&p, &env, "trace")));
    }
    // Let each run authenticate (or fail to): the four good ones deliver their two records each
    // (the IAM one may or may not, depending on whether the broker checks tokens).
    let deadline = Instant::now() + WAIT;
    while delivered(&receiver) < 6 {
        assert!(Instant::now() < deadline, "runs did not deliver");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let iam_run = &started.iter().find(|(n, _)| *n == "iam").unwrap().1;
    let deadline = Instant::now() + WAIT;
    while !iam_run.log_text().contains("made an MSK IAM token") {
        assert!(
            Instant::now() < deadline,
            "no IAM token made:\n{}",
            iam_run.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut all = String::new();
    for (name, run) in &mut started {
        run.sigterm().await;
        let out = run.log_text();
        assert!(
            out.contains("TRACE") || out.contains("DEBUG"),
            "{name} not at trace:\n{out}"
        );
        all.push_str(&out);
    }
    let key_body = |pem: &str| -> Vec<String> {
        pem.lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 20)
            .map(str::to_string)
            .collect()
    };
    let mut forbidden: Vec<String> = vec![
        PASSWORD.into(),
        KEY_PASSWORD.into(),
        wrong_plain.into(),
        AWS_SECRET_KEY.into(),
        AWS_SESSION.into(),
        "X-Amz-Signature".into(),
        // base64url of "https://kafka." — the start of every IAM token.
        "aHR0cHM6Ly9rYWZrYS4".into(),
    ];
    forbidden.extend(key_body(&enc_key));
    forbidden.extend(key_body(&plain_key));
    for f in &forbidden {
        if let Some(line) = all.lines().find(|l| l.contains(f.as_str())) {
            panic!(
                "secret bytes in the output, in this line:\n{}",
                line.replace(f.as_str(), "<THE SECRET>")
            );
        }
    }
    // The escaped JSON form of a password would be the same bytes; check a fragment too.
    assert!(!all.contains(&PASSWORD[..12]));
}
