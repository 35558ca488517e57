//! The MSK API for the tests: moto has no `GetBootstrapBrokers`, so a small HTTP server on loopback
//! speaks its REST protocol (`GET /v1/clusters/{arn}/bootstrap-brokers`, restJson1: camelCase
//! fields, errors as `x-amzn-ErrorType` plus `{"message"}`), answering what the test set and
//! recording each cluster ARN asked for. And decoy listeners: plain TCP listeners on loopback that
//! count the connections they get, for the listeners a pipe must never use.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

/// What the MSK API answers.
#[derive(Debug, Clone)]
pub enum MskAnswer {
    /// 200 with these broker strings (`BootstrapBrokerStringTls` -> `host:port,...`).
    Brokers(Vec<(String, String)>),
    /// An AWS error: HTTP status, error code, message.
    Error(u16, String, String),
}

impl MskAnswer {
    /// Broker strings by their AWS field names.
    pub fn brokers(fields: &[(&str, &str)]) -> MskAnswer {
        MskAnswer::Brokers(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

/// The MSK API server; stopped on drop.
pub struct MskApi {
    pub url: String,
    answer: Arc<Mutex<MskAnswer>>,
    calls: Arc<Mutex<Vec<String>>>,
    shutdown: CancellationToken,
}

impl MskApi {
    pub async fn start(answer: MskAnswer) -> MskApi {
        use axum::http::{StatusCode, Uri};
        use axum::response::IntoResponse;
        let answer = Arc::new(Mutex::new(answer));
        let calls: Arc<Mutex<Vec<String>>> = Arc::default();
        let (a, c) = (answer.clone(), calls.clone());
        let handler = move |uri: Uri| {
            let (a, c) = (a.clone(), c.clone());
            async move {
                let path = uri.path();
                let Some(arn) = path
                    .strip_prefix("/v1/clusters/")
                    .and_then(|r| r.strip_suffix("/bootstrap-brokers"))
                else {
                    return (StatusCode::NOT_FOUND, "not an MSK API path").into_response();
                };
                let arn = percent_encoding::percent_decode_str(arn)
                    .decode_utf8_lossy()
                    .into_owned();
                c.lock().unwrap().push(arn);
                match a.lock().unwrap().clone() {
                    MskAnswer::Brokers(fields) => {
                        let body: Map<String, Value> = fields
                            .into_iter()
                            .map(|(k, v)| (camel_case(&k), Value::String(v)))
                            .collect();
                        (
                            [("content-type", "application/json")],
                            Value::Object(body).to_string(),
                        )
                            .into_response()
                    }
                    MskAnswer::Error(status, code, message) => (
                        StatusCode::from_u16(status).unwrap(),
                        [
                            ("content-type", "application/json".to_string()),
                            ("x-amzn-errortype", code),
                        ],
                        serde_json::json!({ "message": message }).to_string(),
                    )
                        .into_response(),
                }
            }
        };
        let app = axum::Router::new().fallback(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .unwrap();
        });
        MskApi {
            url,
            answer,
            calls,
            shutdown,
        }
    }

    /// Answer `answer` from now on.
    pub fn set(&self, answer: MskAnswer) {
        *self.answer.lock().unwrap() = answer;
    }

    /// The cluster ARN of each `GetBootstrapBrokers` call so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Drop for MskApi {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// `BootstrapBrokerStringTls` -> `bootstrapBrokerStringTls`, as restJson1 spells it on the wire.
fn camel_case(field: &str) -> String {
    let mut c = field.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// A TCP listener on loopback that counts connections and closes them at once; stopped on drop.
pub struct Decoy {
    pub addr: String,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Decoy {
    pub async fn start() -> Decoy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let n = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                n.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        Decoy {
            addr,
            connections,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Decoy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
