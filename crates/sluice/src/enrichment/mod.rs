//! Enrichment: an optional synchronous call between filter and target whose response replaces the
//! batch. Two kinds:
//! - an HTTP endpoint (a URL, or an API destination ARN from `[targets.api_destinations]`), called
//!   once per record with `EnrichmentParameters.HttpParameters` (path `*` values, header and query
//!   values that may be JSON paths), through the same [`HttpCaller`] as the HTTP target;
//! - a Lambda function (feature `aws-targets`), invoked once with the whole batch as a JSON array.
//!
//! The response becomes the new batch ([`parse_response`]): an array gives one event per item,
//! any other JSON value one event, and an empty body, `""`, `{}`, `[]` or `null` none (the target
//! is skipped and the batch counts as done). The lane rejects more items than the target accepts
//! per call. Any failure fails the batch, which is retried whole. Errors are [`TargetError`]s so
//! that one retry policy (and one classification of HTTP and AWS failures) covers both stages.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::model::definition::HttpParameters;
use crate::model::{FieldError, PipeDefinition};
use crate::targets::http::{self, Endpoint, HttpCaller};
use crate::targets::{Event, TargetError, TargetsConfig};

/// API destinations answer within 5 seconds or fail (as in AWS).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A validated enrichment.
// One per pipe, built once: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum EnrichmentConfig {
    /// An HTTP endpoint, called per record.
    Http {
        /// Where and how.
        endpoint: Endpoint,
        /// Path, header and query parameters.
        params: HttpParameters,
        /// Per-request timeout.
        timeout: Duration,
    },
    /// A Lambda function, invoked with the whole batch.
    Lambda {
        /// The function ARN.
        arn: String,
        /// Its region.
        region: String,
        /// Endpoint override (`[targets.aws]`).
        endpoint: Option<String>,
    },
}

/// Validate `Enrichment` and `EnrichmentParameters`; `None` when the pipe has no enrichment or it
/// is invalid (then `errs` says why).
pub fn validate(
    def: &PipeDefinition,
    config: &TargetsConfig,
    errs: &mut Vec<FieldError>,
) -> Option<EnrichmentConfig> {
    let text = def.enrichment.as_deref().filter(|e| !e.is_empty())?;
    let params = def
        .enrichment_parameters
        .as_ref()
        .and_then(|p| p.http_parameters.clone());
    if text.starts_with("arn:aws:lambda:") {
        if params.is_some() {
            errs.push(FieldError::new(
                "EnrichmentParameters.HttpParameters",
                "applies only to HTTP enrichments and API destinations",
            ));
        }
        let arn = crate::targets::aws::Arn::parse(text)
            .filter(|a| a.resource.starts_with("function:") && a.resource.len() > 9);
        let Some(arn) = arn else {
            errs.push(FieldError::new(
                "Enrichment",
                "must look like arn:aws:lambda:<region>:<account>:function:<name>",
            ));
            return None;
        };
        return Some(EnrichmentConfig::Lambda {
            endpoint: config.aws.endpoint_for("lambda"),
            region: arn.region,
            arn: arn.text,
        });
    }
    if text.starts_with("arn:") && !http::is_api_destination(text) {
        errs.push(FieldError::new(
            "Enrichment",
            "Sluice enriches with an http(s) URL, an API destination ARN or a Lambda function ARN",
        ));
        return None;
    }
    let before = errs.len();
    let endpoint = http::resolve_endpoint(text, "Enrichment", config, errs)?;
    let params = params.unwrap_or_default();
    http::check_params(&endpoint.url, &params, "EnrichmentParameters", errs);
    let timeout = def
        .sluice_parameters
        .as_ref()
        .and_then(|s| s.http_timeout_seconds)
        .filter(|s| (0.001..=300.0).contains(s))
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64);
    (errs.len() == before).then_some(EnrichmentConfig::Http {
        endpoint,
        params,
        timeout,
    })
}

impl EnrichmentConfig {
    /// Whether enrichment requests need the decoded record (JSON-path parameters).
    pub fn needs_record(&self) -> bool {
        match self {
            EnrichmentConfig::Http { params, .. } => http::params_need_record(params),
            EnrichmentConfig::Lambda { .. } => false,
        }
    }

