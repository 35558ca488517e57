//! Delivery to AWS services through the AWS SDK for Rust (feature `aws-targets`).
//!
//! Each batch is cut at the service's per-call limits ([`super::call_limits`]: entries, and bytes
//! as the service counts them, [`super::entry_size`]; for CloudWatch Logs also 24 hours of event
//! time) and the calls are made in order; a failed call, or any failed entry of a batch API (SQS,
//! SNS, EventBridge, Kinesis, Firehose, CloudWatch Logs), fails the whole batch, which the lane
//! retries.
//! The SDK's own retries (throttling, 5xx) happen first, inside one delivery attempt.
//!
//! Services are listed once, in [`AwsService`]: building a target turns its variant into that
//! service's client (`LambdaClient`, `SqsClient`...: the SDK client and the call's parameters),
//! so a client cannot be paired with another service's parameters. Without the feature, only
//! the SDK clients are missing.

use std::fmt;
use std::future::Future;
use std::ops::Range;

use aws_config::SdkConfig;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::Blob;
use futures::future::BoxFuture;

use super::{
    call_limits, chunks, chunks_within_span, entry_size, Arn, AwsService, AwsTargetConfig, Limits,
    LOG_CALL_SPAN_MS,
};
use crate::targets::http::batch_body;
use crate::targets::{parse_item_failures, resolve_param, Delivered, Event, Target, TargetError};

/// A built AWS target.
pub struct AwsTarget {
    config: AwsTargetConfig,
    client: Box<dyn Deliver>,
}

impl fmt::Debug for AwsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsTarget")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A batch to deliver, with what cutting it into calls needs.
struct Batch<'a> {
    events: &'a [Event],
    /// Each event's size as the service counts it.
    sizes: Vec<usize>,
    limits: Limits,
    arn: &'a str,
}

impl Batch<'_> {
    /// Log one call of `range`.
    fn trace(&self, range: &Range<usize>) {
        tracing::debug!(target_arn = %self.arn, entries = range.len(), "AWS target call");
    }
}

/// How a service delivers a whole batch.
trait Deliver: Send + Sync {
    fn deliver<'a>(&'a self, batch: &'a Batch<'a>)
        -> BoxFuture<'a, Result<Delivered, TargetError>>;
}

/// One call of a service whose batches are cut at its count and byte limits only.
trait Call: Send + Sync {
    fn call(&self, events: &[Event])
        -> impl Future<Output = Result<Delivered, TargetError>> + Send;
}

impl<T: Call> Deliver for T {
    fn deliver<'a>(
        &'a self,
        batch: &'a Batch<'a>,
    ) -> BoxFuture<'a, Result<Delivered, TargetError>> {
        Box::pin(async move {
            let mut all = Delivered::default();
            for range in chunks(&batch.sizes, batch.limits) {
                batch.trace(&range);
                let start = range.start;
                let done = self
                    .call(&batch.events[range])
                    .await
                    .map_err(|e| e.offset_entry(start))?;
                all.item_failures.extend(done.item_failures);
            }
            Ok(all)
        })
    }
}

impl Target for AwsTarget {
    fn deliver<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<Delivered, TargetError>> {
        Box::pin(async move {
            let service = &self.config.service;
            let batch = Batch {
                events,
                sizes: events.iter().map(|e| entry_size(service, e)).collect(),
                limits: call_limits(service),
                arn: &self.config.arn.text,
            };
            // An event the service would refuse on its own is refused before anything is sent.
            let limit = batch.limits.bytes;
            if let Some((entry, &size)) = batch.sizes.iter().enumerate().find(|(_, s)| **s > limit)
            {
                return Err(TargetError::PayloadTooLarge { entry, size, limit });
            }
            self.client.deliver(&batch).await
        })
    }
}

macro_rules! client {
    ($sdk:ident, $conf:expr, $endpoint:expr) => {{
        let mut b = $sdk::config::Builder::from($conf);
        if let Some(ep) = $endpoint {
            b = b.endpoint_url(ep);
        }
        $sdk::Client::from_conf(b.build())
    }};
}

