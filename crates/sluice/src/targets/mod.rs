//! Targets: where a batch goes last. Each target kind is a component with a pure `validate()`
//! (definition -> config or field errors) and a `build()` that does I/O; [`kinds()`] is the one list
//! of them, consulted in order by the `Target` string.
//!
//! Kinds: `http(s)://` URLs and API destination ARNs ([`http`], with connection auth in [`auth`]),
//! `kafka://` topics ([`kafka`]), AWS service ARNs ([`aws`]; delivery behind the `aws-targets`
//! feature), and the AWS targets Sluice accepts but cannot deliver to ([`unsupported`]).

pub mod auth;
pub mod aws;
pub mod body;
pub mod config;
pub mod http;
pub mod kafka;
pub mod unsupported;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::model::{FieldError, PipeDefinition};
use crate::record::SourceRecord;
pub use config::TargetsConfig;

/// One event handed to a target: the payload (record JSON, or the template's output) and, when the
/// target has dynamic parameters, the record as JSON to resolve them against.
#[derive(Debug, Clone)]
pub struct Event {
    /// The body: the record JSON or the rendered template.
    pub payload: bytes::Bytes,
    /// Whether `payload` is JSON (decides the content type and how a batch array embeds it).
    pub is_json: bool,
    /// The record with key/value decoded (or, after an enrichment, the enrichment's output
    /// item), for JSON-path parameters; `None` when not needed.
    pub record: Option<Arc<serde_json::Value>>,
    /// The source record itself, for targets that keep its key and headers (Kafka); `None` when
    /// not needed or after an enrichment replaced the batch.
    pub source: Option<Arc<SourceRecord>>,
    /// On the first event of a batch its builder wrote as one JSON array: that array, each
    /// event's payload a slice of it, so the batch's body is sent without being copied together
    /// again ([`http::batch_body`]); `None` on every other event.
    pub array: Option<bytes::Bytes>,
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
    /// A service (AWS, Kafka, a token endpoint) refused or failed the call.
    #[error("{service}: {message}")]
    Service {
        /// Which service and call (`SQS SendMessageBatch`).
        service: String,
        /// The service's error code and message, or the transport failure.
        message: String,
        /// Whether trying again may help (throttling, 5xx, transport).
        retryable: bool,
        /// Whether this was throttling.
        throttled: bool,
    },
    /// Some entries of a batch call failed; the batch fails from the first failed entry on (or
    /// whole, unless the pipe has `ReportBatchItemFailures`).
    #[error("{service}: {failed} of {total} entries failed (first: {first})")]
    Partial {
        /// Which service and call.
        service: String,
        /// How many failed.
        failed: usize,
        /// How many were sent.
        total: usize,
        /// The first failure's code and message.
        first: String,
        /// Index (in the events delivered) of the first failed entry.
        first_index: usize,
    },
    /// One event alone is larger than the target accepts: it fails the same way every time.
    #[error("event {entry} is {size} bytes; the target accepts at most {limit}")]
    PayloadTooLarge {
        /// Its index in the events delivered.
        entry: usize,
        /// Its size as the target counts it.
        size: usize,
        /// The target's limit.
        limit: usize,
    },
    /// The target kind cannot be delivered to by this build of Sluice.
    #[error("{0}")]
    Unsupported(String),
    /// A secret the target needs (connection auth) could not be had.
    #[error("{0}")]
    Secret(#[from] crate::secrets::SecretError),
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
            TargetError::Timeout(_) | TargetError::Connect(_) | TargetError::Partial { .. } => true,
            TargetError::Service { retryable, .. } => *retryable,
            TargetError::Secret(e) => e.is_retryable(),
            TargetError::Request(_)
            | TargetError::Unsupported(_)
            | TargetError::PayloadTooLarge { .. } => false,
        }
    }

    /// Whether only the user can fix it (4xx other than throttling, bad request data).
    pub fn is_user_error(&self) -> bool {
        match self {
            TargetError::Status { status, .. } => {
                (400..500).contains(status) && !self.is_retryable()
            }
            TargetError::Request(_)
            | TargetError::Unsupported(_)
            | TargetError::PayloadTooLarge { .. } => true,
            TargetError::Service { retryable, .. } => !retryable,
            TargetError::Secret(e) => e.is_user_error(),
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
        matches!(
            self,
            TargetError::Status { status: 429, .. }
                | TargetError::Service {
                    throttled: true,
                    ..
                }
        )
    }

    /// The index of the first event a batch API refused (the events before it were accepted).
    pub fn failed_entry(&self) -> Option<usize> {
        match self {
            TargetError::Partial { first_index, .. } => Some(*first_index),
            _ => None,
        }
    }

    /// The index of an event that fails the same way every time (nothing was sent).
    pub fn deterministic_entry(&self) -> Option<usize> {
        match self {
            TargetError::PayloadTooLarge { entry, .. } => Some(*entry),
            _ => None,
        }
    }

    /// The same error for a call that carried the events from `start` on.
    pub fn offset_entry(self, start: usize) -> Self {
        match self {
            TargetError::Partial {
                service,
                failed,
                total,
                first,
                first_index,
            } => TargetError::Partial {
                service,
                failed,
                total,
                first,
                first_index: first_index + start,
            },
            TargetError::PayloadTooLarge { entry, size, limit } => TargetError::PayloadTooLarge {
                entry: entry + start,
                size,
                limit,
            },
            other => other,
        }
    }

    /// The HTTP status of the failure, as text, when the target answered with one.
    pub fn status_code(&self) -> Option<String> {
        match self {
            TargetError::Status { status, .. } => Some(status.to_string()),
            _ => None,
        }
    }

    /// Whether the target said it is overloaded (429, 503, AWS throttling, a timeout): the pipe's
    /// limit of calls in flight halves.
    pub fn is_overload(&self) -> bool {
        self.is_throttle()
            || self.is_timeout()
            || matches!(self, TargetError::Status { status: 503, .. })
    }

    /// Whether this was a timeout (counts as `ExecutionTimeout`).
    pub fn is_timeout(&self) -> bool {
        matches!(self, TargetError::Timeout(_))
    }
}

