//! Enrichment: an HTTP endpoint called once per record (with its template and HttpParameters) and
//! a Lambda function (moto) called once per batch; the response replaces the batch, `{}`/`[]`/`""`
//! skip the target (offsets still committed) and `[{}]` delivers one empty payload.

use std::sync::{Arc, Mutex};

use crate::support::moto::{aws_endpoint_config, lambda_function, run_sluice, Moto, ACCOUNT};
use crate::support::{
    committed, pipe, produce, wait_committed, wait_for, Broker, BrokerOptions, Rec, Receiver,
    Sluice, WAIT,
};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
struct Seen {
    path_and_query: String,
    header: Option<String>,
    body: Value,
}

/// An enrichment endpoint: answers by the request's `id`: `skip*` -> `{}`, `none*` -> empty body,
/// `empty*` -> `[{}]`, `two*` -> two items, `many*` -> 11 items, anything else one enriched item.
async fn enrichment_server() -> (String, Arc<Mutex<Vec<Seen>>>, tokio::task::JoinHandle<()>) {
    use axum::http::{HeaderMap, Uri};
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(
        move |uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                s.lock().unwrap().push(Seen {
                    path_and_query: uri
                        .path_and_query()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    header: headers
                        .get("x-customer")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string),
                    body: body.clone(),
                });
                let id = body["id"].as_str().unwrap_or_default().to_string();
                if id.starts_with("skip") {
                    "{}".to_string()
                } else if id.starts_with("none") {
                    String::new()
                } else if id.starts_with("empty") {
                    "[{}]".to_string()
                } else if id.starts_with("many") {
                    json!((0..11)
                        .map(|i| json!({"id": id, "part": i}))
                        .collect::<Vec<_>>())
                    .to_string()
                } else if id.starts_with("two") {
                    json!([{"id": id, "part": 1}, {"id": id, "part": 2}]).to_string()
                } else {
                    json!({"id": id, "enriched": true}).to_string()
                }
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen, handle)
}