/// Drops the `sync-` host prefix the SDK puts before `StartSyncExecution` endpoints: with an
/// endpoint override (an emulator, a VPC endpoint) the prefixed host does not exist.
#[derive(Debug)]
struct NoHostPrefix;

impl aws_sdk_sfn::config::Intercept for NoHostPrefix {
    fn name(&self) -> &'static str {
        "NoHostPrefix"
    }

    fn modify_before_retry_loop(
        &self,
        _context: &mut aws_sdk_sfn::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _rc: &aws_sdk_sfn::config::RuntimeComponents,
        cfg: &mut aws_sdk_sfn::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        cfg.interceptor_state()
            .unset::<aws_smithy_runtime_api::client::endpoint::EndpointPrefix>();
        Ok(())
    }
}

impl AwsTarget {
    /// Load the SDK configuration for the ARN's region and create the service's client.
    pub async fn build(config: &AwsTargetConfig) -> Result<AwsTarget, TargetError> {
        let sdk = crate::secrets::aws::sdk_config(&config.arn.region).await;
        let client = service_client(
            config.service.clone(),
            &config.arn,
            &sdk,
            config.endpoint.clone(),
        );
        Ok(AwsTarget {
            config: config.clone(),
            client,
        })
    }
}

/// The client of `service`, holding the parameters of its calls, with `ep` as endpoint override.
fn service_client(
    service: AwsService,
    arn: &Arn,
    sdk: &SdkConfig,
    ep: Option<String>,
) -> Box<dyn Deliver> {
    match service {
        AwsService::Lambda { fire_and_forget } => Box::new(LambdaClient {
            client: client!(aws_sdk_lambda, sdk, ep),
            function: arn.text.clone(),
            fire_and_forget,
        }),
        AwsService::Sqs {
            queue,
            group_id,
            dedup_id,
        } => Box::new(SqsClient {
            client: client!(aws_sdk_sqs, sdk, ep),
            queue,
            account: arn.account.clone(),
            group_id,
            dedup_id,
            url: tokio::sync::OnceCell::new(),
        }),
        AwsService::Sns => Box::new(SnsClient {
            client: client!(aws_sdk_sns, sdk, ep),
            topic: arn.text.clone(),
        }),
        AwsService::EventBus {
            bus,
            source,
            detail_type,
            resources,
            time,
            endpoint_id,
        } => Box::new(EventBusClient {
            client: client!(aws_sdk_eventbridge, sdk, ep),
            bus,
            source,
            detail_type,
            resources,
            time,
            endpoint_id,
        }),
        AwsService::Kinesis {
            stream,
            partition_key,
        } => Box::new(KinesisClient {
            client: client!(aws_sdk_kinesis, sdk, ep),
            stream,
            partition_key,
        }),
        AwsService::Firehose { stream } => Box::new(FirehoseClient {
            client: client!(aws_sdk_firehose, sdk, ep),
            stream,
        }),
        AwsService::StepFunctions { sync } => Box::new(StepFunctionsClient {
            client: sfn_client(sdk, ep),
            state_machine: arn.text.clone(),
            sync,
        }),
        AwsService::Logs {
            group,
            stream,
            timestamp,
        } => Box::new(LogsClient {
            client: client!(aws_sdk_cloudwatchlogs, sdk, ep),
            group,
            stream,
            timestamp,
        }),
    }
}

/// The Step Functions client: without the `sync-` host prefix when the endpoint is overridden.
fn sfn_client(sdk: &SdkConfig, ep: Option<String>) -> aws_sdk_sfn::Client {
    let mut b = aws_sdk_sfn::config::Builder::from(sdk);
    // Any endpoint override, ours or AWS_ENDPOINT_URL*, means "no host prefix".
    let overridden = ep.is_some()
        || sdk.endpoint_url().is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_SFN").is_some();
    if let Some(ep) = ep {
        b = b.endpoint_url(ep);
    }
    if overridden {
        b = b.interceptor(NoHostPrefix);
    }
    aws_sdk_sfn::Client::from_conf(b.build())
}

