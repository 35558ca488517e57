//! Targets: where a batch goes last. Each target kind is a component with a pure `validate()`
//! (definition -> config or field errors) and a `build()` that does I/O; [`kinds()`] is the one list
//! of them, consulted in order by the `Target` string.

pub mod http;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::model::{FieldError, PipeDefinition};

/// One event handed to a target: the payload (record JSON, or the template's output) and, when the
/// target has dynamic parameters, the record as JSON to resolve them against.
#[derive(Debug, Clone)]
pub struct Event {
    /// The body: the record JSON or the rendered template.
    pub payload: bytes::Bytes,
    /// Whether `payload` is JSON (decides the content type and how a batch array embeds it).
    pub is_json: bool,
    /// The record with key/value decoded, for JSON-path parameters; `None` when not needed.
    pub record: Option<Arc<serde_json::Value>>,
}

/// Why a delivery failed. Carries whether trying again may help, whether the user must act, and
/// how long the target asked us to wait.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The target answered with a non-2xx status.
    #[error("target answered HTTP {status}{}", detail_suffix(.detail))]
    Status {
        /// HTTP status code.
        status: u16,
        /// The target's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
        /// The start of the response body, for the operator.
        detail: String,
    },
    /// No answer within the timeout.
    #[error("target did not answer within {0:?}")]
    Timeout(Duration),
    /// Connection refused, reset, DNS failure, TLS failure...
    #[error("cannot reach target: {0}")]
    Connect(String),
    /// The request could not be built from the record (bad header value, unresolvable path...).
    #[error("cannot build the request: {0}")]
    Request(String),
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl TargetError {
    /// Whether a retry of the same batch may succeed (429, 5xx, timeouts, connection errors).
    pub fn is_retryable(&self) -> bool {
        match self {
            TargetError::Status { status, .. } => {
                *status == 429 || *status >= 500 || *status == 408
            }
            TargetError::Timeout(_) | TargetError::Connect(_) => true,
            TargetError::Request(_) => false,
        }
    }

    /// Whether only the user can fix it (4xx other than throttling, bad request data).
    pub fn is_user_error(&self) -> bool {
        match self {
            TargetError::Status { status, .. } => {
                (400..500).contains(status) && !self.is_retryable()
            }
            TargetError::Request(_) => true,
            _ => false,
        }
    }

    /// The wait the target asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TargetError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the target throttled us (counts as `ExecutionThrottled`).
    pub fn is_throttle(&self) -> bool {
        matches!(self, TargetError::Status { status: 429, .. })
    }

    /// Whether this was a timeout (counts as `ExecutionTimeout`).
    pub fn is_timeout(&self) -> bool {
        matches!(self, TargetError::Timeout(_))
    }
}

/// A built target: delivers one batch, all or nothing.
pub trait Target: Send + Sync + fmt::Debug {
    /// Deliver the batch in order. `Ok` means every event was accepted.
    fn deliver<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), TargetError>>;
}

/// A validated target configuration, ready to build.
#[derive(Debug, Clone)]
pub enum TargetConfig {
    /// An HTTP endpoint.
    Http(http::HttpTargetConfig),
}

impl TargetConfig {
    /// Open clients and connection pools.
    pub fn build(&self) -> Result<Arc<dyn Target>, TargetError> {
        match self {
            TargetConfig::Http(c) => Ok(Arc::new(c.build()?)),
        }
    }

    /// Whether events must carry the decoded record (for JSON-path parameters).
    pub fn needs_record(&self) -> bool {
        match self {
            TargetConfig::Http(c) => c.needs_record(),
        }
    }
}

/// A kind of target: how to recognise its `Target` string and validate its parameters.
#[derive(Debug)]
pub struct TargetKind {
    /// Name for messages.
    pub name: &'static str,
    /// Whether this kind handles the `Target` string.
    pub accepts: fn(&str) -> bool,
    /// Validate the definition's target parameters for this kind.
    pub validate: fn(&PipeDefinition, usize, &mut Vec<FieldError>) -> Option<TargetConfig>,
}

/// Every target kind Sluice knows, in the order they are tried.
pub fn kinds() -> &'static [TargetKind] {
    &[http::KIND]
}

/// AWS ARN prefixes of targets AWS Pipes supports but Sluice does not deliver to yet.
const AWS_TARGET_SERVICES: &[(&str, &str)] = &[
    ("arn:aws:lambda:", "Lambda function"),
    ("arn:aws:sqs:", "SQS queue"),
    ("arn:aws:sns:", "SNS topic"),
    ("arn:aws:events:", "EventBridge event bus / API destination"),
    ("arn:aws:kinesis:", "Kinesis stream"),
    ("arn:aws:firehose:", "Firehose stream"),
    ("arn:aws:states:", "Step Functions state machine"),
    ("arn:aws:logs:", "CloudWatch Logs group"),
    ("arn:aws:ecs:", "ECS task"),
    ("arn:aws:batch:", "Batch job queue"),
    ("arn:aws:redshift:", "Redshift cluster"),
    ("arn:aws:sagemaker:", "SageMaker pipeline"),
    ("arn:aws:timestream:", "Timestream table"),
    ("arn:aws:inspector:", "Inspector assessment"),
    ("arn:aws:execute-api:", "API Gateway"),
];

/// Validate the `Target` and its parameters with the first kind that accepts it.
pub fn validate(
    def: &PipeDefinition,
    batch_size: usize,
    errs: &mut Vec<FieldError>,
) -> Option<TargetConfig> {
    let Some(target) = def.target.as_deref().filter(|t| !t.is_empty()) else {
        errs.push(FieldError::new("Target", "is required"));
        return None;
    };
    if let Some(kind) = kinds().iter().find(|k| (k.accepts)(target)) {
        return (kind.validate)(def, batch_size, errs);
    }
    let msg = match AWS_TARGET_SERVICES
        .iter()
        .find(|(p, _)| target.starts_with(p))
    {
        Some((_, what)) => {
            format!("{what} targets are not supported yet by this version of Sluice")
        }
        None => "must be an http:// or https:// URL or an AWS target ARN".to_string(),
    };
    errs.push(FieldError::new("Target", msg));
    None
}
