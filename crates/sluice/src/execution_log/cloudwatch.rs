//! The CloudWatch Logs destination: `PutLogEvents` into the stream `<pipe name>/<YYYY-MM-DD>`
//! (UTC day of each record) of the configured group, created when missing. Calls are cut at the
//! service's limits: 10,000 events and 1 MiB (each event's message plus 26 bytes).

use std::sync::{Arc, Mutex};

use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use futures::future::BoxFuture;

use super::record::rfc3339;
use super::shipper::{Entry, ShipError, Sink};
use super::{aws_failure, sdk_client_config};

const MAX_EVENTS: usize = 10_000;
const MAX_BYTES: usize = 1_048_576;
const EVENT_OVERHEAD: usize = 26;

/// Writes to one log group.
#[derive(Debug)]
pub struct CloudWatch {
    client: aws_sdk_cloudwatchlogs::Client,
    group: String,
    pipe: String,
    /// Streams known to exist.
    streams: Mutex<Vec<String>>,
}

impl CloudWatch {
    /// The client for `group` in `region` (through `endpoint` when given).
    pub async fn build(group: &str, region: &str, endpoint: Option<&str>, pipe: &str) -> Self {
        let sdk = sdk_client_config(region).await;
        let mut b = aws_sdk_cloudwatchlogs::config::Builder::from(&sdk);
        if let Some(ep) = endpoint {
            b = b.endpoint_url(ep);
        }
        Self {
            client: aws_sdk_cloudwatchlogs::Client::from_conf(b.build()),
            group: group.to_string(),
            pipe: pipe.to_string(),
            streams: Mutex::default(),
        }
    }

    /// The stream of a record written at `ms`.
    fn stream(&self, ms: i64) -> String {
        format!("{}/{}", self.pipe, &rfc3339(ms)[..10])
    }

    async fn put(&self, stream: &str, events: Vec<InputLogEvent>) -> Result<(), ShipError> {
        let call = "CloudWatch Logs PutLogEvents";
        let send = || {
            self.client
                .put_log_events()
                .log_group_name(&self.group)
                .log_stream_name(stream)
                .set_log_events(Some(events.clone()))
                .send()
        };
        match send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => {
                self.create_stream(stream).await?;
                send().await.map(|_| ()).map_err(|e| aws_failure(call, e))
            }
            Err(e) => Err(aws_failure(call, e)),
        }
    }

    async fn create_stream(&self, stream: &str) -> Result<(), ShipError> {
        let out = self
            .client
            .create_log_stream()
            .log_group_name(&self.group)
            .log_stream_name(stream)
            .send()
            .await;
        match out {
            Ok(_) => {}
            Err(e) if e.code() == Some("ResourceAlreadyExistsException") => {}
            Err(e) => return Err(aws_failure("CloudWatch Logs CreateLogStream", e)),
        }
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(stream.to_string());
        Ok(())
    }

    fn known(&self, stream: &str) -> bool {
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams.iter().any(|s| s == stream)
    }
}

impl Sink for CloudWatch {
    fn write<'a>(&'a self, entries: &'a [Arc<Entry>]) -> BoxFuture<'a, Result<(), ShipError>> {
        Box::pin(async move {
            // The service wants each call's events in time order; a stable sort keeps the
            // order of records made in the same millisecond.
            let mut sorted: Vec<&Arc<Entry>> = entries.iter().collect();
            sorted.sort_by_key(|e| e.timestamp());
            let mut start = 0;
            while start < sorted.len() {
                let stream = self.stream(sorted[start].timestamp());
                if !self.known(&stream) {
                    self.create_stream(&stream).await?;
                }
                let (mut events, mut bytes) = (Vec::new(), 0);
                while let Some(e) = sorted.get(start) {
                    let (_, json) = e.fitted();
                    let size = json.len() + EVENT_OVERHEAD;
                    let full = events.len() == MAX_EVENTS || bytes + size > MAX_BYTES;
                    if full || self.stream(e.timestamp()) != stream {
                        break;
                    }
                    let event = InputLogEvent::builder()
                        .timestamp(e.timestamp())
                        .message(json)
                        .build()
                        .map_err(|err| ShipError::Service {
                            call: "CloudWatch Logs PutLogEvents",
                            message: err.to_string(),
                        })?;
                    events.push(event);
                    bytes += size;
                    start += 1;
                }
                self.put(&stream, events).await?;
            }
            Ok(())
        })
    }
}