/// A built target: delivers one batch.
pub trait Target: Send + Sync + fmt::Debug {
    /// Deliver the batch in order. `Ok` means the target accepted the call; it may still name
    /// records that failed ([`Delivered::item_failures`]).
    fn deliver<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<Delivered, TargetError>>;
}

/// What a target answered to a delivery it accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// The records the target named as failed (`batchItemFailures`, Lambda's Kafka shape); empty
    /// when everything succeeded.
    pub item_failures: Vec<ItemIdentifier>,
}

/// One entry of `batchItemFailures`: `{"itemIdentifier": {"partition": "<topic>-<n>", "offset": 15}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemIdentifier {
    /// `<topic>-<partition>`, as the record's `eventSourceKey`.
    pub partition: String,
    /// The record's offset.
    pub offset: i64,
}

/// A validated target configuration, ready to build.
#[derive(Debug, Clone)]
pub enum TargetConfig {
    /// An HTTP endpoint (a URL or an API destination).
    Http(http::HttpTargetConfig),
    /// A Kafka topic.
    Kafka(kafka::KafkaTargetConfig),
    /// An AWS service.
    Aws(aws::AwsTargetConfig),
    /// An AWS target kind Sluice accepts but cannot deliver to; the pipe fails when it starts.
    Unsupported(unsupported::UnsupportedTarget),
}

impl TargetConfig {
    /// Open clients, connection pools and producers; fetch connection secrets.
    pub async fn build(&self) -> Result<Arc<dyn Target>, TargetError> {
        match self {
            TargetConfig::Http(c) => Ok(Arc::new(c.build().await?)),
            TargetConfig::Kafka(c) => Ok(Arc::new(c.build().await?)),
            TargetConfig::Aws(c) => c.build().await,
            TargetConfig::Unsupported(u) => Err(TargetError::Unsupported(u.reason())),
        }
    }

