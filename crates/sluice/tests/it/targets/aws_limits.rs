//! AWS targets at their per-call limits, with per-entry failures, and with endpoints from the
//! standard `AWS_ENDPOINT_URL*` variables. Against moto server, and against a small local server
//! speaking the service's JSON protocol where moto cannot produce the behaviour.
//!
//! The limit tests size their records so that a call filled to the service's byte limit, as the
//! service counts it, holds exactly a known number of them, and produce one batch (`BatchSize` =
//! the records produced). From what moto recorded they check that every record arrived exactly
//! once and in order, that no call went over the limit, and that no call was cut short of it
//! (the next record would not have fitted). No `BatchSize` can exceed a target's entry limit
//! (validation refuses it, see `targets/aws.rs`), so the splits here are at the byte limits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::moto::{
    aws_pipe, broker_with_topic, firehose_to_bucket, kinesis_stream, lambda_function, log_events,
    log_group_with_stream, pass_state_machine, run_sluice, sns_topic_with_queue, sqs_ns,
    sqs_receive_all, sync_execution_ns, sync_execution_service, JsonService, Moto, ACCOUNT,
};
use crate::support::{
    committed, produce, wait_committed, wait_for, Broker, Rec, Receiver, Reply, Sluice,
};
use base64::Engine;
use serde_json::{json, Value};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// A text payload: `<id>|<pad>`.
const TEXT: &str = "<$.value.id>|<$.value.s>";
/// Bytes of [`TEXT`] besides the pad.
const TEXT_OVERHEAD: usize = 5;
/// A JSON payload: `{"id": "<id>", "s": "<pad>"}`.
const JSON: &str = r#"{"id": <$.value.id>, "s": <$.value.s>}"#;
/// Bytes of [`JSON`] besides the pad.
const JSON_OVERHEAD: usize = 23;

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

/// Record `i`'s id: `r000`, `r001`...
fn id(i: usize) -> String {
    format!("r{i:03}")
}

/// The record index of a payload that starts with its id (`r012|...` or `{"id": "r012", ...`).
fn index_of(payload: &str) -> usize {
    let at = payload.find('r').expect("an id");
    payload[at + 1..at + 4].parse().expect("an id")
}

/// Records `0..pads.len()` with values `{"id": <id>, "s": <pad>}`.
fn padded(pads: &[String]) -> Vec<Rec> {
    pads.iter()
        .enumerate()
        .map(|(i, pad)| {
            Rec::kv(
                0,
                &format!("k{i}"),
                &json!({"id": id(i), "s": pad}).to_string(),
            )
        })
        .collect()
}

/// Records whose payloads, through a template with `overhead` bytes around the pad, are `lens[i]`
/// bytes long.
fn sized(lens: &[usize], overhead: usize) -> Vec<Rec> {
    let pads: Vec<String> = lens.iter().map(|&n| "x".repeat(n - overhead)).collect();
    padded(&pads)
}

/// A pipe whose first batch is exactly the `n` records produced before it starts (it flushes when
/// the last one arrives; the window only bounds the wait).
fn one_batch_pipe(
    name: &str,
    broker: &Broker,
    topic: &str,
    target: &str,
    n: usize,
    tp: Value,
) -> Value {
    let mut p = aws_pipe(name, broker, topic, target, n, tp);
    p["SourceParameters"]["SelfManagedKafkaParameters"]["MaximumBatchingWindowInSeconds"] =
        json!(30);
    p
}

/// `recs` produced to a new topic `topic`, then a pipe `name` that takes them all as one batch to
/// `target` (its `service` endpoint being moto), running until every offset is committed.
async fn deliver_one_batch(
    moto: &Moto,
    service: &str,
    name: &str,
    topic: &str,
    target: &str,
    recs: &[Rec],
    tp: Value,
) -> Sluice {
    let broker = broker_with_topic(topic).await;
    produce(&broker.producer(), topic, recs).await;
    let p = one_batch_pipe(name, &broker, topic, target, recs.len(), tp);
    let sluice = run_sluice(&p, &config_for(service, &moto.url), &[]);
    wait_committed(
        &sluice,
        &broker,
        &format!("sluice-{name}"),
        topic,
        1,
        recs.len() as i64,
    )
    .await;
    sluice
}

fn config_for(service: &str, url: &str) -> String {
    format!("[targets.aws]\nservice_endpoints = {{ {service} = \"{url}\" }}\n")
}

/// What one call carried: its records (indices, in the order sent) and its size as the service
/// counts it, measured from the request.
#[derive(Debug)]
struct Sent {
    records: Vec<usize>,
    bytes: usize,
}

/// Check how records `0..unit.len()` were split into `sent` calls, where record `i` counts
/// `unit[i]` bytes and a call `overhead` bytes besides its records: each record exactly once and
/// in order, each call's measured size what its records make, within `limit`, and every call but
/// the last full (the next call's first record would have crossed `limit`). Returns records per
/// call.
fn check_split(sent: &[Sent], unit: &[usize], overhead: usize, limit: usize) -> Vec<usize> {
    let all: Vec<usize> = sent.iter().flat_map(|s| s.records.clone()).collect();
    assert_eq!(
        all,
        (0..unit.len()).collect::<Vec<_>>(),
        "every record exactly once, in order"
    );
    for (k, s) in sent.iter().enumerate() {
        let planned = overhead + s.records.iter().map(|&i| unit[i]).sum::<usize>();
        assert_eq!(
            s.bytes, planned,
            "call {k}: size measured vs. sizes planned"
        );
        assert!(
            s.bytes <= limit,
            "call {k} counts {} bytes, over the limit of {limit}",
            s.bytes
        );
        if let Some(next) = sent.get(k + 1) {
            let first = next.records[0];
            assert!(
                s.bytes + unit[first] > limit,
                "call {k} ({} bytes) was cut short: record {first} ({} bytes) fitted under {limit}",
                s.bytes,
                unit[first]
            );
        }
    }
    sent.iter().map(|s| s.records.len()).collect()
}

