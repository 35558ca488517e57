//! Shipping records off the delivery path: each destination has a bounded [`Buffer`] that the
//! pipe's lanes push to without waiting, and a task that takes what is there every second (or at
//! once past 1 MiB) and writes it through the destination's [`Sink`]. A full buffer drops the
//! record and counts it (`sluice_execution_log_dropped_total`); a failed write keeps its records
//! for the next round while they fit, backing off, so a destination that is down costs memory up
//! to the bound and nothing else.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;
use tokio_util::sync::CancellationToken;

use super::record::{LogRecord, MAX_RECORD_BYTES};

/// Records are written at least this often while any are waiting.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// A round starts early once this many bytes wait.
pub const FLUSH_BYTES: usize = 1024 * 1024;
/// Most records one destination holds before it drops new ones.
pub const CAPACITY_RECORDS: usize = 10_000;
/// Most bytes (estimated) one destination holds before it drops new ones.
pub const CAPACITY_BYTES: usize = 8 * 1024 * 1024;
/// One write may take this long before its records count as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest pause after failed writes.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why a write to a destination failed. Never carries a record's content.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// An AWS call failed.
    #[error("{call}: {message}")]
    Service {
        /// The service and call (`CloudWatch Logs PutLogEvents`).
        call: &'static str,
        /// The service's code and message, or the transport failure.
        message: String,
    },
    /// Writing the file or stdout failed.
    #[error("{what}: {source}")]
    Io {
        /// What was written.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// This build cannot write to the destination.
    #[error("{0}")]
    Unsupported(String),
}

impl ShipError {
    /// Whether a later write may succeed (everything but an unsupported destination).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ShipError::Unsupported(_))
    }

    /// Whether the user must change the pipe or the build.
    pub fn is_user_error(&self) -> bool {
        matches!(self, ShipError::Unsupported(_))
    }
}

/// A record waiting to be shipped: built on the delivery path, cut to size and serialised once,
/// by the first destination that writes it.
#[derive(Debug)]
pub struct Entry {
    raw: LogRecord,
    fitted: OnceLock<(LogRecord, String)>,
}

impl Entry {
    /// Wrap a record.
    pub fn new(raw: LogRecord) -> Self {
        Self {
            raw,
            fitted: OnceLock::new(),
        }
    }

    /// The record as written (cut to [`MAX_RECORD_BYTES`]) and its JSON.
    pub fn fitted(&self) -> (&LogRecord, &str) {
        let (r, j) = self.fitted.get_or_init(|| {
            let mut r = self.raw.clone();
            let json = r.fit(MAX_RECORD_BYTES);
            (r, json)
        });
        (r, j)
    }

    /// The record's time.
    pub fn timestamp(&self) -> i64 {
        self.raw.timestamp
    }

    /// About how many bytes the record holds.
    fn size(&self) -> usize {
        let r = &self.raw;
        300 + [&r.payload, &r.aws_request, &r.aws_response]
            .iter()
            .map(|f| f.as_ref().map_or(0, String::len))
            .sum::<usize>()
    }
}

/// A destination: writes records, oldest first, cutting them into the calls its service allows.
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// Write `entries`.
    fn write<'a>(&'a self, entries: &'a [Arc<Entry>]) -> BoxFuture<'a, Result<(), ShipError>>;
}

#[derive(Debug, Default)]
struct Queue {
    entries: VecDeque<Arc<Entry>>,
    bytes: usize,
}

/// One destination's bounded buffer.
#[derive(Debug)]
pub struct Buffer {
    queue: Mutex<Queue>,
    wake: tokio::sync::Notify,
    dropped: Counter,
}

impl Buffer {
    /// An empty buffer counting drops on `dropped`.
    pub fn new(dropped: Counter) -> Self {
        Self {
            queue: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            dropped,
        }
    }

    /// Add a record unless the buffer is full (then it is dropped and counted). Never waits
    /// for the destination.
    pub fn push(&self, entry: Arc<Entry>) {
        let size = entry.size();
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.entries.len() >= CAPACITY_RECORDS || q.bytes + size > CAPACITY_BYTES {
            drop(q);
            self.dropped.inc();
            return;
        }
        q.entries.push_back(entry);
        q.bytes += size;
        let full = q.bytes >= FLUSH_BYTES;
        drop(q);
        if full {
            self.wake.notify_one();
        }
    }