/// Sort an SDK failure: throttling and 5xx and transport problems are worth retrying; the rest
/// (missing resource, access denied, bad request) needs the user. No request data is included.
fn sdk_error<E>(what: &str, e: SdkError<E, HttpResponse>) -> TargetError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("Unknown").to_string();
            let status = se.raw().status().as_u16();
            let throttled = status == 429
                || code.contains("Throttl")
                || code.contains("TooManyRequests")
                || code.contains("ProvisionedThroughputExceeded")
                || code == "RequestLimitExceeded";
            TargetError::Service {
                service: what.to_string(),
                message: format!("{code}: {}", err.message().unwrap_or_default()),
                retryable: throttled || status >= 500,
                throttled,
            }
        }
        SdkError::ConstructionFailure(_) => TargetError::Request(format!(
            "{what}: {}",
            aws_smithy_types::error::display::DisplayErrorContext(&e)
        )),
        _ => TargetError::Service {
            service: what.to_string(),
            message: aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
            retryable: true,
            throttled: false,
        },
    }
}

fn text(ev: &Event) -> String {
    String::from_utf8_lossy(&ev.payload).into_owned()
}

/// The answer of a batch API that reports failures per entry: `Ok` when `failed` is 0, else an
/// error naming the first failed entry (the lane retries the batch whole, or from that entry with
/// `ReportBatchItemFailures`). `entries` are (entry index in the call, error code, error
/// message); a succeeded entry has no code.
fn entry_failures<'a>(
    what: &str,
    failed: usize,
    total: usize,
    entries: impl Iterator<Item = (usize, Option<&'a str>, Option<&'a str>)>,
) -> Result<Delivered, TargetError> {
    if failed == 0 {
        return Ok(Delivered::default());
    }
    let (first_index, first) = entries
        .filter_map(|(i, code, msg)| code.map(|c| (i, format!("{c}: {}", msg.unwrap_or_default()))))
        .min_by_key(|(i, _)| *i)
        .unwrap_or_default();
    Err(TargetError::Partial {
        service: what.to_string(),
        failed,
        total,
        first,
        first_index,
    })
}

/// The index of an SQS or SNS batch entry from the id it was sent with (its index).
fn entry_index(id: &str) -> usize {
    id.parse().unwrap_or(0)
}

fn built(what: &str, e: impl fmt::Display) -> TargetError {
    TargetError::Request(format!("{what}: {e}"))
}