/// The calls of a JSON-array target (Lambda `Invoke` bodies, Step Functions inputs).
fn array_calls(bodies: &[String]) -> Vec<Sent> {
    bodies
        .iter()
        .map(|body| {
            let arr: Vec<Value> = serde_json::from_str(body).expect("a JSON array");
            Sent {
                records: arr
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => index_of(s),
                        other => index_of(other["id"].as_str().unwrap()),
                    })
                    .collect(),
                bytes: body.len(),
            }
        })
        .collect()
}

/// Units of a JSON-array target's elements: the element and its comma (the array adds `[`, `]`
/// and one comma fewer: a call overhead of 1).
fn array_units(elements: &[usize]) -> Vec<usize> {
    elements.iter().map(|n| n + 1).collect()
}

// ------------------------------------------------------------------------------------------------
// Batch splitting at each service's byte limit

/// PutRecords: 5 MiB per call, data plus partition keys. Ten records of 512 KiB (data and key
/// together) fill a call exactly; the eleventh goes in a second call. The partition key is a
/// JSON path, so its size is only known per record. moto refuses calls over 5 MiB itself.
///
/// Regression: the split counted 256 bytes for every partition key whatever its length, so calls
/// were cut at 9 records here, well short of the limit.
#[tokio::test(flavor = "multi_thread")]
async fn kinesis_put_records_fill_5_mib_counting_partition_keys_as_sent() {
    let moto = Moto::start().await;
    kinesis_stream(&moto, "big");
    let key_len = id(0).len();
    let mut unit = vec![512 * KIB; 10];
    unit.push(100);
    let data: Vec<usize> = unit.iter().map(|u| u - key_len).collect();
    let _sluice = deliver_one_batch(
        &moto,
        "kinesis",
        "kin-limit",
        "kin",
        &format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/big"),
        &sized(&data, TEXT_OVERHEAD),
        json!({"InputTemplate": TEXT, "KinesisStreamParameters": {"PartitionKey": "$.value.id"}}),
    )
    .await;

    let sent: Vec<Sent> = moto
        .calls_of("PutRecords")
        .iter()
        .map(|c| {
            let recs = c.json()["Records"].as_array().unwrap().clone();
            let mut s = Sent {
                records: vec![],
                bytes: 0,
            };
            for r in recs {
                let data = b64(r["Data"].as_str().unwrap());
                let key = r["PartitionKey"].as_str().unwrap();
                let i = index_of(&String::from_utf8_lossy(&data));
                assert_eq!(key, id(i), "the partition key of record {i}");
                s.records.push(i);
                s.bytes += data.len() + key.len();
            }
            s
        })
        .collect();
    assert_eq!(check_split(&sent, &unit, 0, 5 * MIB), vec![10, 1]);
    assert_eq!(sent[0].bytes, 5 * MIB);
}

/// PutRecordBatch: 4 MiB per call. Eight records of 512 KiB fill a call exactly.
#[tokio::test(flavor = "multi_thread")]
async fn firehose_put_record_batch_fills_4_mib() {
    let moto = Moto::start().await;
    firehose_to_bucket(&moto, "big", "fh-big");
    let mut unit = vec![512 * KIB; 8];
    unit.push(100);
    let _sluice = deliver_one_batch(
        &moto,
        "firehose",
        "fh-limit",
        "fh",
        &format!("arn:aws:firehose:us-east-1:{ACCOUNT}:deliverystream/big"),
        &sized(&unit, TEXT_OVERHEAD),
        json!({"InputTemplate": TEXT}),
    )
    .await;

    let sent: Vec<Sent> = moto
        .calls_of("PutRecordBatch")
        .iter()
        .map(|c| {
            let data: Vec<Vec<u8>> = c.json()["Records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| b64(r["Data"].as_str().unwrap()))
                .collect();
            Sent {
                records: data
                    .iter()
                    .map(|d| index_of(&String::from_utf8_lossy(d)))
                    .collect(),
                bytes: data.iter().map(Vec::len).sum(),
            }
        })
        .collect();
    assert_eq!(check_split(&sent, &unit, 0, 4 * MIB), vec![8, 1]);
    assert_eq!(sent[0].bytes, 4 * MIB);
    // moto wrote each call to the stream's S3 destination.
    let objects = moto.aws(&["s3api", "list-objects-v2", "--bucket", "fh-big"]);
    let stored: i64 = objects["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Size"].as_i64().unwrap())
        .sum();
    assert_eq!(stored as usize, unit.iter().sum::<usize>());
}

