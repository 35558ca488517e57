//! Execution logs (`LogConfiguration`) and traces, end to end.
//!
//! Logs: three pipes (ERROR, INFO, TRACE) read the same five records from a SCRAM broker, one
//! batch each: one that succeeds, one the filter drops, one whose target fails once, one whose
//! enrichment fails once, and a 300 KB one. Each writes to CloudWatch Logs, Firehose and S3 in
//! moto and to a file, and the exact `messageType` sequence is checked in all four, as is
//! execution data, truncation, and that neither the SCRAM password nor the target's API key is
//! anywhere. Then a destination that is down while 10,000 records flow.
//!
//! Traces: a local OTLP/HTTP receiver decodes what the exporter sends with `opentelemetry-proto`'s
//! types.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{json, Value};

use crate::support::moto::{self, Moto, ACCOUNT};
use crate::support::{
    create_topics, free_port, produce, wait_committed, wait_for, Broker, BrokerOptions, Launch,
    Rec, Receiver, Reply, Sluice, WAIT,
};

const USER: &str = "logger";
const PASSWORD: &str = "Scr4m-l0g-pa55word-quux";
const API_KEY: &str = "api-KEY-for-the-log-test-5150";
const GROUP: &str = "pipe-logs";
const FIREHOSE: &str = "pipe-logs-fh";
const BUCKET: &str = "pipe-logs-bucket";
/// 256 KiB less CloudWatch's 26 bytes of event overhead.
const MAX_RECORD: usize = 256 * 1024 - 26;

// ------------------------------------------------------------------------------------------------
// The steps, restated from `observability.md`

const ERROR_STEPS: &[&str] = &[
    "ExecutionFailed",
    "EnrichmentInvocationFailed",
    "EnrichmentStageFailed",
    "TargetInvocationFailed",
    "TargetStageFailed",
];
const INFO_STEPS: &[&str] = &[
    "ExecutionStarted",
    "ExecutionSucceeded",
    "EnrichmentStageEntered",
    "EnrichmentStageSucceeded",
    "TargetStageEntered",
    "TargetStageSucceeded",
];

/// Every step of the five records at TRACE, in order.
fn trace_sequence() -> Vec<&'static str> {
    let enrich_ok = [
        "EnrichmentStageEntered",
        "EnrichmentInvocationStarted",
        "EnrichmentInvocationSucceeded",
        "EnrichmentStageSucceeded",
    ];
    let target = |ok: bool| {
        let (inv, stage, end) = if ok {
            (
                "TargetInvocationSucceeded",
                "TargetStageSucceeded",
                "ExecutionSucceeded",
            )
        } else {
            (
                "TargetInvocationFailed",
                "TargetStageFailed",
                "ExecutionFailed",
            )
        };
        [
            "TargetStageEntered",
            "TargetInvocationStarted",
            inv,
            stage,
            end,
        ]
    };
    let success: Vec<&str> = std::iter::once("ExecutionStarted")
        .chain(enrich_ok)
        .chain(target(true))
        .collect();
    let target_fails: Vec<&str> = std::iter::once("ExecutionStarted")
        .chain(enrich_ok)
        .chain(target(false))
        .collect();
    let enrichment_fails = [
        "ExecutionStarted",
        "EnrichmentStageEntered",
        "EnrichmentInvocationStarted",
        "EnrichmentInvocationFailed",
        "EnrichmentStageFailed",
        "ExecutionFailed",
    ];
    // ok; filtered (no execution); target fails then succeeds; enrichment fails then succeeds;
    // the large record.
    [
        &success[..],
        &target_fails,
        &success,
        &enrichment_fails,
        &success,
        &success,
    ]
    .concat()
}