/// Epoch milliseconds from a resolved `Timestamp`/`Time` value: a number (seconds if it looks like
/// seconds, else milliseconds) or RFC 3339 text.
fn parse_time_millis(v: &str) -> Option<i64> {
    if let Ok(n) = v.trim().parse::<f64>() {
        // Before 2001-09-09 in milliseconds is implausible; treat such numbers as seconds.
        return Some(if n.abs() < 1e12 {
            (n * 1000.0) as i64
        } else {
            n as i64
        });
    }
    let t = time::OffsetDateTime::parse(v.trim(), &time::format_description::well_known::Rfc3339)
        .ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `Invoke` with the batch as a JSON array.
struct LambdaClient {
    client: aws_sdk_lambda::Client,
    function: String,
    fire_and_forget: bool,
}

impl Call for LambdaClient {
    async fn call(&self, events: &[Event]) -> Result<Delivered, TargetError> {
        use aws_sdk_lambda::types::InvocationType;
        let what = "Lambda Invoke";
        let out = self
            .client
            .invoke()
            .function_name(&self.function)
            .invocation_type(if self.fire_and_forget {
                InvocationType::Event
            } else {
                InvocationType::RequestResponse
            })
            .payload(Blob::new(batch_body(events).to_vec()))
            .send()
            .await
            .map_err(|e| sdk_error(what, e))?;
        if let Some(fe) = out.function_error() {
            let detail: String = out
                .payload()
                .map(|p| {
                    String::from_utf8_lossy(p.as_ref())
                        .chars()
                        .take(200)
                        .collect()
                })
                .unwrap_or_default();
            return Err(TargetError::Service {
                service: what.into(),
                message: format!("the function failed ({fe}): {detail}"),
                retryable: true,
                throttled: false,
            });
        }
        // A synchronous invocation may name the records that failed.
        Ok(Delivered {
            item_failures: out
                .payload()
                .map(|p| parse_item_failures(p.as_ref()))
                .unwrap_or_default(),
        })
    }
}

/// `SendMessageBatch`, to the queue URL asked once.
struct SqsClient {
    client: aws_sdk_sqs::Client,
    queue: String,
    account: String,
    group_id: Option<String>,
    dedup_id: Option<String>,
    url: tokio::sync::OnceCell<String>,
}

impl SqsClient {
    /// The queue's URL (`GetQueueUrl` the first time).
    async fn url(&self) -> Result<&String, TargetError> {
        self.url
            .get_or_try_init(|| async {
                let out = self
                    .client
                    .get_queue_url()
                    .queue_name(&self.queue)
                    .queue_owner_aws_account_id(&self.account)
                    .send()
                    .await
                    .map_err(|e| sdk_error("SQS GetQueueUrl", e))?;
                out.queue_url()
                    .map(str::to_string)
                    .ok_or_else(|| built("SQS GetQueueUrl", "no queue URL in the answer"))
            })
            .await
    }

    fn entry(
        &self,
        i: usize,
        ev: &Event,
    ) -> Result<aws_sdk_sqs::types::SendMessageBatchRequestEntry, TargetError> {
        let rec = ev.record.as_deref();
        let mut b = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
            .id(i.to_string())
            .message_body(text(ev));
        if let Some(g) = &self.group_id {
            b = b.message_group_id(resolve_param(g, rec)?);
        }
        if let Some(d) = &self.dedup_id {
            b = b.message_deduplication_id(resolve_param(d, rec)?);
        }
        b.build().map_err(|e| built("SQS SendMessageBatch", e))
    }
}

impl Call for SqsClient {
    async fn call(&self, events: &[Event]) -> Result<Delivered, TargetError> {
        let what = "SQS SendMessageBatch";
        let url = self.url().await?;
        let entries = events
            .iter()
            .enumerate()
            .map(|(i, ev)| self.entry(i, ev))
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sdk_error(what, e))?;
        let failed = out.failed();
        entry_failures(
            what,
            failed.len(),
            events.len(),
            failed
                .iter()
                .map(|f| (entry_index(f.id()), Some(f.code()), f.message())),
        )
    }
}

/// `PublishBatch`.
struct SnsClient {
    client: aws_sdk_sns::Client,
    topic: String,
}