/// PutLogEvents: 1,048,576 bytes per call, counting each message plus 26 bytes. Four events of
/// 262,144 bytes so counted (the largest event AWS has always taken) fill a call exactly.
#[tokio::test(flavor = "multi_thread")]
async fn cloudwatch_logs_put_log_events_fill_1_mib_counting_26_bytes_per_event() {
    let moto = Moto::start().await;
    log_group_with_stream(&moto, "big", "pipe");
    let mut unit = vec![256 * KIB; 4];
    unit.push(100);
    let messages: Vec<usize> = unit.iter().map(|u| u - 26).collect();
    let _sluice = deliver_one_batch(
        &moto,
        "logs",
        "cwl-limit",
        "cwl",
        &format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:big:*"),
        &sized(&messages, TEXT_OVERHEAD),
        json!({"InputTemplate": TEXT, "CloudWatchLogsParameters": {"LogStreamName": "pipe"}}),
    )
    .await;

    let sent: Vec<Sent> = moto
        .calls_of("PutLogEvents")
        .iter()
        .map(|c| {
            let msgs: Vec<String> = c.json()["logEvents"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["message"].as_str().unwrap().to_string())
                .collect();
            Sent {
                records: msgs.iter().map(|m| index_of(m)).collect(),
                bytes: msgs.iter().map(|m| m.len() + 26).sum(),
            }
        })
        .collect();
    assert_eq!(check_split(&sent, &unit, 0, MIB), vec![4, 1]);
    assert_eq!(sent[0].bytes, MIB);
    let out = log_events(&moto, "big", "pipe");
    let stored: Vec<usize> = out["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| index_of(e["message"].as_str().unwrap()))
        .collect();
    assert_eq!(stored, (0..unit.len()).collect::<Vec<_>>());
}

/// PutLogEvents also refuses a call whose events span more than 24 hours. Record times (from
/// `Timestamp`) 50 h, 49 h, 20 h, 19 h and 1 h ago make two calls: the third record would stretch
/// the first call to 30 hours.
///
/// Regression: calls were cut by entries and bytes only, so these five small events went in one
/// call spanning 49 hours, which CloudWatch Logs refuses (and the pipe could never get past).
#[tokio::test(flavor = "multi_thread")]
async fn cloudwatch_logs_calls_do_not_span_more_than_24_hours() {
    const HOUR: i64 = 3_600_000;
    let moto = Moto::start().await;
    log_group_with_stream(&moto, "span", "pipe");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let times: Vec<i64> = [50, 49, 20, 19, 1].iter().map(|h| now - h * HOUR).collect();
    let recs: Vec<Rec> = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Rec::kv(
                0,
                &format!("k{i}"),
                &json!({"id": id(i), "s": "line", "ts": t}).to_string(),
            )
        })
        .collect();
    let _sluice = deliver_one_batch(
        &moto,
        "logs",
        "cwl-span",
        "cwl-span",
        &format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:span"),
        &recs,
        json!({"InputTemplate": TEXT,
               "CloudWatchLogsParameters": {"LogStreamName": "pipe", "Timestamp": "$.value.ts"}}),
    )
    .await;

    let calls: Vec<Vec<(usize, i64)>> = moto
        .calls_of("PutLogEvents")
        .iter()
        .map(|c| {
            c.json()["logEvents"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        index_of(e["message"].as_str().unwrap()),
                        e["timestamp"].as_i64().unwrap(),
                    )
                })
                .collect()
        })
        .collect();
    let all: Vec<(usize, i64)> = calls.iter().flatten().copied().collect();
    assert_eq!(
        all,
        times.iter().copied().enumerate().collect::<Vec<_>>(),
        "every event once, in order, at its record's time"
    );
    let span = |ts: &mut dyn Iterator<Item = i64>| {
        let ts: Vec<i64> = ts.collect();
        ts.iter().max().unwrap() - ts.iter().min().unwrap()
    };
    for (k, call) in calls.iter().enumerate() {
        let s = span(&mut call.iter().map(|e| e.1));
        assert!(s <= 24 * HOUR, "call {k} spans {} h", s / HOUR);
        if let Some(next) = calls.get(k + 1) {
            let wider = span(&mut call.iter().chain(&next[..1]).map(|e| e.1));
            assert!(wider > 24 * HOUR, "call {k} was cut short");
        }
    }
    assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 3]);
}

/// `recs` through a pipe with `template` to a state machine `name` in moto, as one batch: moto
/// (still running), the machine's ARN, and the inputs of the executions started, in order.
async fn step_functions_inputs(
    name: &str,
    recs: &[Rec],
    template: &str,
) -> (Moto, String, Vec<String>) {
    let moto = Moto::start().await;
    let sm_arn = pass_state_machine(&moto, name);
    let broker = broker_with_topic(name).await;
    produce(&broker.producer(), name, recs).await;
    let p = one_batch_pipe(
        name,
        &broker,
        name,
        &sm_arn,
        recs.len(),
        json!({"InputTemplate": template}),
    );
    let sluice = run_sluice(&p, &config_for("states", &moto.url), &[]);
    wait_committed(
        &sluice,
        &broker,
        &format!("sluice-{name}"),
        name,
        1,
        recs.len() as i64,
    )
    .await;
    let inputs = moto
        .calls_of("StartExecution")
        .iter()
        .map(|c| c.json()["input"].as_str().unwrap().to_string())
        .collect();
    (moto, sm_arn, inputs)
}

