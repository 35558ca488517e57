//! The built dead-letter destinations: a Kafka topic (through the Kafka target's idempotent
//! producer, mirroring each record with its key, value, headers and timestamp, plus the
//! `sluice.error.*` headers), and, with the `aws-targets` feature, SQS, SNS and S3 (the failure
//! record; S3 also the batch as the target would have received it).

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

use super::letter::{error_headers, Origin};
use super::{DeadLetter, DeadLetterConfig, DeadLetterSink};
use crate::kafka::ResolvedSecurity;
use crate::targets::kafka::KafkaTarget;
use crate::targets::{Event, Target, TargetError};

/// What building a dead-letter destination needs besides its config.
#[derive(Debug, Clone, Default)]
pub struct SinkContext {
    /// Where the records come from, as dead letters name it.
    pub origin: Origin,
    /// The source's security with its secrets, for a dead-letter topic on the source cluster.
    pub source_security: Option<ResolvedSecurity>,
    /// The pipe's region (an S3 bucket ARN has none).
    pub region: String,
}

pub(super) async fn build(
    config: &DeadLetterConfig,
    ctx: &SinkContext,
) -> Result<Arc<dyn DeadLetterSink>, TargetError> {
    match config {
        DeadLetterConfig::Kafka {
            producer,
            on_source_cluster,
        } => {
            let target = if *on_source_cluster {
                producer.build_with(ctx.source_security.clone()).await?
            } else {
                producer.build().await?
            };
            Ok(Arc::new(KafkaSink {
                target,
                origin: ctx.origin.clone(),
            }))
        }
        #[cfg(feature = "aws-targets")]
        DeadLetterConfig::Sqs { arn, endpoint } => {
            Ok(Arc::new(aws::Sqs::build(arn, endpoint, ctx.origin.clone()).await))
        }
        #[cfg(feature = "aws-targets")]
        DeadLetterConfig::Sns { arn, endpoint } => {
            Ok(Arc::new(aws::Sns::build(arn, endpoint, ctx.origin.clone()).await))
        }
        #[cfg(feature = "aws-targets")]
        DeadLetterConfig::S3 { bucket, endpoint } => Ok(Arc::new(
            aws::S3::build(bucket, &ctx.region, endpoint, ctx.origin.clone()).await,
        )),
        #[cfg(not(feature = "aws-targets"))]
        DeadLetterConfig::Sqs { .. } | DeadLetterConfig::Sns { .. } | DeadLetterConfig::S3 { .. } => {
            Err(TargetError::Unsupported(
                "SQS, SNS and S3 dead-letter destinations need a Sluice built with the aws-targets feature".into(),
            ))
        }
    }
}

/// A dead-letter topic.
#[derive(Debug)]
struct KafkaSink {
    target: KafkaTarget,
    origin: Origin,
}

impl DeadLetterSink for KafkaSink {
    fn write<'a>(&'a self, letter: &'a DeadLetter<'a>) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            let events: Vec<Event> = letter
                .records
                .iter()
                .map(|r| {
                    let extra = error_headers(&self.origin, r, letter.failure);
                    let rec = r.with_more_headers(
                        extra.iter().map(|(k, v)| (k.as_str(), Some(v.as_bytes()))),
                    );
                    Event {
                        payload: Bytes::new(),
                        is_json: false,
                        record: None,
                        source: Some(Arc::new(rec)),
                        array: None,
                    }
                })
                .collect();
            self.target.deliver(&events).await.map(drop)
        })
    }
}

#[cfg(feature = "aws-targets")]
mod aws {
    //! SQS, SNS and S3 dead letters: one message or object per given-up batch.

    use aws_sdk_sqs::error::ProvideErrorMetadata;
    use futures::future::BoxFuture;
    use serde_json::Value;

    use super::super::letter::{failure_record, Origin};
    use super::super::{DeadLetter, DeadLetterSink};
    use crate::targets::aws::Arn;
    use crate::targets::http::batch_body;
    use crate::targets::TargetError;

    macro_rules! client {
        ($sdk:ident, $region:expr, $endpoint:expr) => {{
            let conf = crate::secrets::aws::sdk_config($region).await;
            let mut b = $sdk::config::Builder::from(&conf);
            if let Some(ep) = $endpoint {
                b = b.endpoint_url(ep);
            }
            b
        }};
    }

    /// A failed call: the service's code and message (never a secret); throttling and 5xx retry.
    fn failed<E: ProvideErrorMetadata + std::fmt::Debug>(
        what: &str,
        e: aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    ) -> TargetError {
        use aws_smithy_runtime_api::client::result::SdkError;
        let message = match &e {
            SdkError::ServiceError(s) => format!(
                "{}: {}",
                s.err().code().unwrap_or("error"),
                s.err().message().unwrap_or_default()
            ),
            other => format!("{other}"),
        };
        TargetError::Service {
            service: format!("dead letter {what}"),
            message,
            retryable: true,
            throttled: false,
        }
    }

