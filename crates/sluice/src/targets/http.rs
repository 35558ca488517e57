//! The HTTP target: POSTs each record (API-destination semantics, the default) or the whole batch
//! as one JSON array (Lambda-style, `SluiceParameters.HttpDelivery: BATCH`) to a URL.
//! 2xx is success; everything else fails the batch, and `Retry-After` is reported to the retry loop.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Client, Url};

use super::{Event, Target, TargetConfig, TargetError, TargetKind};
use crate::model::definition::HttpParameters;
use crate::model::{FieldError, HttpDelivery, PipeDefinition};

/// Registered in [`super::kinds`].
pub const KIND: TargetKind = TargetKind {
    name: "http",
    accepts: |t| t.starts_with("http://") || t.starts_with("https://"),
    validate,
};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const ERROR_DETAIL_MAX: usize = 200;

/// A validated HTTP target.
#[derive(Debug, Clone)]
pub struct HttpTargetConfig {
    /// The endpoint; `*` in its path are filled from `PathParameterValues`.
    pub url: String,
    /// One request per record, or one per batch.
    pub delivery: HttpDelivery,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Header, query and path parameters (values may be JSON paths).
    pub params: HttpParameters,
}

fn is_dynamic(v: &str) -> bool {
    v.starts_with("$.") || v == "$"
}

fn validate(
    def: &PipeDefinition,
    _batch_size: usize,
    errs: &mut Vec<FieldError>,
) -> Option<TargetConfig> {
    let target = def.target.clone().unwrap_or_default();
    let before = errs.len();
    match Url::parse(&target) {
        Ok(u) if u.host_str().is_some() => {}
        _ => errs.push(FieldError::new(
            "Target",
            "must be a valid http(s) URL with a host",
        )),
    }
    let ext = def.sluice_parameters.clone().unwrap_or_default();
    let delivery = match ext.http_delivery.as_deref() {
        None | Some("PER_RECORD") => HttpDelivery::PerRecord,
        Some("BATCH") => HttpDelivery::Batch,
        Some(other) => {
            errs.push(FieldError::new(
                "SluiceParameters.HttpDelivery",
                format!("must be PER_RECORD or BATCH, not {other:?}"),
            ));
            HttpDelivery::PerRecord
        }
    };
    let timeout = match ext.http_timeout_seconds {
        None => DEFAULT_TIMEOUT,
        Some(s) if (0.001..=300.0).contains(&s) => Duration::from_secs_f64(s),
        Some(_) => {
            errs.push(FieldError::new(
                "SluiceParameters.HttpTimeoutSeconds",
                "must be between 0.001 and 300",
            ));
            DEFAULT_TIMEOUT
        }
    };
    let tp = def.target_parameters.clone().unwrap_or_default();
    for k in tp.other.keys() {
        errs.push(FieldError::new(
            format!("TargetParameters.{k}"),
            "does not apply to an HTTP target",
        ));
    }
    let params = tp.http_parameters.unwrap_or_default();
    let wildcards = target.matches('*').count();
    let given = params.path_parameter_values.as_ref().map_or(0, Vec::len);
    if given != wildcards {
        errs.push(FieldError::new(
            "TargetParameters.HttpParameters.PathParameterValues",
            format!(
                "the target URL has {wildcards} '*' wildcard(s) but {given} value(s) are given"
            ),
        ));
    }
    for (name, value) in params.header_parameters.iter().flatten() {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            errs.push(FieldError::new(
                format!("TargetParameters.HttpParameters.HeaderParameters.{name}"),
                "is not a valid HTTP header name",
            ));
        }
        if !is_dynamic(value) && HeaderValue::from_str(value).is_err() {
            errs.push(FieldError::new(
                format!("TargetParameters.HttpParameters.HeaderParameters.{name}"),
                "is not a valid HTTP header value",
            ));
        }
    }
    for (field, values) in [
        (
            "HeaderParameters",
            params
                .header_parameters
                .iter()
                .flatten()
                .map(|(_, v)| v)
                .collect::<Vec<_>>(),
        ),
        (
            "QueryStringParameters",
            params
                .query_string_parameters
                .iter()
                .flatten()
                .map(|(_, v)| v)
                .collect(),
        ),
        (
            "PathParameterValues",
            params.path_parameter_values.iter().flatten().collect(),
        ),
    ] {
        for v in values {
            if is_dynamic(v) {
                if let Err(e) = sluice_template::JsonPath::parse(v) {
                    errs.push(FieldError::new(
                        format!("TargetParameters.HttpParameters.{field}"),
                        format!("{v:?} is not a valid JSON path: {e}"),
                    ));
                }
            }
        }
    }
    (errs.len() == before).then_some(TargetConfig::Http(HttpTargetConfig {
        url: target,
        delivery,
        timeout,
        params,
    }))
}

impl HttpTargetConfig {
    /// Whether any parameter is a JSON path, so events must carry the decoded record.
    pub fn needs_record(&self) -> bool {
        let p = &self.params;
        p.header_parameters
            .iter()
            .flatten()
            .any(|(_, v)| is_dynamic(v))
            || p.query_string_parameters
                .iter()
                .flatten()
                .any(|(_, v)| is_dynamic(v))
            || p.path_parameter_values
                .iter()
                .flatten()
                .any(|v| is_dynamic(v))
    }

    /// Build the client (connection pool with keep-alive; HTTP/1.1, or h2 where the server offers
    /// it over TLS).
    pub fn build(&self) -> Result<HttpTarget, TargetError> {
        let client = Client::builder()
            .timeout(self.timeout)
            .pool_max_idle_per_host(64)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| TargetError::Request(format!("cannot build HTTP client: {e}")))?;
        Ok(HttpTarget {
            config: self.clone(),
            client,
        })
    }
}

