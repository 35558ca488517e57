//! A real HTTP server on loopback that records every request and answers as the test says.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the receiver saw.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// When the request came in (recorded before the reply's delay).
    pub at: Instant,
    /// How long the reply was held back.
    pub delay: Duration,
    pub body: Vec<u8>,
    pub headers: HashMap<String, String>,
    pub path_and_query: String,
    pub status: u16,
}

/// What the receiver answers to request number `n` (0-based).
pub type Behaviour = Arc<dyn Fn(usize, &[u8]) -> Reply + Send + Sync>;

/// An answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
    pub headers: Vec<(String, String)>,
    /// The response body (`ok` when `None`).
    pub body: Option<String>,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply {
            status: 200,
            delay: Duration::ZERO,
            headers: vec![],
            body: None,
        }
    }

    /// This reply with `body` as its body.
    pub fn with_body(mut self, body: &str) -> Reply {
        self.body = Some(body.to_string());
        self
    }
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            ..Reply::ok()
        }
    }
}

/// A real HTTP server on loopback that records every request.
pub struct Receiver {
    pub url: String,
    pub arrivals: Arc<Mutex<Vec<Arrival>>>,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> Receiver {
        use axum::body::Bytes;
        use axum::http::{HeaderMap, StatusCode, Uri};
        let arrivals: Arc<Mutex<Vec<Arrival>>> = Arc::default();
        let counter = Arc::new(AtomicUsize::new(0));
        let a = arrivals.clone();
        let handler = move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let a = a.clone();
            let behaviour = behaviour.clone();
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                let reply = behaviour(n, &body);
                a.lock().unwrap().push(Arrival {
                    at: Instant::now(),
                    delay: reply.delay,
                    body: body.to_vec(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                        .collect(),
                    path_and_query: uri
                        .path_and_query()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    status: reply.status,
                });
                if !reply.delay.is_zero() {
                    tokio::time::sleep(reply.delay).await;
                }
                let body = reply.body.unwrap_or_else(|| "ok".into());
                let mut resp = axum::response::Response::new(axum::body::Body::from(body));
                *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap();
                for (k, v) in reply.headers {
                    resp.headers_mut().insert(
                        axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                        v.parse().unwrap(),
                    );
                }
                resp
            }
        };
        let app = axum::Router::new().fallback(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let s = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await
                .unwrap();
        });
        Receiver {
            url: format!("http://{addr}/in"),
            arrivals,
            shutdown,
        }
    }

    pub async fn ok() -> Receiver {
        Self::start(Arc::new(|_, _| Reply::ok())).await
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().unwrap().clone()
    }

    /// Bodies of successful (2xx) requests.
    pub fn accepted(&self) -> Vec<serde_json::Value> {
        self.arrivals()
            .into_iter()
            .filter(|a| (200..300).contains(&a.status))
            .map(|a| serde_json::from_slice(&a.body).unwrap())
            .collect()
    }

    pub fn count(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