#[tokio::test(flavor = "multi_thread")]
async fn http_enrichment_is_called_per_record_and_its_answers_replace_the_batch() {
    let broker = Broker::start("enrich-http", &BrokerOptions::memory());
    broker.create_topic("e", 1).await;
    let (url, seen, server) = enrichment_server().await;
    let target = Receiver::ok().await;
    let ids = ["a1", "skip1", "empty1", "two1", "none1", "b2"];
    let recs: Vec<Rec> = ids
        .iter()
        .map(|id| {
            Rec::kv(
                0,
                id,
                &json!({"id": id, "customer": format!("c-{id}")}).to_string(),
            )
        })
        .collect();
    produce(&broker.producer(), "e", &recs).await;
    let mut p = pipe("enrich-http", &broker, "e", &target.url);
    p["Enrichment"] = json!(format!("{url}/customers/*/lookup"));
    p["EnrichmentParameters"] = json!({
        "InputTemplate": "{\"id\": <$.value.id>}",
        "HttpParameters": {
            "PathParameterValues": ["$.value.customer"],
            "HeaderParameters": {"X-Customer": "$.value.customer"},
            "QueryStringParameters": {"src": "kafka"}
        }
    });
    p["TargetParameters"] = json!({"InputTemplate": "{\"got\": <$.id>, \"part\": <$.part>}"});
    let sluice = Sluice::run(&p);
    wait_committed(&sluice, &broker, "sluice-enrich-http", "e", 1, 6).await;

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 6, "one enrichment call per record");
    assert_eq!(seen[0].path_and_query, "/customers/c-a1/lookup?src=kafka");
    assert_eq!(seen[0].header.as_deref(), Some("c-a1"));
    assert_eq!(
        seen[0].body,
        json!({"id": "a1"}),
        "the enrichment template was applied"
    );

    wait_for("target deliveries", WAIT, || target.count() >= 5).await;
    let got = target.accepted();
    assert_eq!(
        got,
        vec![
            json!({"got": "a1", "part": ""}),
            json!({"got": "", "part": ""}),
            json!({"got": "two1", "part": 1}),
            json!({"got": "two1", "part": 2}),
            json!({"got": "b2", "part": ""}),
        ],
        "skip/none answers dropped their record, [{{}}] gave one empty item"
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn http_enrichment_answering_nothing_skips_the_target_and_commits() {
    let broker = Broker::start("enrich-skip", &BrokerOptions::memory());
    broker.create_topic("s", 1).await;
    let (url, seen, server) = enrichment_server().await;
    let target = Receiver::ok().await;
    let recs: Vec<Rec> = (0..4)
        .map(|i| Rec::kv(0, "k", &json!({"id": format!("skip{i}")}).to_string()))
        .collect();
    produce(&broker.producer(), "s", &recs).await;
    let mut p = pipe("enrich-skip", &broker, "s", &target.url);
    p["Enrichment"] = json!(url);
    p["EnrichmentParameters"] = json!({"InputTemplate": "{\"id\": <$.value.id>}"});
    let sluice = Sluice::run(&p);
    wait_committed(&sluice, &broker, "sluice-enrich-skip", "s", 1, 4).await;
    assert_eq!(seen.lock().unwrap().len(), 4);
    assert_eq!(target.count(), 0, "the target was skipped");
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_enrichment_gets_the_whole_batch_and_its_answer_replaces_it() {
    let moto = Moto::start().await;
    let arn = lambda_function(&moto, "enricher").await;

    let broker = Broker::start("enrich-lambda", &BrokerOptions::memory());
    broker.create_topic("l", 1).await;
    let target = Receiver::ok().await;
    let mut p = pipe("enrich-lambda", &broker, "l", &target.url);
    p["Enrichment"] = json!(arn);
    p["EnrichmentParameters"] = json!({"InputTemplate": "{\"n\": <$.value.n>}"});
    let sluice = run_sluice(&p, &aws_endpoint_config(&moto.url), &[]);
    sluice.wait_assigned().await;
    let group = "sluice-enrich-lambda";

    // 1. The function answers [] : nothing is delivered, the batch is done.
    moto.lambda_result("[]").await;
    produce(&broker.producer(), "l", &[Rec::kv(0, "k", r#"{"n":1}"#)]).await;
    wait_committed(&sluice, &broker, group, "l", 1, 1).await;
    assert_eq!(target.count(), 0);

    // 2. [{}] : the target is invoked with one empty payload.
    moto.lambda_result("[{}]").await;
    produce(&broker.producer(), "l", &[Rec::kv(0, "k", r#"{"n":2}"#)]).await;
    wait_committed(&sluice, &broker, group, "l", 1, 2).await;
    wait_for("the empty payload", WAIT, || target.count() == 1).await;
    assert_eq!(target.accepted(), vec![json!({})]);

    // 3. Nothing queued: moto echoes the batch, so the target gets the templated records, and the
    //    function saw them as one JSON array.
    produce(
        &broker.producer(),
        "l",
        &[Rec::kv(0, "k", r#"{"n":3}"#), Rec::kv(0, "k", r#"{"n":4}"#)],
    )
    .await;
    wait_committed(&sluice, &broker, group, "l", 1, 4).await;
    wait_for("echoed records", WAIT, || target.count() == 3).await;
    assert_eq!(&target.accepted()[1..], &[json!({"n": 3}), json!({"n": 4})]);
    let invokes = moto.calls_of("/invocations");
    let last = invokes.last().unwrap().json();
    assert!(last.is_array(), "{last}");
    assert!(last.as_array().unwrap().contains(&json!({"n": 4})));
}

/// An enrichment answering more items than the target takes per call (SQS: 10) fails the batch:
/// nothing is delivered, nothing committed, and the log says why.
#[tokio::test(flavor = "multi_thread")]
async fn more_items_than_the_target_limit_fail_the_batch() {
    let moto = Moto::start().await;
    moto.aws(&["sqs", "create-queue", "--queue-name", "few"]);
    let broker = Broker::start("enrich-many", &BrokerOptions::memory());
    broker.create_topic("m", 1).await;
    let (url, seen, server) = enrichment_server().await;
    produce(
        &broker.producer(),
        "m",
        &[Rec::kv(0, "k", r#"{"id":"many1"}"#)],
    )
    .await;
    let mut p = pipe(
        "enrich-many",
        &broker,
        "m",
        &format!("arn:aws:sqs:us-east-1:{ACCOUNT}:few"),
    );
    p["SourceParameters"]["SelfManagedKafkaParameters"]["BatchSize"] = json!(10);
    p["Enrichment"] = json!(url);
    p["EnrichmentParameters"] = json!({"InputTemplate": "{\"id\": <$.value.id>}"});
    p["SluiceParameters"] = json!({"MaximumRetryBackoffSeconds": 0.2});
    let sluice = run_sluice(&p, &aws_endpoint_config(&moto.url), &[]);
    wait_for("two attempts", WAIT, || seen.lock().unwrap().len() >= 2).await;
    wait_for("the reason in the log", WAIT, || {
        sluice
            .log_text()
            .contains("the enrichment returned 11 items; the target accepts at most 10")
    })
    .await;
    assert!(moto.calls_of("SendMessageBatch").is_empty());
    assert_eq!(committed(&broker, "sluice-enrich-many", "m", 1), vec![-1]);
    server.abort();
}