impl Call for SnsClient {
    async fn call(&self, events: &[Event]) -> Result<Delivered, TargetError> {
        let what = "SNS PublishBatch";
        let entries = events
            .iter()
            .enumerate()
            .map(|(i, ev)| {
                aws_sdk_sns::types::PublishBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message(text(ev))
                    .build()
                    .map_err(|e| built(what, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .publish_batch()
            .topic_arn(&self.topic)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sdk_error(what, e))?;
        let failed = out.failed();
        entry_failures(
            what,
            failed.len(),
            events.len(),
            failed
                .iter()
                .map(|f| (entry_index(f.id()), Some(f.code()), f.message())),
        )
    }
}

/// `PutEvents`.
struct EventBusClient {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    source: Option<String>,
    detail_type: Option<String>,
    resources: Vec<String>,
    time: Option<String>,
    endpoint_id: Option<String>,
}

impl EventBusClient {
    fn entry(
        &self,
        ev: &Event,
    ) -> Result<aws_sdk_eventbridge::types::PutEventsRequestEntry, TargetError> {
        let rec = ev.record.as_deref();
        let mut b = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .detail(text(ev))
            .set_resources((!self.resources.is_empty()).then(|| self.resources.clone()));
        if let Some(s) = &self.source {
            b = b.source(resolve_param(s, rec)?);
        }
        if let Some(d) = &self.detail_type {
            b = b.detail_type(resolve_param(d, rec)?);
        }
        if let Some(t) = &self.time {
            if let Some(ms) = parse_time_millis(&resolve_param(t, rec)?) {
                b = b.time(aws_smithy_types::DateTime::from_millis(ms));
            }
        }
        Ok(b.build())
    }
}

impl Call for EventBusClient {
    async fn call(&self, events: &[Event]) -> Result<Delivered, TargetError> {
        let what = "EventBridge PutEvents";
        let entries = events
            .iter()
            .map(|ev| self.entry(ev))
            .collect::<Result<Vec<_>, _>>()?;
        let mut req = self.client.put_events().set_entries(Some(entries));
        if let Some(e) = &self.endpoint_id {
            req = req.endpoint_id(e);
        }
        let out = req.send().await.map_err(|e| sdk_error(what, e))?;
        entry_failures(
            what,
            out.failed_entry_count() as usize,
            events.len(),
            out.entries()
                .iter()
                .enumerate()
                .map(|(i, e)| (i, e.error_code(), e.error_message())),
        )
    }
}

/// `PutRecords`.
struct KinesisClient {
    client: aws_sdk_kinesis::Client,
    stream: String,
    partition_key: String,
}

impl KinesisClient {
    fn entry(
        &self,
        ev: &Event,
    ) -> Result<aws_sdk_kinesis::types::PutRecordsRequestEntry, TargetError> {
        let key = resolve_param(&self.partition_key, ev.record.as_deref())?;
        if key.is_empty() {
            return Err(TargetError::Request(format!(
                "PartitionKey {:?} resolved to nothing for a record",
                self.partition_key
            )));
        }
        aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
            .data(Blob::new(ev.payload.to_vec()))
            .partition_key(key)
            .build()
            .map_err(|e| built("Kinesis PutRecords", e))
    }
}

impl Call for KinesisClient {
    async fn call(&self, events: &[Event]) -> Result<Delivered, TargetError> {
        let what = "Kinesis PutRecords";
        let entries = events
            .iter()
            .map(|ev| self.entry(ev))
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .put_records()
            .stream_name(&self.stream)
            .set_records(Some(entries))
            .send()
            .await
            .map_err(|e| sdk_error(what, e))?;
        entry_failures(
            what,
            out.failed_record_count().unwrap_or(0) as usize,
            events.len(),
            out.records()
                .iter()
                .enumerate()
                .map(|(i, r)| (i, r.error_code(), r.error_message())),
        )
    }
}

/// `PutRecordBatch`.
struct FirehoseClient {
    client: aws_sdk_firehose::Client,
    stream: String,
}

impl Call for FirehoseClient {
    async fn call(&self, events: &[Event]) -> Result<Delivered, TargetError> {
        let what = "Firehose PutRecordBatch";
        let records = events
            .iter()
            .map(|ev| {
                aws_sdk_firehose::types::Record::builder()
                    .data(Blob::new(ev.payload.to_vec()))
                    .build()
                    .map_err(|e| built(what, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .put_record_batch()
            .delivery_stream_name(&self.stream)
            .set_records(Some(records))
            .send()
            .await
            .map_err(|e| sdk_error(what, e))?;
        entry_failures(
            what,
            out.failed_put_count() as usize,
            events.len(),
            out.request_responses()
                .iter()
                .enumerate()
                .map(|(i, r)| (i, r.error_code(), r.error_message())),
        )
    }
}

/// `StartExecution`, or `StartSyncExecution` for `REQUEST_RESPONSE`.
struct StepFunctionsClient {
    client: aws_sdk_sfn::Client,
    state_machine: String,
    sync: bool,
}

impl StepFunctionsClient {
    async fn start_sync(&self, input: String) -> Result<Delivered, TargetError> {
        use aws_sdk_sfn::types::SyncExecutionStatus;
        let what = "Step Functions StartSyncExecution";
        let out = self
            .client
            .start_sync_execution()
            .state_machine_arn(&self.state_machine)
            .input(input)
            .send()
            .await
            .map_err(|e| sdk_error(what, e))?;
        if *out.status() != SyncExecutionStatus::Succeeded {
            return Err(TargetError::Service {
                service: what.into(),
                message: format!(
                    "the execution ended {}: {} {}",
                    out.status().as_str(),
                    out.error().unwrap_or_default(),
                    out.cause().unwrap_or_default()
                ),
                retryable: true,
                throttled: false,
            });
        }
        // The execution's output may name the records that failed.
        Ok(Delivered {
            item_failures: out
                .output()
                .map(|o| parse_item_failures(o.as_bytes()))
                .unwrap_or_default(),
        })
    }
}

impl Call for StepFunctionsClient {
    async fn call(&self, events: &[Event]) -> Result<Delivered, TargetError> {
        let input = String::from_utf8_lossy(&batch_body(events)).into_owned();
        if self.sync {
            return self.start_sync(input).await;
        }
        self.client
            .start_execution()
            .state_machine_arn(&self.state_machine)
            .input(input)
            .send()
            .await
            .map_err(|e| sdk_error("Step Functions StartExecution", e))?;
        Ok(Delivered::default())
    }
}

/// `PutLogEvents`; its calls are also cut where their events would span more than 24 hours.
struct LogsClient {
    client: aws_sdk_cloudwatchlogs::Client,
    group: String,
    stream: String,
    timestamp: Option<String>,
}

impl Deliver for LogsClient {
    fn deliver<'a>(
        &'a self,
        batch: &'a Batch<'a>,
    ) -> BoxFuture<'a, Result<Delivered, TargetError>> {
        Box::pin(async move {
            let times = batch
                .events
                .iter()
                .map(|ev| log_time(self.timestamp.as_deref(), ev))
                .collect::<Result<Vec<_>, _>>()?;
            let ranges = chunks_within_span(&batch.sizes, &times, batch.limits, LOG_CALL_SPAN_MS);
            for range in ranges {
                batch.trace(&range);
                self.put_log_events(&batch.events[range.clone()], &times[range])
                    .await?;
            }
            Ok(Delivered::default())
        })
    }
}

impl LogsClient {
    /// `PutLogEvents` of `events` at `times` (epoch milliseconds, one per event).
    async fn put_log_events(&self, events: &[Event], times: &[i64]) -> Result<(), TargetError> {
        let what = "CloudWatch Logs PutLogEvents";
        let mut entries: Vec<(i64, String)> =
            times.iter().copied().zip(events.iter().map(text)).collect();
        // The service wants a call's events in time order; a stable sort keeps the partition
        // order among equal timestamps.
        entries.sort_by_key(|(ms, _)| *ms);
        let log_events = entries
            .into_iter()
            .map(|(ms, msg)| {
                aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                    .timestamp(ms)
                    .message(msg)
                    .build()
                    .map_err(|e| built(what, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .put_log_events()
            .log_group_name(&self.group)
            .log_stream_name(&self.stream)
            .set_log_events(Some(log_events))
            .send()
            .await
            .map_err(|e| sdk_error(what, e))?;
        if let Some(r) = out.rejected_log_events_info() {
            return Err(TargetError::Service {
                service: what.into(),
                message: format!("log events rejected: {r:?}"),
                retryable: false,
                throttled: false,
            });
        }
        Ok(())
    }
}

/// A log event's time: its `Timestamp` resolved against the record (seconds, milliseconds or
/// RFC 3339), else now.
fn log_time(timestamp: Option<&str>, ev: &Event) -> Result<i64, TargetError> {
    Ok(match timestamp {
        Some(t) => {
            parse_time_millis(&resolve_param(t, ev.record.as_deref())?).unwrap_or_else(now_millis)
        }
        None => now_millis(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_seconds_millis_or_rfc3339() {
        assert_eq!(parse_time_millis("1700000000"), Some(1_700_000_000_000));
        assert_eq!(parse_time_millis("1700000000123"), Some(1_700_000_000_123));
        assert_eq!(
            parse_time_millis("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000)
        );
        assert_eq!(parse_time_millis("soon"), None);
    }
}
