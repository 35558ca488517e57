//! Pipes that cannot start yet say why, through the API and in metrics, while they keep trying:
//! brokers that do not answer and a topic not created yet put the reason in `StateReason` (the
//! pipe stays CREATING), a WARN line names the unreachable servers, `pipe running` is logged only
//! for a pipe that joined its group, `sluice_pipe_state` / `sluice_source_connected` /
//! `sluice_source_joined` tell the three apart, and a deleted pipe's series are gone. One
//! `sluice serve` (real AWS CLI) and one real broker for all of it.

use std::time::Duration;

use crate::support::serve::{Aws, Serve, ROLE};
use crate::support::{free_port, poll_blocking, Broker, BrokerOptions, Receiver, WAIT};
use serde_json::json;

/// A `sluice serve` whose log is printed when the test fails.
struct Served(Serve);

impl Drop for Served {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("sluice serve log:\n{}", self.0.log_text());
        }
    }
}

fn create(aws: &Aws, name: &str, bootstrap: &str, topic: &str, target: &str) {
    let params = json!({"SelfManagedKafkaParameters": {"TopicName": topic}}).to_string();
    let source = format!("smk://{bootstrap}");
    let created = aws
        .pipes(&[
            "create-pipe",
            "--name",
            name,
            "--source",
            &source,
            "--target",
            target,
            "--role-arn",
            ROLE,
            "--source-parameters",
            &params,
        ])
        .json();
    assert_eq!(created["CurrentState"], "CREATING");
}

/// Poll until the pipe's `StateReason` holds `needle`; the pipe's description then.
fn wait_reason(aws: &Aws, name: &str, needle: &str) -> serde_json::Value {
    poll_blocking(WAIT, Duration::from_millis(300), || {
        let d = aws.describe(name).expect("the pipe exists");
        match d["StateReason"].as_str() {
            Some(r) if r.contains(needle) => Ok(d),
            _ => Err(format!("{name}: no StateReason with {needle:?}: {d}")),
        }
    })
}

/// The metrics of `sluice serve`, without the `instance` label every series carries.
pub(crate) async fn metrics(port: u16) -> String {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    without_instance(&text)
}

fn without_instance(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("instance=\"") {
        let (before, after) = rest.split_at(i);
        let end = after[10..].find('"').map_or(after.len(), |j| 10 + j + 1);
        let after = &after[end..];
        match (before.strip_suffix(','), after.strip_prefix(',')) {
            (Some(b), _) => {
                out.push_str(b);
                rest = after;
            }
            (None, Some(a)) => {
                out.push_str(before);
                rest = a;
            }
            (None, None) => {
                out.push_str(before);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace("{}", "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipes_that_cannot_start_say_why_and_their_metrics_tell_them_apart() {
    let broker = Broker::start("stuck", &BrokerOptions::memory());
    broker.create_topic("orders", 1).await;
    let rx = Receiver::ok().await;
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("sluice.toml");
    std::fs::write(&config, "missing_topic_grace_seconds = 120\n").unwrap();
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let serve = Served(Serve::start(
        &data.path().join("store"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--metrics-addr",
            &metrics_addr,
        ],
    ));
    let aws = Aws::new(&serve.0.url);
    let down = format!("127.0.0.1:{}", free_port());
    create(&aws, "down", &down, "orders", &rx.url);
    create(&aws, "early", broker.bootstrap(), "later", &rx.url);
    create(&aws, "live", broker.bootstrap(), "orders", &rx.url);

    aws.wait_state("live", "RUNNING", WAIT);
    let d = wait_reason(
        &aws,
        "down",
        &format!("cannot reach the Kafka cluster at {down}: no broker answers; still trying"),
    );
    assert_eq!(d["CurrentState"], "CREATING", "{d}");
    let d = wait_reason(
        &aws,
        "early",
        "the source topic later does not exist; waiting up to 120 s for it to be created",
    );
    assert_eq!(d["CurrentState"], "CREATING", "{d}");

    let m = metrics(metrics_port).await;
    for series in [
        r#"sluice_pipe_state{pipe="down",state="CREATING"} 1"#,
        r#"sluice_source_connected{pipe="down"} 0"#,
        r#"sluice_source_joined{pipe="down"} 0"#,
        r#"sluice_pipe_state{pipe="early",state="CREATING"} 1"#,
        r#"sluice_pipe_state{pipe="live",state="RUNNING"} 1"#,
        r#"sluice_source_connected{pipe="live"} 1"#,
        r#"sluice_source_joined{pipe="live"} 1"#,
    ] {
        assert!(m.contains(series), "{series} missing from:\n{m}");
    }
    let log = serve.0.log_text();
    assert!(
        log.contains(&format!("cannot reach {down} for "))
            && log.contains("check BootstrapServers / the listener"),
        "{log}"
    );
    assert!(log.contains("pipe running pipe=live"), "{log}");
    assert!(!log.contains("pipe running pipe=down"), "{log}");
    assert!(!log.contains("pipe running pipe=early"), "{log}");

    // The topic appears within the grace period: the pipe runs and the reason is gone.
    broker.create_topic("later", 1).await;
    aws.wait_state("early", "RUNNING", WAIT);
    let d = aws.describe("early").unwrap();
    assert!(d.get("StateReason").is_none(), "{d}");

    // A deleted pipe leaves no series behind.
    assert!(aws.pipes(&["delete-pipe", "--name", "down"]).ok);
    poll_blocking(WAIT, Duration::from_millis(200), || {
        aws.describe("down")
            .map_or(Ok(()), |d| Err(format!("down not deleted: {d}")))
    });
    let m = metrics(metrics_port).await;
    assert!(!m.contains(r#"pipe="down""#), "{m}");
    assert!(
        m.contains(r#"sluice_pipe_state{pipe="early",state="RUNNING"} 1"#),
        "{m}"
    );
}
