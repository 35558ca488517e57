//! A moto server per test (free loopback port, killed on drop) that records every request it
//! receives, the `aws` CLI pointed at it, and `sluice run` with AWS credentials and a `--config`.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use super::Sluice;

pub const AWS_KEY_ID: &str = "AKIATESTTESTTEST0001";
pub const AWS_SECRET_KEY: &str = "aws-SECRET-key-for-moto-0123456789abcdef";
/// moto's default account.
pub const ACCOUNT: &str = "123456789012";

/// A tool of the test venv (`moto_server`, `aws`, `python`), or from PATH.
pub fn venv_tool(name: &str) -> PathBuf {
    let cache = std::env::var_os("SLUICE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/sluice"));
    let p = cache.join("venv/bin").join(name);
    if p.exists() {
        p
    } else {
        PathBuf::from(name)
    }
}

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
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(venv_tool("moto_server"))
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
        let out = Command::new(venv_tool("aws"))
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
        let text = std::fs::read_to_string(&self.recording).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|e| {
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
            })
            .collect()
    }

    /// Recorded calls whose operation ends with `op` (`SendMessageBatch`, `PutRecords`...).
    pub fn calls_of(&self, op: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.operation.ends_with(op))
            .collect()
    }
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
    Sluice::spawn(pipe, &[], Some(config_toml), &envs, "info,sluice=debug")
}

/// `[targets.aws]` sending every AWS call to `url`.
pub fn aws_endpoint_config(url: &str) -> String {
    format!("[targets.aws]\nendpoint_url = \"{url}\"\n")
}
