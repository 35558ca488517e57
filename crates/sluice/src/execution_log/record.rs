//! Execution log records, pure: the steps and their levels ([`Step`]), the record in AWS's shape
//! ([`LogRecord`]), cutting a record to the size limit ([`LogRecord::fit`]) and the three ways of
//! writing one (JSON, a plain text line, a W3C extended log line).

use std::sync::Arc;

use serde::Serialize;

use super::config::Level;
use crate::targets::TargetError;

/// Most bytes of one record as JSON: 256 KiB less the 26 bytes CloudWatch Logs counts on top of
/// each event's message, so that one record always fits in one log event.
pub const MAX_RECORD_BYTES: usize = 256 * 1024 - 26;

macro_rules! steps {
    ($($name:ident => $level:ident),* $(,)?) => {
        /// An execution step (a record's `messageType`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Step { $(
            #[doc = concat!("`", stringify!($name), "`.")]
            $name,
        )* }

        impl Step {
            /// The `messageType`.
            pub fn as_str(self) -> &'static str {
                match self { $(Step::$name => stringify!($name),)* }
            }

            /// The lowest level that logs this step.
            pub fn level(self) -> Level {
                match self { $(Step::$name => Level::$level,)* }
            }
        }
    };
}

steps! {
    ExecutionFailed => Error,
    ExecutionPartiallyFailed => Error,
    ExecutionThrottled => Error,
    ExecutionTimeout => Error,
    EnrichmentInvocationFailed => Error,
    EnrichmentStageFailed => Error,
    EnrichmentTransformationFailed => Error,
    TargetInvocationFailed => Error,
    TargetInvocationPartiallyFailed => Error,
    TargetStageFailed => Error,
    TargetStagePartiallyFailed => Error,
    TargetTransformationFailed => Error,
    ExecutionStarted => Info,
    ExecutionSucceeded => Info,
    EnrichmentInvocationSkipped => Info,
    EnrichmentStageEntered => Info,
    EnrichmentStageSucceeded => Info,
    TargetStageEntered => Info,
    TargetStageSucceeded => Info,
    EnrichmentInvocationStarted => Trace,
    EnrichmentInvocationSucceeded => Trace,
    EnrichmentTransformationStarted => Trace,
    EnrichmentTransformationSucceeded => Trace,
    TargetInvocationStarted => Trace,
    TargetInvocationSucceeded => Trace,
    TargetTransformationStarted => Trace,
    TargetTransformationSucceeded => Trace,
    TargetInvocationSkipped => Trace,
    TargetStageSkipped => Trace,
}

/// What failed, in AWS's `error` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogError {
    /// The HTTP status the target or enrichment answered with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status_code: Option<u16>,
    /// What went wrong (the error's text, which never carries a secret).
    pub message: String,
    /// Whether a retry may help and whether the user must act.
    pub details: String,
    /// The AWS service and call, for AWS targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_service: Option<String>,
    /// The service's request id, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl LogError {
    /// The error record of `err`.
    pub fn of(err: &TargetError) -> Self {
        let http_status_code = match err {
            TargetError::Status { status, .. } => Some(*status),
            _ => None,
        };
        let aws_service = match err {
            TargetError::Service { service, .. } | TargetError::Partial { service, .. } => {
                Some(service.clone())
            }
            _ => None,
        };
        let details = match (err.is_retryable(), err.is_user_error()) {
            (true, _) => "retryable",
            (false, true) => "the pipe, the target or the enrichment must be changed",
            (false, false) => "not retryable",
        };
        Self {
            http_status_code,
            message: err.to_string(),
            details: details.into(),
            aws_service,
            request_id: None,
        }
    }
}

/// One execution log record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogRecord {
    /// The execution's id (one per attempt at a batch).
    #[serde(serialize_with = "text")]
    pub execution_id: Arc<str>,
    /// When the step happened, milliseconds since the epoch.
    pub timestamp: i64,
    /// The step.
    #[serde(serialize_with = "step_name")]
    pub message_type: Step,
    /// The pipe's ARN.
    #[serde(serialize_with = "text")]
    pub resource_arn: Arc<str>,
    /// The pipe's configured level.
    #[serde(serialize_with = "level_name")]
    pub log_level: Level,
    /// With execution data: the events of the step, as JSON text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// With execution data: the request to the enrichment or target (its body only: headers
    /// may carry credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_request: Option<String>,
    /// With execution data: the enrichment's or target's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_response: Option<String>,
    /// The fields cut to keep the record within [`MAX_RECORD_BYTES`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub truncated_fields: Vec<&'static str>,
    /// On failure, what failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<LogError>,
}

