//! The API's accept loop: HTTP/1.1 over TCP or TLS with the [`ListenerLimits`] applied.
//!
//! - a connection slot (a semaphore of `max_connections` permits) is taken *before* `accept`, so
//!   over the cap new connections wait in the kernel's backlog instead of being refused;
//! - hyper's HTTP/1 server runs with a timer, so its header-read timeout applies (it starts
//!   whenever the connection waits for a request: it is also the keep-alive idle timeout); the
//!   TLS handshake gets the same bound;
//! - every request body gets the total deadline of [`DeadlineBody`] and the body limit (axum's
//!   `DefaultBodyLimit` for routes using extractors), whichever route reads it;
//! - at shutdown: no new connections, open ones are asked to finish their request and close,
//!   and those still open after `shutdown_drain` are cut.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::body::DeadlineBody;
use super::limits::ListenerLimits;

/// File descriptors kept for everything but API connections (store, brokers, logs, metrics).
const SPARE_FDS: u64 = 256;

/// Raise the soft open-files limit (often 1,024) so `max_connections` connections can be held
/// (as Go's runtime raises it at start), never above the hard limit; a warning when even that is
/// too low, since accepting then fails with "too many open files" before the cap is reached.
pub fn ensure_open_files(max_connections: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let wanted = max_connections as u64 + SPARE_FDS;
    // `None` is unlimited.
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft >= wanted {
        return;
    }
    let target = limit.maximum.map_or(wanted, |hard| hard.min(wanted));
    let raised = target > soft
        && setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum: limit.maximum,
            },
        )
        .is_ok();
    let now = if raised { target } else { soft };
    if now < wanted {
        tracing::warn!(
            open_files_limit = now,
            max_connections,
            "the open-files limit is below listener.max_connections + {SPARE_FDS}: raise it \
             (ulimit -n) or lower max_connections"
        );
    }
}

/// Serve `app` on `tcp` (TLS when `tls` is given) until `shutdown`, then drain.
pub async fn run(
    tcp: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: ListenerLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // Routes reading their body with axum's extractors get the same limit as the API's.
    let app = app
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            limits.body_read_timeout,
            body_deadline,
        ));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let cut = CancellationToken::new();
    while let Some((stream, peer, slot)) = next_connection(&tcp, &slots, &shutdown).await {
        let conn = Connection {
            app: app.clone(),
            limits,
            shutdown: shutdown.clone(),
            cut: cut.clone(),
            _slot: slot,
        };
        connections.spawn(conn.serve(stream, peer, tls.clone()));
    }
    drop(tcp);
    drain(connections, cut, limits.shutdown_drain).await;
    Ok(())
}

/// The next accepted connection with its slot, or `None` at shutdown.
async fn next_connection(
    tcp: &TcpListener,
    slots: &Arc<Semaphore>,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = tokio::select! {
        _ = shutdown.cancelled() => return None,
        slot = slots.clone().acquire_owned() => slot.ok()?,
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            accepted = tcp.accept() => match accepted {
                Ok((stream, peer)) => return Some((stream, peer, slot)),
                // Out of file descriptors, or a connection reset before it was accepted: the
                // listener itself is fine, so wait a little (no busy loop) and go on.
                Err(e) => {
                    tracing::warn!(error = %e, "accepting an API connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// Wait up to `bound` for the open connections, then cut the rest.
async fn drain(connections: TaskTracker, cut: CancellationToken, bound: Duration) {
    connections.close();
    if tokio::time::timeout(bound, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            drain_ms = bound.as_millis() as u64,
            "cutting API connections still open after the shutdown drain"
        );
        cut.cancel();
        connections.wait().await;
    }
}

/// Give every request body the listener's deadline.
async fn body_deadline(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    next.run(req.map(|b| Body::new(DeadlineBody::new(b, timeout))))
        .await
}

/// One accepted connection and what it needs.
struct Connection {
    app: Router,
    limits: ListenerLimits,
    shutdown: CancellationToken,
    cut: CancellationToken,
    /// Held until the connection ends.
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(self, stream: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>) {
        let _ = stream.set_nodelay(true);
        let Some(tls) = tls else {
            return self.http(stream, peer).await;
        };
        let handshake = tokio::time::timeout(self.limits.header_read_timeout, tls.accept(stream));
        let stream = tokio::select! {
            _ = self.cut.cancelled() => return,
            done = handshake => match done {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            },
        };
        self.http(stream, peer).await
    }

    async fn http<I>(self, io: I, peer: SocketAddr)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout);
        let service = TowerToHyperService::new(self.app);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        let mut conn = std::pin::pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            _ = self.shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                tokio::select! {
                    r = conn.as_mut() => r,
                    _ = self.cut.cancelled() => return,
                }
            }
        };
        if let Err(e) = result {
            // Timeouts, resets and malformed requests: the client's business.
            tracing::debug!(%peer, error = %e, "API connection ended");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn over_the_cap_a_connection_waits_for_a_slot_and_shutdown_cuts_stalled_ones() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let limits = ListenerLimits {
            max_connections: 1,
            header_read_timeout: Duration::from_secs(60),
            shutdown_drain: Duration::from_millis(200),
            ..ListenerLimits::default()
        };
        // Reads the body (a POST's), so a stalled body holds its request open.
        let app = Router::new().fallback(|body: String| async move {
            if body.is_empty() {
                "ok".to_string()
            } else {
                body
            }
        });
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(run(tcp, app, None, limits, shutdown.clone()));
        // The one slot: a connection that stalls mid-headers.
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let waiting = tokio::spawn(get(addr));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waiting.is_finished(),
            "a connection over the cap was served"
        );
        drop(stalled);
        let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiting connection was served once the slot freed")
            .unwrap();
        assert!(answer.ends_with("ok"), "{answer}");

        // A connection served once (so it is surely accepted), then stalled mid-body.
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut first = Vec::new();
        while !first.ends_with(b"\r\n\r\nok") {
            let mut buf = [0u8; 256];
            let n = stalled.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early");
            first.extend_from_slice(&buf[..n]);
        }
        stalled
            .write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc")
            .await
            .unwrap();
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the drain is bounded")
            .unwrap()
            .unwrap();
        let mut rest = Vec::new();
        assert_eq!(stalled.read_to_end(&mut rest).await.unwrap_or(0), 0);
    }

    #[tokio::test]
    async fn the_header_timeout_also_closes_an_idle_keep_alive_connection() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let limits = ListenerLimits {
            header_read_timeout: Duration::from_millis(200),
            ..ListenerLimits::default()
        };
        let app = Router::new().fallback(|| async { "ok" });
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(run(tcp, app, None, limits, shutdown.clone()));
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        // The answer, then nothing more: the connection is closed once idle for the timeout.
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut got))
            .await
            .expect("an idle keep-alive connection stayed open")
            .unwrap();
        assert!(
            got.ends_with(b"\r\n\r\nok"),
            "{}",
            String::from_utf8_lossy(&got)
        );
        shutdown.cancel();
        server.await.unwrap().unwrap();
    }
}