fn sequence_at(level: &str) -> Vec<&'static str> {
    trace_sequence()
        .into_iter()
        .filter(|s| match level {
            "ERROR" => ERROR_STEPS.contains(s),
            "INFO" => ERROR_STEPS.contains(s) || INFO_STEPS.contains(s),
            _ => true,
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// What the destinations hold

/// Records a pipe wrote to CloudWatch Logs (its stream of today), oldest first.
fn cloudwatch_records(moto: &Moto, pipe: &str) -> Vec<Value> {
    let today = time::OffsetDateTime::now_utc().date();
    let stream = format!(
        "{pipe}/{:04}-{:02}-{:02}",
        today.year(),
        u8::from(today.month()),
        today.day()
    );
    moto.calls_of("PutLogEvents")
        .iter()
        .map(|c| c.json())
        .filter(|b| b["logGroupName"] == GROUP && b["logStreamName"] == stream.as_str())
        .flat_map(|b| b["logEvents"].as_array().cloned().unwrap_or_default())
        .map(|e| serde_json::from_str(e["message"].as_str().unwrap()).unwrap())
        .collect()
}

/// Records a pipe wrote to Firehose, in call order.
fn firehose_records(moto: &Moto, pipe: &str) -> Vec<Value> {
    let b64 = base64::engine::general_purpose::STANDARD;
    moto.calls_of("PutRecordBatch")
        .iter()
        .flat_map(|c| c.json()["Records"].as_array().cloned().unwrap_or_default())
        .map(|r| b64.decode(r["Data"].as_str().unwrap()).unwrap())
        .map(|d| serde_json::from_slice::<Value>(&d).unwrap())
        .filter(|r| {
            r["resourceArn"]
                .as_str()
                .unwrap()
                .ends_with(&format!("pipe/{pipe}"))
        })
        .collect()
}

/// The objects a pipe wrote to S3 (their text), oldest first.
fn s3_objects(moto: &Moto, pipe: &str, dir: &std::path::Path) -> Vec<String> {
    let list = moto.aws(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        BUCKET,
        "--prefix",
        &format!("logs/{pipe}/"),
    ]);
    let mut objects: Vec<String> = list["Contents"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            let key = o["Key"].as_str().unwrap();
            let file = dir.join(key.replace('/', "_"));
            // Objects are written once: each is fetched once.
            if let Ok(text) = std::fs::read_to_string(&file) {
                return text;
            }
            moto.aws(&[
                "s3api",
                "get-object",
                "--bucket",
                BUCKET,
                "--key",
                key,
                file.to_str().unwrap(),
            ]);
            std::fs::read_to_string(file).unwrap()
        })
        .collect();
    // Each object is one write; its first record's time orders them.
    objects.sort_by_key(|o| first_time(o));
    objects
}

fn first_time(object: &str) -> String {
    let line = object.lines().find(|l| !l.starts_with('#')).unwrap_or("");
    match serde_json::from_str::<Value>(line) {
        Ok(v) => format!("{:020}", v["timestamp"].as_i64().unwrap_or(0)),
        // plain: `<RFC 3339> ...`; w3c: `<date> <time> ...`.
        Err(_) => line.split(' ').take(2).collect::<Vec<_>>().join(" "),
    }
}

/// The `messageType`s of S3 objects in `format`.
fn s3_steps(objects: &[String], format: &str) -> Vec<String> {
    let column = match format {
        "plain" => 2,
        "w3c" => 3,
        _ => usize::MAX,
    };
    objects
        .iter()
        .flat_map(|o| o.lines())
        .filter(|l| !l.starts_with('#'))
        .map(|l| match column {
            usize::MAX => serde_json::from_str::<Value>(l).unwrap()["messageType"]
                .as_str()
                .unwrap()
                .to_string(),
            c => l.split(' ').nth(c).unwrap().to_string(),
        })
        .collect()
}

fn file_records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn steps_of(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["messageType"].as_str().unwrap().to_string())
        .collect()
}

// ------------------------------------------------------------------------------------------------
// The pipes

/// A receiver that answers 500 to the first request holding the record of kind `fail_once`
/// (its value is base64 in the event), and otherwise 200 with the request's body (an enrichment
/// that hands the record on).
async fn echo_failing_once(fail_once: &'static str) -> Receiver {
    let b64 = base64::engine::general_purpose::STANDARD;
    let marker = b64.encode(json!({ "kind": fail_once }).to_string());
    let failed = Arc::new(Mutex::new(false));
    Receiver::start(Arc::new(move |_, body: &[u8]| {
        let text = String::from_utf8_lossy(body).into_owned();
        let mut f = failed.lock().unwrap();
        if text.contains(&marker) && !*f {
            *f = true;
            return Reply::status(500);
        }
        Reply::ok().with_body(&text)
    }))
    .await
}

struct LoggedPipe {
    name: String,
    level: &'static str,
    s3_format: &'static str,
    file: std::path::PathBuf,
    target: Receiver,
    _enrichment: Receiver,
    sluice: Sluice,
}