/// Step Functions: an execution's input takes 256 KiB; the batch array is cut into executions.
/// Four elements whose array is exactly 262,144 bytes fill one.
#[tokio::test(flavor = "multi_thread")]
async fn step_functions_inputs_fill_256_kib() {
    // `[` + 3 x (65,535 + `,`) + 65,534 + `]` = 262,144.
    let elements = [65_535, 65_535, 65_535, 65_534, 100];
    let (moto, sm_arn, inputs) =
        step_functions_inputs("sfn-fill", &sized(&elements, JSON_OVERHEAD), JSON).await;
    let sent = array_calls(&inputs);
    assert_eq!(
        check_split(&sent, &array_units(&elements), 1, 256 * KIB),
        vec![4, 1]
    );
    assert_eq!(sent[0].bytes, 256 * KIB);
    // moto started an execution per call, with that input.
    let list = moto.aws(&[
        "stepfunctions",
        "list-executions",
        "--state-machine-arn",
        &sm_arn,
    ]);
    let mut stored: Vec<usize> = Vec::new();
    for e in list["executions"].as_array().unwrap() {
        let d = moto.aws(&[
            "stepfunctions",
            "describe-execution",
            "--execution-arn",
            e["executionArn"].as_str().unwrap(),
        ]);
        stored.push(d["input"].as_str().unwrap().len());
    }
    stored.sort();
    let mut want: Vec<usize> = sent.iter().map(|s| s.bytes).collect();
    want.sort();
    assert_eq!(stored, want);
}

/// Regression: the split counted an element and its comma per record but not the array's
/// brackets, so four elements of 65,535 bytes (counted 262,144) went in one 262,145-byte input,
/// which Step Functions refuses.
#[tokio::test(flavor = "multi_thread")]
async fn step_functions_split_counts_the_brackets_of_the_input_array() {
    let elements = [65_535, 65_535, 65_535, 65_535, 100];
    let (_moto, _, inputs) =
        step_functions_inputs("sfn-edge", &sized(&elements, JSON_OVERHEAD), JSON).await;
    assert_eq!(
        check_split(&array_calls(&inputs), &array_units(&elements), 1, 256 * KIB),
        vec![3, 2]
    );
}

/// Regression: a text payload goes into the array as a JSON string (quotes, `"` escaped), but the
/// split counted its raw bytes, so these five records went in one input of over 262,144 bytes.
/// Here each element is exactly 1,002 bytes longer than its text; four fill an input exactly.
#[tokio::test(flavor = "multi_thread")]
async fn step_functions_split_counts_text_payloads_as_json_strings() {
    let elements = [65_535, 65_535, 65_535, 65_534, 2_100];
    // Text `<id>|<pad>` with 1,000 `"` in the pad: the element is the text + 2 quotes + 1,000
    // backslashes.
    let pads: Vec<String> = elements
        .iter()
        .map(|&n| {
            format!(
                "{}{}",
                "\"".repeat(1000),
                "x".repeat(n - 1002 - TEXT_OVERHEAD - 1000)
            )
        })
        .collect();
    let (_moto, _, inputs) = step_functions_inputs("sfn-text", &padded(&pads), TEXT).await;
    assert_eq!(
        check_split(&array_calls(&inputs), &array_units(&elements), 1, 256 * KIB),
        vec![4, 1]
    );
    // The texts arrived as they were rendered.
    let first: Vec<Value> = serde_json::from_str(&inputs[0]).unwrap();
    assert_eq!(first[1].as_str().unwrap(), format!("{}|{}", id(1), pads[1]));
}

/// `recs` through a pipe with the [`JSON`] template to a Lambda function `name` in moto invoked
/// with `invocation_type`, as one batch: the invocations' payloads, in order.
async fn lambda_payloads(name: &str, recs: &[Rec], invocation_type: &str) -> Vec<String> {
    let moto = Moto::start().await;
    let arn = lambda_function(&moto, name).await;
    // moto's docker-less function echoes its payload, and answers an echo over 6,000,000 bytes
    // with a function error; have it answer `{}` instead.
    let results = vec!["{}"; 4];
    moto.api(
        "static/lambda-simple/response",
        &json!({"account_id": ACCOUNT, "region": "us-east-1", "results": results}),
    )
    .await;
    let broker = broker_with_topic(name).await;
    produce(&broker.producer(), name, recs).await;
    let p = one_batch_pipe(
        name,
        &broker,
        name,
        &arn,
        recs.len(),
        json!({"InputTemplate": JSON, "LambdaFunctionParameters": {"InvocationType": invocation_type}}),
    );
    let sluice = run_sluice(&p, &config_for("lambda", &moto.url), &[]);
    wait_committed(
        &sluice,
        &broker,
        &format!("sluice-{name}"),
        name,
        1,
        recs.len() as i64,
    )
    .await;
    let sdk_type = match invocation_type {
        "FIRE_AND_FORGET" => "Event",
        _ => "RequestResponse",
    };
    moto.calls_of("/invocations")
        .iter()
        .map(|c| {
            assert_eq!(c.header("x-amz-invocation-type").as_deref(), Some(sdk_type));
            String::from_utf8(c.body.clone()).unwrap()
        })
        .collect()
}

