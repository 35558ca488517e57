//! The Firehose destination: `PutRecordBatch` of JSON lines (one record each, newline-ended),
//! cut at the service's limits of 500 records and 4 MiB per call. Entries the service refused
//! are sent again, up to three times.

use std::sync::Arc;

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use futures::future::BoxFuture;

use super::shipper::{Entry, ShipError, Sink};
use super::{aws_failure, sdk_client_config};

const MAX_RECORDS: usize = 500;
const MAX_BYTES: usize = 4 * 1024 * 1024;
const CALL: &str = "Firehose PutRecordBatch";

/// Writes to one delivery stream.
#[derive(Debug)]
pub struct Firehose {
    client: aws_sdk_firehose::Client,
    stream: String,
}

impl Firehose {
    /// The client for `stream` in `region` (through `endpoint` when given).
    pub async fn build(stream: &str, region: &str, endpoint: Option<&str>) -> Self {
        let sdk = sdk_client_config(region).await;
        let mut b = aws_sdk_firehose::config::Builder::from(&sdk);
        if let Some(ep) = endpoint {
            b = b.endpoint_url(ep);
        }
        Self {
            client: aws_sdk_firehose::Client::from_conf(b.build()),
            stream: stream.to_string(),
        }
    }

    async fn put(&self, mut records: Vec<Record>) -> Result<(), ShipError> {
        for _ in 0..3 {
            let out = self
                .client
                .put_record_batch()
                .delivery_stream_name(&self.stream)
                .set_records(Some(records.clone()))
                .send()
                .await
                .map_err(|e| aws_failure(CALL, e))?;
            if out.failed_put_count() == 0 {
                return Ok(());
            }
            records = records
                .into_iter()
                .zip(out.request_responses())
                .filter(|(_, r)| r.error_code().is_some())
                .map(|(rec, _)| rec)
                .collect();
        }
        Err(ShipError::Service {
            call: CALL,
            message: format!("{} records refused three times", records.len()),
        })
    }
}

impl Sink for Firehose {
    fn write<'a>(&'a self, entries: &'a [Arc<Entry>]) -> BoxFuture<'a, Result<(), ShipError>> {
        Box::pin(async move {
            let (mut batch, mut bytes) = (Vec::new(), 0);
            for e in entries {
                let mut data = e.fitted().1.as_bytes().to_vec();
                data.push(b'\n');
                if batch.len() == MAX_RECORDS || bytes + data.len() > MAX_BYTES {
                    self.put(std::mem::take(&mut batch)).await?;
                    bytes = 0;
                }
                bytes += data.len();
                let record = Record::builder()
                    .data(Blob::new(data))
                    .build()
                    .map_err(|err| ShipError::Service {
                        call: CALL,
                        message: err.to_string(),
                    })?;
                batch.push(record);
            }
            if !batch.is_empty() {
                self.put(batch).await?;
            }
            Ok(())
        })
    }
}