async fn start_logged_pipe(
    level: &'static str,
    s3_format: &'static str,
    broker: &Broker,
    moto: &Moto,
    dir: &std::path::Path,
) -> LoggedPipe {
    let name = format!("logs-{}", level.to_lowercase());
    let target = echo_failing_once("target-flaky").await;
    let enrichment = echo_failing_once("enrich-fail").await;
    let file = dir.join(format!("{name}.jsonl"));
    let destination = format!("arn:aws:events:us-east-1:{ACCOUNT}:api-destination/{name}/1");
    let pattern = json!({"value": {"kind": ["ok", "target-flaky", "enrich-fail", "big"]}});
    let mut log = json!({
        "Level": level,
        "CloudwatchLogsLogDestination": {
            "LogGroupArn": format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{GROUP}")},
        "FirehoseLogDestination": {
            "DeliveryStreamArn": format!("arn:aws:firehose:us-east-1:{ACCOUNT}:deliverystream/{FIREHOSE}")},
        "S3LogDestination": {"BucketName": BUCKET, "BucketOwner": ACCOUNT,
            "OutputFormat": s3_format, "Prefix": "logs"},
    });
    if level == "TRACE" {
        log["IncludeExecutionData"] = json!(["ALL"]);
    }
    let pipe = json!({
        "Name": name,
        "Source": format!("smk://{}", broker.bootstrap()),
        "Enrichment": enrichment.url,
        "Target": destination,
        "SourceParameters": {
            "FilterCriteria": {"Filters": [{"Pattern": pattern.to_string()}]},
            "SelfManagedKafkaParameters": {
                "TopicName": "logged", "StartingPosition": "TRIM_HORIZON", "BatchSize": 1,
                "Credentials": {"SaslScram512Auth": "env:LOG_TEST_SCRAM"}}},
        "LogConfiguration": log,
        "SluiceParameters": {"KafkaTls": false, "MaximumRetryBackoffSeconds": 0.2,
            "LogDestination": format!("file://{}", file.display())},
    });
    let config = format!(
        "{}\n[[targets.api_destinations]]\narn = \"{destination}\"\nendpoint = \"{}\"\nconnection = \"keyed\"\n\n[[targets.connections]]\nname = \"keyed\"\nauth = {{ type = \"API_KEY\", api_key_name = \"x-api-key\", api_key_value = \"env:LOG_TEST_API_KEY\" }}\n",
        moto::aws_endpoint_config(&moto.url),
        target.url
    );
    let scram = json!({"username": USER, "password": PASSWORD}).to_string();
    let mut env = moto::aws_env();
    env.push(("LOG_TEST_SCRAM", scram));
    env.push(("LOG_TEST_API_KEY", API_KEY.into()));
    let launch = Launch {
        config: Some(&config),
        env: &env,
        log: "info,sluice=debug",
        secrets: &[PASSWORD, API_KEY],
        ..Launch::default()
    };
    let sluice = Sluice::spawn(&pipe, &launch);
    LoggedPipe {
        name,
        level,
        s3_format,
        file,
        target,
        _enrichment: enrichment,
        sluice,
    }
}

fn aws_destinations(moto: &Moto) {
    moto.aws(&["logs", "create-log-group", "--log-group-name", GROUP]);
    moto::firehose_to_bucket(moto, FIREHOSE, "pipe-logs-fh-bucket");
    moto.aws(&["s3api", "create-bucket", "--bucket", BUCKET]);
}

/// The five records: ok, dropped by the filter, the target fails once, the enrichment fails
/// once, 300 KB.
fn five_records() -> Vec<Rec> {
    let big = json!({"kind": "big", "pad": "x".repeat(300 * 1024)}).to_string();
    [
        json!({"kind": "ok", "n": 1}).to_string(),
        json!({"kind": "drop"}).to_string(),
        json!({"kind": "target-flaky"}).to_string(),
        json!({"kind": "enrich-fail"}).to_string(),
        big,
    ]
    .iter()
    .enumerate()
    .map(|(i, v)| Rec::kv(0, &format!("k{i}"), v))
    .collect()
}

// ------------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_level_logs_the_steps_of_the_spec_to_every_destination() {
    let broker = Broker::start(
        "exec-logs",
        &BrokerOptions {
            // Tansu keeps SCRAM credentials only in sqlite storage.
            sqlite: true,
            scram: vec![(USER.into(), PASSWORD.into())],
            ..Default::default()
        },
    );
    let admin = broker.client_config_as(USER, PASSWORD);
    create_topics(&admin, &["logged"], 1).await;
    let moto = Moto::start().await;
    aws_destinations(&moto);
    let dir = tempfile::tempdir().unwrap();
    let mut pipes = Vec::new();
    for (level, format) in [("ERROR", "w3c"), ("INFO", "plain"), ("TRACE", "json")] {
        pipes.push(start_logged_pipe(level, format, &broker, &moto, dir.path()).await);
    }
    let mut pc = admin;
    pc.set("message.timeout.ms", "30000");
    produce(&pc.create().unwrap(), "logged", &five_records()).await;

    for p in &pipes {
        wait_for("four records at the target", WAIT, || {
            p.target.accepted().len() == 4
        })
        .await;
        assert!(p
            .target
            .arrivals()
            .iter()
            .all(|a| a.headers.get("x-api-key").map(String::as_str) == Some(API_KEY)));
        let want = sequence_at(p.level);
        let level = p.level;
        // Reading the destinations takes AWS CLI calls (seconds each on a loaded machine): the
        // wait is long, and its failure says which destination fell short.
        let deadline = std::time::Instant::now() + 2 * WAIT;
        loop {
            let counts = [
                cloudwatch_records(&moto, &p.name).len(),
                firehose_records(&moto, &p.name).len(),
                file_records(&p.file).len(),
                s3_steps(&s3_objects(&moto, &p.name, dir.path()), p.s3_format).len(),
            ];
            if counts.iter().all(|n| *n >= want.len()) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{level}: records in CloudWatch, Firehose, the file and S3: {counts:?}, want {}",
                want.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        assert_eq!(
            steps_of(&cloudwatch_records(&moto, &p.name)),
            want,
            "{level} cloudwatch"
        );
        assert_eq!(
            steps_of(&firehose_records(&moto, &p.name)),
            want,
            "{level} firehose"
        );
        assert_eq!(steps_of(&file_records(&p.file)), want, "{level} file");
        let objects = s3_objects(&moto, &p.name, dir.path());
        assert_eq!(s3_steps(&objects, p.s3_format), want, "{level} s3");
        if p.s3_format == "w3c" {
            assert!(objects[0].starts_with("#Version: 1.0\n#Fields: date time"));
        }
        let records = file_records(&p.file);
        assert!(records.iter().all(|r| r["logLevel"] == level
            && r["resourceArn"]
                == format!("arn:aws:pipes:us-east-1:000000000000:pipe/{}", p.name)));
        assert_eq!(
            records.iter().any(|r| r.get("payload").is_some()),
            level == "TRACE",
            "execution data only with IncludeExecutionData"
        );
        let failed = records
            .iter()
            .find(|r| r["messageType"] == "TargetInvocationFailed")
            .unwrap();
        assert_eq!(failed["error"]["httpStatusCode"], 500);
        assert_no_secret(&moto, &p.name, &p.file);
        p.sluice.log_text();
    }
    let trace = &pipes[2];
    check_execution_data(&file_records(&trace.file));
    check_execution_data(&cloudwatch_records(&moto, &trace.name));
}

/// The TRACE pipe's data: the payload of the first record, and the 300 KB record's fields cut to
/// the record limit.
fn check_execution_data(records: &[Value]) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let ok_value = b64.encode(json!({"kind": "ok", "n": 1}).to_string());
    assert!(records[0]["payload"].as_str().unwrap().contains(&ok_value));
    let request = records
        .iter()
        .find(|r| r["messageType"] == "TargetInvocationStarted")
        .unwrap();
    assert!(request["awsRequest"].as_str().unwrap().contains(&ok_value));
    let last_start = records
        .iter()
        .rposition(|r| r["messageType"] == "ExecutionStarted")
        .unwrap();
    let big = &records[last_start..];
    let cut: Vec<(String, Value)> = big
        .iter()
        .filter(|r| r.get("truncatedFields").is_some())
        .map(|r| {
            (
                r["messageType"].as_str().unwrap().to_string(),
                r["truncatedFields"].clone(),
            )
        })
        .collect();
    assert_eq!(
        cut,
        [
            ("ExecutionStarted".to_string(), json!(["payload"])),
            (
                "EnrichmentInvocationStarted".to_string(),
                json!(["awsRequest"])
            ),
            (
                "EnrichmentInvocationSucceeded".to_string(),
                json!(["awsResponse"])
            ),
            ("TargetInvocationStarted".to_string(), json!(["awsRequest"])),
        ]
    );
    for r in big {
        let len = r.to_string().len();
        assert!(len <= MAX_RECORD, "{} is {len} bytes", r["messageType"]);
    }
    let started = big[0].to_string().len();
    assert!(
        started > MAX_RECORD - 1024,
        "cut to the limit, not far below: {started}"
    );
}