/// Invocations of a batch whose array elements are `elements` bytes long (JSON template), checked
/// with [`check_split`] against `limit`, the first one filled exactly: records per invocation.
async fn lambda_split(
    name: &str,
    elements: &[usize],
    invocation_type: &str,
    limit: usize,
) -> Vec<usize> {
    let bodies = lambda_payloads(name, &sized(elements, JSON_OVERHEAD), invocation_type).await;
    let sent = array_calls(&bodies);
    let calls = check_split(&sent, &array_units(elements), 1, limit);
    assert_eq!(sent[0].bytes, limit, "the first invocation is full");
    calls
}

/// Lambda `Invoke` (REQUEST_RESPONSE): 6 MB (6,291,456 bytes) of payload per call. Eight elements
/// whose array is exactly that fill one invocation; the ninth goes in a second.
#[tokio::test(flavor = "multi_thread")]
async fn lambda_request_response_invocations_fill_6_mib() {
    // `[` + 7 x (786,430 + `,`) + 786,437 + `]` = 6,291,456.
    let mut elements = vec![786_430; 7];
    elements.push(786_437);
    elements.push(100);
    let calls = lambda_split("lam-rr", &elements, "REQUEST_RESPONSE", 6 * MIB).await;
    assert_eq!(calls, vec![8, 1]);
}

/// Regression: FIRE_AND_FORGET (`Event` invocations, 256 KB of payload) was split at the 6 MB of
/// synchronous invocations, so this batch went as one invocation Lambda refuses. Four elements
/// whose array is exactly 262,144 bytes fill an invocation.
#[tokio::test(flavor = "multi_thread")]
async fn lambda_fire_and_forget_invocations_fill_256_kib_not_6_mib() {
    let elements = [65_535, 65_535, 65_535, 65_534, 100];
    let calls = lambda_split("lam-ff", &elements, "FIRE_AND_FORGET", 256 * KIB).await;
    assert_eq!(calls, vec![4, 1]);
}

/// PutEvents: 256 KiB per call, counting each entry's Detail, Source, DetailType, Resources and
/// 14 bytes for a Time. Entries of 32 KiB so counted fill a call at eight, under the limit of
/// ten entries.
///
/// Regression: the split counted neither Resources nor the resolved DetailType (it counted the
/// JSON path's text), so all ten entries (320 KiB) went in one call, which EventBridge refuses.
#[tokio::test(flavor = "multi_thread")]
async fn eventbridge_split_counts_resources_and_resolved_parameters() {
    let moto = Moto::start().await;
    moto.aws(&["events", "create-event-bus", "--name", "big-bus"]);
    let resources: Vec<String> = (0..10)
        .map(|i| format!("arn:aws:s3:::bucket-{i}-{}", "r".repeat(1985)))
        .collect();
    let res_len: usize = resources.iter().map(String::len).sum();
    let kind = "OrderCreatedWithAVeryLongDetailTypeName".to_string();
    let fixed = "orders".len() + kind.len() + res_len + 14;
    let unit = vec![32 * KIB; 10];
    let details: Vec<usize> = unit.iter().map(|u| u - fixed).collect();
    let pads: Vec<String> = details
        .iter()
        .map(|&n| "x".repeat(n - JSON_OVERHEAD))
        .collect();
    let recs: Vec<Rec> = pads
        .iter()
        .enumerate()
        .map(|(i, pad)| {
            Rec::kv(
                0,
                &format!("k{i}"),
                &json!({"id": id(i), "s": pad, "kind": kind, "at": "2024-05-01T10:00:00Z"})
                    .to_string(),
            )
        })
        .collect();
    let _sluice = deliver_one_batch(
        &moto,
        "events",
        "eb-limit",
        "eb",
        &format!("arn:aws:events:us-east-1:{ACCOUNT}:event-bus/big-bus"),
        &recs,
        json!({
            "InputTemplate": JSON,
            "EventBridgeEventBusParameters": {
                "Source": "orders", "DetailType": "$.value.kind", "Resources": resources,
                "Time": "$.value.at"
            }
        }),
    )
    .await;

    let sent: Vec<Sent> = moto
        .calls_of("PutEvents")
        .iter()
        .map(|c| {
            let entries = c.json()["Entries"].as_array().unwrap().clone();
            let mut s = Sent {
                records: vec![],
                bytes: 0,
            };
            for e in entries {
                let detail = e["Detail"].as_str().unwrap();
                s.records.push(index_of(detail));
                assert_eq!(e["DetailType"], kind.as_str());
                s.bytes += detail.len()
                    + e["Source"].as_str().unwrap().len()
                    + e["DetailType"].as_str().unwrap().len()
                    + e["Resources"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r.as_str().unwrap().len())
                        .sum::<usize>()
                    + if e.get("Time").is_some() { 14 } else { 0 };
            }
            s
        })
        .collect();
    assert_eq!(check_split(&sent, &unit, 0, 256 * KIB), vec![8, 2]);
    assert_eq!(sent[0].bytes, 256 * KIB);
}

