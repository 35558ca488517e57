//! The `[listener]` section of the serve config: how long the API listener waits for a client,
//! how many connections it holds, how large a request body may be, and how long shutdown waits
//! for open connections. [`ListenerConfig::validate`] turns it into [`ListenerLimits`].
//!
//! ```toml
//! [listener]
//! header_read_timeout_ms = 20000   # request line + headers, and a keep-alive connection's idle time
//! body_read_timeout_ms = 30000     # the whole body, from the end of the headers
//! max_body_bytes = 262144          # larger bodies answer 413
//! max_connections = 1024           # more wait in the kernel's accept backlog
//! shutdown_drain_ms = 10000        # at SIGTERM, connections still open after this are cut
//! ```

use std::time::Duration;

use serde::Deserialize;

/// The listener settings as written in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Time a client has to send a request's line and headers, in milliseconds, counted from
    /// the moment the connection waits for a request (accepted, TLS handshake included, or done
    /// with the previous one), so it is also the keep-alive idle timeout. Default 20,000
    /// (hyper: 30 s; nginx `client_header_timeout`: 60 s; an ALB's idle timeout: 60 s).
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// Time a client has to send the whole body once the headers are in, in milliseconds; a
    /// body still incomplete then answers 408 and the connection is closed. A total, not a gap
    /// between reads, so a trickling client cannot hold a connection. Default 30,000.
    #[serde(default = "default_body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    /// Largest request body, in bytes; a larger one answers 413 naming this limit, and is never
    /// read past it. Default 262,144 (256 KiB: the largest pipe definition AWS accepts, five
    /// 4 KiB filters and an 8 KiB input template with every other field at its maximum, is far
    /// smaller).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Most connections held open at once; further connections are not accepted until one
    /// closes (they wait in the kernel's backlog, so a burst is delayed, not refused). The soft
    /// open-files limit is raised to fit (up to the hard limit). Default 1,024.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// At SIGTERM, how long open connections may finish their request, in milliseconds; those
    /// still open then (a stalled client) are cut. Default 10,000.
    #[serde(default = "default_shutdown_drain_ms")]
    pub shutdown_drain_ms: u64,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            header_read_timeout_ms: default_header_read_timeout_ms(),
            body_read_timeout_ms: default_body_read_timeout_ms(),
            max_body_bytes: default_max_body_bytes(),
            max_connections: default_max_connections(),
            shutdown_drain_ms: default_shutdown_drain_ms(),
        }
    }
}

fn default_header_read_timeout_ms() -> u64 {
    20_000
}
fn default_body_read_timeout_ms() -> u64 {
    30_000
}
fn default_max_body_bytes() -> u64 {
    256 * 1024
}
fn default_max_connections() -> u32 {
    1024
}
fn default_shutdown_drain_ms() -> u64 {
    10_000
}

/// Longest timeout accepted (ten minutes): beyond that a stalled client holds a slot for good.
const MAX_TIMEOUT_MS: u64 = 600_000;
/// Largest body limit accepted (6 MiB, the largest payload a pipe ever carries).
const MAX_BODY_BYTES: u64 = 6 * 1024 * 1024;
/// Smallest body limit accepted: a CreatePipe with a filter must fit.
const MIN_BODY_BYTES: u64 = 4096;
/// Most connections accepted (each holds a file descriptor and a task).
const MAX_CONNECTIONS: u32 = 100_000;

/// The validated listener settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// See [`ListenerConfig::header_read_timeout_ms`].
    pub header_read_timeout: Duration,
    /// See [`ListenerConfig::body_read_timeout_ms`].
    pub body_read_timeout: Duration,
    /// See [`ListenerConfig::max_body_bytes`].
    pub max_body_bytes: usize,
    /// See [`ListenerConfig::max_connections`].
    pub max_connections: usize,
    /// See [`ListenerConfig::shutdown_drain_ms`].
    pub shutdown_drain: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerConfig::default()
            .validate()
            .expect("the defaults are valid")
    }
}

impl ListenerConfig {
    /// Check every value; the first wrong one, named as in the file, with the accepted range.
    pub fn validate(&self) -> Result<ListenerLimits, String> {
        let timeout = |name: &str, ms: u64| {
            if (1..=MAX_TIMEOUT_MS).contains(&ms) {
                Ok(Duration::from_millis(ms))
            } else {
                Err(format!(
                    "listener.{name} must be between 1 and {MAX_TIMEOUT_MS} (ten minutes), not {ms}"
                ))
            }
        };
        if !(MIN_BODY_BYTES..=MAX_BODY_BYTES).contains(&self.max_body_bytes) {
            return Err(format!(
                "listener.max_body_bytes must be between {MIN_BODY_BYTES} and {MAX_BODY_BYTES} \
                 (6 MiB), not {}",
                self.max_body_bytes
            ));
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            return Err(format!(
                "listener.max_connections must be between 1 and {MAX_CONNECTIONS}, not {}",
                self.max_connections
            ));
        }
        Ok(ListenerLimits {
            header_read_timeout: timeout("header_read_timeout_ms", self.header_read_timeout_ms)?,
            body_read_timeout: timeout("body_read_timeout_ms", self.body_read_timeout_ms)?,
            max_body_bytes: self.max_body_bytes as usize,
            max_connections: self.max_connections as usize,
            shutdown_drain: timeout("shutdown_drain_ms", self.shutdown_drain_ms)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let l = ListenerLimits::default();
        assert_eq!(l.header_read_timeout, Duration::from_secs(20));
        assert_eq!(l.body_read_timeout, Duration::from_secs(30));
        assert_eq!(l.max_body_bytes, 262_144);
        assert_eq!(l.max_connections, 1024);
        assert_eq!(l.shutdown_drain, Duration::from_secs(10));
    }

    #[test]
    fn each_out_of_range_value_is_named_with_its_range() {
        type Change = fn(&mut ListenerConfig);
        let cases: [(Change, &str); 5] = [
            (
                |c| c.header_read_timeout_ms = 0,
                "listener.header_read_timeout_ms must be between 1 and 600000",
            ),
            (
                |c| c.body_read_timeout_ms = 600_001,
                "listener.body_read_timeout_ms must be between 1 and 600000",
            ),
            (
                |c| c.max_body_bytes = 10,
                "listener.max_body_bytes must be between 4096 and 6291456",
            ),
            (
                |c| c.max_connections = 0,
                "listener.max_connections must be between 1 and 100000",
            ),
            (
                |c| c.shutdown_drain_ms = 0,
                "listener.shutdown_drain_ms must be between 1 and 600000",
            ),
        ];
        for (change, expected) in cases {
            let mut c = ListenerConfig::default();
            change(&mut c);
            let err = c.validate().unwrap_err();
            assert!(err.starts_with(expected), "{err}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<ListenerConfig>("max_body_kb = 1").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let c: ListenerConfig = toml::from_str("max_body_bytes = 8192").unwrap();
        assert_eq!(c.validate().unwrap().max_body_bytes, 8192);
    }
}
