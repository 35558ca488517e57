//! Which protocol a broker's listener speaks, asked directly when the pipe's consumer cannot
//! connect at all: librdkafka retries a TLS client on a plaintext listener (or the reverse)
//! forever, and what it sees (a handshake that times out, a connection reset while asking for API
//! versions) also happens when a broker is merely down or restarting. A probe tells them apart:
//!
//! - a pipe using TLS sends one plaintext Kafka `ApiVersions` request: a well-formed answer means
//!   the listener is plaintext;
//! - a pipe using plaintext starts a TLS handshake (no certificate checks: only the protocol
//!   matters, and nothing is sent over it): a completed handshake or a TLS alert from the server
//!   means the listener speaks TLS.
//!
//! Anything else (refused, timed out, garbage) is inconclusive. Probes carry no credentials.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::health::SourceProblem;

/// Correlation id of the probe's request, checked in the answer.
const CORRELATION_ID: i32 = 0x51CE;

/// A Kafka `ApiVersions` v0 request (allowed before any authentication), size-prefixed.
fn api_versions_request() -> Vec<u8> {
    let client_id = b"sluice-probe";
    let mut body = Vec::with_capacity(10 + client_id.len());
    body.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    body.extend_from_slice(&0i16.to_be_bytes()); // version 0
    body.extend_from_slice(&CORRELATION_ID.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// Whether the first bytes of an answer are a Kafka response to our request.
fn is_kafka_answer(header: &[u8; 8]) -> bool {
    let size = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let correlation = i32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    (4..=1 << 20).contains(&size) && correlation == CORRELATION_ID
}

fn connect(address: &str, timeout: Duration) -> Option<TcpStream> {
    let addrs: Vec<SocketAddr> = address.to_socket_addrs().ok()?.collect();
    let stream = addrs
        .iter()
        .find_map(|a| TcpStream::connect_timeout(a, timeout).ok())?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    Some(stream)
}

/// Whether `address` answers a Kafka request in plaintext. Blocking.
pub fn answers_plaintext(address: &str, timeout: Duration) -> bool {
    let Some(mut stream) = connect(address, timeout) else {
        return false;
    };
    if stream.write_all(&api_versions_request()).is_err() {
        return false;
    }
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).is_ok() && is_kafka_answer(&header)
}

/// Whether `address` speaks TLS: a handshake completes, or the server answers with a TLS alert.
/// Blocking.
pub fn speaks_tls(address: &str, timeout: Duration) -> bool {
    use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslVerifyMode};
    let Some(stream) = connect(address, timeout) else {
        return false;
    };
    let Ok(mut builder) = SslConnector::builder(SslMethod::tls_client()) else {
        return false;
    };
    // Only the protocol matters here; the consumer itself always verifies the broker.
    builder.set_verify(SslVerifyMode::NONE);
    let Ok(config) = builder.build().configure() else {
        return false;
    };
    let config = config
        .verify_hostname(false)
        .use_server_name_indication(false);
    match config.connect("", stream) {
        Ok(_) => true,
        Err(HandshakeError::Failure(mid)) => mid
            .error()
            .ssl_error()
            .is_some_and(|stack| stack.to_string().contains("alert")),
        Err(_) => false,
    }
}

/// Probe the bootstrap servers of a pipe that uses TLS (`tls`) or plaintext: the mismatch when a
/// listener speaks the other protocol and none speaks ours. Blocking (one connection per server,
/// each bounded by `timeout`).
pub fn mismatch(
    bootstrap_servers: &[String],
    tls: bool,
    timeout: Duration,
) -> Option<SourceProblem> {
    let mut found = None;
    for address in bootstrap_servers {
        let other = if tls {
            answers_plaintext(address, timeout)
        } else {
            speaks_tls(address, timeout)
        };
        if !other {
            // Down, or speaking our protocol: not (only) a mismatch.
            return None;
        }
        found.get_or_insert_with(|| {
            let address = address.clone();
            if tls {
                SourceProblem::PlaintextListener { address }
            } else {
                SourceProblem::TlsListener { address }
            }
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A listener that answers each connection with `answer` after reading a request, once.
    fn server(answer: Vec<u8>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf);
                let _ = s.write_all(&answer);
            }
        });
        addr
    }

    #[test]
    fn a_kafka_answer_is_recognised_and_nothing_else() {
        let req = api_versions_request();
        assert_eq!(&req[..4], &((req.len() - 4) as i32).to_be_bytes());
        assert_eq!(&req[4..6], &18i16.to_be_bytes());
        let t = Duration::from_secs(2);
        let mut answer = 6i32.to_be_bytes().to_vec();
        answer.extend_from_slice(&CORRELATION_ID.to_be_bytes());
        answer.extend_from_slice(&[0, 0]);
        assert!(answers_plaintext(&server(answer), t));
        // A TLS alert record (what a TLS listener sends to a plaintext client).
        assert!(!answers_plaintext(
            &server(vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46, 0]),
            t
        ));
        // Nothing listens.
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        assert!(!answers_plaintext(&closed, t));
        assert!(!speaks_tls(&closed, t));
        assert_eq!(mismatch(&[closed], true, t), None);
        // A plaintext server is no TLS listener.
        assert!(!speaks_tls(&server(b"not tls at all".to_vec()), t));
    }
}