/// SNS `PublishBatch`: 256 KiB of messages per call. Four 64 KiB messages fill a call exactly;
/// the fifth goes in a second call, and every message reaches the topic's SQS subscriber.
#[tokio::test(flavor = "multi_thread")]
async fn sns_publish_batch_fills_256_kib() {
    let moto = Moto::start().await;
    let (topic_arn, url) = sns_topic_with_queue(&moto, "big-news");
    let mut unit = vec![64 * KIB; 4];
    unit.push(100);
    let _sluice = deliver_one_batch(
        &moto,
        "sns",
        "sns-limit",
        "sns-big",
        &topic_arn,
        &sized(&unit, TEXT_OVERHEAD),
        json!({"InputTemplate": TEXT}),
    )
    .await;

    // Query protocol: `PublishBatchRequestEntries.member.N.Message`, N from 1 in entry order.
    let sent: Vec<Sent> = moto
        .calls_of("PublishBatch")
        .iter()
        .map(|c| {
            let mut messages: Vec<(usize, String)> = url::form_urlencoded::parse(&c.body)
                .filter_map(|(k, v)| {
                    let n = k
                        .strip_prefix("PublishBatchRequestEntries.member.")?
                        .strip_suffix(".Message")?
                        .parse()
                        .ok()?;
                    Some((n, v.into_owned()))
                })
                .collect();
            messages.sort();
            Sent {
                records: messages.iter().map(|(_, m)| index_of(m)).collect(),
                bytes: messages.iter().map(|(_, m)| m.len()).sum(),
            }
        })
        .collect();
    assert_eq!(check_split(&sent, &unit, 0, 256 * KIB), vec![4, 1]);
    assert_eq!(sent[0].bytes, 256 * KIB);
    let mut got: Vec<usize> = sqs_receive_all(&moto, &url, unit.len())
        .iter()
        .map(|m| index_of(m["Body"].as_str().unwrap()))
        .collect();
    got.sort();
    assert_eq!(got, (0..unit.len()).collect::<Vec<_>>());
}

// ------------------------------------------------------------------------------------------------
// Per-entry failures of batch APIs

/// moto's PutEvents checks each entry: one with an empty DetailType (its JSON path finds nothing
/// in record 2) fails alone, with FailedEntryCount 1, while the others are accepted. The batch
/// fails whole: it is sent again with the same entries, its offsets are never committed, and
/// the records after it are never sent. (moto keeps refusing that entry, so the batch never
/// succeeds; the local-server tests below cover recovery.)
#[tokio::test(flavor = "multi_thread")]
async fn eventbridge_failed_entry_fails_the_batch_which_is_retried_whole_and_never_committed() {
    let moto = Moto::start().await;
    moto.aws(&["events", "create-event-bus", "--name", "strict"]);
    let broker = broker_with_topic("eb-fail").await;
    let recs: Vec<Rec> = (0..8)
        .map(|i| {
            let v = if i == 2 {
                json!({"id": id(i)})
            } else {
                json!({"id": id(i), "kind": "Created"})
            };
            Rec::kv(0, &format!("k{i}"), &v.to_string())
        })
        .collect();
    produce(&broker.producer(), "eb-fail", &recs).await;
    let mut p = one_batch_pipe(
        "eb-fail",
        &broker,
        "eb-fail",
        &format!("arn:aws:events:us-east-1:{ACCOUNT}:event-bus/strict"),
        5,
        json!({
            "InputTemplate": "{\"id\": <$.value.id>}",
            "EventBridgeEventBusParameters": {"Source": "orders", "DetailType": "$.value.kind"}
        }),
    );
    p["SluiceParameters"] = json!({"MaximumRetryBackoffSeconds": 0.5});
    let sluice = run_sluice(&p, &config_for("events", &moto.url), &[]);
    wait_for("three PutEvents attempts", Duration::from_secs(60), || {
        moto.calls_of("PutEvents").len() >= 3
    })
    .await;
    assert_eq!(
        committed(&broker, "sluice-eb-fail", "eb-fail", 1),
        vec![-1],
        "a batch with a failed entry must not be committed"
    );
    let calls = moto.calls_of("PutEvents");
    let first = calls[0].json()["Entries"].clone();
    let ids: Vec<usize> = first
        .as_array()
        .unwrap()
        .iter()
        .map(|e| index_of(e["Detail"].as_str().unwrap()))
        .collect();
    assert_eq!(ids, vec![0, 1, 2, 3, 4], "the first batch, in order");
    assert_eq!(first[2]["DetailType"], "");
    for (k, c) in calls.iter().enumerate() {
        assert_eq!(
            c.json()["Entries"],
            first,
            "attempt {k} must carry the whole batch again"
        );
    }
    assert!(
        sluice.log_text().contains("1 of 5 entries failed"),
        "{}",
        sluice.log_text()
    );
    assert!(sluice.log_text().contains("InvalidArgument"));
}

/// A batch API's answer for `n` entries, entry 1 failed when `failing`.
type BatchAnswer = fn(n: usize, failing: bool) -> Value;

fn kinesis_answer(n: usize, failing: bool) -> Value {
    let records: Vec<Value> = (0..n)
        .map(|i| {
            if failing && i == 1 {
                json!({"ErrorCode": "ProvisionedThroughputExceededException",
                       "ErrorMessage": "Rate exceeded for shard shardId-000000000000"})
            } else {
                json!({"SequenceNumber": format!("{}", 1000 + i), "ShardId": "shardId-000000000000"})
            }
        })
        .collect();
    json!({"FailedRecordCount": if failing { 1 } else { 0 }, "Records": records})
}

fn firehose_answer(n: usize, failing: bool) -> Value {
    let responses: Vec<Value> = (0..n)
        .map(|i| {
            if failing && i == 1 {
                json!({"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."})
            } else {
                json!({"RecordId": format!("rec-{i}")})
            }
        })
        .collect();
    json!({"FailedPutCount": if failing { 1 } else { 0 }, "Encrypted": false, "RequestResponses": responses})
}

