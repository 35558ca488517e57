//! AWS targets against moto server: SQS (standard and FIFO), SNS, EventBridge, Kinesis, Firehose,
//! CloudWatch Logs, Lambda and Step Functions. Each test checks what arrived (through the service's
//! own read API where moto has one, and through moto's request recording for the calls Sluice
//! made, which also shows how batches were split). `StartSyncExecution` is not implemented by
//! moto; it is tested against a small local server speaking its JSON protocol.

use crate::support::moto::{
    aws_endpoint_config, aws_pipe, batch_ns, broker_with_topic, entries_per_call,
    firehose_to_bucket, kinesis_stream, lambda_function, log_events, log_group_with_stream,
    pass_state_machine, recs, run_sluice, sns_topic_with_queue, sqs_ns, sqs_receive_all,
    sync_execution_ns, sync_execution_service, Moto, ACCOUNT,
};
use crate::support::{produce, sluice_command, wait_committed, WAIT};
use base64::Engine;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn sqs_fifo_queue_gets_every_record_in_batches_of_at_most_ten() {
    let moto = Moto::start().await;
    let q = moto.aws(&[
        "sqs",
        "create-queue",
        "--queue-name",
        "orders.fifo",
        "--attributes",
        "FifoQueue=true",
    ]);
    let url = q["QueueUrl"].as_str().unwrap().to_string();
    let broker = broker_with_topic("sqs").await;
    produce(
        &broker.producer(),
        "sqs",
        &recs(25, |i| {
            json!({"id": format!("o{i}"), "group": "g1"}).to_string()
        }),
    )
    .await;
    let p = aws_pipe(
        "to-sqs",
        &broker,
        "sqs",
        &format!("arn:aws:sqs:us-east-1:{ACCOUNT}:orders.fifo"),
        10,
        json!({"SqsQueueParameters": {"MessageGroupId": "$.value.group", "MessageDeduplicationId": "$.value.id"}}),
    );
    let sluice = run_sluice(&p, &aws_endpoint_config(&moto.url), &[]);
    wait_committed(&sluice, &broker, "sluice-to-sqs", "sqs", 1, 25).await;

    let calls = entries_per_call(&moto, "SendMessageBatch", "Entries");
    assert_eq!(calls.iter().sum::<usize>(), 25, "{calls:?}");
    assert!(calls.iter().all(|&n| n <= 10), "{calls:?}");
    let first = &moto.calls_of("SendMessageBatch")[0].json()["Entries"][0];
    assert_eq!(first["MessageGroupId"], "g1");
    assert_eq!(first["MessageDeduplicationId"], "o0");

    let got = sqs_receive_all(&moto, &url, 25);
    let ids: Vec<String> = got
        .iter()
        .map(|m| {
            let body: Value = serde_json::from_str(m["Body"].as_str().unwrap()).unwrap();
            let value = base64::engine::general_purpose::STANDARD
                .decode(body["value"].as_str().unwrap())
                .unwrap();
            let v: Value = serde_json::from_slice(&value).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    let want: Vec<String> = (0..25).map(|i| format!("o{i}")).collect();
    assert_eq!(ids, want, "FIFO order is the partition order");
}

#[tokio::test(flavor = "multi_thread")]
async fn sqs_batches_are_split_at_256_kib() {
    let moto = Moto::start().await;
    let q = moto.aws(&["sqs", "create-queue", "--queue-name", "big"]);
    let url = q["QueueUrl"].as_str().unwrap().to_string();
    let broker = broker_with_topic("big").await;
    // ~75 KB values: their record JSON (base64) is ~100 KB, so two fit in a 256 KiB call.
    produce(
        &broker.producer(),
        "big",
        &recs(6, |i| format!("{i}").repeat(75_000)),
    )
    .await;
    let p = aws_pipe(
        "to-sqs-big",
        &broker,
        "big",
        &format!("arn:aws:sqs:us-east-1:{ACCOUNT}:big"),
        10,
        Value::Null,
    );
    let sluice = run_sluice(&p, &aws_endpoint_config(&moto.url), &[]);
    wait_committed(&sluice, &broker, "sluice-to-sqs-big", "big", 1, 6).await;
    let calls = entries_per_call(&moto, "SendMessageBatch", "Entries");
    assert_eq!(calls.iter().sum::<usize>(), 6, "{calls:?}");
    assert!(calls.iter().all(|&n| n <= 2), "{calls:?}");
    for c in moto.calls_of("SendMessageBatch") {
        let bytes: usize = c.json()["Entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["MessageBody"].as_str().unwrap().len())
            .sum();
        assert!(bytes <= 256 * 1024, "{bytes}");
    }
    assert_eq!(sqs_receive_all(&moto, &url, 6).len(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn sns_topic_publishes_one_message_per_record() {
    let moto = Moto::start().await;
    let (topic_arn, url) = sns_topic_with_queue(&moto, "news");
    let broker = broker_with_topic("sns").await;
    produce(
        &broker.producer(),
        "sns",
        &recs(13, |i| json!({"n": i}).to_string()),
    )
    .await;
    let p = aws_pipe(
        "to-sns",
        &broker,
        "sns",
        &topic_arn,
        10,
        json!({"InputTemplate": "{\"n\": <$.value.n>}"}),
    );
    let sluice = run_sluice(&p, &aws_endpoint_config(&moto.url), &[]);
    wait_committed(&sluice, &broker, "sluice-to-sns", "sns", 1, 13).await;
    // Query protocol: one `PublishBatchRequestEntries.member.N.Id` per entry.
    let per_call: Vec<usize> = moto
        .calls_of("PublishBatch")
        .iter()
        .map(|c| {
            url::form_urlencoded::parse(&c.body)
                .filter(|(k, _)| {
                    k.starts_with("PublishBatchRequestEntries.member.") && k.ends_with(".Id")
                })
                .count()
        })
        .collect();
    assert_eq!(per_call.iter().sum::<usize>(), 13, "{per_call:?}");
    assert!(per_call.iter().all(|&n| n <= 10), "{per_call:?}");
    assert_eq!(sqs_ns(&moto, &url, 13), (0..13).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn eventbridge_bus_gets_events_with_source_detail_type_resources_and_time() {
    let moto = Moto::start().await;
    moto.aws(&["events", "create-event-bus", "--name", "orders-bus"]);
    let q = moto.aws(&["sqs", "create-queue", "--queue-name", "bus-out"]);
    let url = q["QueueUrl"].as_str().unwrap().to_string();
    moto.aws(&[
        "events",
        "put-rule",
        "--name",
        "all",
        "--event-bus-name",
        "orders-bus",
        "--event-pattern",
        r#"{"source":["orders"]}"#,
    ]);
    moto.aws(&[
        "events",
        "put-targets",
        "--rule",
        "all",
        "--event-bus-name",
        "orders-bus",
        "--targets",
        &format!("Id=q,Arn=arn:aws:sqs:us-east-1:{ACCOUNT}:bus-out"),
    ]);
    let broker = broker_with_topic("eb").await;
    produce(
        &broker.producer(),
        "eb",
        &recs(12, |i| {
            json!({"n": i, "kind": "Created", "at": "2024-05-01T10:00:00Z"}).to_string()
        }),
    )
    .await;
    let p = aws_pipe(
        "to-bus",
        &broker,
        "eb",
        &format!("arn:aws:events:us-east-1:{ACCOUNT}:event-bus/orders-bus"),
        10,
        json!({
            "InputTemplate": "{\"n\": <$.value.n>}",
            "EventBridgeEventBusParameters": {
                "Source": "orders", "DetailType": "$.value.kind",
                "Resources": ["arn:aws:s3:::r1"], "Time": "$.value.at"
            }
        }),
    );
    let sluice = run_sluice(&p, &aws_endpoint_config(&moto.url), &[]);
    wait_committed(&sluice, &broker, "sluice-to-bus", "eb", 1, 12).await;
    let calls = entries_per_call(&moto, "PutEvents", "Entries");
    assert_eq!(calls.iter().sum::<usize>(), 12, "{calls:?}");
    assert!(calls.iter().all(|&n| n <= 10), "{calls:?}");
    let got = sqs_receive_all(&moto, &url, 12);
    assert_eq!(got.len(), 12);
    let ev: Value = serde_json::from_str(got[0]["Body"].as_str().unwrap()).unwrap();
    assert_eq!(ev["source"], "orders");
    assert_eq!(ev["detail-type"], "Created");
    assert_eq!(ev["resources"], json!(["arn:aws:s3:::r1"]));
    assert_eq!(ev["time"], "2024-05-01T10:00:00Z");
    assert!(ev["detail"]["n"].is_i64(), "{ev}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kinesis_stream_gets_records_with_dynamic_partition_keys() {
    let moto = Moto::start().await;
    kinesis_stream(&moto, "clicks");
    let broker = broker_with_topic("kin").await;
    produce(
        &broker.producer(),
        "kin",
        &recs(30, |i| {
            json!({"user": format!("u{}", i % 3), "n": i}).to_string()
        }),
    )
    .await;
    let p = aws_pipe(
        "to-kinesis",
        &broker,
        "kin",
        &format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/clicks"),
        500,
        json!({"InputTemplate": "{\"n\": <$.value.n>}", "KinesisStreamParameters": {"PartitionKey": "$.value.user"}}),
    );
    let sluice = run_sluice(&p, &aws_endpoint_config(&moto.url), &[]);
    wait_committed(&sluice, &broker, "sluice-to-kinesis", "kin", 1, 30).await;
    let calls = moto.calls_of("PutRecords");
    let first = calls[0].json();
    assert_eq!(first["Records"][0]["PartitionKey"], "u0");
    let shard = moto.aws(&["kinesis", "list-shards", "--stream-name", "clicks"]);
    let shard_id = shard["Shards"][0]["ShardId"].as_str().unwrap().to_string();
    let it = moto.aws(&[
        "kinesis",
        "get-shard-iterator",
        "--stream-name",
        "clicks",
        "--shard-id",
        &shard_id,
        "--shard-iterator-type",
        "TRIM_HORIZON",
    ]);
    let recs = moto.aws(&[
        "kinesis",
        "get-records",
        "--shard-iterator",
        it["ShardIterator"].as_str().unwrap(),
    ]);
    let got: Vec<(String, i64)> = recs["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let data = base64::engine::general_purpose::STANDARD
                .decode(r["Data"].as_str().unwrap())
                .unwrap();
            let v: Value = serde_json::from_slice(&data).unwrap();
            (
                r["PartitionKey"].as_str().unwrap().to_string(),
                v["n"].as_i64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, i64)> = (0..30).map(|i| (format!("u{}", i % 3), i)).collect();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn firehose_stream_gets_every_record() {
    let moto = Moto::start().await;
    firehose_to_bucket(&moto, "fh", "fh-out");
    let broker = broker_with_topic("fh").await;
    produce(
        &broker.producer(),
        "fh",
        &recs(20, |i| json!({"n": i}).to_string()),
    )
    .await;
    let p = aws_pipe(
        "to-firehose",
        &broker,
        "fh",
        &format!("arn:aws:firehose:us-east-1:{ACCOUNT}:deliverystream/fh"),
        500,
        json!({"InputTemplate": "{\"n\": <$.value.n>}"}),
    );
    let sluice = run_sluice(&p, &aws_endpoint_config(&moto.url), &[]);
    wait_committed(&sluice, &broker, "sluice-to-firehose", "fh", 1, 20).await;
    let mut got = Vec::new();
    for c in moto.calls_of("PutRecordBatch") {
        for r in c.json()["Records"].as_array().unwrap() {
            let data = base64::engine::general_purpose::STANDARD
                .decode(r["Data"].as_str().unwrap())
                .unwrap();
            got.push(
                serde_json::from_slice::<Value>(&data).unwrap()["n"]
                    .as_i64()
                    .unwrap(),
            );
        }
    }
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    // moto wrote the records to the stream's S3 destination.
    let objects = moto.aws(&["s3api", "list-objects-v2", "--bucket", "fh-out"]);
    assert!(
        !objects["Contents"].as_array().unwrap().is_empty(),
        "{objects}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cloudwatch_logs_group_gets_log_events_with_record_timestamps() {
    let moto = Moto::start().await;
    log_group_with_stream(&moto, "app", "pipe");
    let broker = broker_with_topic("cwl").await;
    // CloudWatch Logs refuses events older than 14 days: use recent times, a second apart.
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    produce(
        &broker.producer(),
        "cwl",
        &recs(15, |i| {
            json!({"msg": format!("line {i}"), "ts": base + 1000 * i as i64}).to_string()
        }),
    )
    .await;
    let p = aws_pipe(
        "to-logs",
        &broker,
        "cwl",
        &format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:app:*"),
        100,
        json!({"InputTemplate": "<$.value.msg>", "CloudWatchLogsParameters": {"LogStreamName": "pipe", "Timestamp": "$.value.ts"}}),
    );
    let sluice = run_sluice(&p, &aws_endpoint_config(&moto.url), &[]);
    wait_committed(&sluice, &broker, "sluice-to-logs", "cwl", 1, 15).await;
    let out = log_events(&moto, "app", "pipe");
    let got: Vec<(i64, String)> = out["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["timestamp"].as_i64().unwrap(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(i64, String)> = (0..15)
        .map(|i| (base + 1000 * i, format!("line {i}")))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_target_gets_the_batch_as_a_json_array_sync_and_async() {
    let moto = Moto::start().await;
    let arn = lambda_function(&moto, "sink").await;
    let broker = broker_with_topic("lam").await;
    produce(
        &broker.producer(),
        "lam",
        &recs(7, |i| json!({"n": i}).to_string()),
    )
    .await;
    let p = aws_pipe(
        "to-lambda",
        &broker,
        "lam",
        &arn,
        100,
        json!({"InputTemplate": "{\"n\": <$.value.n>}"}),
    );
    let mut sluice = run_sluice(&p, &aws_endpoint_config(&moto.url), &[]);
    wait_committed(&sluice, &broker, "sluice-to-lambda", "lam", 1, 7).await;
    // Leave the group before the next run of the pipe joins it: a SIGKILLed member can leave the
    // test broker's next member without partitions for minutes (test-broker.md).
    assert_eq!(sluice.sigterm().await, Some(0));
    drop(sluice);
    let invokes = moto.calls_of("/invocations");
    let mut got = Vec::new();
    for c in &invokes {
        assert_eq!(
            c.header("x-amz-invocation-type").as_deref(),
            Some("RequestResponse")
        );
        let arr = c.json();
        assert!(arr.is_array(), "{arr}");
        got.extend(
            arr.as_array()
                .unwrap()
                .iter()
                .map(|v| v["n"].as_i64().unwrap()),
        );
    }
    assert_eq!(got, (0..7).collect::<Vec<_>>());

    // FIRE_AND_FORGET is an `Event` invocation.
    produce(&broker.producer(), "lam", &recs(1, |_| "{}".into())).await;
    let mut p2 = p.clone();
    p2["TargetParameters"]["LambdaFunctionParameters"] =
        json!({"InvocationType": "FIRE_AND_FORGET"});
    let sluice = run_sluice(&p2, &aws_endpoint_config(&moto.url), &[]);
    wait_committed(&sluice, &broker, "sluice-to-lambda", "lam", 1, 8).await;
    let last = moto.calls_of("/invocations").pop().unwrap();
    assert_eq!(
        last.header("x-amz-invocation-type").as_deref(),
        Some("Event")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn step_functions_start_an_execution_per_batch() {
    let moto = Moto::start().await;
    moto.api(
        "config",
        &json!({"stepfunctions": {"execute_state_machine": true}}),
    )
    .await;
    let sm_arn = pass_state_machine(&moto, "flow");
    let broker = broker_with_topic("sfn").await;
    produce(
        &broker.producer(),
        "sfn",
        &recs(5, |i| json!({"n": i}).to_string()),
    )
    .await;
    let p = aws_pipe(
        "to-sfn",
        &broker,
        "sfn",
        &sm_arn,
        100,
        json!({"InputTemplate": "{\"n\": <$.value.n>}"}),
    );
    let sluice = run_sluice(&p, &aws_endpoint_config(&moto.url), &[]);
    wait_committed(&sluice, &broker, "sluice-to-sfn", "sfn", 1, 5).await;
    let list = moto.aws(&[
        "stepfunctions",
        "list-executions",
        "--state-machine-arn",
        &sm_arn,
    ]);
    let mut got = Vec::new();
    for e in list["executions"].as_array().unwrap() {
        let d = moto.aws(&[
            "stepfunctions",
            "describe-execution",
            "--execution-arn",
            e["executionArn"].as_str().unwrap(),
        ]);
        got.extend(batch_ns(d["input"].as_str().unwrap()));
    }
    got.sort();
    assert_eq!(got, (0..5).collect::<Vec<_>>());
}

/// moto lacks `StartSyncExecution`: a local server answering it (awsJson1_0, `AWSStepFunctions.`
/// targets) records the inputs and reports success.
#[tokio::test(flavor = "multi_thread")]
async fn step_functions_express_request_response_uses_start_sync_execution() {
    let sfn = sync_execution_service().await;
    let broker = broker_with_topic("sync").await;
    produce(
        &broker.producer(),
        "sync",
        &recs(3, |i| json!({"n": i}).to_string()),
    )
    .await;
    let p = aws_pipe(
        "to-sfn-sync",
        &broker,
        "sync",
        &format!("arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:flow"),
        100,
        json!({"InputTemplate": "{\"n\": <$.value.n>}", "StepFunctionStateMachineParameters": {"InvocationType": "REQUEST_RESPONSE"}}),
    );
    let config = format!(
        "[targets.aws]\nservice_endpoints = {{ states = \"{}\" }}\n",
        sfn.url
    );
    let sluice = run_sluice(&p, &config, &[]);
    wait_committed(&sluice, &broker, "sluice-to-sfn-sync", "sync", 1, 3).await;
    let got = sync_execution_ns(&sfn, "flow");
    assert_eq!(got, vec![0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn unsupported_aws_targets_validate_and_fail_the_pipe_with_a_reason() {
    let broker = broker_with_topic("ecs").await;
    let p = aws_pipe(
        "to-ecs",
        &broker,
        "ecs",
        &format!("arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/c"),
        10,
        Value::Null,
    );
    let mut sluice = run_sluice(&p, "", &[]);
    let code = sluice.exited(WAIT).await;
    assert!(sluice.exit_code().is_some(), "sluice kept running");
    assert_ne!(code, Some(0));
    let log = sluice.log_text();
    assert!(log.contains("ECS task targets are not supported"), "{log}");
}

#[test]
fn batch_sizes_above_the_target_limit_are_rejected_with_the_limit() {
    for (target, limit) in [
        (format!("arn:aws:sqs:us-east-1:{ACCOUNT}:q"), 10),
        (format!("arn:aws:sns:us-east-1:{ACCOUNT}:t"), 10),
        (
            format!("arn:aws:events:us-east-1:{ACCOUNT}:event-bus/b"),
            10,
        ),
        (
            format!("arn:aws:firehose:us-east-1:{ACCOUNT}:deliverystream/f"),
            500,
        ),
        (format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/s"), 500),
    ] {
        let p = json!({
            "Name": "lim", "Source": "smk://127.0.0.1:9", "Target": target,
            "SourceParameters": {"SelfManagedKafkaParameters": {"TopicName": "t", "BatchSize": limit + 1}},
            "TargetParameters": {"KinesisStreamParameters": {"PartitionKey": "k"}}
        });
        let mut p = p;
        if !target.contains(":kinesis:") {
            p.as_object_mut().unwrap().remove("TargetParameters");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.json");
        std::fs::write(&file, p.to_string()).unwrap();
        let out = sluice_command()
            .arg("validate")
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{target}: {err}");
        assert!(err.contains(&format!("at most {limit}")), "{err}");
    }
}
