//! Findings of a security review, each pinned where it needs the running engine: a configured
//! `max_pipes` answers `ServiceQuotaExceededException` (HTTP 402) beyond it and frees a place on
//! delete; a deleted pipe that ran leaves no metric series behind; an HTTP target's endless answer
//! is read no further than the 6 MiB cap.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::stuck_pipes::metrics;
use crate::support::serve::{Serve, ROLE};
use crate::support::signed::Api;
use crate::support::{
    free_port, pipe, produce, wait_committed, wait_for, Broker, BrokerOptions, Rec, Receiver,
    Sluice, WAIT,
};

fn definition(bootstrap: &str, target: &str) -> Value {
    json!({
        "Source": format!("smk://{bootstrap}"),
        "Target": target,
        "RoleArn": ROLE,
        "SourceParameters": {"SelfManagedKafkaParameters": {
            "TopicName": "orders", "StartingPosition": "TRIM_HORIZON"}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_no_pipe_quota_and_deleted_pipes_kept_their_series() {
    let broker = Broker::start("limits", &BrokerOptions::memory());
    broker.create_topic("orders", 1).await;
    let rx = Receiver::ok().await;
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("sluice.toml");
    std::fs::write(&config, "max_pipes = 1\n").unwrap();
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let serve = Serve::start(
        &data.path().join("store"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--metrics-addr",
            &metrics_addr,
        ],
    );
    let api = Api::new(&serve.url);
    let def = definition(broker.bootstrap(), &rx.url);
    api.create("live", &def).await.ok();

    // The quota is reached: the next create is refused as AWS refuses it.
    let refused = api.create("second", &def).await;
    assert_eq!(refused.status, 402, "{refused:?}");
    assert_eq!(
        refused.error.as_deref(),
        Some("ServiceQuotaExceededException")
    );
    assert_eq!(refused.body["resourceId"], "second", "{refused:?}");
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("limit of 1 pipes"),
        "{refused:?}"
    );
    assert_eq!(api.describe("second").await.status, 404);

    // The pipe runs and delivers: it has series.
    produce(
        &broker.producer(),
        "orders",
        &[Rec::kv(0, "k", "{\"n\":1}")],
    )
    .await;
    wait_for("the record delivered", WAIT, || rx.count() >= 1).await;
    let m = metrics(metrics_port).await;
    for series in [
        r#"sluice_invocations_total{pipe="live"}"#,
        r#"sluice_event_count_total{pipe="live"} 1"#,
    ] {
        assert!(m.contains(series), "{series} missing from:\n{m}");
    }

    // Deleted: no series of it are left, and its place is free again.
    api.delete("live").await.ok();
    let deadline = Instant::now() + WAIT;
    while api.describe("live").await.status != 404 {
        assert!(Instant::now() < deadline, "live never deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let m = metrics(metrics_port).await;
    assert!(!m.contains(r#"pipe="live""#), "{m}");
    api.create("second", &def).await.ok();
}

/// What the endless server sent, and whether the client hung up.
#[derive(Default)]
struct Sent {
    bytes: AtomicUsize,
    closed: AtomicBool,
}

/// Set when the response body stream is dropped: the connection is gone.
struct OnDrop(Arc<Sent>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::SeqCst);
    }
}

/// An HTTP server whose every answer is 200 with a body that never ends (64 KiB chunks).
async fn endless_server() -> (String, Arc<Sent>) {
    let sent = Arc::new(Sent::default());
    let s = sent.clone();
    let app = axum::Router::new().fallback(move || {
        let guard = OnDrop(s.clone());
        async move {
            let chunk = bytes::Bytes::from(vec![b' '; 64 * 1024]);
            let stream = futures::stream::repeat(chunk).map(move |c| {
                guard.0.bytes.fetch_add(c.len(), Ordering::SeqCst);
                Ok::<_, Infallible>(c)
            });
            axum::body::Body::from_stream(stream)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/in", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_http_responses_were_read_whole_before_the_6_mib_check() {
    let broker = Broker::start("endless", &BrokerOptions::memory());
    broker.create_topic("huge", 1).await;
    let (url, sent) = endless_server().await;
    let mut p = pipe("huge", &broker, "huge", &url);
    p["SluiceParameters"] = json!({"MaximumRetryAttempts": 0});
    produce(&broker.producer(), "huge", &[Rec::kv(0, "k", "{}")]).await;
    let sluice = Sluice::run(&p);
    // Refused as too large (not timed out after reading for 5 s), given up, committed.
    wait_committed(&sluice, &broker, "sluice-huge", "huge", 1, 1).await;
    let log = sluice.log_text();
    assert!(log.contains("larger than 6291456 bytes"), "{log}");
    wait_for("sluice hanging up", WAIT, || {
        sent.closed.load(Ordering::SeqCst)
    })
    .await;
    // The cap plus what socket buffers hold; the old read went on until the timeout.
    let bytes = sent.bytes.load(Ordering::SeqCst);
    assert!(bytes < 32 * 1024 * 1024, "the server sent {bytes} bytes");
}

/// A pipe whose SCRAM secret is `secret` (a reference), from an unreachable broker.
fn with_secret(secret: &str) -> Value {
    let mut d = definition(&format!("127.0.0.1:{}", free_port()), "http://127.0.0.1:1/");
    d["SourceParameters"]["SelfManagedKafkaParameters"]["Credentials"] =
        json!({ "SaslScram512Auth": secret });
    d
}

/// The pipe's `StateReason` once it has one.
async fn state_reason(api: &Api, name: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let d = api.describe(name).await.ok();
        if let Some(r) = d["StateReason"].as_str() {
            return r.to_string();
        }
        assert!(Instant::now() < deadline, "{name} has no StateReason: {d}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_any_caller_could_have_host_files_read_as_secrets() {
    let data = tempfile::tempdir().unwrap();
    let allowed = data.path().join("allowed");
    std::fs::create_dir(&allowed).unwrap();
    let outside = data.path().join("outside");
    std::fs::write(
        &outside,
        "{\"username\":\"u\",\"password\":\"host-secret\"}",
    )
    .unwrap();
    let exists = format!("file://{}", outside.display());
    let missing = format!("file://{}", data.path().join("missing").display());
    let store = data.path().join("store");

    // Without an allowlist (the default) both are accepted and stored.
    let serve = Serve::start(&store, &[]);
    let api = Api::new(&serve.url);
    api.create("exists", &with_secret(&exists)).await.ok();
    api.create("missing", &with_secret(&missing)).await.ok();
    drop(serve);

    let config = data.path().join("sluice.toml");
    let toml = format!(
        "[secrets]\nallowed_file_dirs = [{:?}]\n",
        allowed.display().to_string()
    );
    std::fs::write(&config, toml).unwrap();
    let serve = Serve::start(&store, &["--config", config.to_str().unwrap()]);
    let api = Api::new(&serve.url);

    // A new reference outside the allowed directories: refused, naming the field.
    let refused = api.create("new", &with_secret(&exists)).await;
    assert_eq!(refused.status, 400, "{refused:?}");
    let field = &refused.body["fieldList"][0];
    assert_eq!(
        field["name"], "SourceParameters.SelfManagedKafkaParameters.Credentials.SaslScram512Auth",
        "{refused:?}"
    );
    assert!(
        field["message"]
            .as_str()
            .unwrap()
            .contains("secrets.allowed_file_dirs"),
        "{refused:?}"
    );

    // The stored pipes fail alike: the reasons differ only by the path, so they do not say
    // which file exists, and neither holds its content.
    let a = state_reason(&api, "exists").await;
    let b = state_reason(&api, "missing").await;
    assert!(a.contains("secrets.allowed_file_dirs"), "{a}");
    assert_eq!(a.replace(&exists, "REF"), b.replace(&missing, "REF"));
    assert!(!a.contains("host-secret"), "{a}");
}