/// Against a local server speaking the service's JSON protocol (moto's Kinesis and Firehose never
/// fail an entry alone): the server fails entry 1 of every call until the test lets it succeed.
/// While it fails, the batch is sent again and again with the same records and nothing is
/// committed; once it succeeds, the batch is delivered (exactly once more) and committed.
async fn per_entry_failure_is_retried_whole_until_it_succeeds(
    service: &str,
    target: &str,
    tp: Value,
    op: &'static str,
    answer: BatchAnswer,
) {
    let failing = Arc::new(AtomicBool::new(true));
    let answered_ok = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (f, ok) = (failing.clone(), answered_ok.clone());
    let server = JsonService::start(
        "application/x-amz-json-1.1",
        Arc::new(move |_, req| {
            let n = req["Records"].as_array().map_or(0, Vec::len);
            let fail = f.load(Ordering::SeqCst);
            if !fail {
                ok.fetch_add(1, Ordering::SeqCst);
            }
            answer(n, fail)
        }),
    )
    .await;
    let topic = format!("{service}-partial");
    let name = format!("{service}-partial");
    let broker = broker_with_topic(&topic).await;
    produce(
        &broker.producer(),
        &topic,
        &crate::support::moto::recs(6, |i| json!({"id": id(i)}).to_string()),
    )
    .await;
    let mut p = one_batch_pipe(&name, &broker, &topic, target, 6, tp);
    p["SluiceParameters"] = json!({"MaximumRetryBackoffSeconds": 0.5});
    let sluice = run_sluice(&p, &config_for(service, &server.url), &[]);

    wait_for("three failed attempts", Duration::from_secs(60), || {
        server.calls().len() >= 3
    })
    .await;
    assert_eq!(
        committed(&broker, &format!("sluice-{name}"), &topic, 1),
        vec![-1],
        "nothing is committed while an entry fails"
    );
    failing.store(false, Ordering::SeqCst);
    wait_committed(&sluice, &broker, &format!("sluice-{name}"), &topic, 1, 6).await;

    let calls = server.calls();
    let records_of = |req: &Value| -> Vec<usize> {
        req["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| index_of(&String::from_utf8_lossy(&b64(r["Data"].as_str().unwrap()))))
            .collect()
    };
    for (k, (o, req)) in calls.iter().enumerate() {
        assert_eq!(o, op, "attempt {k}");
        assert_eq!(
            records_of(req),
            vec![0, 1, 2, 3, 4, 5],
            "attempt {k} carries the whole batch, in order"
        );
        assert_eq!(req["Records"], calls[0].1["Records"], "attempt {k}");
    }
    assert!(calls.len() >= 4, "{} calls", calls.len());
    assert_eq!(
        answered_ok.load(Ordering::SeqCst),
        1,
        "once it succeeded, the batch was not sent again"
    );
    assert!(
        sluice.log_text().contains("1 of 6 entries failed"),
        "{}",
        sluice.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kinesis_failed_record_count_retries_the_whole_batch_until_it_succeeds() {
    per_entry_failure_is_retried_whole_until_it_succeeds(
        "kinesis",
        &format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/s"),
        json!({"InputTemplate": "{\"id\": <$.value.id>}", "KinesisStreamParameters": {"PartitionKey": "$.value.id"}}),
        "Kinesis_20131202.PutRecords",
        kinesis_answer,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn firehose_failed_put_count_retries_the_whole_batch_until_it_succeeds() {
    per_entry_failure_is_retried_whole_until_it_succeeds(
        "firehose",
        &format!("arn:aws:firehose:us-east-1:{ACCOUNT}:deliverystream/f"),
        json!({"InputTemplate": "{\"id\": <$.value.id>}"}),
        "Firehose_20150804.PutRecordBatch",
        firehose_answer,
    )
    .await;
}

// ------------------------------------------------------------------------------------------------
// Endpoints: `[targets.aws]`, else `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`

/// An endpoint that must not be used: it answers 500 to everything and counts what it got.
async fn decoy() -> (Receiver, String) {
    let r = Receiver::start(Arc::new(|_, _| Reply::status(500))).await;
    let url = r.url.trim_end_matches("/in").to_string();
    (r, url)
}

/// A standard SQS queue in moto; its URL.
fn sqs_queue(moto: &Moto, name: &str) -> String {
    let q = moto.aws(&["sqs", "create-queue", "--queue-name", name]);
    q["QueueUrl"].as_str().unwrap().to_string()
}

fn sqs_pipe(name: &str, broker: &Broker, topic: &str) -> Value {
    aws_pipe(
        name,
        broker,
        topic,
        &format!("arn:aws:sqs:us-east-1:{ACCOUNT}:q"),
        10,
        json!({"InputTemplate": "{\"n\": <$.value.n>}"}),
    )
}

fn n_recs(range: std::ops::Range<usize>) -> Vec<Rec> {
    range
        .map(|i| Rec::kv(0, &format!("k{i}"), &json!({"n": i}).to_string()))
        .collect()
}

/// No `[targets.aws]`: `AWS_ENDPOINT_URL_SQS` is used, and wins over `AWS_ENDPOINT_URL`.
#[tokio::test(flavor = "multi_thread")]
async fn aws_endpoint_url_sqs_is_used_and_wins_over_aws_endpoint_url() {
    let moto = Moto::start().await;
    let url = sqs_queue(&moto, "q");
    let (bogus, bogus_url) = decoy().await;
    let broker = broker_with_topic("env-sqs").await;
    produce(&broker.producer(), "env-sqs", &n_recs(0..3)).await;
    let p = sqs_pipe("env-sqs", &broker, "env-sqs");
    let sluice = run_sluice(
        &p,
        "",
        &[
            ("AWS_ENDPOINT_URL_SQS", moto.url.clone()),
            ("AWS_ENDPOINT_URL", bogus_url),
        ],
    );
    wait_committed(&sluice, &broker, "sluice-env-sqs", "env-sqs", 1, 3).await;
    assert_eq!(sqs_ns(&moto, &url, 3), vec![0, 1, 2]);
    assert_eq!(bogus.count(), 0, "AWS_ENDPOINT_URL must not be used");
}

/// No `[targets.aws]` and no per-service variable: `AWS_ENDPOINT_URL` is used (here by a
/// CloudWatch Logs target).
#[tokio::test(flavor = "multi_thread")]
async fn aws_endpoint_url_alone_is_used() {
    let moto = Moto::start().await;
    log_group_with_stream(&moto, "env", "s");
    let broker = broker_with_topic("env-all").await;
    produce(&broker.producer(), "env-all", &n_recs(0..3)).await;
    let p = aws_pipe(
        "env-all",
        &broker,
        "env-all",
        &format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:env"),
        10,
        json!({"InputTemplate": "line <$.value.n>", "CloudWatchLogsParameters": {"LogStreamName": "s"}}),
    );
    let sluice = run_sluice(&p, "", &[("AWS_ENDPOINT_URL", moto.url.clone())]);
    wait_committed(&sluice, &broker, "sluice-env-all", "env-all", 1, 3).await;
    let out = log_events(&moto, "env", "s");
    let got: Vec<&str> = out["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec!["line 0", "line 1", "line 2"]);
}

/// `AWS_ENDPOINT_URL_SFN` reaches `StartSyncExecution` (which the SDK would send to a `sync-`
/// host, which an overridden endpoint does not have). moto lacks the operation: a local server
/// answers it.
#[tokio::test(flavor = "multi_thread")]
async fn aws_endpoint_url_sfn_reaches_start_sync_execution_without_the_host_prefix() {
    let sfn = sync_execution_service().await;
    let (bogus, bogus_url) = decoy().await;
    let broker = broker_with_topic("env-sfn").await;
    produce(&broker.producer(), "env-sfn", &n_recs(0..3)).await;
    let p = aws_pipe(
        "env-sfn",
        &broker,
        "env-sfn",
        &format!("arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:f"),
        10,
        json!({"InputTemplate": "{\"n\": <$.value.n>}",
               "StepFunctionStateMachineParameters": {"InvocationType": "REQUEST_RESPONSE"}}),
    );
    let sluice = run_sluice(
        &p,
        "",
        &[
            ("AWS_ENDPOINT_URL_SFN", sfn.url.clone()),
            ("AWS_ENDPOINT_URL", bogus_url),
        ],
    );
    wait_committed(&sluice, &broker, "sluice-env-sfn", "env-sfn", 1, 3).await;
    let got = sync_execution_ns(&sfn, "f");
    assert_eq!(got, vec![0, 1, 2]);
    assert_eq!(bogus.count(), 0);
}

/// `[targets.aws]` wins over the variables: first `service_endpoints.sqs` over both variables,
/// then `endpoint_url` over `AWS_ENDPOINT_URL_SQS`.
#[tokio::test(flavor = "multi_thread")]
async fn targets_aws_config_wins_over_aws_endpoint_url_variables() {
    let moto = Moto::start().await;
    let url = sqs_queue(&moto, "q");
    let (bogus, bogus_url) = decoy().await;
    let broker = broker_with_topic("cfg-sqs").await;
    produce(&broker.producer(), "cfg-sqs", &n_recs(0..3)).await;
    let p = sqs_pipe("cfg-sqs", &broker, "cfg-sqs");
    let mut sluice = run_sluice(
        &p,
        &config_for("sqs", &moto.url),
        &[
            ("AWS_ENDPOINT_URL_SQS", bogus_url.clone()),
            ("AWS_ENDPOINT_URL", bogus_url.clone()),
        ],
    );
    wait_committed(&sluice, &broker, "sluice-cfg-sqs", "cfg-sqs", 1, 3).await;
    // Leave the group, so the next run is assigned the partition at once.
    assert_eq!(sluice.sigterm().await, Some(0));
    assert_eq!(sqs_ns(&moto, &url, 3), vec![0, 1, 2]);

    produce(&broker.producer(), "cfg-sqs", &n_recs(3..6)).await;
    let sluice = run_sluice(
        &p,
        &format!("[targets.aws]\nendpoint_url = \"{}\"\n", moto.url),
        &[("AWS_ENDPOINT_URL_SQS", bogus_url)],
    );
    wait_committed(&sluice, &broker, "sluice-cfg-sqs", "cfg-sqs", 1, 6).await;
    assert_eq!(sqs_ns(&moto, &url, 3), vec![3, 4, 5]);
    assert_eq!(bogus.count(), 0, "the variables must not be used");
}
