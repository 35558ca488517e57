//! The last execution errors of each pipe on this instance, in memory, for the console's Pipe
//! page: a bounded ring per pipe ([`ErrorRing`], the last [`KEPT`]) of the records at level
//! `ERROR`, and the registry of those rings by pipe name ([`RecentErrors`]), shared by the runtime
//! (which fills them through each pipe's [`super::ExecutionLog`]) and the console (which reads
//! them). A [`RecentError`] keeps when, the step, the execution and the error's message and
//! status: never a payload, request or response. Pushing is one short lock and no I/O.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use super::record::{step_name, text, LogRecord, Step};

/// How many errors a ring keeps per pipe.
pub const KEPT: usize = 20;
/// Longest error message kept, in characters (the rest is cut, with an ellipsis).
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// One execution error, as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecentError {
    /// When the step happened, milliseconds since the epoch.
    pub timestamp: i64,
    /// The step (`TargetInvocationFailed`, `ExecutionFailed`...).
    #[serde(serialize_with = "step_name")]
    pub message_type: Step,
    /// The execution's id, as in the execution log.
    #[serde(serialize_with = "text")]
    pub execution_id: Arc<str>,
    /// What failed, when the step carries an error.
    pub error: Option<ErrorSummary>,
}

/// The part of a record's `error` the console shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorSummary {
    /// The error's text (which never carries a secret), cut to [`MAX_MESSAGE_CHARS`].
    pub message: String,
    /// The HTTP status the target or enrichment answered with.
    pub http_status_code: Option<u16>,
}

fn cut(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((i, _)) => format!("{}…", &message[..i]),
        None => message.to_string(),
    }
}

impl RecentError {
    /// The console's view of `record` (its data fields left out).
    pub fn of(record: &LogRecord) -> Self {
        RecentError {
            timestamp: record.timestamp,
            message_type: record.message_type,
            execution_id: record.execution_id.clone(),
            error: record.error.as_ref().map(|e| ErrorSummary {
                message: cut(&e.message),
                http_status_code: e.http_status_code,
            }),
        }
    }
}

/// One pipe's last [`KEPT`] errors, oldest first.
#[derive(Debug, Default)]
pub struct ErrorRing {
    errors: Mutex<VecDeque<RecentError>>,
}

impl ErrorRing {
    fn lock(&self) -> MutexGuard<'_, VecDeque<RecentError>> {
        self.errors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keep `error`; the oldest goes beyond [`KEPT`].
    pub fn push(&self, error: RecentError) {
        let mut errors = self.lock();
        if errors.len() == KEPT {
            errors.pop_front();
        }
        errors.push_back(error);
    }

    /// The errors kept, newest first.
    pub fn newest_first(&self) -> Vec<RecentError> {
        self.lock().iter().rev().cloned().collect()
    }
}

/// Every pipe's [`ErrorRing`] on this instance, by pipe name. A ring outlives the pipe's
/// runtime (a restart keeps its errors) until [`RecentErrors::remove`] (the pipe left this
/// instance).
#[derive(Debug, Default)]
pub struct RecentErrors {
    rings: Mutex<HashMap<String, Arc<ErrorRing>>>,
}

impl RecentErrors {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<ErrorRing>>> {
        self.rings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The ring of `pipe`, made empty the first time.
    pub fn ring(&self, pipe: &str) -> Arc<ErrorRing> {
        self.lock().entry(pipe.to_string()).or_default().clone()
    }

    /// `pipe`'s errors, newest first (none when it has no ring).
    pub fn of(&self, pipe: &str) -> Vec<RecentError> {
        let ring = self.lock().get(pipe).cloned();
        ring.map(|r| r.newest_first()).unwrap_or_default()
    }

    /// Forget `pipe`'s errors.
    pub fn remove(&self, pipe: &str) {
        self.lock().remove(pipe);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution_log::record::LogError;
    use crate::execution_log::Level;

    fn record(step: Step, timestamp: i64, message: &str) -> LogRecord {
        LogRecord {
            execution_id: format!("exec-{timestamp}").into(),
            timestamp,
            message_type: step,
            resource_arn: "arn:aws:pipes:us-east-1:000000000000:pipe/p".into(),
            log_level: Level::Error,
            payload: Some("{\"secret-ish\":\"payload\"}".into()),
            aws_request: Some("request body".into()),
            aws_response: Some("response body".into()),
            truncated_fields: Vec::new(),
            error: Some(LogError {
                http_status_code: Some(500),
                message: message.into(),
                details: "retryable".into(),
                aws_service: None,
                request_id: None,
            }),
        }
    }

    #[test]
    fn the_ring_keeps_the_last_twenty_newest_first() {
        let ring = ErrorRing::default();
        for t in 0..25 {
            ring.push(RecentError::of(&record(
                Step::TargetInvocationFailed,
                t,
                "500",
            )));
        }
        let kept = ring.newest_first();
        assert_eq!(kept.len(), KEPT);
        assert_eq!(kept.first().map(|e| e.timestamp), Some(24));
        assert_eq!(kept.last().map(|e| e.timestamp), Some(5));
    }

    #[test]
    fn an_error_keeps_no_data_and_a_cut_message() {
        let long = "x".repeat(MAX_MESSAGE_CHARS + 50);
        let e = RecentError::of(&record(Step::ExecutionFailed, 7, &long));
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["messageType"], "ExecutionFailed");
        assert_eq!(json["executionId"], "exec-7");
        assert_eq!(json["error"]["httpStatusCode"], 500);
        let message = json["error"]["message"].as_str().unwrap();
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
        let text = json.to_string();
        for data in ["payload", "request body", "response body", "resourceArn"] {
            assert!(!text.contains(data), "{data} in {text}");
        }
    }

    #[test]
    fn rings_are_per_pipe_and_outlive_a_restart_until_removed() {
        let all = RecentErrors::default();
        all.ring("a").push(RecentError::of(&record(
            Step::TargetInvocationFailed,
            1,
            "boom",
        )));
        // A restarted runtime asks for the ring again and gets the same one.
        all.ring("a")
            .push(RecentError::of(&record(Step::ExecutionFailed, 2, "boom")));
        assert_eq!(all.of("a").len(), 2);
        assert!(all.of("b").is_empty());
        all.remove("a");
        assert!(all.of("a").is_empty());
    }
}