    /// Whether events must carry the decoded record (for JSON-path parameters).
    pub fn needs_record(&self) -> bool {
        match self {
            TargetConfig::Http(c) => c.needs_record(),
            TargetConfig::Kafka(c) => c.needs_record(),
            TargetConfig::Aws(c) => c.needs_record(),
            TargetConfig::Unsupported(_) => false,
        }
    }

    /// Whether events must carry the source record (its key and headers).
    pub fn needs_source(&self) -> bool {
        matches!(self, TargetConfig::Kafka(_))
    }

    /// The most events one delivery accepts (an enrichment returning more fails the batch).
    pub fn max_batch(&self) -> usize {
        match self {
            TargetConfig::Aws(c) => c.max_batch(),
            _ => MAX_BATCH_SIZE,
        }
    }
}

/// The `batchItemFailures` of a target's answer (Lambda's Kafka shape): empty when the answer is
/// not JSON or has no such list. An entry that is not an `itemIdentifier` with a partition and
/// an offset is kept as an identifier that names no record, so it fails the batch.
pub fn parse_item_failures(body: &[u8]) -> Vec<ItemIdentifier> {
    // Most answers do not report failures; only parse those that may.
    if !body.windows(17).any(|w| w == b"batchItemFailures") {
        return Vec::new();
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let Some(items) = v.get("batchItemFailures").and_then(|f| f.as_array()) else {
        return Vec::new();
    };
    items
        .iter()
        .map(|item| {
            let id = item.get("itemIdentifier");
            let partition = id.and_then(|i| i.get("partition")).and_then(|p| p.as_str());
            let offset = id.and_then(|i| i.get("offset")).and_then(|o| {
                o.as_i64()
                    .or_else(|| o.as_str().and_then(|s| s.parse().ok()))
            });
            match (partition, offset) {
                (Some(p), Some(o)) => ItemIdentifier {
                    partition: p.to_string(),
                    offset: o,
                },
                _ => ItemIdentifier {
                    partition: item.to_string(),
                    offset: -1,
                },
            }
        })
        .collect()
}

/// The largest `BatchSize` a Kafka source allows, and so the limit of unconstrained targets.
pub const MAX_BATCH_SIZE: usize = 10_000;

/// What a target's validation sees besides the definition.
#[derive(Debug, Clone, Copy)]
pub struct TargetContext<'a> {
    /// The pipe's batch size.
    pub batch_size: usize,
    /// Where the batch size is set in the definition
    /// (`SourceParameters.SelfManagedKafkaParameters.BatchSize`), for messages.
    pub batch_size_field: &'a str,
    /// Sluice's `[targets]` configuration (API destinations, connections, AWS endpoints).
    pub config: &'a TargetsConfig,
}

/// A kind of target: how to recognise its `Target` string and validate its parameters.
#[derive(Debug)]
pub struct TargetKind {
    /// Name for messages.
    pub name: &'static str,
    /// Whether this kind handles the `Target` string.
    pub accepts: fn(&str) -> bool,
    /// Validate the definition's target parameters for this kind.
    pub validate:
        fn(&PipeDefinition, &TargetContext<'_>, &mut Vec<FieldError>) -> Option<TargetConfig>,
}

/// Every target kind Sluice knows, in the order they are tried.
pub fn kinds() -> &'static [TargetKind] {
    &[
        http::KIND,
        http::API_DESTINATION_KIND,
        kafka::KIND,
        aws::LAMBDA,
        aws::SQS,
        aws::SNS,
        aws::EVENT_BUS,
        aws::KINESIS,
        aws::FIREHOSE,
        aws::STEP_FUNCTIONS,
        aws::CLOUDWATCH_LOGS,
        unsupported::KIND,
    ]
}

/// Validate the `Target` and its parameters with the first kind that accepts it.
pub fn validate(
    def: &PipeDefinition,
    ctx: &TargetContext<'_>,
    errs: &mut Vec<FieldError>,
) -> Option<TargetConfig> {
    let Some(target) = def.target.as_deref().filter(|t| !t.is_empty()) else {
        errs.push(FieldError::new("Target", "is required"));
        return None;
    };
    if let Some(kind) = kinds().iter().find(|k| (k.accepts)(target)) {
        return (kind.validate)(def, ctx, errs);
    }
    errs.push(FieldError::new(
        "Target",
        "must be an http(s):// URL, a kafka:// topic, an API destination ARN or an AWS target ARN",
    ));
    None
}