/// A built HTTP target.
#[derive(Debug)]
pub struct HttpTarget {
    config: HttpTargetConfig,
    client: Client,
}

impl Target for HttpTarget {
    fn deliver<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            match self.config.delivery {
                HttpDelivery::PerRecord => {
                    for ev in events {
                        let request = self.request_parts(ev.record.as_deref())?;
                        self.send(request, ev.payload.clone(), ev.is_json).await?;
                    }
                    Ok(())
                }
                HttpDelivery::Batch => {
                    let first = events.first().and_then(|e| e.record.as_deref());
                    let request = self.request_parts(first)?;
                    self.send(request, batch_body(events), true).await
                }
            }
        })
    }
}

struct RequestParts {
    url: Url,
    headers: HeaderMap,
}

impl HttpTarget {
    fn request_parts(
        &self,
        record: Option<&serde_json::Value>,
    ) -> Result<RequestParts, TargetError> {
        let p = &self.config.params;
        let resolve = |v: &str| -> Result<String, TargetError> {
            if !is_dynamic(v) {
                return Ok(v.to_string());
            }
            let Some(rec) = record else {
                return Ok(String::new());
            };
            sluice_template::resolve_dynamic(v, rec)
                .map(Option::unwrap_or_default)
                .map_err(|e| TargetError::Request(e.to_string()))
        };
        let mut url_text = self.config.url.clone();
        for v in p.path_parameter_values.iter().flatten() {
            let value = resolve(v)?;
            let encoded = percent_encode_segment(&value);
            url_text = url_text.replacen('*', &encoded, 1);
        }
        let mut url =
            Url::parse(&url_text).map_err(|e| TargetError::Request(format!("bad URL: {e}")))?;
        if let Some(q) = &p.query_string_parameters {
            let resolved: BTreeMap<&str, String> = q
                .iter()
                .map(|(k, v)| Ok((k.as_str(), resolve(v)?)))
                .collect::<Result<_, TargetError>>()?;
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &resolved {
                pairs.append_pair(k, v);
            }
        }
        let mut headers = HeaderMap::new();
        for (k, v) in p.header_parameters.iter().flatten() {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| TargetError::Request(format!("bad header name {k:?}")))?;
            let value = HeaderValue::from_str(&resolve(v)?).map_err(|_| {
                TargetError::Request(format!("header {k} resolved to a value HTTP cannot carry"))
            })?;
            headers.append(name, value);
        }
        Ok(RequestParts { url, headers })
    }

    async fn send(
        &self,
        parts: RequestParts,
        body: Bytes,
        is_json: bool,
    ) -> Result<(), TargetError> {
        let content_type = if is_json {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        let mut req = self
            .client
            .post(parts.url)
            .header(CONTENT_TYPE, content_type)
            .body(body);
        // Given headers win over our content type.
        for (k, v) in &parts.headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| self.classify(e))?;
        let status = resp.status();
        if status.is_success() {
            // Drain so the connection goes back to the pool.
            let _ = resp.bytes().await;
            return Ok(());
        }
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = resp.bytes().await.unwrap_or_default();
        let detail: String = String::from_utf8_lossy(&body[..body.len().min(ERROR_DETAIL_MAX)])
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        Err(TargetError::Status {
            status: status.as_u16(),
            retry_after,
            detail,
        })
    }

    fn classify(&self, e: reqwest::Error) -> TargetError {
        if e.is_timeout() {
            TargetError::Timeout(self.config.timeout)
        } else {
            // reqwest's Display hides the cause chain; it is what tells the operator what broke.
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            TargetError::Connect(msg)
        }
    }
}

/// The batch as one JSON array; text payloads become JSON strings.
fn batch_body(events: &[Event]) -> Bytes {
    let mut out = Vec::with_capacity(events.iter().map(|e| e.payload.len() + 1).sum::<usize>() + 2);
    out.push(b'[');
    for (i, ev) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if ev.is_json {
            out.extend_from_slice(&ev.payload);
        } else {
            let text = String::from_utf8_lossy(&ev.payload);
            // Serialising a str into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, text.as_ref());
        }
    }
    out.push(b']');
    out.into()
}

/// `Retry-After`: delta-seconds or an HTTP date. Capped at 5 minutes, the execution limit.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let cap = Duration::from_secs(300);
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(cap));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(cap),
    )
}

fn percent_encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_dates_and_caps() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("100000"), Some(Duration::from_secs(300)));
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(20));
        let d = parse_retry_after(&soon).unwrap();
        assert!(
            d > Duration::from_secs(15) && d <= Duration::from_secs(20),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn batch_body_embeds_json_and_quotes_text() {
        let ev = |p: &str, j| Event {
            payload: Bytes::from(p.to_string()),
            is_json: j,
            record: None,
        };
        let body = batch_body(&[ev("{\"a\":1}", true), ev("he said \"hi\"", false)]);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, serde_json::json!([{"a": 1}, "he said \"hi\""]));
    }

    #[test]
    fn status_errors_are_classified() {
        let s = |status| TargetError::Status {
            status,
            retry_after: None,
            detail: String::new(),
        };
        assert!(s(429).is_retryable() && s(429).is_throttle());
        assert!(s(503).is_retryable() && !s(503).is_user_error());
        assert!(!s(404).is_retryable() && s(404).is_user_error());
        assert!(TargetError::Timeout(Duration::from_secs(1)).is_retryable());
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(percent_encode_segment("a b/c"), "a%20b%2Fc");
    }
}