    fn request_id() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    /// `SendMessage` of the failure record.
    #[derive(Debug)]
    pub(super) struct Sqs {
        client: aws_sdk_sqs::Client,
        arn: Arn,
        url: tokio::sync::OnceCell<String>,
        origin: Origin,
    }

    impl Sqs {
        pub(super) async fn build(arn: &Arn, endpoint: &Option<String>, origin: Origin) -> Self {
            let b = client!(aws_sdk_sqs, &arn.region, endpoint.as_deref());
            Self {
                client: aws_sdk_sqs::Client::from_conf(b.build()),
                arn: arn.clone(),
                url: tokio::sync::OnceCell::new(),
                origin,
            }
        }

        async fn url(&self) -> Result<&String, TargetError> {
            self.url
                .get_or_try_init(|| async {
                    let out = self
                        .client
                        .get_queue_url()
                        .queue_name(&self.arn.resource)
                        .queue_owner_aws_account_id(&self.arn.account)
                        .send()
                        .await
                        .map_err(|e| failed("SQS GetQueueUrl", e))?;
                    Ok(out.queue_url().unwrap_or_default().to_string())
                })
                .await
        }
    }

    impl DeadLetterSink for Sqs {
        fn write<'a>(
            &'a self,
            letter: &'a DeadLetter<'a>,
        ) -> BoxFuture<'a, Result<(), TargetError>> {
            Box::pin(async move {
                let body = failure_record(&self.origin, letter, &request_id()).to_string();
                self.client
                    .send_message()
                    .queue_url(self.url().await?)
                    .message_body(body)
                    .send()
                    .await
                    .map_err(|e| failed("SQS SendMessage", e))?;
                Ok(())
            })
        }
    }

    /// `Publish` of the failure record.
    #[derive(Debug)]
    pub(super) struct Sns {
        client: aws_sdk_sns::Client,
        arn: String,
        origin: Origin,
    }

    impl Sns {
        pub(super) async fn build(arn: &Arn, endpoint: &Option<String>, origin: Origin) -> Self {
            let b = client!(aws_sdk_sns, &arn.region, endpoint.as_deref());
            Self {
                client: aws_sdk_sns::Client::from_conf(b.build()),
                arn: arn.text.clone(),
                origin,
            }
        }
    }

    impl DeadLetterSink for Sns {
        fn write<'a>(
            &'a self,
            letter: &'a DeadLetter<'a>,
        ) -> BoxFuture<'a, Result<(), TargetError>> {
            Box::pin(async move {
                let body = failure_record(&self.origin, letter, &request_id()).to_string();
                self.client
                    .publish()
                    .topic_arn(&self.arn)
                    .message(body)
                    .send()
                    .await
                    .map_err(|e| failed("SNS Publish", e))?;
                Ok(())
            })
        }
    }

    /// `PutObject` of the failure record with `payload`.
    #[derive(Debug)]
    pub(super) struct S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        origin: Origin,
    }

    impl S3 {
        pub(super) async fn build(
            bucket: &str,
            region: &str,
            endpoint: &Option<String>,
            origin: Origin,
        ) -> Self {
            // Emulators and private endpoints serve buckets by path, not by host name.
            let b = client!(aws_sdk_s3, region, endpoint.as_deref())
                .force_path_style(endpoint.is_some());
            Self {
                client: aws_sdk_s3::Client::from_conf(b.build()),
                bucket: bucket.to_string(),
                origin,
            }
        }

        /// `<pipe name>/<topic>-<partition>/<first offset>-<last offset>-<request id>.json`.
        fn key(&self, letter: &DeadLetter<'_>, id: &str) -> String {
            let pipe = self.origin.pipe_arn.rsplit('/').next().unwrap_or_default();
            let (first, last) = (letter.records.first(), letter.records.last());
            format!(
                "{pipe}/{}-{}/{}-{}-{id}.json",
                self.origin.topic,
                first.map_or(0, |r| r.partition),
                first.map_or(0, |r| r.offset),
                last.map_or(0, |r| r.offset),
            )
        }
    }

    impl DeadLetterSink for S3 {
        fn write<'a>(
            &'a self,
            letter: &'a DeadLetter<'a>,
        ) -> BoxFuture<'a, Result<(), TargetError>> {
            Box::pin(async move {
                let id = request_id();
                let mut record = failure_record(&self.origin, letter, &id);
                let payload: Value =
                    serde_json::from_slice(&batch_body(letter.events)).unwrap_or(Value::Null);
                record["payload"] = payload;
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(self.key(letter, &id))
                    .content_type("application/json")
                    .body(record.to_string().into_bytes().into())
                    .send()
                    .await
                    .map_err(|e| failed("S3 PutObject", e))?;
                Ok(())
            })
        }
    }
}