    /// Everything waiting, oldest first.
    pub fn drain(&self) -> Vec<Arc<Entry>> {
        self.take()
    }

    fn take(&self) -> Vec<Arc<Entry>> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.bytes = 0;
        q.entries.drain(..).collect()
    }

    /// Put back records whose write failed, before newer ones, as far as they fit; the rest are
    /// dropped and counted.
    fn put_back(&self, entries: Vec<Arc<Entry>>) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let room = CAPACITY_RECORDS.saturating_sub(q.entries.len());
        let mut lost = entries.len().saturating_sub(room);
        for e in entries.into_iter().take(room).rev() {
            let size = e.size();
            if q.bytes + size > CAPACITY_BYTES {
                lost += 1;
                continue;
            }
            q.bytes += size;
            q.entries.push_front(e);
        }
        drop(q);
        self.dropped.inc_by(lost as u64);
    }

    /// Records waiting now.
    pub fn len(&self) -> usize {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Ship `buffer` to `sink` until `stop`, then write what is left (once, within the write
/// timeout). `name` says which destination in warnings.
pub async fn run(buffer: Arc<Buffer>, sink: Box<dyn Sink>, name: String, stop: CancellationToken) {
    let mut failures = 0u32;
    let mut last_warning: Option<Instant> = None;
    loop {
        let pause = backoff(failures);
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = buffer.wake.notified(), if failures == 0 => false,
            _ = tokio::time::sleep(pause) => false,
        };
        let entries = buffer.take();
        if !entries.is_empty() {
            match tokio::time::timeout(WRITE_TIMEOUT, sink.write(&entries)).await {
                Ok(Ok(())) => failures = 0,
                outcome => {
                    failures = failures.saturating_add(1);
                    let error = match outcome {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {} s", WRITE_TIMEOUT.as_secs()),
                    };
                    // Said once a minute at most: a destination that is down fails every round.
                    if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                        tracing::warn!(destination = %name, records = entries.len(), %error,
                            "execution log records could not be written; they are kept while the buffer has room");
                        last_warning = Some(Instant::now());
                    }
                    if stopping {
                        buffer.dropped.inc_by(entries.len() as u64);
                    } else {
                        buffer.put_back(entries);
                    }
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// The pause before the next round: the flush interval, doubled per failed write in a row.
fn backoff(failures: u32) -> Duration {
    FLUSH_INTERVAL
        .saturating_mul(1u32 << failures.min(5))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution_log::config::Level;
    use crate::execution_log::record::Step;

    fn entry(payload: usize) -> Arc<Entry> {
        Arc::new(Entry::new(LogRecord {
            execution_id: "e".into(),
            timestamp: 0,
            message_type: Step::ExecutionStarted,
            resource_arn: "arn".into(),
            log_level: Level::Info,
            payload: Some("x".repeat(payload)),
            aws_request: None,
            aws_response: None,
            truncated_fields: Vec::new(),
            error: None,
        }))
    }

    #[test]
    fn a_full_buffer_drops_and_counts() {
        let dropped = Counter::default();
        let b = Buffer::new(dropped.clone());
        for _ in 0..CAPACITY_RECORDS + 5 {
            b.push(entry(0));
        }
        assert_eq!(b.len(), CAPACITY_RECORDS);
        assert_eq!(dropped.get(), 5);
        b.take();
        b.push(entry(CAPACITY_BYTES));
        assert_eq!((b.len(), dropped.get()), (0, 6));
    }

    #[test]
    fn records_put_back_go_first_and_overflow_is_counted() {
        let dropped = Counter::default();
        let b = Buffer::new(dropped.clone());
        let old: Vec<_> = (0..3).map(|_| entry(1)).collect();
        for _ in 0..CAPACITY_RECORDS - 1 {
            b.push(entry(0));
        }
        b.put_back(old.clone());
        assert_eq!(b.len(), CAPACITY_RECORDS);
        assert_eq!(dropped.get(), 2);
        assert!(Arc::ptr_eq(&b.take()[0], &old[0]));
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(backoff(0), FLUSH_INTERVAL);
        assert_eq!(backoff(1), FLUSH_INTERVAL * 2);
        assert_eq!(backoff(20), MAX_BACKOFF);
    }
}
