//! A moto server per test (free loopback port, killed on drop) that records every request it
//! receives, the `aws` CLI pointed at it, and `sluice run` with AWS credentials and a `--config`.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use super::{free_port, pipe, tool, Broker, BrokerOptions, Launch, Rec, Sluice};

pub const AWS_KEY_ID: &str = "AKIATESTTESTTEST0001";
pub const AWS_SECRET_KEY: &str = "aws-SECRET-key-for-moto-0123456789abcdef";
/// moto's default account.
pub const ACCOUNT: &str = "123456789012";

/// Credentials and region for clients of moto.
pub fn aws_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", AWS_KEY_ID.into()),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET_KEY.into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Call {
    /// `X-Amz-Target` (JSON protocols), `Action` (query protocols) or the URL path.
    pub operation: String,
    pub url: String,
    pub headers: serde_json::Map<String, Value>,
    pub body: Vec<u8>,
}

impl Call {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str().map(str::to_string))
    }
}

pub struct Moto {
    child: Child,
    pub url: String,
    recording: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    pub async fn start() -> Moto {
        let dir = tempfile::tempdir().unwrap();
        let recording = dir.path().join("recording.jsonl");
        let port = free_port();
        let child = Command::new(tool("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_ENABLE_RECORDING", "1")
            .env("MOTO_RECORDER_FILEPATH", &recording)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (scripts/setup installs it)");
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
            recording,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto
    }

    /// `POST /moto-api/<path>` with a JSON body.
    pub async fn api(&self, path: &str, body: &Value) {
        let resp = reqwest::Client::new()
            .post(format!("{}/moto-api/{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("moto api");
        assert!(
            resp.status().is_success(),
            "moto api {path}: {}",
            resp.status()
        );
    }

    /// Queue what moto's docker-less Lambda answers to its next invocation (it echoes the
    /// payload when nothing is queued).
    pub async fn lambda_result(&self, result: &str) {
        self.api(
            "static/lambda-simple/response",
            &serde_json::json!({"account_id": ACCOUNT, "region": "us-east-1", "results": [result]}),
        )
        .await;
    }

    /// Run the `aws` CLI against moto; the JSON output (Null when there is none).
    pub fn aws(&self, args: &[&str]) -> Value {
        let out = Command::new(tool("aws"))
            .args([
                "--endpoint-url",
                &self.url,
                "--region",
                "us-east-1",
                "--output",
                "json",
            ])
            .args(args)
            .envs(aws_env())
            .output()
            .expect("aws cli");
        assert!(
            out.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Every request moto received so far (except `/moto-api`), in order.
    pub fn calls(&self) -> Vec<Call> {
        calls_in(&std::fs::read_to_string(&self.recording).unwrap_or_default())
    }

    /// Recorded calls whose operation ends with `op` (`SendMessageBatch`, `PutRecords`...).
    pub fn calls_of(&self, op: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.operation.ends_with(op))
            .collect()
    }
}

/// The calls of a recording. moto's threads append an entry and its newline in two writes, so two
/// calls recorded at once can share a line: the text is read as a stream of JSON values, not by
/// line. A value still being written at the end is left for the next read.
fn calls_in(text: &str) -> Vec<Call> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .map_while(Result::ok)
        .filter_map(|e| call_of(&e))
        .collect()
}

/// One recorded entry as a call; `None` for moto's own API.
fn call_of(e: &Value) -> Option<Call> {
    let url = e["url"].as_str()?.to_string();
    if url.contains("/moto-api/") {
        return None;
    }
    let headers = e["headers"].as_object().cloned().unwrap_or_default();
    let body = match (&e["body"], e["body_encoded"].as_bool()) {
        (Value::String(b), Some(true)) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .unwrap_or_default(),
        (Value::String(b), _) => b.as_bytes().to_vec(),
        _ => Vec::new(),
    };
    let mut call = Call {
        operation: String::new(),
        url,
        headers,
        body,
    };
    call.operation = call
        .header("x-amz-target")
        .or_else(|| {
            url::form_urlencoded::parse(&call.body)
                .find(|(k, _)| k == "Action")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_else(|| call.url.clone());
    Some(call)
}

#[test]
fn regression_two_calls_recorded_at_once_on_one_line_were_lost() {
    let entry = |target: &str| {
        serde_json::json!({"url": "/", "method": "POST", "headers": {"X-Amz-Target": target},
            "body": "{}", "body_encoded": false})
        .to_string()
    };
    // What two moto threads appending at once leave, and a third entry still being written.
    let a = entry("Logs_20140328.PutLogEvents");
    let b = entry("Firehose_20150804.PutRecordBatch");
    let c = entry("Logs_20140328.PutLogEvents");
    let text = format!("{a}{b}\n\n{}", &c[..c.len() / 2]);
    let ops: Vec<String> = calls_in(&text).into_iter().map(|c| c.operation).collect();
    assert_eq!(
        ops,
        [
            "Logs_20140328.PutLogEvents",
            "Firehose_20150804.PutRecordBatch"
        ]
    );
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sluice run` on `pipe` with AWS credentials in its environment plus `env`, and a config file
/// holding `config_toml` (e.g. `[targets.aws]` pointing at moto).
pub fn run_sluice(pipe: &Value, config_toml: &str, env: &[(&str, String)]) -> Sluice {
    let mut envs = aws_env();
    envs.extend(env.iter().cloned());
    let launch = Launch {
        config: Some(config_toml),
        env: &envs,
        log: "info,sluice=debug",
        ..Launch::default()
    };
    Sluice::spawn(pipe, &launch)
}

/// `[targets.aws]` sending every AWS call to `url`.
pub fn aws_endpoint_config(url: &str) -> String {
    format!("[targets.aws]\nendpoint_url = \"{url}\"\n")
}

// ------------------------------------------------------------------------------------------------
// Pipes to AWS targets

/// A broker holding `topic` with one partition.
pub async fn broker_with_topic(topic: &str) -> Broker {
    let broker = Broker::start("targets-aws", &BrokerOptions::memory());
    broker.create_topic(topic, 1).await;
    broker
}

/// `n` records of partition 0, keys `k<i>`, values `value(i)`.
pub fn recs(n: usize, value: impl Fn(usize) -> String) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec::kv(0, &format!("k{i}"), &value(i)))
        .collect()
}

/// A pipe from `topic` to `target` with `BatchSize` and the given target parameters.
pub fn aws_pipe(
    name: &str,
    broker: &Broker,
    topic: &str,
    target: &str,
    batch: usize,
    tp: Value,
) -> Value {
    let mut p = pipe(name, broker, topic, target);
    p["SourceParameters"]["SelfManagedKafkaParameters"]["BatchSize"] = json!(batch);
    // Let batches fill, so splitting is exercised rather than avoided.
    p["SourceParameters"]["SelfManagedKafkaParameters"]["MaximumBatchingWindowInSeconds"] =
        json!(1);
    if !tp.is_null() {
        p["TargetParameters"] = tp;
    }
    p
}

/// Entries per call of `op`, from moto's recording.
pub fn entries_per_call(moto: &Moto, op: &str, field: &str) -> Vec<usize> {
    moto.calls_of(op)
        .iter()
        .map(|c| c.json()[field].as_array().map_or(0, Vec::len))
        .collect()
}

/// Receive (and delete) up to `n` messages of an SQS queue.
pub fn sqs_receive_all(moto: &Moto, url: &str, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    for _ in 0..50 {
        if got.len() >= n {
            break;
        }
        let out = moto.aws(&[
            "sqs",
            "receive-message",
            "--queue-url",
            url,
            "--max-number-of-messages",
            "10",
            "--attribute-names",
            "All",
        ]);
        for m in out["Messages"].as_array().into_iter().flatten() {
            got.push(m.clone());
            moto.aws(&[
                "sqs",
                "delete-message",
                "--queue-url",
                url,
                "--receipt-handle",
                m["ReceiptHandle"].as_str().unwrap(),
            ]);
        }
    }
    got
}

/// The `n` field of `n` JSON messages received from the queue at `url`, sorted.
pub fn sqs_ns(moto: &Moto, url: &str, n: usize) -> Vec<i64> {
    let mut ns: Vec<i64> = sqs_receive_all(moto, url, n)
        .iter()
        .map(|m| {
            serde_json::from_str::<Value>(m["Body"].as_str().unwrap()).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    ns.sort();
    ns
}

// ------------------------------------------------------------------------------------------------
// AWS resources in moto

/// A Kinesis stream `name` with one shard.
pub fn kinesis_stream(moto: &Moto, name: &str) {
    moto.aws(&[
        "kinesis",
        "create-stream",
        "--stream-name",
        name,
        "--shard-count",
        "1",
    ]);
}

/// A Firehose delivery stream `name` writing to a new S3 bucket `bucket`.
pub fn firehose_to_bucket(moto: &Moto, name: &str, bucket: &str) {
    moto.aws(&["s3api", "create-bucket", "--bucket", bucket]);
    moto.aws(&[
        "firehose",
        "create-delivery-stream",
        "--delivery-stream-name",
        name,
        "--extended-s3-destination-configuration",
        &format!("RoleARN=arn:aws:iam::{ACCOUNT}:role/fh,BucketARN=arn:aws:s3:::{bucket}"),
    ]);
}

/// A CloudWatch Logs group `group` with a stream `stream`.
pub fn log_group_with_stream(moto: &Moto, group: &str, stream: &str) {
    moto.aws(&["logs", "create-log-group", "--log-group-name", group]);
    moto.aws(&[
        "logs",
        "create-log-stream",
        "--log-group-name",
        group,
        "--log-stream-name",
        stream,
    ]);
}

/// The events of stream `stream` of log group `group`, oldest first (`get-log-events`).
pub fn log_events(moto: &Moto, group: &str, stream: &str) -> Value {
    moto.aws(&[
        "logs",
        "get-log-events",
        "--log-group-name",
        group,
        "--log-stream-name",
        stream,
        "--start-from-head",
    ])
}

/// A Step Functions state machine `name` of one Pass state; returns its ARN.
pub fn pass_state_machine(moto: &Moto, name: &str) -> String {
    let sm = moto.aws(&[
        "stepfunctions",
        "create-state-machine",
        "--name",
        name,
        "--role-arn",
        &format!("arn:aws:iam::{ACCOUNT}:role/sfn"),
        "--definition",
        r#"{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#,
    ]);
    sm["stateMachineArn"].as_str().unwrap().to_string()
}

/// A Lambda function in moto (docker-less: it answers with its payload, or with what
/// [`Moto::lambda_result`] queued).
pub async fn lambda_function(moto: &Moto, name: &str) -> String {
    moto.api("config", &json!({"lambda": {"use_docker": false}}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("f.zip");
    let status = Command::new(tool("python"))
        .args([
            "-c",
            "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], 'w'); z.writestr('index.py', 'def handler(e, c):\\n    return e\\n'); z.close()",
        ])
        .arg(&zip)
        .status()
        .unwrap();
    assert!(status.success());
    moto.aws(&[
        "iam",
        "create-role",
        "--role-name",
        "fn-role",
        "--assume-role-policy-document",
        "{}",
    ]);
    let f = moto.aws(&[
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        "python3.12",
        "--role",
        &format!("arn:aws:iam::{ACCOUNT}:role/fn-role"),
        "--handler",
        "index.handler",
        "--zip-file",
        &format!("fileb://{}", zip.display()),
    ]);
    f["FunctionArn"].as_str().unwrap().to_string()
}

// ------------------------------------------------------------------------------------------------
// A local AWS JSON-protocol service, for what moto lacks

/// What [`JsonService`] answers: from the operation (`X-Amz-Target`) and the request.
pub type JsonAnswer = Arc<dyn Fn(&str, &Value) -> Value + Send + Sync>;

/// A loopback server speaking an AWS JSON protocol (`POST /`, `X-Amz-Target`, JSON bodies) that
/// records every request and answers with `answer`; stopped on drop.
pub struct JsonService {
    /// `http://127.0.0.1:<port>`, an endpoint URL.
    pub url: String,
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    server: tokio::task::JoinHandle<()>,
}

impl JsonService {
    /// Serve with responses of `content_type` (`application/x-amz-json-1.0` or `-1.1`).
    pub async fn start(content_type: &'static str, answer: JsonAnswer) -> JsonService {
        use axum::http::HeaderMap;
        let calls: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let c = calls.clone();
        let app =
            axum::Router::new().fallback(move |headers: HeaderMap, body: axum::body::Bytes| {
                let c = c.clone();
                let answer = answer.clone();
                async move {
                    let op = headers
                        .get("x-amz-target")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let out = answer(&op, &req);
                    c.lock().unwrap().push((op, req));
                    ([("content-type", content_type)], out.to_string())
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        JsonService {
            url: format!("http://{addr}"),
            calls,
            server,
        }
    }

    /// (operation, request) of every request so far, in order.
    pub fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().unwrap().clone()
    }
}

impl Drop for JsonService {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A local Step Functions endpoint answering every `StartSyncExecution` with success (moto lacks
/// the operation).
pub async fn sync_execution_service() -> JsonService {
    JsonService::start(
        "application/x-amz-json-1.0",
        Arc::new(|_, _| {
            json!({
                "executionArn": format!("arn:aws:states:us-east-1:{ACCOUNT}:express:flow:1"),
                "startDate": 1700000000.0, "stopDate": 1700000001.0,
                "status": "SUCCEEDED", "output": "{}"
            })
        }),
    )
    .await
}

/// The `n` of every batch element the calls to `sfn` carried, in order; each call must be a
/// `StartSyncExecution` of a state machine named `machine`.
pub fn sync_execution_ns(sfn: &JsonService, machine: &str) -> Vec<i64> {
    let mut got = Vec::new();
    for (op, req) in sfn.calls() {
        assert_eq!(op, "AWSStepFunctions.StartSyncExecution");
        assert!(req["stateMachineArn"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":stateMachine:{machine}")));
        got.extend(batch_ns(req["input"].as_str().unwrap()));
    }
    got
}

/// The `n` of every element of `input`, a batch as a JSON array (a Step Functions input).
pub fn batch_ns(input: &str) -> Vec<i64> {
    let batch: Vec<Value> = serde_json::from_str(input).unwrap();
    batch.iter().map(|v| v["n"].as_i64().unwrap()).collect()
}

/// An SNS topic `name` with an SQS queue `<name>-sub` subscribed to it (raw delivery, so each
/// queue message is one published message): (topic ARN, queue URL).
pub fn sns_topic_with_queue(moto: &Moto, name: &str) -> (String, String) {
    let topic = moto.aws(&["sns", "create-topic", "--name", name]);
    let topic_arn = topic["TopicArn"].as_str().unwrap().to_string();
    let queue = format!("{name}-sub");
    let q = moto.aws(&["sqs", "create-queue", "--queue-name", &queue]);
    let url = q["QueueUrl"].as_str().unwrap().to_string();
    moto.aws(&[
        "sns",
        "subscribe",
        "--topic-arn",
        &topic_arn,
        "--protocol",
        "sqs",
        "--notification-endpoint",
        &format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{queue}"),
        "--attributes",
        "RawMessageDelivery=true",
    ]);
    (topic_arn, url)
}
