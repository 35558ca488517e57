//! AWS service targets: Lambda, SQS, SNS, EventBridge event buses, Kinesis, Firehose, Step
//! Functions and CloudWatch Logs. This file is the pure part (ARN and parameter-block validation,
//! batch limits); [`client`] delivers through the AWS SDK and exists only with the `aws-targets`
//! feature. Without it these definitions still validate, and the pipe fails when it starts.
//!
//! Region comes from the ARN; credentials from the SDK's default chain; the endpoint from
//! `[targets.aws]` in Sluice's config, else `AWS_ENDPOINT_URL_<SERVICE>` / `AWS_ENDPOINT_URL`.

#[cfg(feature = "aws-targets")]
pub mod client;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{
    check_batch_size, check_param, is_dynamic, resolve_param, Event, Target, TargetConfig,
    TargetContext, TargetError, TargetKind,
};
use crate::model::{FieldError, PipeDefinition};

macro_rules! kind {
    ($name:ident, $label:literal, $service:literal) => {
        /// Registered in [`super::kinds`].
        pub const $name: TargetKind = TargetKind {
            name: $label,
            accepts: |t| service_of(t) == Some($service) && !super::http::is_api_destination(t),
            validate,
        };
    };
}
kind!(LAMBDA, "Lambda function", "lambda");
kind!(SQS, "SQS queue", "sqs");
kind!(SNS, "SNS topic", "sns");
kind!(EVENT_BUS, "EventBridge event bus", "events");
kind!(KINESIS, "Kinesis stream", "kinesis");
kind!(FIREHOSE, "Firehose stream", "firehose");
kind!(STEP_FUNCTIONS, "Step Functions state machine", "states");
kind!(CLOUDWATCH_LOGS, "CloudWatch Logs group", "logs");

/// The service part of an `arn:<partition>:<service>:...` string.
fn service_of(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(4, ':');
    (parts.next() == Some("arn")).then_some(())?;
    parts.next()?;
    parts.next()
}

/// The parts of an ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn {
    /// The whole ARN.
    pub text: String,
    /// Service (`sqs`, `lambda`...).
    pub service: String,
    /// Region.
    pub region: String,
    /// Account id.
    pub account: String,
    /// Everything after the account (`function:name`, `stream/name`...).
    pub resource: String,
}

impl Arn {
    /// Parse `arn:<partition>:<service>:<region>:<account>:<resource>`.
    pub fn parse(text: &str) -> Option<Arn> {
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        let [arn, _partition, service, region, account, resource] = parts.as_slice() else {
            return None;
        };
        (*arn == "arn" && !region.is_empty() && !resource.is_empty()).then(|| Arn {
            text: text.to_string(),
            service: service.to_string(),
            region: region.to_string(),
            account: account.to_string(),
            resource: resource.to_string(),
        })
    }
}

/// AWS's per-call limits of each target (records per call, bytes per call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries per call.
    pub count: usize,
    /// Payload bytes per call (summed the way the service counts them).
    pub bytes: usize,
}

/// A validated AWS target.
#[derive(Debug, Clone)]
pub struct AwsTargetConfig {
    /// The target ARN.
    pub arn: Arn,
    /// Endpoint override from Sluice's config.
    pub endpoint: Option<String>,
    /// Which service, with its parameters.
    pub service: AwsService,
}

