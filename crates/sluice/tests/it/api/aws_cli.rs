//! The control-plane API driven by the real AWS CLI (`aws pipes ... --endpoint-url`) against a
//! `sluice serve` with a real broker and HTTP receiver: the whole lifecycle with records flowing
//! (on the embedded store, and on two instances sharing PostgreSQL with the CLI's calls
//! alternating between them), and a pipe that comes back after `sluice serve` was SIGKILLed.

use std::time::Duration;

use crate::support::cluster::Cluster;
use crate::support::serve::{Aws, Serve, ROLE};
use crate::support::{outlive_session, produce, wait_for, Broker, BrokerOptions, Rec, Receiver};
use serde_json::{json, Value};

const STATE_TIMEOUT: Duration = Duration::from_secs(90);

fn names(list: &Value) -> Vec<String> {
    list["Pipes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Name"].as_str().unwrap().to_string())
        .collect()
}

fn ids(rx: &Receiver) -> Vec<String> {
    rx.accepted()
        .iter()
        .map(|v| v["id"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_drives_the_whole_lifecycle() {
    let broker = Broker::start("api-cli", &BrokerOptions::memory());
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(data.path(), &[]);
    lifecycle(&broker, std::slice::from_ref(&serve.url)).await;
}

/// The same on two instances sharing PostgreSQL, every call to the other one than the last.
/// sqlite storage: the partitions move between the instances as they join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_drives_the_whole_lifecycle_on_two_instances() {
    let broker = Broker::start("api-cli-pg", &BrokerOptions::sqlite());
    let cluster = Cluster::start("api-cli", &["one", "two"], |_| String::new());
    lifecycle(&broker, &cluster.urls()).await;
}

async fn lifecycle(broker: &Broker, endpoints: &[String]) {
    broker.create_topic("orders", 2).await;
    let producer = broker.producer();
    let rx = Receiver::ok().await;
    let aws = Aws::alternating(endpoints);
    let source = format!("smk://{}", broker.bootstrap());

    // Create: self-managed Kafka source, HTTP target, a filter and an input template.
    let source_params = json!({
        "SelfManagedKafkaParameters": {"TopicName": "orders", "StartingPosition": "TRIM_HORIZON", "BatchSize": 10},
        "FilterCriteria": {"Filters": [{"Pattern": r#"{"value": {"kind": ["order"]}}"#}]}
    })
    .to_string();
    let target_params =
        json!({"InputTemplate": r#"{"id": <$.value.id>, "pipe": "<aws.pipes.pipe-name>"}"#})
            .to_string();
    let created = aws
        .pipes(&[
            "create-pipe",
            "--name",
            "orders",
            "--source",
            &source,
            "--target",
            &rx.url,
            "--role-arn",
            ROLE,
            "--source-parameters",
            &source_params,
            "--target-parameters",
            &target_params,
            "--tags",
            "team=payments",
        ])
        .json();
    assert_eq!(created["CurrentState"], "CREATING");
    assert_eq!(created["DesiredState"], "RUNNING");
    let arn = created["Arn"].as_str().unwrap().to_string();
    assert_eq!(arn, "arn:aws:pipes:us-east-1:000000000000:pipe/orders");
    let seen = aws.wait_state("orders", "RUNNING", STATE_TIMEOUT);
    assert_eq!(seen.last().unwrap(), "RUNNING", "{seen:?}");

    // Records flow through the filter and the template.
    produce(
        &producer,
        "orders",
        &[
            Rec::kv(0, "k1", r#"{"kind": "order", "id": "A1"}"#),
            Rec::kv(1, "k2", r#"{"kind": "refund", "id": "R1"}"#),
            Rec::kv(1, "k3", r#"{"kind": "order", "id": "A2"}"#),
        ],
    )
    .await;
    wait_for("A1 and A2", STATE_TIMEOUT, || rx.accepted().len() >= 2).await;
    let mut got = ids(&rx);
    got.sort();
    assert_eq!(got, vec!["A1", "A2"], "the refund is filtered out");
    assert_eq!(rx.accepted()[0]["pipe"], "orders");

    // Describe.
    let d = aws.describe("orders").unwrap();
    assert_eq!(d["Source"], source.as_str());
    assert_eq!(d["Target"], rx.url.as_str());
    assert_eq!(d["RoleArn"], ROLE);
    assert_eq!(d["Tags"], json!({"team": "payments"}));
    assert_eq!(
        d["SourceParameters"]["SelfManagedKafkaParameters"]["BatchSize"],
        10
    );
    assert!(d["CreationTime"].is_number() || d["CreationTime"].is_string());

    // List: prefixes, states, Limit + NextToken.
    for name in ["orders-parked", "misc"] {
        aws.pipes(&[
            "create-pipe",
            "--name",
            name,
            "--source",
            "smk://127.0.0.1:9",
            "--target",
            "http://127.0.0.1:9/misc",
            "--role-arn",
            ROLE,
            "--desired-state",
            "STOPPED",
            "--source-parameters",
            r#"{"SelfManagedKafkaParameters": {"TopicName": "t"}}"#,
        ])
        .json();
    }
    aws.wait_state("orders-parked", "STOPPED", STATE_TIMEOUT);
    aws.wait_state("misc", "STOPPED", STATE_TIMEOUT);
    let by_prefix = aws.pipes(&["list-pipes", "--name-prefix", "orders"]).json();
    assert_eq!(names(&by_prefix), vec!["orders", "orders-parked"]);
    let stopped = aws
        .pipes(&["list-pipes", "--desired-state", "STOPPED"])
        .json();
    assert_eq!(names(&stopped), vec!["misc", "orders-parked"]);
    let running = aws
        .pipes(&["list-pipes", "--current-state", "RUNNING"])
        .json();
    assert_eq!(names(&running), vec!["orders"]);
    let by_target = aws
        .pipes(&["list-pipes", "--target-prefix", "http://127.0.0.1:9/"])
        .json();
    assert_eq!(names(&by_target), vec!["misc", "orders-parked"]);
    let by_source = aws
        .pipes(&["list-pipes", "--source-prefix", &source])
        .json();
    assert_eq!(names(&by_source), vec!["orders"]);
    let page1 = aws
        .pipes(&["list-pipes", "--no-paginate", "--limit", "2"])
        .json();
    assert_eq!(names(&page1), vec!["misc", "orders"]);
    let token = page1["NextToken"].as_str().expect("NextToken").to_string();
    let page2 = aws
        .pipes(&[
            "list-pipes",
            "--no-paginate",
            "--limit",
            "2",
            "--next-token",
            &token,
        ])
        .json();
    assert_eq!(names(&page2), vec!["orders-parked"]);
    assert!(page2.get("NextToken").is_none());

    // Update the batch size: UPDATING -> RUNNING, the rest is kept, records still flow.
    let updated = aws
        .pipes(&[
            "update-pipe",
            "--name",
            "orders",
            "--role-arn",
            ROLE,
            "--source-parameters",
            r#"{"SelfManagedKafkaParameters": {"BatchSize": 5}}"#,
        ])
        .json();
    assert_eq!(updated["CurrentState"], "UPDATING");
    aws.wait_state("orders", "RUNNING", STATE_TIMEOUT);
    let d = aws.describe("orders").unwrap();
    let k = &d["SourceParameters"]["SelfManagedKafkaParameters"];
    assert_eq!(k["BatchSize"], 5);
    assert_eq!(k["TopicName"], "orders");
    assert_eq!(k["StartingPosition"], "TRIM_HORIZON");
    assert_eq!(
        d["SourceParameters"]["FilterCriteria"]["Filters"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    produce(
        &producer,
        "orders",
        &[Rec::kv(0, "k4", r#"{"kind": "order", "id": "A3"}"#)],
    )
    .await;
    wait_for("A3", STATE_TIMEOUT, || ids(&rx).contains(&"A3".to_string())).await;

    // The AWS CLI itself refuses an immutable field (it validates against AWS's model); the
    // engine's own refusal is covered by the boto3 test with a raw signed request.
    let r = aws.pipes(&[
        "update-pipe",
        "--name",
        "orders",
        "--role-arn",
        ROLE,
        "--source-parameters",
        r#"{"SelfManagedKafkaParameters": {"TopicName": "other"}}"#,
    ]);
    assert!(!r.ok && r.stderr.contains("TopicName"), "{r:?}");

    // Stop and start, with the states observed on the way.
    let stopping = aws.pipes(&["stop-pipe", "--name", "orders"]).json();
    assert_eq!(stopping["CurrentState"], "STOPPING");
    assert_eq!(stopping["DesiredState"], "STOPPED");
    aws.wait_state("orders", "STOPPED", STATE_TIMEOUT);
    let starting = aws.pipes(&["start-pipe", "--name", "orders"]).json();
    assert_eq!(starting["CurrentState"], "STARTING");
    assert_eq!(starting["DesiredState"], "RUNNING");
    aws.wait_state("orders", "RUNNING", STATE_TIMEOUT);

    // Tags.
    aws.pipes(&["tag-resource", "--resource-arn", &arn, "--tags", "env=test"]);
    let tags = aws
        .pipes(&["list-tags-for-resource", "--resource-arn", &arn])
        .json();
    assert_eq!(tags["tags"], json!({"team": "payments", "env": "test"}));
    aws.pipes(&[
        "untag-resource",
        "--resource-arn",
        &arn,
        "--tag-keys",
        "team",
    ]);
    let tags = aws
        .pipes(&["list-tags-for-resource", "--resource-arn", &arn])
        .json();
    assert_eq!(tags["tags"], json!({"env": "test"}));

    // Errors as the CLI shows them.
    let r = aws.pipes(&["describe-pipe", "--name", "nope"]);
    assert!(!r.ok && r.stderr.contains("NotFoundException"), "{r:?}");
    let mut wrong = Aws::alternating(endpoints);
    wrong.secret = "wrong-secret".into();
    let r = wrong.pipes(&["list-pipes"]);
    assert!(
        !r.ok && r.stderr.contains("InvalidSignatureException"),
        "{r:?}"
    );

    // Delete: DELETING (desired DELETED), then gone.
    let deleting = aws.pipes(&["delete-pipe", "--name", "orders"]).json();
    assert_eq!(deleting["CurrentState"], "DELETING");
    assert_eq!(deleting["DesiredState"], "DELETED");
    let deadline = std::time::Instant::now() + STATE_TIMEOUT;
    while aws.describe("orders").is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "orders was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let left = aws.pipes(&["list-pipes"]).json();
    assert_eq!(names(&left), vec!["misc", "orders-parked"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipe_created_with_the_cli_delivers_again_after_sigkill() {
    let broker = Broker::start("api-kill", &BrokerOptions::sqlite());
    broker.create_topic("events", 1).await;
    let producer = broker.producer();
    let rx = Receiver::ok().await;
    let data = tempfile::tempdir().unwrap();
    let mut serve = Serve::start(data.path(), &[]);
    let aws = Aws::new(&serve.url);
    let source = format!("smk://{}", broker.bootstrap());
    let params = r#"{"SelfManagedKafkaParameters": {"TopicName": "events", "StartingPosition": "TRIM_HORIZON", "BatchSize": 1}}"#;
    aws.pipes(&[
        "create-pipe",
        "--name",
        "survivor",
        "--source",
        &source,
        "--target",
        &rx.url,
        "--role-arn",
        ROLE,
        "--source-parameters",
        params,
        "--target-parameters",
        r#"{"InputTemplate": "{\"id\": <$.value.id>}"}"#,
    ])
    .json();
    aws.pipes(&[
        "create-pipe",
        "--name",
        "parked",
        "--source",
        &source,
        "--target",
        &rx.url,
        "--role-arn",
        ROLE,
        "--source-parameters",
        params,
        "--desired-state",
        "STOPPED",
    ])
    .json();
    aws.wait_state("survivor", "RUNNING", STATE_TIMEOUT);
    aws.wait_state("parked", "STOPPED", STATE_TIMEOUT);
    produce(
        &producer,
        "events",
        &[Rec::kv(0, "k", r#"{"id": "before"}"#)],
    )
    .await;
    wait_for("the record before the kill", STATE_TIMEOUT, || {
        ids(&rx).contains(&"before".to_string())
    })
    .await;
    serve.wait_settled().await;

    serve.sigkill();
    outlive_session().await;
    let serve = Serve::start(data.path(), &[]);
    let aws = Aws::new(&serve.url);
    let d = aws.describe("survivor").expect("survivor is still there");
    assert_eq!(d["DesiredState"], "RUNNING");
    assert_eq!(d["Target"], rx.url.as_str());
    aws.wait_state("survivor", "RUNNING", STATE_TIMEOUT);
    let parked = aws.describe("parked").expect("parked is still there");
    assert_eq!(
        (
            parked["DesiredState"].as_str(),
            parked["CurrentState"].as_str()
        ),
        (Some("STOPPED"), Some("STOPPED"))
    );
    produce(
        &producer,
        "events",
        &[Rec::kv(0, "k", r#"{"id": "after"}"#)],
    )
    .await;
    wait_for("the record after the restart", STATE_TIMEOUT, || {
        ids(&rx).contains(&"after".to_string())
    })
    .await;
}