/// Reject a `BatchSize` above the target's limit (AWS answers ValidationException).
pub(crate) fn check_batch_size(
    what: &str,
    limit: usize,
    ctx: &TargetContext<'_>,
    errs: &mut Vec<FieldError>,
) {
    if ctx.batch_size > limit {
        errs.push(FieldError::new(
            ctx.batch_size_field,
            format!(
                "is {} but a {what} target accepts at most {limit} records per batch",
                ctx.batch_size
            ),
        ));
    }
}

/// Whether a parameter value is a JSON path into the record rather than a literal.
pub fn is_dynamic(v: &str) -> bool {
    v.starts_with("$.") || v == "$"
}

/// Resolve a literal-or-JSON-path parameter against an event's record (empty when it has none or
/// the path finds nothing).
pub fn resolve_param(v: &str, record: Option<&serde_json::Value>) -> Result<String, TargetError> {
    if !is_dynamic(v) {
        return Ok(v.to_string());
    }
    let Some(rec) = record else {
        return Ok(String::new());
    };
    sluice_template::resolve_dynamic(v, rec)
        .map(Option::unwrap_or_default)
        .map_err(|e| TargetError::Request(e.to_string()))
}

/// Check that a literal-or-JSON-path value parses when it is a path.
pub(crate) fn check_param(field: &str, v: &str, errs: &mut Vec<FieldError>) {
    if is_dynamic(v) {
        if let Err(e) = sluice_template::JsonPath::parse(v) {
            errs.push(FieldError::new(
                field,
                format!("{v:?} is not a valid JSON path: {e}"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{parse_definition, validate as validate_pipe, ValidationContext};

    fn check(
        target: &str,
        extra: &str,
        config: &str,
    ) -> Result<crate::model::PipeSpec, Vec<FieldError>> {
        let text = format!(
            r#"{{"Name":"p","Source":"smk://h:9092","Target":"{target}",
               "SourceParameters":{{"SelfManagedKafkaParameters":{{"TopicName":"t","BatchSize":10}}}}{extra}}}"#
        );
        let def = parse_definition(&text, false).unwrap();
        let ctx = ValidationContext {
            targets: Arc::new(toml::from_str::<TargetsConfig>(config).unwrap()),
            ..ValidationContext::default()
        };
        validate_pipe(&def, &ctx).map_err(|e| e.fields)
    }

    #[test]
    fn item_failures_are_read_from_lambdas_kafka_shape() {
        let body = br#"{"batchItemFailures":[{"itemIdentifier":{"partition":"orders-0","offset":15}},{"itemIdentifier":{"partition":"orders-1","offset":"7"}},{"nope":1}]}"#;
        let ids = parse_item_failures(body);
        assert_eq!(ids.len(), 3);
        assert_eq!(
            ids[0],
            ItemIdentifier {
                partition: "orders-0".into(),
                offset: 15
            }
        );
        assert_eq!(ids[1].offset, 7);
        assert_eq!(ids[2].offset, -1);
        for none in [
            &b"{}"[..],
            b"",
            b"not json",
            br#"{"batchItemFailures":[]}"#,
            br#"[1]"#,
        ] {
            assert!(parse_item_failures(none).is_empty());
        }
    }

    #[test]
    fn api_destinations_resolve_from_the_config() {
        let cfg = r#"
            [[api_destinations]]
            arn = "arn:aws:events:us-east-1:1:api-destination/d/abc"
            endpoint = "https://x.example/*"
            http_method = "PUT"
            connection = "c"
            [[connections]]
            name = "c"
            auth = { type = "BASIC", username = "u", password = "env:PW" }
        "#;
        let extra =
            r#","TargetParameters":{"HttpParameters":{"PathParameterValues":["$.value.id"]}}"#;
        let spec = check("arn:aws:events:us-east-1:1:api-destination/d", extra, cfg).unwrap();
        let TargetConfig::Http(h) = &spec.target else {
            panic!("{:?}", spec.target)
        };
        assert_eq!(h.endpoint.url, "https://x.example/*");
        assert_eq!(h.endpoint.method, reqwest::Method::PUT);
        assert!(h.endpoint.auth.is_some());

        let errs = check(
            "arn:aws:events:us-east-1:1:api-destination/other/1",
            "",
            cfg,
        )
        .unwrap_err();
        assert!(
            errs[0].message.contains("API destination not found"),
            "{errs:?}"
        );
        let bad = cfg.replace("env:PW", "hunter2");
        let errs = check(
            "arn:aws:events:us-east-1:1:api-destination/d/abc",
            extra,
            &bad,
        )
        .unwrap_err();
        assert!(
            errs.iter().any(|e| e.name.ends_with("auth.password")),
            "{errs:?}"
        );
        assert!(!format!("{errs:?}").contains("hunter2"));
    }

    #[test]
    fn aws_parameters_are_checked_per_service() {
        let errs = check("arn:aws:sqs:us-east-1:1:q.fifo", "", "").unwrap_err();
        assert_eq!(
            errs[0].name,
            "TargetParameters.SqsQueueParameters.MessageGroupId"
        );
        let errs = check(
            "arn:aws:sqs:us-east-1:1:q",
            r#","TargetParameters":{"KinesisStreamParameters":{"PartitionKey":"a"}}"#,
            "",
        )
        .unwrap_err();
        assert_eq!(errs[0].name, "TargetParameters.KinesisStreamParameters");
        let errs = check("arn:aws:kinesis:us-east-1:1:stream/s", "", "").unwrap_err();
        assert!(errs[0].message.contains("PartitionKey") || errs[0].name.contains("PartitionKey"));
        let spec = check(
            "arn:aws:events:us-east-1:1:event-bus/b",
            r#","TargetParameters":{"EventBridgeEventBusParameters":{"DetailType":"$.value.kind"}}"#,
            "[aws]\nendpoint_url = \"http://127.0.0.1:5000\"",
        )
        .unwrap();
        let TargetConfig::Aws(a) = &spec.target else {
            panic!()
        };
        assert_eq!(a.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert!(a.needs_record());
        assert!(
            matches!(&a.service, aws::AwsService::EventBus { source: Some(s), .. } if s == "Pipe p")
        );
    }

    #[test]
    fn kafka_targets_and_enrichments_validate() {
        let spec = check("kafka://a:9092,b:9093/out", "", "").unwrap();
        let TargetConfig::Kafka(k) = &spec.target else {
            panic!()
        };
        assert_eq!(k.bootstrap_servers, vec!["a:9092", "b:9093"]);
        assert_eq!(k.topic, "out");
        assert!(k.mirror_value);
        assert!(check("kafka://a/out", "", "").is_err());

        let spec = check(
            "http://t/",
            r#","Enrichment":"arn:aws:lambda:eu-west-1:1:function:f","EnrichmentParameters":{"InputTemplate":"{\"a\": <$.value>}"}"#,
            "",
        )
        .unwrap();
        assert!(spec.enrichment.is_some() && spec.enrichment_template.is_some());
        let errs = check("http://t/", r#","Enrichment":"http://e/*""#, "").unwrap_err();
        assert!(
            errs[0]
                .name
                .starts_with("EnrichmentParameters.HttpParameters"),
            "{errs:?}"
        );
        let errs = check(
            "http://t/",
            r#","Enrichment":"arn:aws:states:r:1:stateMachine:x""#,
            "",
        )
        .unwrap_err();
        assert_eq!(errs[0].name, "Enrichment");
    }

    #[test]
    fn unsupported_aws_targets_validate_but_cannot_build() {
        let spec = check("arn:aws:batch:us-east-1:1:job-queue/q", "", "").unwrap();
        assert!(matches!(spec.target, TargetConfig::Unsupported(_)));
        let err = futures::executor::block_on(spec.target.build()).unwrap_err();
        assert!(err
            .to_string()
            .contains("Batch job queue targets are not supported"));
        assert!(err.is_user_error());
    }
}
