//! The pipe definition as users write it: AWS's `CreatePipe` request shape plus `Name`, with AWS's
//! field names exactly, and our extensions in one `SluiceParameters` block.
//!
//! These structs only carry what was written. Nothing here checks ranges or formats; that is
//! [`super::validate`]'s job, so that every field error can be reported at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A pipe definition (`CreatePipe` body plus `Name`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PipeDefinition {
    /// The pipe's name: 1-64 characters of `[.\-_A-Za-z0-9]`.
    pub name: Option<String>,
    /// Free text, at most 512 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `RUNNING` (default) or `STOPPED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_state: Option<String>,
    /// `smk://host:port` for self-managed Kafka, or an MSK cluster ARN.
    pub source: Option<String>,
    /// Source parameters; exactly one Kafka block applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_parameters: Option<SourceParameters>,
    /// Enrichment endpoint (URL or ARN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrichment: Option<String>,
    /// Enrichment parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrichment_parameters: Option<EnrichmentParameters>,
    /// Target: an `http(s)://` URL (our extension) or an AWS ARN.
    pub target: Option<String>,
    /// Target parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_parameters: Option<TargetParameters>,
    /// IAM role ARN; stored, not used (Sluice uses its own credentials). Optional in pipe files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Resource tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// Execution logs: level, execution data and destinations (`PipeLogConfigurationParameters`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<LogConfiguration>,
    /// KMS key for encryption at rest in AWS; accepted and stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_identifier: Option<String>,
    /// Sluice's extensions (not part of the AWS shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sluice_parameters: Option<SluiceParameters>,
}

impl PipeDefinition {
    /// The same pipe reading from other bootstrap servers (`host:port[,host:port]`): an `smk://`
    /// Source gets them as its address, any other source (an MSK cluster ARN) as
    /// `SluiceParameters.BootstrapServers`. Validation checks them as if they had been written.
    pub fn with_bootstrap_servers(&self, servers: &str) -> PipeDefinition {
        let mut def = self.clone();
        match def.source.as_deref() {
            Some(s) if s.starts_with("smk://") => def.source = Some(format!("smk://{servers}")),
            _ => {
                let list = servers.split(',').map(|s| s.trim().to_string()).collect();
                def.sluice_parameters
                    .get_or_insert_with(Default::default)
                    .bootstrap_servers = Some(list);
            }
        }
        def
    }
}

/// `SourceParameters`. Unknown keys land in `other` (serde cannot deny them next to a flatten);
/// validation rejects them by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SourceParameters {
    /// Event-pattern filters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_criteria: Option<FilterCriteria>,
    /// Parameters of a self-managed Kafka source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_managed_kafka_parameters: Option<KafkaParameters>,
    /// Parameters of an Amazon MSK source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_streaming_kafka_parameters: Option<KafkaParameters>,
    /// Any other AWS source kind (SQS, Kinesis, ...): accepted by the shape, rejected by validation.
    #[serde(flatten, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `FilterCriteria`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct FilterCriteria {
    /// Up to 5 filters; a record passes if any matches.
    #[serde(default)]
    pub filters: Vec<Filter>,
}

/// One filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Filter {
    /// The event pattern as JSON text.
    pub pattern: Option<String>,
}

/// `SelfManagedKafkaParameters` and `ManagedStreamingKafkaParameters` (the MSK block simply has
/// fewer fields; validation rejects the self-managed-only ones there).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct KafkaParameters {
    /// The topic to read.
    pub topic_name: Option<String>,
    /// `TRIM_HORIZON` or `LATEST` (default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_position: Option<String>,
    /// 1-10000 records per batch, default 100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<i64>,
    /// 0-300 seconds, default 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_batching_window_in_seconds: Option<i64>,
    /// Consumer group; generated from the pipe name when absent.
    #[serde(rename = "ConsumerGroupID", skip_serializing_if = "Option::is_none")]
    pub consumer_group_id: Option<String>,
    /// Up to two extra `host:port` bootstrap servers (self-managed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_bootstrap_servers: Option<Vec<String>>,
    /// Secret references for authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<BTreeMap<String, String>>,
    /// Secret reference holding the CA certificate (self-managed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_root_ca_certificate: Option<String>,
    /// VPC placement in AWS; accepted and stored, meaningless here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc: Option<serde_json::Value>,
}

