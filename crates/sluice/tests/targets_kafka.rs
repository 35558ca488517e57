//! The Kafka target against the real broker: records are mirrored with their keys, headers and
//! values, in partition order; with a template and `KafkaTargetParameters` the value, key and
//! headers come from the record.

mod common;

use std::time::Duration;

use common::{committed, pipe, produce, Broker, BrokerOptions, Rec, Sluice};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);

/// A consumed record: key, value and headers, as text.
type Consumed = (String, String, Vec<(String, String)>);

/// (key, value, headers) of every record of `topic`, in partition order, partition by partition.
fn read_all(broker: &Broker, topic: &str, n: usize) -> Vec<Consumed> {
    let mut cfg = broker.client_config();
    cfg.set("group.id", format!("reader-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    let c: BaseConsumer = cfg.create().unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut by_partition: std::collections::BTreeMap<i32, Vec<_>> = Default::default();
    let deadline = std::time::Instant::now() + WAIT;
    let mut count = 0;
    while count < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {count} of {n} records arrived"
        );
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let text =
                |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| (x.key.to_string(), text(x.value)))
                        .collect()
                })
                .unwrap_or_default();
            by_partition.entry(m.partition()).or_default().push((
                text(m.key()),
                text(m.payload()),
                headers,
            ));
            count += 1;
        }
    }
    by_partition.into_values().flatten().collect()
}

async fn wait_committed(
    sluice: &Sluice,
    broker: &Broker,
    group: &str,
    topic: &str,
    parts: i32,
    n: i64,
) {
    let deadline = std::time::Instant::now() + WAIT;
    // Partitions without records have no committed offset (-1).
    while committed(broker, group, topic, parts)
        .iter()
        .map(|o| o.max(&0))
        .sum::<i64>()
        != n
    {
        assert!(
            std::time::Instant::now() < deadline,
            "not committed:\n{}",
            sluice.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