/// Neither the SCRAM password nor the API key is in anything a destination received.
fn assert_no_secret(moto: &Moto, pipe: &str, file: &std::path::Path) {
    let mut all: Vec<String> = moto
        .calls()
        .iter()
        .map(|c| String::from_utf8_lossy(&c.body).into_owned())
        .collect();
    // Firehose carries its records in base64.
    all.extend(firehose_records(moto, pipe).iter().map(Value::to_string));
    all.push(std::fs::read_to_string(file).unwrap_or_default());
    for text in &all {
        assert!(
            !text.contains(PASSWORD) && !text.contains(API_KEY),
            "a secret reached a log destination"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_destination_that_is_down_delays_no_record_and_counts_what_it_drops() {
    let broker = Broker::start("exec-logs-down", &BrokerOptions::memory());
    broker.create_topic("busy", 4).await;
    let moto = Moto::start().await;
    moto.aws(&["logs", "create-log-group", "--log-group-name", GROUP]);
    let config = moto::aws_endpoint_config(&moto.url);
    drop(moto);
    let target = Receiver::ok().await;
    let value = json!({"pad": "y".repeat(1000)}).to_string();
    let recs: Vec<Rec> = (0..10_000)
        .map(|i| Rec::kv(i % 4, &format!("k{i}"), &value))
        .collect();
    produce(&broker.producer(), "busy", &recs).await;
    let mut pipe = crate::support::pipe("logs-down", &broker, "busy", &target.url);
    pipe["SluiceParameters"] = json!({"HttpDelivery": "BATCH"});
    pipe["LogConfiguration"] = json!({
        "Level": "TRACE", "IncludeExecutionData": ["ALL"],
        "CloudwatchLogsLogDestination": {
            "LogGroupArn": format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{GROUP}")}});
    let addr = format!("127.0.0.1:{}", free_port());
    let env = moto::aws_env();
    let sluice = Sluice::spawn(
        &pipe,
        &Launch {
            args: &["--metrics-addr", &addr],
            config: Some(&config),
            env: &env,
            ..Launch::default()
        },
    );
    wait_committed(&sluice, &broker, "sluice-logs-down", "busy", 4, 10_000).await;
    let delivered: usize = target
        .accepted()
        .iter()
        .map(|b| b.as_array().unwrap().len())
        .sum();
    assert_eq!(delivered, 10_000);
    let dropped = metric(
        &addr,
        "sluice_execution_log_dropped_total{pipe=\"logs-down\",destination=\"cloudwatch\"}",
    )
    .await;
    assert!(
        dropped > 0.0,
        "nothing counted as dropped:\n{}",
        sluice.log_text()
    );
    // The shipper's first write may come after the last commit: its failure is awaited.
    wait_for("the failed write logged", WAIT, || {
        sluice
            .log_text()
            .contains("execution log records could not be written")
    })
    .await;
}

async fn metric(addr: &str, series: &str) -> f64 {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

// ------------------------------------------------------------------------------------------------
// Traces

mod otlp {
    //! A loopback OTLP/HTTP receiver keeping every span it is sent.

    use std::sync::{Arc, Mutex};

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use opentelemetry_proto::tonic::trace::v1::Span;
    use prost::Message;

    /// A span and its resource's `service.name`.
    #[derive(Debug, Clone)]
    pub struct Received {
        pub service: String,
        pub span: Span,
    }

    impl Received {
        pub fn attr(&self, key: &str) -> Option<String> {
            self.span
                .attributes
                .iter()
                .find(|a| a.key == key)
                .and_then(|a| a.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    Any::StringValue(s) => s.clone(),
                    Any::IntValue(i) => i.to_string(),
                    other => format!("{other:?}"),
                })
        }
    }

    pub struct Collector {
        pub url: String,
        pub spans: Arc<Mutex<Vec<Received>>>,
        shutdown: tokio_util::sync::CancellationToken,
    }

    impl Collector {
        pub async fn start() -> Collector {
            let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
            let s = spans.clone();
            let app = axum::Router::new().route(
                "/v1/traces",
                axum::routing::post(move |body: axum::body::Bytes| {
                    let s = s.clone();
                    async move {
                        let req = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                        for rs in req.resource_spans {
                            let service = rs
                                .resource
                                .iter()
                                .flat_map(|r| r.attributes.iter())
                                .find(|a| a.key == "service.name")
                                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                                    Any::StringValue(v) => Some(v.clone()),
                                    _ => None,
                                })
                                .unwrap_or_default();
                            for ss in rs.scope_spans {
                                for span in ss.spans {
                                    s.lock().unwrap().push(Received {
                                        service: service.clone(),
                                        span,
                                    });
                                }
                            }
                        }
                        ""
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let shutdown = tokio_util::sync::CancellationToken::new();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
            });
            Collector {
                url: format!("http://{addr}"),
                spans,
                shutdown,
            }
        }

        pub fn named(&self, name: &str) -> Vec<Received> {
            let spans = self.spans.lock().unwrap();
            spans
                .iter()
                .filter(|r| r.span.name == name)
                .cloned()
                .collect()
        }
    }

    impl Drop for Collector {
        fn drop(&mut self) {
            self.shutdown.cancel();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_are_spans_that_continue_the_records_traces_to_the_target() {
    let broker = Broker::start("traces", &BrokerOptions::memory());
    broker.create_topic("traced", 1).await;
    let collector = otlp::Collector::start().await;
    let target = Receiver::ok().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let mut traced = Rec::kv(0, "b", r#"{"n":2}"#);
    traced.headers = vec![(
        "traceparent".into(),
        Some(format!("00-{trace_id}-{parent}-01").into_bytes()),
    )];
    produce(
        &broker.producer(),
        "traced",
        &[Rec::kv(0, "a", r#"{"n":1}"#), traced],
    )
    .await;
    let mut pipe = crate::support::pipe("traced", &broker, "traced", &target.url);
    pipe["SourceParameters"]["SelfManagedKafkaParameters"]["BatchSize"] = json!(1);
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.clone()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_string()),
    ];
    let sluice = Sluice::spawn(
        &pipe,
        &Launch {
            env: &env,
            ..Launch::default()
        },
    );
    wait_for("two deliveries", WAIT, || target.accepted().len() == 2).await;
    wait_for("the spans of two executions", WAIT, || {
        collector.named("pipe.execution").len() == 2 && collector.named("pipe.target").len() == 2
    })
    .await;
    let mut executions = collector.named("pipe.execution");
    executions.sort_by_key(|e| e.attr("messaging.kafka.first_offset"));
    for (offset, e) in executions.iter().enumerate() {
        assert_eq!(e.service, "sluice");
        let attrs: HashMap<&str, Option<String>> = [
            "pipe.arn",
            "messaging.destination.name",
            "messaging.destination.partition.id",
            "messaging.kafka.first_offset",
            "messaging.kafka.last_offset",
            "messaging.batch.message_count",
            "pipe.attempt",
            "pipe.outcome",
        ]
        .into_iter()
        .map(|k| (k, e.attr(k)))
        .collect();
        let want: HashMap<&str, Option<String>> = [
            (
                "pipe.arn",
                "arn:aws:pipes:us-east-1:000000000000:pipe/traced".to_string(),
            ),
            ("messaging.destination.name", "traced".into()),
            ("messaging.destination.partition.id", "0".into()),
            ("messaging.kafka.first_offset", offset.to_string()),
            ("messaging.kafka.last_offset", offset.to_string()),
            ("messaging.batch.message_count", "1".into()),
            ("pipe.attempt", "1".into()),
            ("pipe.outcome", "succeeded".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k, Some(v)))
        .collect();
        assert_eq!(attrs, want);
    }
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let (untraced, continued) = (&executions[0].span, &executions[1].span);
    assert_ne!(hex(&untraced.trace_id), trace_id);
    assert_eq!(
        hex(&continued.trace_id),
        trace_id,
        "the record's trace goes on"
    );
    assert_eq!(hex(&continued.parent_span_id), parent);
    let child = collector
        .named("pipe.target")
        .into_iter()
        .find(|t| t.span.parent_span_id == continued.span_id)
        .expect("pipe.target is a child of the execution");
    assert_eq!(hex(&child.span.trace_id), trace_id);
    let arrival = target
        .arrivals()
        .into_iter()
        .find(|a| String::from_utf8_lossy(&a.body).contains("\"offset\":1"))
        .unwrap();
    assert_eq!(
        arrival.headers.get("traceparent").map(String::as_str),
        Some(format!("00-{trace_id}-{}-01", hex(&child.span.span_id)).as_str()),
        "the target is called within the pipe.target span"
    );
    sluice.log_text();
}