/// `EnrichmentParameters`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct EnrichmentParameters {
    /// Template applied to each record before the enrichment call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_template: Option<String>,
    /// HTTP parameters of an HTTP enrichment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_parameters: Option<HttpParameters>,
}

/// `TargetParameters`: the HTTP part is typed; other target kinds' blocks are kept as given and
/// checked by name in validation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetParameters {
    /// Template applied to each record before the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_template: Option<String>,
    /// HTTP parameters of an HTTP target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_parameters: Option<HttpParameters>,
    /// Parameters of AWS service targets (`SqsQueueParameters`, `LambdaFunctionParameters`, ...).
    #[serde(flatten, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `HttpParameters`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct HttpParameters {
    /// Values for the `*` wildcards of the endpoint path, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_parameter_values: Option<Vec<String>>,
    /// Extra request headers; values may be JSON paths into the record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_parameters: Option<BTreeMap<String, String>>,
    /// Query string parameters; values may be JSON paths into the record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_string_parameters: Option<BTreeMap<String, String>>,
}

/// Sluice's own extensions to a pipe. Absent means "behave exactly as AWS".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SluiceParameters {
    /// Bootstrap servers (`host:port`) for an MSK source given by ARN. Absent, the brokers are
    /// looked up with the MSK API (`kafka:GetBootstrapBrokers`); given, no lookup is made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<Vec<String>>,
    /// Which broker strings of an MSK cluster looked up by ARN are used: `PRIVATE` (default, from
    /// inside the cluster's VPC), `PUBLIC` (public access) or `VPC_CONNECTIVITY` (multi-VPC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msk_broker_access: Option<String>,
    /// Where a consumer group without committed offsets starts (Lambda's `AT_TIMESTAMP`): each
    /// partition at its first record whose timestamp is at or after this one, or at its end when
    /// there is none. Epoch seconds (a number, or digits in a string) or RFC 3339 text; not in the
    /// future. Overrides `StartingPosition`; cannot change after creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_position_timestamp: Option<StartingTimestamp>,
    /// HTTP target delivery: `PER_RECORD` (default; one request per record, as API destinations)
    /// or `BATCH` (the whole batch as one JSON array, as a Lambda target receives it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_delivery: Option<String>,
    /// Timeout of one HTTP request to the target, in seconds (default 5, as API destinations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_timeout_seconds: Option<f64>,
    /// Ceiling of the exponential retry backoff, in seconds (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_retry_backoff_seconds: Option<f64>,
    /// Whether the Kafka connection uses TLS (the server certificate and host name are always
    /// verified, against `ServerRootCaCertificate` or the system roots). Default: TLS for MSK, for
    /// any `Credentials` and with `ServerRootCaCertificate` (as AWS); plaintext for a self-managed
    /// source with neither. `false` allows SASL over plaintext (local development only); it cannot
    /// be combined with `ClientCertificateTlsAuth`, `ServerRootCaCertificate` or IAM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_tls: Option<bool>,
    /// Authentication of a source without `Credentials` (a secret given picks its own method):
    /// `IAM` (MSK IAM, SASL/OAUTHBEARER with a SigV4-signed token; MSK sources only, over TLS) or
    /// `NONE`. Default: `IAM` for an MSK source over TLS, `NONE` otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_authentication: Option<String>,
    /// Endpoint for Secrets Manager lookups of this pipe's secrets (e.g. a local emulator);
    /// overrides `AWS_ENDPOINT_URL_SECRETS_MANAGER` / `AWS_ENDPOINT_URL`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets_manager_endpoint: Option<String>,
    /// Retries after the first failed attempt at a batch: -1 (default) retries forever, as AWS
    /// does; 0-10000. With a `DeadLetterConfig`, -1 means 10 (as Lambda).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_retry_attempts: Option<i64>,
    /// A batch whose oldest record is older than this many seconds (now minus its Kafka
    /// timestamp) when an attempt would start is given up unsent: -1 (default: never) or
    /// 60-604800.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_record_age_in_seconds: Option<i64>,
    /// `AUTOMATIC_BISECT`: a failed batch of more than one record is split in two halves, first
    /// half first, each retried on its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_partial_batch_item_failure: Option<String>,
    /// Whether the target may name the records that failed (`batchItemFailures` of Lambda, Step
    /// Functions and HTTP `BATCH` targets; per-entry failures of batch APIs): the batch is then
    /// retried from the first failed record. Default `false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_batch_item_failures: Option<bool>,
    /// Where records go when they are given up; without it they are discarded (and logged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_config: Option<DeadLetterConfig>,
    /// Concurrent batches per partition, 1-100 (default 1, AWS behaviour): records are split by
    /// key into this many ordered sub-lanes; records with the same key stay in offset order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelization_factor: Option<i64>,
    /// Most target calls of the pipe in flight at once (default: partitions x
    /// `ParallelizationFactor`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_concurrency: Option<i64>,
    /// Whether the limit of calls in flight halves when the target throttles (429, 503, AWS
    /// throttling, timeouts) and grows back after successes (default `true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive_concurrency: Option<bool>,
    /// One more execution log destination besides `LogConfiguration`'s: `stdout` or
    /// `file:///path` (JSON lines, one record a line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_destination: Option<String>,
    /// Least time between two offset commits of a partition, in seconds, 0-300 (default 0, AWS
    /// behaviour: a batch's offsets are committed, and the commit awaited, before the next batch).
    /// Above 0, the offsets of batches delivered within the interval are committed together, at
    /// most this long after the first of them (and when the partition is released): less CPU and
    /// fewer commit requests, but a crash may deliver again every batch of the interval, not only
    /// the one in flight. With `ParallelizationFactor` above 1 the partition's watermark commits
    /// are the ones spaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset_commit_interval_seconds: Option<f64>,
}