/// The service and its parameters (values that may be JSON paths are kept as written).
#[derive(Debug, Clone, PartialEq)]
pub enum AwsService {
    /// `Invoke` with the batch as a JSON array.
    Lambda {
        /// `InvocationType: FIRE_AND_FORGET` (async `Event` invocation).
        fire_and_forget: bool,
    },
    /// `SendMessageBatch`.
    Sqs {
        /// Queue name (from the ARN).
        queue: String,
        /// FIFO `MessageGroupId`.
        group_id: Option<String>,
        /// FIFO `MessageDeduplicationId`.
        dedup_id: Option<String>,
    },
    /// `PublishBatch`.
    Sns,
    /// `PutEvents`.
    EventBus {
        /// Bus name (from the ARN).
        bus: String,
        /// `Source` (default: `Pipe <name>`, as AWS; always set after validation).
        source: Option<String>,
        /// `DetailType` (default: `Event from <source ARN kind>`).
        detail_type: Option<String>,
        /// `Resources`.
        resources: Vec<String>,
        /// `Time`: RFC 3339 or epoch seconds; a JSON path or a literal.
        time: Option<String>,
        /// `EndpointId` (global endpoints).
        endpoint_id: Option<String>,
    },
    /// `PutRecords`.
    Kinesis {
        /// Stream name.
        stream: String,
        /// `PartitionKey`: a literal or a JSON path.
        partition_key: String,
    },
    /// `PutRecordBatch`.
    Firehose {
        /// Delivery stream name.
        stream: String,
    },
    /// `StartExecution`, or `StartSyncExecution` for `REQUEST_RESPONSE` (Express only).
    StepFunctions {
        /// `InvocationType: REQUEST_RESPONSE`.
        sync: bool,
    },
    /// `PutLogEvents`.
    Logs {
        /// Log group name.
        group: String,
        /// `LogStreamName`.
        stream: String,
        /// `Timestamp`: a JSON path (or literal) giving epoch milliseconds; default now.
        timestamp: Option<String>,
    },
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct InvocationParams {
    #[serde(default)]
    invocation_type: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct SqsParams {
    #[serde(default)]
    message_group_id: Option<String>,
    #[serde(default)]
    message_deduplication_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct EventBusParams {
    #[serde(default)]
    endpoint_id: Option<String>,
    #[serde(default)]
    detail_type: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    time: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct KinesisParams {
    #[serde(default)]
    partition_key: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct LogsParams {
    #[serde(default)]
    log_stream_name: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
}

/// The parameter block AWS uses for each service (`None`: the service takes none).
fn block_name(service: &str) -> Option<&'static str> {
    Some(match service {
        "lambda" => "LambdaFunctionParameters",
        "sqs" => "SqsQueueParameters",
        "events" => "EventBridgeEventBusParameters",
        "kinesis" => "KinesisStreamParameters",
        "states" => "StepFunctionStateMachineParameters",
        "logs" => "CloudWatchLogsParameters",
        _ => return None,
    })
}

/// The per-call limits of a service.
pub fn limits(service: &AwsService) -> Limits {
    const KIB: usize = 1024;
    match service {
        // A synchronous `Invoke` takes 6 MB (6,291,456 bytes); an asynchronous (`Event`) one
        // 256 KB for most of Lambda's life. AWS raised the latter to 1 MB in 2025; 256 KiB is
        // accepted everywhere, where 1 MB would make a pipe fail for good where it is not.
        AwsService::Lambda { fire_and_forget } => Limits {
            count: super::MAX_BATCH_SIZE,
            bytes: if *fire_and_forget {
                256 * KIB
            } else {
                6 * KIB * KIB
            },
        },
        AwsService::StepFunctions { .. } => Limits {
            count: super::MAX_BATCH_SIZE,
            bytes: 256 * KIB,
        },
        AwsService::Sqs { .. } | AwsService::Sns | AwsService::EventBus { .. } => Limits {
            count: 10,
            bytes: 256 * KIB,
        },
        AwsService::Kinesis { .. } => Limits {
            count: 500,
            bytes: 5 * KIB * KIB,
        },
        AwsService::Firehose { .. } => Limits {
            count: 500,
            bytes: 4 * KIB * KIB,
        },
        AwsService::Logs { .. } => Limits {
            count: 10_000,
            bytes: KIB * KIB,
        },
    }
}

fn block<T: DeserializeOwned + Default>(
    def: &PipeDefinition,
    name: &str,
    errs: &mut Vec<FieldError>,
) -> T {
    let Some(v) = def
        .target_parameters
        .as_ref()
        .and_then(|p| p.other.get(name))
    else {
        return T::default();
    };
    crate::model::parse::block(v, &format!("TargetParameters.{name}"), errs)
}

fn invocation_type(
    def: &PipeDefinition,
    name: &str,
    default_sync: bool,
    errs: &mut Vec<FieldError>,
) -> bool {
    let p: InvocationParams = block(def, name, errs);
    match p.invocation_type.as_deref() {
        None => default_sync,
        Some("REQUEST_RESPONSE") => true,
        Some("FIRE_AND_FORGET") => false,
        Some(other) => {
            errs.push(FieldError::new(
                format!("TargetParameters.{name}.InvocationType"),
                format!("must be REQUEST_RESPONSE or FIRE_AND_FORGET, not {other:?}"),
            ));
            default_sync
        }
    }
}

/// The name after `prefix` in an ARN resource, or a field error.
fn resource_name(arn: &Arn, prefix: &str, example: &str, errs: &mut Vec<FieldError>) -> String {
    match arn.resource.strip_prefix(prefix) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => {
            errs.push(FieldError::new(
                "Target",
                format!("must look like {example}"),
            ));
            String::new()
        }
    }
}

fn validate(
    def: &PipeDefinition,
    ctx: &TargetContext<'_>,
    errs: &mut Vec<FieldError>,
) -> Option<TargetConfig> {
    let before = errs.len();
    let text = def.target.as_deref().unwrap_or_default();
    let Some(arn) = Arn::parse(text) else {
        errs.push(FieldError::new(
            "Target",
            "must be an ARN: arn:aws:<service>:<region>:<account>:<resource>",
        ));
        return None;
    };
    check_blocks(def, &arn, errs);
    let service = match arn.service.as_str() {
        "lambda" => validate_lambda(def, &arn, errs),
        "sqs" => validate_sqs(def, &arn, errs),
        "sns" => validate_sns(&arn, errs),
        "events" => validate_event_bus(def, &arn, errs),
        "kinesis" => validate_kinesis(def, &arn, errs),
        "firehose" => validate_firehose(&arn, errs),
        "states" => validate_step_functions(def, &arn, errs),
        "logs" => validate_logs(def, &arn, errs),
        other => {
            errs.push(FieldError::new(
                "Target",
                format!("{other} is not a target service"),
            ));
            return None;
        }
    };
    let label = super::kinds()
        .iter()
        .find(|k| (k.accepts)(text))
        .map_or("this", |k| k.name);
    check_batch_size(label, limits(&service).count, ctx, errs);
    (errs.len() == before).then(|| {
        TargetConfig::Aws(AwsTargetConfig {
            endpoint: ctx.config.aws.endpoint_for(&arn.service),
            arn,
            service,
        })
    })
}

/// Only the service's own parameter block applies, and never `HttpParameters`.
fn check_blocks(def: &PipeDefinition, arn: &Arn, errs: &mut Vec<FieldError>) {
    let Some(tp) = &def.target_parameters else {
        return;
    };
    let own = block_name(&arn.service);
    for k in tp.other.keys() {
        if Some(k.as_str()) != own {
            let known: Vec<&str> = own.into_iter().chain(["InputTemplate"]).collect();
            let msg = match crate::model::parse::suggest(k, &known) {
                Some(s) => format!("unknown field `{k}`; did you mean `{s}`?"),
                None => format!("does not apply to a target of service {}", arn.service),
            };
            errs.push(FieldError::new(format!("TargetParameters.{k}"), msg));
        }
    }
    if tp.http_parameters.is_some() {
        errs.push(FieldError::new(
            "TargetParameters.HttpParameters",
            "applies only to HTTP targets and API destinations",
        ));
    }
}

fn validate_lambda(def: &PipeDefinition, arn: &Arn, errs: &mut Vec<FieldError>) -> AwsService {
    resource_name(
        arn,
        "function:",
        "arn:aws:lambda:<region>:<account>:function:<name>",
        errs,
    );
    AwsService::Lambda {
        fire_and_forget: !invocation_type(def, "LambdaFunctionParameters", true, errs),
    }
}

fn validate_sqs(def: &PipeDefinition, arn: &Arn, errs: &mut Vec<FieldError>) -> AwsService {
    let queue = arn.resource.clone();
    let p: SqsParams = block(def, "SqsQueueParameters", errs);
    let fifo = queue.ends_with(".fifo");
    if fifo && p.message_group_id.is_none() {
        errs.push(FieldError::new(
            "TargetParameters.SqsQueueParameters.MessageGroupId",
            "is required for a FIFO queue",
        ));
    }
    if !fifo && (p.message_group_id.is_some() || p.message_deduplication_id.is_some()) {
        errs.push(FieldError::new(
            "TargetParameters.SqsQueueParameters",
            "MessageGroupId and MessageDeduplicationId apply only to FIFO (.fifo) queues",
        ));
    }
    for (f, v) in [
        ("MessageGroupId", &p.message_group_id),
        ("MessageDeduplicationId", &p.message_deduplication_id),
    ] {
        if let Some(v) = v {
            check_param(&format!("TargetParameters.SqsQueueParameters.{f}"), v, errs);
        }
    }
    AwsService::Sqs {
        queue,
        group_id: p.message_group_id,
        dedup_id: p.message_deduplication_id,
    }
}

fn validate_sns(arn: &Arn, errs: &mut Vec<FieldError>) -> AwsService {
    if arn.resource.ends_with(".fifo") {
        errs.push(FieldError::new(
            "Target",
            "FIFO SNS topics are not supported as pipe targets (as in AWS)",
        ));
    }
    AwsService::Sns
}

fn validate_event_bus(def: &PipeDefinition, arn: &Arn, errs: &mut Vec<FieldError>) -> AwsService {
    let bus = resource_name(
        arn,
        "event-bus/",
        "arn:aws:events:<region>:<account>:event-bus/<name>",
        errs,
    );
    let p: EventBusParams = block(def, "EventBridgeEventBusParameters", errs);
    if p.resources.len() > 10 {
        errs.push(FieldError::new(
            "TargetParameters.EventBridgeEventBusParameters.Resources",
            "must have at most 10 entries",
        ));
    }
    for (f, v) in [
        ("Source", &p.source),
        ("DetailType", &p.detail_type),
        ("Time", &p.time),
    ] {
        if let Some(v) = v {
            check_param(
                &format!("TargetParameters.EventBridgeEventBusParameters.{f}"),
                v,
                errs,
            );
        }
    }
    if p.source.as_deref().is_some_and(|s| s.starts_with("aws.")) {
        errs.push(FieldError::new(
            "TargetParameters.EventBridgeEventBusParameters.Source",
            "cannot start with \"aws.\"",
        ));
    }
    // PutEvents requires both; AWS Pipes fills them in the same way.
    let kafka_kind = if def.source.as_deref().is_some_and(|s| s.starts_with("arn:")) {
        "aws:kafka"
    } else {
        "SelfManagedKafka"
    };
    AwsService::EventBus {
        bus,
        source: Some(
            p.source
                .unwrap_or_else(|| format!("Pipe {}", def.name.as_deref().unwrap_or_default())),
        ),
        detail_type: Some(
            p.detail_type
                .unwrap_or_else(|| format!("Event from {kafka_kind}")),
        ),
        resources: p.resources,
        time: p.time,
        endpoint_id: p.endpoint_id,
    }
}

fn validate_kinesis(def: &PipeDefinition, arn: &Arn, errs: &mut Vec<FieldError>) -> AwsService {
    let stream = resource_name(
        arn,
        "stream/",
        "arn:aws:kinesis:<region>:<account>:stream/<name>",
        errs,
    );
    let p: KinesisParams = block(def, "KinesisStreamParameters", errs);
    let partition_key = p.partition_key.unwrap_or_default();
    if partition_key.is_empty() {
        errs.push(FieldError::new(
            "TargetParameters.KinesisStreamParameters.PartitionKey",
            "is required for a Kinesis target",
        ));
    } else {
        check_param(
            "TargetParameters.KinesisStreamParameters.PartitionKey",
            &partition_key,
            errs,
        );
    }
    AwsService::Kinesis {
        stream,
        partition_key,
    }
}

fn validate_firehose(arn: &Arn, errs: &mut Vec<FieldError>) -> AwsService {
    AwsService::Firehose {
        stream: resource_name(
            arn,
            "deliverystream/",
            "arn:aws:firehose:<region>:<account>:deliverystream/<name>",
            errs,
        ),
    }
}

fn validate_step_functions(
    def: &PipeDefinition,
    arn: &Arn,
    errs: &mut Vec<FieldError>,
) -> AwsService {
    resource_name(
        arn,
        "stateMachine:",
        "arn:aws:states:<region>:<account>:stateMachine:<name>",
        errs,
    );
    AwsService::StepFunctions {
        sync: invocation_type(def, "StepFunctionStateMachineParameters", false, errs),
    }
}

fn validate_logs(def: &PipeDefinition, arn: &Arn, errs: &mut Vec<FieldError>) -> AwsService {
    let group = resource_name(
        arn,
        "log-group:",
        "arn:aws:logs:<region>:<account>:log-group:<name>",
        errs,
    );
    // The console's ARNs end in `:*`.
    let group = group.strip_suffix(":*").unwrap_or(&group).to_string();
    let p: LogsParams = block(def, "CloudWatchLogsParameters", errs);
    let stream = p.log_stream_name.unwrap_or_default();
    if stream.is_empty() {
        errs.push(FieldError::new(
            "TargetParameters.CloudWatchLogsParameters.LogStreamName",
            "is required for a CloudWatch Logs target",
        ));
    }
    if let Some(t) = &p.timestamp {
        check_param(
            "TargetParameters.CloudWatchLogsParameters.Timestamp",
            t,
            errs,
        );
    }
    AwsService::Logs {
        group,
        stream,
        timestamp: p.timestamp,
    }
}

impl AwsTargetConfig {
    /// Whether a parameter is a JSON path, so events must carry the decoded record.
    pub fn needs_record(&self) -> bool {
        let dynamic = |v: &Option<String>| v.as_deref().is_some_and(is_dynamic);
        match &self.service {
            AwsService::Sqs {
                group_id, dedup_id, ..
            } => dynamic(group_id) || dynamic(dedup_id),
            AwsService::EventBus {
                source,
                detail_type,
                time,
                ..
            } => dynamic(source) || dynamic(detail_type) || dynamic(time),
            AwsService::Kinesis { partition_key, .. } => is_dynamic(partition_key),
            AwsService::Logs { timestamp, .. } => dynamic(timestamp),
            _ => false,
        }
    }

    /// Most events per delivery.
    pub fn max_batch(&self) -> usize {
        limits(&self.service).count
    }

    /// Create the SDK client.
    pub async fn build(&self) -> Result<Arc<dyn Target>, TargetError> {
        #[cfg(feature = "aws-targets")]
        {
            Ok(Arc::new(client::AwsTarget::build(self).await?))
        }
        #[cfg(not(feature = "aws-targets"))]
        {
            Err(TargetError::Unsupported(format!(
                "this build of Sluice has no AWS targets (cargo feature aws-targets); cannot deliver to {}",
                self.arn.text
            )))
        }
    }
}

/// The limits one call's entries must keep to: [`limits`] less what every call carries besides
/// its entries (the JSON array around a Lambda or Step Functions batch: `[` and `]`, while
/// [`entry_size`] counts one comma per element, one more than the array has).
pub fn call_limits(service: &AwsService) -> Limits {
    let mut lim = limits(service);
    if matches!(
        service,
        AwsService::Lambda { .. } | AwsService::StepFunctions { .. }
    ) {
        lim.bytes -= 1;
    }
    lim
}

/// An event's size as its service counts it against the per-call byte limit, computed from what
/// the call will carry (parameters resolved against the event's record).
pub fn entry_size(service: &AwsService, ev: &Event) -> usize {
    let rec = ev.record.as_deref();
    // A resolution failure fails the call itself; its size no longer matters.
    let param = |v: &str| resolve_param(v, rec).map_or(0, |s| s.len());
    let opt_param = |v: &Option<String>| v.as_deref().map_or(0, param);
    // What text-bodied calls send: the payload as UTF-8 (invalid bytes replaced).
    let text_len = || String::from_utf8_lossy(&ev.payload).len();
    match service {
        // An element of the batch's JSON array, and its comma.
        AwsService::Lambda { .. } | AwsService::StepFunctions { .. } => json_element_len(ev) + 1,
        AwsService::Sqs { .. } | AwsService::Sns => text_len(),
        // PutEvents' entry size: Time (14), Source, DetailType, Detail and each Resource.
        AwsService::EventBus {
            source,
            detail_type,
            resources,
            time,
            ..
        } => {
            text_len()
                + opt_param(source)
                + opt_param(detail_type)
                + resources.iter().map(String::len).sum::<usize>()
                + if time.is_some() { 14 } else { 0 }
        }
        // Data plus the partition key, as sent.
        AwsService::Kinesis { partition_key, .. } => ev.payload.len() + param(partition_key),
        AwsService::Firehose { .. } => ev.payload.len(),
        // The message plus 26 bytes per log event.
        AwsService::Logs { .. } => text_len() + 26,
    }
}

/// Length of `ev` as an element of a batch's JSON array ([`super::http::batch_body`]): the
/// payload itself when it is JSON, else the payload as a JSON string (quotes and escapes).
fn json_element_len(ev: &Event) -> usize {
    if ev.is_json {
        return ev.payload.len();
    }
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    // Writing a str into a counter cannot fail.
    let _ = serde_json::to_writer(&mut n, String::from_utf8_lossy(&ev.payload).as_ref());
    n.0
}

/// The longest time a `PutLogEvents` call's events may span: 24 hours, in milliseconds.
pub const LOG_CALL_SPAN_MS: i64 = 24 * 60 * 60 * 1000;

/// Cut `sizes` (in order) into runs of at most `limits.count` entries and `limits.bytes` bytes.
/// An entry larger than the byte limit goes alone (the service then refuses it).
pub fn chunks(sizes: &[usize], limits: Limits) -> Vec<std::ops::Range<usize>> {
    cut(sizes, None, limits)
}

/// [`chunks`], also cutting where a run's `times` (one per entry) would span more than `span`.
pub fn chunks_within_span(
    sizes: &[usize],
    times: &[i64],
    limits: Limits,
    span: i64,
) -> Vec<std::ops::Range<usize>> {
    cut(sizes, Some((times, span)), limits)
}

fn cut(
    sizes: &[usize],
    times: Option<(&[i64], i64)>,
    limits: Limits,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    // Earliest and latest time of the run.
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for (i, &s) in sizes.iter().enumerate() {
        let t = times.map(|(t, _)| t[i]);
        let too_long = match (t, times) {
            (Some(t), Some((_, span))) if i > start => t.max(hi).saturating_sub(t.min(lo)) > span,
            _ => false,
        };
        if i > start && (i - start >= limits.count || bytes + s > limits.bytes || too_long) {
            out.push(start..i);
            start = i;
            bytes = 0;
            (lo, hi) = (i64::MAX, i64::MIN);
        }
        bytes += s;
        if let Some(t) = t {
            (lo, hi) = (lo.min(t), hi.max(t));
        }
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_split_at_count_and_bytes() {
        let l = Limits {
            count: 3,
            bytes: 100,
        };
        assert_eq!(chunks(&[1; 7], l), vec![0..3, 3..6, 6..7]);
        assert_eq!(
            chunks(&[60, 60, 30, 10, 200, 1], l),
            vec![0..1, 1..4, 4..5, 5..6]
        );
        assert!(chunks(&[], l).is_empty());
    }

    #[test]
    fn chunks_split_where_times_would_span_too_long() {
        let l = Limits {
            count: 10,
            bytes: 100,
        };
        // Out of order too: a run's span is its latest minus its earliest time.
        let times = [50, 60, 10, 100, 111, 105, 200];
        assert_eq!(
            chunks_within_span(&[1; 7], &times, l, 50),
            vec![0..3, 3..6, 6..7]
        );
        assert_eq!(
            chunks_within_span(&[60, 60, 1], &[0, 0, 1000], l, 50),
            vec![0..1, 1..2, 2..3]
        );
        assert_eq!(chunks_within_span(&[1; 3], &[0; 3], l, 0), vec![0..3]);
    }

    fn event(payload: &str, is_json: bool, record: Option<serde_json::Value>) -> Event {
        Event {
            payload: bytes::Bytes::copy_from_slice(payload.as_bytes()),
            is_json,
            record: record.map(Arc::new),
            source: None,
            array: None,
        }
    }

    #[test]
    fn array_entries_count_their_json_encoding_and_calls_their_brackets() {
        let sfn = AwsService::StepFunctions { sync: false };
        // `{"a":1}` and its comma.
        assert_eq!(entry_size(&sfn, &event(r#"{"a":1}"#, true, None)), 8);
        // Text goes as a JSON string: quotes, and `"` escaped.
        assert_eq!(entry_size(&sfn, &event(r#"a"b"#, false, None)), 7);
        // n elements of sizes s_i make `[` + join(",") + `]`: sum(s_i + 1) + 1 bytes.
        assert_eq!(call_limits(&sfn).bytes, 256 * 1024 - 1);
        let ff = AwsService::Lambda {
            fire_and_forget: true,
        };
        let rr = AwsService::Lambda {
            fire_and_forget: false,
        };
        assert_eq!(limits(&ff).bytes, 256 * 1024);
        assert_eq!(limits(&rr).bytes, 6 * 1024 * 1024);
        assert_eq!(limits(&ff).count, limits(&rr).count);
    }

    #[test]
    fn entries_count_their_resolved_parameters() {
        let rec = serde_json::json!({"value": {"user": "u-123", "kind": "Created"}});
        let kin = AwsService::Kinesis {
            stream: "s".into(),
            partition_key: "$.value.user".into(),
        };
        assert_eq!(
            entry_size(&kin, &event("12345", false, Some(rec.clone()))),
            5 + 5
        );
        let bus = AwsService::EventBus {
            bus: "b".into(),
            source: Some("orders".into()),
            detail_type: Some("$.value.kind".into()),
            resources: vec!["arn:aws:s3:::r1".into(), "r2".into()],
            time: Some("$.value.at".into()),
            endpoint_id: None,
        };
        assert_eq!(
            entry_size(&bus, &event("{}", true, Some(rec))),
            2 + 6 + 7 + 15 + 2 + 14
        );
        let logs = AwsService::Logs {
            group: "g".into(),
            stream: "s".into(),
            timestamp: None,
        };
        assert_eq!(entry_size(&logs, &event("line", false, None)), 4 + 26);
    }

    #[test]
    fn arns_parse() {
        let a = Arn::parse("arn:aws:logs:eu-west-1:123456789012:log-group:g:*").unwrap();
        assert_eq!(a.service, "logs");
        assert_eq!(a.resource, "log-group:g:*");
        assert!(Arn::parse("arn:aws:sqs::1:q").is_none());
        assert_eq!(service_of("arn:aws:sqs:r:1:q"), Some("sqs"));
    }
}