pub(super) fn text<S: serde::Serializer>(s: &Arc<str>, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s)
}

pub(super) fn step_name<S: serde::Serializer>(s: &Step, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.as_str())
}

fn level_name<S: serde::Serializer>(l: &Level, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(l.as_str())
}

impl LogRecord {
    /// The record as one JSON line (no newline).
    pub fn to_json(&self) -> String {
        // A struct of strings and numbers always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Cut `payload`, then `awsRequest`, then `awsResponse` until the record's JSON fits in
    /// `limit` bytes, naming each cut field in `truncatedFields`; the JSON of the result.
    pub fn fit(&mut self, limit: usize) -> String {
        let mut json = self.to_json();
        for name in ["payload", "awsRequest", "awsResponse"] {
            while json.len() > limit {
                // The cut is measured in JSON bytes (escapes count double or more), so that the
                // record ends just under the limit, not far below it.
                let over = json.len() - limit + name.len() + 24;
                let Some(text) = self.data_mut(name).filter(|t| !t.is_empty()) else {
                    break;
                };
                let keep = prefix_within(text, escaped_len(text).saturating_sub(over));
                text.truncate(keep);
                if !self.truncated_fields.contains(&name) {
                    self.truncated_fields.push(name);
                }
                json = self.to_json();
            }
        }
        json
    }

    fn data_mut(&mut self, name: &str) -> Option<&mut String> {
        match name {
            "payload" => self.payload.as_mut(),
            "awsRequest" => self.aws_request.as_mut(),
            _ => self.aws_response.as_mut(),
        }
    }

    /// One text line: time, level, step, execution id, ARN, then the error and data fields as
    /// `name=<JSON string>`.
    pub fn to_plain(&self) -> String {
        let mut line = format!(
            "{} {} {} {} {}",
            rfc3339(self.timestamp),
            self.log_level.as_str(),
            self.message_type.as_str(),
            self.execution_id,
            self.resource_arn
        );
        if let Some(e) = &self.error {
            line.push_str(" error=");
            line.push_str(&serde_json::to_string(e).unwrap_or_default());
        }
        for (name, value) in self.data_fields() {
            line.push(' ');
            line.push_str(name);
            line.push('=');
            line.push_str(&serde_json::to_string(value).unwrap_or_default());
        }
        if !self.truncated_fields.is_empty() {
            line.push_str(" truncatedFields=");
            line.push_str(&self.truncated_fields.join(","));
        }
        line
    }

    /// The `#Fields` line of [`Self::to_w3c`].
    pub const W3C_FIELDS: &'static str = "#Fields: date time x-log-level x-message-type x-execution-id x-resource-arn x-error x-payload x-aws-request x-aws-response x-truncated-fields";

    /// One W3C extended log line in the order of [`Self::W3C_FIELDS`]: `-` for an absent
    /// field, other values quoted (`"` doubled).
    pub fn to_w3c(&self) -> String {
        let stamp = rfc3339(self.timestamp);
        let (date, time) = stamp.split_once('T').unwrap_or((&stamp, ""));
        let quote = |v: Option<&str>| match v {
            None => "-".to_string(),
            Some(v) => format!("\"{}\"", v.replace('"', "\"\"").replace(['\n', '\r'], " ")),
        };
        let error = self
            .error
            .as_ref()
            .map(|e| serde_json::to_string(e).unwrap_or_default());
        let truncated = self.truncated_fields.join(",");
        [
            date.to_string(),
            time.trim_end_matches('Z').to_string(),
            self.log_level.as_str().to_string(),
            self.message_type.as_str().to_string(),
            self.execution_id.to_string(),
            self.resource_arn.to_string(),
            quote(error.as_deref()),
            quote(self.payload.as_deref()),
            quote(self.aws_request.as_deref()),
            quote(self.aws_response.as_deref()),
            quote((!truncated.is_empty()).then_some(truncated.as_str())),
        ]
        .join(" ")
    }

    fn data_fields(&self) -> impl Iterator<Item = (&'static str, &String)> {
        [
            ("payload", self.payload.as_ref()),
            ("awsRequest", self.aws_request.as_ref()),
            ("awsResponse", self.aws_response.as_ref()),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
    }
}

/// How many bytes `c` takes inside a JSON string (as `serde_json` escapes it).
fn escaped_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// How many bytes `s` takes inside a JSON string.
fn escaped_len(s: &str) -> usize {
    s.chars().map(escaped_char_len).sum()
}

/// The length of the longest prefix of `s` (at a char boundary) whose JSON form fits in `budget`.
fn prefix_within(s: &str, budget: usize) -> usize {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += escaped_char_len(c);
        if used > budget {
            return i;
        }
    }
    s.len()
}

/// Milliseconds since the epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: Step) -> LogRecord {
        LogRecord {
            execution_id: "e-1".into(),
            timestamp: 1_700_000_000_123,
            message_type: step,
            resource_arn: "arn:aws:pipes:us-east-1:000000000000:pipe/p".into(),
            log_level: Level::Trace,
            payload: None,
            aws_request: None,
            aws_response: None,
            truncated_fields: Vec::new(),
            error: None,
        }
    }

    #[test]
    fn levels_follow_the_spec() {
        assert_eq!(Step::TargetStageFailed.level(), Level::Error);
        assert_eq!(Step::ExecutionStarted.level(), Level::Info);
        assert_eq!(Step::TargetStageSkipped.level(), Level::Trace);
        assert!(Level::Error < Level::Info && Level::Info < Level::Trace);
    }

    #[test]
    fn json_has_aws_field_names() {
        let mut r = record(Step::TargetInvocationFailed);
        r.error = Some(LogError::of(&TargetError::Status {
            status: 503,
            retry_after: None,
            detail: "busy".into(),
        }));
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["executionId"], "e-1");
        assert_eq!(v["messageType"], "TargetInvocationFailed");
        assert_eq!(v["logLevel"], "TRACE");
        assert_eq!(v["timestamp"], 1_700_000_000_123i64);
        assert_eq!(v["error"]["httpStatusCode"], 503);
        assert_eq!(v["error"]["details"], "retryable");
        assert!(v.get("payload").is_none() && v.get("truncatedFields").is_none());
    }

    #[test]
    fn a_large_record_is_cut_payload_first() {
        let mut r = record(Step::TargetInvocationStarted);
        r.payload = Some(format!("[{}]", "\"x\\\"y\",".repeat(60_000)));
        r.aws_request = Some("r".repeat(1000));
        let json = r.fit(MAX_RECORD_BYTES);
        assert!(json.len() <= MAX_RECORD_BYTES, "{}", json.len());
        assert!(json.len() > MAX_RECORD_BYTES - 64, "{}", json.len());
        assert_eq!(r.truncated_fields, ["payload"]);
        assert_eq!(r.aws_request.as_deref(), Some("r".repeat(1000).as_str()));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["truncatedFields"], serde_json::json!(["payload"]));
    }

    #[test]
    fn the_request_is_cut_when_the_payload_is_not_enough() {
        let mut r = record(Step::TargetInvocationStarted);
        r.payload = Some("p".repeat(100));
        r.aws_request = Some("é".repeat(200_000));
        let json = r.fit(MAX_RECORD_BYTES);
        assert!(json.len() <= MAX_RECORD_BYTES);
        assert_eq!(r.truncated_fields, ["payload", "awsRequest"]);
        assert_eq!(r.payload.as_deref(), Some(""));
    }

    #[test]
    fn escaped_lengths_match_serde_json() {
        let s = "a\"b\\c\nd\u{1}é€";
        assert_eq!(escaped_len(s) + 2, serde_json::to_string(s).unwrap().len());
        assert_eq!(prefix_within(s, 3), 2);
        assert_eq!(prefix_within("éé", 3), 2);
    }

    #[test]
    fn a_small_record_is_left_alone() {
        let mut r = record(Step::ExecutionStarted);
        r.payload = Some("[1]".into());
        let before = r.to_json();
        assert_eq!(r.fit(MAX_RECORD_BYTES), before);
        assert!(r.truncated_fields.is_empty());
    }

    #[test]
    fn plain_and_w3c_lines() {
        let mut r = record(Step::ExecutionStarted);
        r.payload = Some("[{\"a\":1}]".into());
        assert_eq!(
            r.to_plain(),
            "2023-11-14T22:13:20.123Z TRACE ExecutionStarted e-1 arn:aws:pipes:us-east-1:000000000000:pipe/p payload=\"[{\\\"a\\\":1}]\""
        );
        assert_eq!(
            r.to_w3c(),
            "2023-11-14 22:13:20.123 TRACE ExecutionStarted e-1 arn:aws:pipes:us-east-1:000000000000:pipe/p - \"[{\"\"a\"\":1}]\" - - -"
        );
    }
}
