//! The S3 destination: one object per write, `<Prefix>/<pipe name>/<YYYY>/<MM>/<DD>/<HH>/<uuid>`
//! (UTC hour of the first record), holding JSON lines (`json`), one text line per record
//! (`plain`) or the W3C extended log format (`w3c`).

use std::sync::Arc;

use futures::future::BoxFuture;

use super::config::S3Format;
use super::record::{rfc3339, LogRecord};
use super::shipper::{Entry, ShipError, Sink};
use super::{aws_failure, sdk_client_config};

/// Writes objects into one bucket.
#[derive(Debug)]
pub struct S3 {
    client: aws_sdk_s3::Client,
    bucket: String,
    owner: String,
    format: S3Format,
    prefix: String,
    pipe: String,
}

/// Where [`S3::build`] writes.
#[derive(Debug)]
pub struct S3Place<'a> {
    /// The bucket.
    pub bucket: &'a str,
    /// Its owner's account id.
    pub owner: &'a str,
    /// How objects are written.
    pub format: S3Format,
    /// The key prefix.
    pub prefix: &'a str,
}

impl S3 {
    /// The client for `place` in `region` (through `endpoint` when given).
    pub async fn build(
        place: S3Place<'_>,
        region: &str,
        endpoint: Option<&str>,
        pipe: &str,
    ) -> Self {
        let sdk = sdk_client_config(region).await;
        // Emulators and private endpoints serve buckets by path, not by host name.
        let mut b = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(endpoint.is_some());
        if let Some(ep) = endpoint {
            b = b.endpoint_url(ep);
        }
        Self {
            client: aws_sdk_s3::Client::from_conf(b.build()),
            bucket: place.bucket.to_string(),
            owner: place.owner.to_string(),
            format: place.format,
            prefix: place.prefix.trim_end_matches('/').to_string(),
            pipe: pipe.to_string(),
        }
    }

    fn key(&self, first_ms: i64) -> String {
        let t = rfc3339(first_ms);
        let path = format!(
            "{}/{}/{}/{}/{}/{}",
            self.pipe,
            &t[0..4],
            &t[5..7],
            &t[8..10],
            &t[11..13],
            uuid::Uuid::new_v4()
        );
        if self.prefix.is_empty() {
            path
        } else {
            format!("{}/{path}", self.prefix)
        }
    }

    fn body(&self, entries: &[Arc<Entry>]) -> String {
        let line: fn(&LogRecord, &str) -> String = match self.format {
            S3Format::Json => |_, json| json.to_string(),
            S3Format::Plain => |r, _| r.to_plain(),
            S3Format::W3c => |r, _| r.to_w3c(),
        };
        let mut out = String::new();
        if self.format == S3Format::W3c {
            out.push_str("#Version: 1.0\n");
            out.push_str(LogRecord::W3C_FIELDS);
            out.push('\n');
        }
        for e in entries {
            let (r, json) = e.fitted();
            out.push_str(&line(r, json));
            out.push('\n');
        }
        out
    }
}

impl Sink for S3 {
    fn write<'a>(&'a self, entries: &'a [Arc<Entry>]) -> BoxFuture<'a, Result<(), ShipError>> {
        Box::pin(async move {
            let Some(first) = entries.first() else {
                return Ok(());
            };
            let content_type = match self.format {
                S3Format::Json => "application/x-ndjson",
                S3Format::Plain | S3Format::W3c => "text/plain; charset=utf-8",
            };
            self.client
                .put_object()
                .bucket(&self.bucket)
                .expected_bucket_owner(&self.owner)
                .key(self.key(first.timestamp()))
                .content_type(content_type)
                .body(self.body(entries).into_bytes().into())
                .send()
                .await
                .map_err(|e| aws_failure("S3 PutObject", e))?;
            Ok(())
        })
    }
}
