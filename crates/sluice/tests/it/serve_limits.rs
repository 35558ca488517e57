//! Limits of `sluice serve` found in a security review: a configured `max_pipes` answers
//! `ServiceQuotaExceededException` (HTTP 402) beyond it and frees a place on delete, and a deleted
//! pipe that ran leaves no metric series behind. One `sluice serve` and one broker.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::stuck_pipes::metrics;
use crate::support::serve::{Serve, ROLE};
use crate::support::signed::Api;
use crate::support::{free_port, produce, wait_for, Broker, BrokerOptions, Rec, Receiver, WAIT};

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
