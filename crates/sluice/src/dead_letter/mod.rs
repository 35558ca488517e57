//! Dead-letter destinations: where a pipe's records go when it gives them up
//! (`failure-handling.md`). A component like the targets: [`DeadLetterConfig`] is validated from
//! `SluiceParameters.DeadLetterConfig.Arn` (pure), then built into a [`DeadLetterSink`] when the
//! pipe starts. What is written is decided here and nowhere else ([`letter`]): a Kafka dead letter
//! is the record as it was plus `sluice.error.*` headers; SQS, SNS and S3 get Lambda's failure
//! record JSON (S3 also the batch as the target would have received it).
//!
//! The runtime writes a dead letter before it commits past the records, and retries a write that
//! fails for as long as it takes: a dead-letter destination that is down blocks the partition and
//! loses nothing.

pub mod letter;
mod sinks;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use futures::future::BoxFuture;

use crate::field_error::FieldError;
use crate::kafka::names::{is_valid_topic, TOPIC_RULE};
use crate::record::SourceRecord;
use crate::targets::aws::Arn;
use crate::targets::kafka::KafkaTargetConfig;
use crate::targets::{Event, TargetError, TargetsConfig};
pub use sinks::SinkContext;

/// Why records were given up; the names of `sluice.error.condition` and the failure record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// `1 + MaximumRetryAttempts` attempts failed.
    RetryAttemptsExhausted,
    /// The oldest record was older than `MaximumRecordAgeInSeconds`.
    RecordAgeExceeded,
    /// The record alone is larger than the target accepts.
    PayloadTooLarge,
}

impl Condition {
    /// The name written in headers, failure records and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            Condition::RecordAgeExceeded => "RecordAgeExceeded",
            Condition::PayloadTooLarge => "PayloadTooLarge",
        }
    }
}

/// What went wrong with records that were given up.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Why they were given up.
    pub condition: Condition,
    /// The stage of the last failure (`enrichment`, `target`), when an attempt was made.
    pub stage: Option<&'static str>,
    /// Failed attempts.
    pub attempts: u32,
    /// The last failure's HTTP status or service error code, when there is one.
    pub status: Option<String>,
    /// The last failure's message (secret-free, as every `TargetError`).
    pub message: String,
    /// When they were given up.
    pub at: SystemTime,
}

/// Records given up together (one batch, or the part of it that failed).
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    /// The records, in offset order, all of one partition.
    pub records: &'a [&'a SourceRecord],
    /// Their events as the target (or the enrichment, when the pipe has one) receives them.
    pub events: &'a [Event],
    /// What went wrong.
    pub failure: &'a Failure,
}

/// A built dead-letter destination.
pub trait DeadLetterSink: Send + Sync + fmt::Debug {
    /// Write the dead letter; `Ok` once the destination acknowledged it.
    fn write<'a>(&'a self, letter: &'a DeadLetter<'a>) -> BoxFuture<'a, Result<(), TargetError>>;
}

/// A validated `DeadLetterConfig.Arn`.
#[derive(Debug, Clone)]
pub enum DeadLetterConfig {
    /// `kafka://<topic>` (a topic of the source cluster, written with the source's security) or
    /// `kafka://<cluster>/<topic>` (a cluster declared in `[[targets.kafka_clusters]]`).
    Kafka {
        /// The producer, mirroring records as they were.
        producer: Box<KafkaTargetConfig>,
        /// The topic is on the source cluster.
        on_source_cluster: bool,
    },
    /// An SQS queue ARN.
    Sqs {
        /// The queue ARN.
        arn: Arn,
        /// Endpoint override (`[targets.aws]`).
        endpoint: Option<String>,
    },
    /// An SNS topic ARN.
    Sns {
        /// The topic ARN.
        arn: Arn,
        /// Endpoint override (`[targets.aws]`).
        endpoint: Option<String>,
    },
    /// An S3 bucket ARN (`arn:aws:s3:::bucket`).
    S3 {
        /// The bucket.
        bucket: String,
        /// Endpoint override (`[targets.aws]`).
        endpoint: Option<String>,
    },
}

const FIELD: &str = "SluiceParameters.DeadLetterConfig.Arn";

/// Where the pipe's records come from, as the dead-letter validation needs it.
#[derive(Debug, Clone, Copy)]
pub struct SourceView<'a> {
    /// The source topic (it cannot be its own dead-letter topic).
    pub topic: &'a str,
    /// The source's bootstrap servers (for `kafka://<topic>`).
    pub bootstrap_servers: &'a [String],
}

/// Validate `DeadLetterConfig.Arn` of a pipe reading `source`.
pub fn validate(
    arn: Option<&str>,
    source: SourceView<'_>,
    targets: &TargetsConfig,
    errs: &mut Vec<FieldError>,
) -> Option<DeadLetterConfig> {
    let Some(arn) = arn.filter(|a| !a.is_empty()) else {
        errs.push(FieldError::new(FIELD, "is required"));
        return None;
    };
    if let Some(rest) = arn.strip_prefix("kafka://") {
        return validate_kafka(rest, source, targets, errs);
    }
    let endpoint = |service: &str| targets.aws.endpoint_for(service);
    if let Some(bucket) = arn.strip_prefix("arn:aws:s3:::") {
        if bucket.is_empty() || bucket.contains('/') {
            errs.push(FieldError::new(
                FIELD,
                "an S3 dead letter is a bucket ARN: arn:aws:s3:::<bucket>",
            ));
            return None;
        }
        return Some(DeadLetterConfig::S3 {
            bucket: bucket.to_string(),
            endpoint: endpoint("s3"),
        });
    }
    match Arn::parse(arn) {
        Some(a) if a.service == "sqs" => Some(DeadLetterConfig::Sqs {
            arn: a,
            endpoint: endpoint("sqs"),
        }),
        Some(a) if a.service == "sns" => Some(DeadLetterConfig::Sns {
            arn: a,
            endpoint: endpoint("sns"),
        }),
        _ => {
            errs.push(FieldError::new(
                FIELD,
                "must be kafka://<topic> (the source cluster), kafka://<cluster>/<topic> (a declared cluster), an SQS queue ARN, an SNS topic ARN or an S3 bucket ARN",
            ));
            None
        }
    }
}

fn validate_kafka(
    rest: &str,
    source: SourceView<'_>,
    targets: &TargetsConfig,
    errs: &mut Vec<FieldError>,
) -> Option<DeadLetterConfig> {
    let (cluster, topic) = match rest.split_once('/') {
        Some((c, t)) => (Some(c), t),
        None => (None, rest),
    };
    if !is_valid_topic(topic) {
        errs.push(FieldError::new(
            FIELD,
            format!("the dead-letter topic must be {TOPIC_RULE}"),
        ));
        return None;
    }
    if cluster.is_none() && topic == source.topic {
        errs.push(FieldError::new(
            FIELD,
            format!("the source topic {topic:?} cannot be its own dead-letter topic (its records would loop)"),
        ));
        return None;
    }
    let producer = KafkaTargetConfig::mirror(
        FIELD,
        cluster,
        source.bootstrap_servers,
        topic,
        &targets.kafka_clusters,
        errs,
    )?;
    Some(DeadLetterConfig::Kafka {
        producer: Box::new(producer),
        on_source_cluster: cluster.is_none(),
    })
}

impl DeadLetterConfig {
    /// Open the producer or client.
    pub async fn build(&self, ctx: &SinkContext) -> Result<Arc<dyn DeadLetterSink>, TargetError> {
        sinks::build(self, ctx).await
    }
}
