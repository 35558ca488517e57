//! Fuzz target: requests to the AWS Pipes API as served by `sluice serve` (the real `api::serve`
//! on loopback, over HTTP/1.1, with an in-memory store): arbitrary method, path, query and body.
//! The engine must answer every request (no panic, no dropped connection) with a JSON body and no
//! 5xx; a refusal carries `x-amzn-errortype` and a `message`; a pipe it reports created can be
//! described under its name. Pipes created by one input are deleted before the next, and their
//! deletion must finish.
//!
//! Run it without network (`unshare -rn`, loopback up): a valid definition starts a pipe whose
//! consumer tries to reach the brokers the input names.
//!
//! Input layout: one byte choosing the method, then `path[?query] [NUL body]`.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sluice::api::{self, ApiState, Auth};
use sluice::control::PipeManager;
use sluice::metrics::Metrics;
use sluice::model::ValidationContext;
use sluice::runtime::RuntimeOptions;
use sluice::store::MemoryStore;
use tokio_util::sync::CancellationToken;

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"];
const DELETE_DEADLINE: Duration = Duration::from_secs(30);

struct Engine {
    rt: tokio::runtime::Runtime,
    manager: PipeManager,
    addr: std::net::SocketAddr,
    conn: Mutex<Option<SendRequest<Full<Bytes>>>>,
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (manager, addr) = rt.block_on(async {
            let options = RuntimeOptions {
                shutdown_timeout: Duration::from_secs(1),
                revoke_timeout: Duration::from_secs(1),
                ..RuntimeOptions::default()
            };
            let manager = PipeManager::open(
                Arc::new(MemoryStore::new()),
                ValidationContext::default(),
                Arc::new(Metrics::new()),
                options,
                sluice::control::ClusterOptions::default(),
            )
            .await
            .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let state = Arc::new(ApiState {
                console: None,
                manager: manager.clone(),
                auth: Auth::AcceptAny,
                limits: Default::default(),
                tls: false,
            });
            tokio::spawn(api::serve(listener, state, None, CancellationToken::new()));
            (manager, addr)
        });
        Engine {
            rt,
            manager,
            addr,
            conn: Mutex::new(None),
        }
    })
}

impl Engine {
    async fn connect(&self) -> SendRequest<Full<Bytes>> {
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        sender
    }

    /// Send one request on the kept-alive connection; status, headers and body.
    async fn send(&self, req: http::Request<Full<Bytes>>) -> (http::StatusCode, http::HeaderMap, Bytes) {
        let mut sender = match self.conn.lock().unwrap().take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await,
        };
        sender.ready().await.expect("the engine closed the connection");
        let resp = sender
            .send_request(req)
            .await
            .expect("the engine did not answer");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("response body").to_bytes();
        *self.conn.lock().unwrap() = Some(sender);
        (parts.status, parts.headers, body)
    }

    /// Delete every pipe and wait until they are gone.
    async fn clear(&self) {
        let started = Instant::now();
        loop {
            let pipes = self.manager.list().await.unwrap_or_default();
            if pipes.is_empty() {
                return;
            }
            for p in pipes {
                let _ = self.manager.delete(&p.record.name).await;
            }
            assert!(started.elapsed() < DELETE_DEADLINE, "a pipe's deletion did not finish");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn request(method: &str, target: &str, body: &[u8]) -> Option<http::Request<Full<Bytes>>> {
    let uri = http::Uri::try_from(target).ok()?;
    uri.path_and_query()?;
    http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "pipes.local")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .ok()
}

fn check_answer(method: &str, status: http::StatusCode, headers: &http::HeaderMap, body: &[u8]) -> Option<Value> {
    assert!(!status.is_server_error(), "{status}: {}", String::from_utf8_lossy(body));
    if method == "HEAD" {
        return None;
    }
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{status} with a body that is not JSON ({e}): {body:?}"));
    assert!(v.is_object(), "{status}: body is not an object");
    if status != http::StatusCode::OK {
        assert!(headers.contains_key("x-amzn-errortype"), "{status} without x-amzn-errortype");
        assert!(v["message"].is_string(), "{status} without a message: {v}");
    }
    Some(v)
}

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = METHODS[m as usize % METHODS.len()];
    let (path, body) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    let target = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    let Some(req) = request(method, &target, body) else {
        return;
    };
    let e = engine();
    e.rt.block_on(async {
        let (status, headers, body) = e.send(req).await;
        let answer = check_answer(method, status, &headers, &body);
        let created = method == "POST"
            && status == http::StatusCode::OK
            && answer.as_ref().is_some_and(|v| v["CurrentState"] == "CREATING");
        if created {
            let name = answer.as_ref().unwrap()["Name"].as_str().expect("Name").to_string();
            let req = request("GET", &format!("/v1/pipes/{name}"), b"").expect("describe request");
            let (status, headers, body) = e.send(req).await;
            let v = check_answer("GET", status, &headers, &body).unwrap();
            assert_eq!(status, http::StatusCode::OK, "created pipe {name} cannot be described: {v}");
            assert_eq!(v["Name"], name.as_str());
        }
        e.clear().await;
    });
});