/// `LogConfiguration` (AWS's `PipeLogConfigurationParameters`): what each execution of the pipe
/// logs, and where. Checked by `execution_log::config::validate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct LogConfiguration {
    /// `OFF` (default), `ERROR`, `INFO` or `TRACE`; a level other than `OFF` needs a destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// `["ALL"]`: records carry the payload and the enrichment's and target's requests and
    /// responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_execution_data: Option<Vec<String>>,
    /// A CloudWatch Logs log group (a stream per pipe and day is created in it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloudwatch_logs_log_destination: Option<CloudwatchLogsLogDestination>,
    /// A Firehose delivery stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firehose_log_destination: Option<FirehoseLogDestination>,
    /// An S3 bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_log_destination: Option<S3LogDestination>,
}

/// `CloudwatchLogsLogDestination`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CloudwatchLogsLogDestination {
    /// `arn:aws:logs:<region>:<account>:log-group:<name>` (a trailing `:*` is accepted).
    pub log_group_arn: Option<String>,
}

/// `FirehoseLogDestination`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct FirehoseLogDestination {
    /// `arn:aws:firehose:<region>:<account>:deliverystream/<name>`.
    pub delivery_stream_arn: Option<String>,
}

/// `S3LogDestination`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct S3LogDestination {
    /// The bucket's name.
    pub bucket_name: Option<String>,
    /// The bucket owner's account id (12 digits).
    pub bucket_owner: Option<String>,
    /// `json` (default: JSON lines), `plain` (one text line per record) or `w3c` (W3C extended
    /// log format).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
    /// Key prefix of the objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// `SluiceParameters.StartingPositionTimestamp` as written: a JSON number of epoch seconds or a
/// string (digits or RFC 3339). Checked by validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StartingTimestamp {
    /// Seconds since the Unix epoch (fractions allowed).
    EpochSeconds(f64),
    /// Epoch seconds as digits, or an RFC 3339 date and time.
    Text(String),
}

/// `DeadLetterConfig`, in the shape of Pipes' own stream-source parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// `kafka://<topic>` (the source cluster), `kafka://<cluster>/<topic>` (a declared cluster),
    /// an SQS queue ARN, an SNS topic ARN or an S3 bucket ARN.
    pub arn: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_servers_replace_the_address_of_the_source() {
        let smk = PipeDefinition {
            source: Some("smk://127.0.0.1:9092".into()),
            ..Default::default()
        };
        let moved = smk.with_bootstrap_servers("127.0.0.1:40001,127.0.0.1:40002");
        assert_eq!(
            moved.source.as_deref(),
            Some("smk://127.0.0.1:40001,127.0.0.1:40002")
        );
        let msk = PipeDefinition {
            source: Some("arn:aws:kafka:us-east-1:1:cluster/c/u".into()),
            ..Default::default()
        };
        let moved = msk.with_bootstrap_servers("b1:9098, b2:9098");
        assert_eq!(moved.source, msk.source);
        assert_eq!(
            moved.sluice_parameters.unwrap().bootstrap_servers.unwrap(),
            ["b1:9098", "b2:9098"]
        );
    }
}