    /// Create clients and fetch connection secrets.
    pub async fn build(&self) -> Result<Arc<dyn Enricher>, TargetError> {
        match self {
            EnrichmentConfig::Http {
                endpoint,
                params,
                timeout,
            } => Ok(Arc::new(HttpEnricher(
                HttpCaller::build(endpoint, params, *timeout).await?,
            ))),
            #[cfg(feature = "aws-targets")]
            EnrichmentConfig::Lambda {
                arn,
                region,
                endpoint,
            } => {
                let sdk = crate::secrets::aws::sdk_config(region).await;
                let mut b = aws_sdk_lambda::config::Builder::from(&sdk);
                if let Some(ep) = endpoint {
                    b = b.endpoint_url(ep);
                }
                Ok(Arc::new(LambdaEnricher {
                    arn: arn.clone(),
                    client: aws_sdk_lambda::Client::from_conf(b.build()),
                }))
            }
            #[cfg(not(feature = "aws-targets"))]
            EnrichmentConfig::Lambda { arn, .. } => Err(TargetError::Unsupported(format!(
                "this build of Sluice has no AWS support (cargo feature aws-targets); cannot enrich with {arn}"
            ))),
        }
    }
}

/// A built enrichment.
pub trait Enricher: Send + Sync + fmt::Debug {
    /// Call the enrichment for a batch; the items of the response, in order.
    fn enrich<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<Vec<Value>, TargetError>>;
}

/// The response as the new batch: see the module documentation.
pub fn parse_response(body: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Array(items)) => items,
        Ok(Value::Null) => Vec::new(),
        Ok(Value::String(s)) if s.is_empty() => Vec::new(),
        Ok(Value::Object(m)) if m.is_empty() => Vec::new(),
        Ok(v) => vec![v],
        // Text that is not JSON is one text event.
        Err(_) => vec![Value::String(text.into_owned())],
    }
}

#[derive(Debug)]
struct HttpEnricher(HttpCaller);

impl Enricher for HttpEnricher {
    fn enrich<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<Vec<Value>, TargetError>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(events.len());
            for ev in events {
                let body = self
                    .0
                    .call(ev.record.as_deref(), ev.payload.clone(), ev.is_json)
                    .await?;
                out.extend(parse_response(&body));
            }
            Ok(out)
        })
    }
}

#[cfg(feature = "aws-targets")]
struct LambdaEnricher {
    arn: String,
    client: aws_sdk_lambda::Client,
}

#[cfg(feature = "aws-targets")]
impl fmt::Debug for LambdaEnricher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LambdaEnricher")
            .field("arn", &self.arn)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "aws-targets")]
impl Enricher for LambdaEnricher {
    fn enrich<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<Vec<Value>, TargetError>> {
        Box::pin(async move {
            use aws_sdk_lambda::error::ProvideErrorMetadata;
            let what = "Lambda enrichment Invoke";
            let out = self
                .client
                .invoke()
                .function_name(&self.arn)
                .payload(aws_sdk_lambda::primitives::Blob::new(
                    http::batch_body(events).to_vec(),
                ))
                .send()
                .await
                .map_err(|e| {
                    let (code, retryable) = match &e {
                        aws_sdk_lambda::error::SdkError::ServiceError(se) => (
                            format!(
                                "{}: {}",
                                se.err().code().unwrap_or("Unknown"),
                                se.err().message().unwrap_or_default()
                            ),
                            se.raw().status().as_u16() == 429
                                || se.raw().status().is_server_error(),
                        ),
                        other => (
                            aws_sdk_lambda::error::DisplayErrorContext(other).to_string(),
                            true,
                        ),
                    };
                    TargetError::Service {
                        service: what.into(),
                        message: code,
                        retryable,
                        throttled: false,
                    }
                })?;
            let payload = out
                .payload()
                .map(|b| b.as_ref().to_vec())
                .unwrap_or_default();
            if let Some(fe) = out.function_error() {
                let detail: String = String::from_utf8_lossy(&payload)
                    .chars()
                    .take(200)
                    .collect();
                return Err(TargetError::Service {
                    service: what.into(),
                    message: format!("the function failed ({fe}): {detail}"),
                    retryable: true,
                    throttled: false,
                });
            }
            if payload.len() > http::MAX_RESPONSE_BYTES {
                return Err(TargetError::Request(format!(
                    "the enrichment response is larger than {} bytes",
                    http::MAX_RESPONSE_BYTES
                )));
            }
            Ok(parse_response(&payload))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn responses_become_batches() {
        for empty in ["", "  ", "\"\"", "{}", "[]", "null"] {
            assert!(parse_response(empty.as_bytes()).is_empty(), "{empty:?}");
        }
        assert_eq!(parse_response(b"[{}]"), vec![json!({})]);
        assert_eq!(
            parse_response(b"[1,{\"a\":2}]"),
            vec![json!(1), json!({"a": 2})]
        );
        assert_eq!(parse_response(b"{\"a\":1}"), vec![json!({"a": 1})]);
        assert_eq!(parse_response(b"hello"), vec![json!("hello")]);
    }
}
