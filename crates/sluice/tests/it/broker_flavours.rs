//! Every broker flavour of `scripts/broker` starts, and records with keys and headers go through it
//! both ways with the rdkafka crate.

use std::time::Duration;

use crate::support::{produce, Broker, BrokerOptions, Rec};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};

async fn round_trip(broker: &Broker, security_note: &str) {
    let topic = "flavour";
    broker.create_topic(topic, 2).await;
    let mut recs = Vec::new();
    for i in 0..6 {
        recs.push(Rec {
            partition: i % 2,
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(format!("value-{i}").into_bytes()),
            headers: vec![
                ("h".into(), Some(vec![i as u8, 0xC3])),
                ("h".into(), Some(vec![])),
            ],
        });
    }
    produce(&broker.producer(), topic, &recs).await;

    let mut cfg = broker.client_config();
    cfg.set("group.id", "flavour-reader")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    let consumer: StreamConsumer = cfg.create().expect("consumer");
    consumer.subscribe(&[topic]).unwrap();
    let mut seen = Vec::new();
    while seen.len() < recs.len() {
        let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("{security_note}: timed out after {} records", seen.len()))
            .expect("consume");
        let headers: Vec<(String, Option<Vec<u8>>)> = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        seen.push((
            m.partition(),
            m.key().map(<[u8]>::to_vec),
            m.payload().map(<[u8]>::to_vec),
            headers,
        ));
    }
    seen.sort_by(|a, b| a.1.cmp(&b.1));
    for (i, (partition, key, value, headers)) in seen.into_iter().enumerate() {
        let want = &recs[i];
        assert_eq!(partition, want.partition, "{security_note}");
        assert_eq!(key, want.key, "{security_note}");
        assert_eq!(value, want.value, "{security_note}");
        assert_eq!(headers, want.headers, "{security_note}");
    }
}

#[tokio::test]
async fn memory_broker_round_trip() {
    let b = Broker::start("memory", &BrokerOptions::memory());
    assert_eq!(b.info["SECURITY_PROTOCOL"], "PLAINTEXT");
    round_trip(&b, "memory").await;
}

#[tokio::test]
async fn sqlite_broker_round_trip() {
    let b = Broker::start("sqlite", &BrokerOptions::sqlite());
    round_trip(&b, "sqlite").await;
}

#[tokio::test]
async fn scram_broker_round_trip_for_both_mechanisms_and_rejects_a_wrong_password() {
    let b = Broker::start(
        "scram",
        &BrokerOptions {
            sqlite: true,
            scram: vec![("alice".into(), "s3cret-pw".into())],
            ..Default::default()
        },
    );
    assert_eq!(b.info["SECURITY_PROTOCOL"], "SASL_PLAINTEXT");
    for mech in ["SCRAM-SHA-512", "SCRAM-SHA-256"] {
        let mut cfg = b.client_config();
        cfg.set("sasl.mechanism", mech)
            .set("sasl.username", "alice")
            .set("sasl.password", "s3cret-pw");
        let producer: rdkafka::producer::FutureProducer = cfg.create().unwrap();
        let topic = format!("scram-{}", mech.to_lowercase());
        let admin: rdkafka::admin::AdminClient<_> = cfg.create().unwrap();
        admin
            .create_topics(
                &[rdkafka::admin::NewTopic::new(
                    &topic,
                    1,
                    rdkafka::admin::TopicReplication::Fixed(1),
                )],
                &rdkafka::admin::AdminOptions::new(),
            )
            .await
            .unwrap();
        produce(&producer, &topic, &[Rec::kv(0, "k", "v")]).await;
        cfg.set("group.id", "g")
            .set("auto.offset.reset", "earliest");
        let consumer: StreamConsumer = cfg.create().unwrap();
        consumer.subscribe(&[&topic]).unwrap();
        let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("record within 30 s")
            .unwrap();
        assert_eq!(m.payload(), Some(&b"v"[..]), "{mech}");
    }

    // A wrong password never gets metadata.
    let mut cfg = b.client_config();
    cfg.set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", "alice")
        .set("sasl.password", "wrong");
    let consumer: rdkafka::consumer::BaseConsumer = cfg.create().unwrap();
    let res = consumer.fetch_metadata(None, Duration::from_secs(5));
    assert!(res.is_err(), "metadata with a wrong password: {res:?}");
}

#[tokio::test]
async fn tls_broker_round_trip() {
    let b = Broker::start(
        "tls",
        &BrokerOptions {
            tls: true,
            ..Default::default()
        },
    );
    assert_eq!(b.info["SECURITY_PROTOCOL"], "SSL");
    assert!(b.info.contains_key("CA_FILE"));
    round_trip(&b, "tls").await;
}

#[tokio::test]
async fn mtls_broker_round_trip_and_rejects_a_client_without_certificate() {
    let b = Broker::start(
        "mtls",
        &BrokerOptions {
            mtls: true,
            ..Default::default()
        },
    );
    round_trip(&b, "mtls").await;

    let mut cfg = rdkafka::config::ClientConfig::new();
    cfg.set("bootstrap.servers", b.bootstrap())
        .set("security.protocol", "SSL")
        .set("ssl.ca.location", &b.info["CA_FILE"])
        .set("log_level", "0");
    let consumer: rdkafka::consumer::BaseConsumer = cfg.create().unwrap();
    let res = consumer.fetch_metadata(None, Duration::from_secs(5));
    assert!(
        res.is_err(),
        "metadata without a client certificate: {res:?}"
    );
}
