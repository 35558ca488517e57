//! The HTTP target: POSTs each record (API-destination semantics, the default) or the whole batch
//! as one JSON array (Lambda-style, `SluiceParameters.HttpDelivery: BATCH`) to a URL.
//! 2xx is success; everything else fails the batch, and `Retry-After` is reported to the retry loop.
//!
//! The endpoint is a URL or an API destination ARN resolved from `[targets.api_destinations]`
//! (URL with `*` wildcards, method, rate limit, connection authorization from [`super::auth`]).
//! [`HttpCaller`] is shared with the HTTP enrichment. After a 401/407 a cached OAuth token is
//! dropped, so the retry fetches a new one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Client, Method, Url};

use super::auth::{self, ConnectionAuth};
use super::body::{self, Bounded};
use super::config::{ConnectionAuthConfig, TargetsConfig};
use super::{
    is_dynamic, parse_item_failures, resolve_param, Delivered, Event, Target, TargetConfig,
    TargetContext, TargetError, TargetKind,
};
use crate::model::definition::HttpParameters;
use crate::model::{FieldError, HttpDelivery, PipeDefinition};
use crate::secrets::SecretResolver;

/// Registered in [`super::kinds`].
pub const KIND: TargetKind = TargetKind {
    name: "http",
    accepts: |t| t.starts_with("http://") || t.starts_with("https://"),
    validate,
};

/// Registered in [`super::kinds`]: an EventBridge API destination, resolved from Sluice's config.
pub const API_DESTINATION_KIND: TargetKind = TargetKind {
    name: "API destination",
    accepts: is_api_destination,
    validate,
};

/// The start of a failed answer's body for the log line next to the status: at most
/// [`ERROR_DETAIL_MAX`] characters (`...` when cut), control characters and line breaks dropped so
/// that it stays one line.
fn failure_detail(body: &str) -> String {
    let mut chars = body.trim().chars().filter(|c| !c.is_control());
    let mut detail: String = chars.by_ref().take(ERROR_DETAIL_MAX).collect();
    if chars.next().is_some() {
        detail.push_str("...");
    }
    detail
}

/// Whether `s` is an API destination ARN.
pub fn is_api_destination(s: &str) -> bool {
    s.starts_with("arn:aws:events:") && s.contains(":api-destination/")
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const ERROR_DETAIL_MAX: usize = 200;
/// How much of a failure answer is read for its detail (of which [`ERROR_DETAIL_MAX`] characters
/// are shown).
const ERROR_BODY_MAX: usize = 64 * 1024;
/// EventBridge's default invocation rate of an API destination.
const DEFAULT_RATE_LIMIT: u32 = 300;

/// Where HTTP requests go: a URL given directly, or an API destination's.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// The URL; `*` in its path are filled from `PathParameterValues`.
    pub url: String,
    /// The HTTP method (POST for direct URLs).
    pub method: Method,
    /// Requests per second at most (API destinations).
    pub rate_limit: Option<u32>,
    /// The connection's authorization (API destinations with a connection).
    pub auth: Option<ConnectionAuthConfig>,
}

/// Resolve a `Target`/`Enrichment` string into an endpoint: a direct URL, or an API destination
/// declared in `[targets]`. `field` names the definition field in errors.
pub fn resolve_endpoint(
    text: &str,
    field: &str,
    config: &TargetsConfig,
    errs: &mut Vec<FieldError>,
) -> Option<Endpoint> {
    if !is_api_destination(text) {
        return match Url::parse(text) {
            Ok(u) if u.host_str().is_some() && matches!(u.scheme(), "http" | "https") => {
                Some(Endpoint {
                    url: text.to_string(),
                    method: Method::POST,
                    rate_limit: None,
                    auth: None,
                })
            }
            _ => {
                errs.push(FieldError::new(
                    field,
                    "must be a valid http(s) URL with a host",
                ));
                None
            }
        };
    }
    // A pipe may name the destination with or without its trailing `/<id>`.
    let dest = config.api_destinations.iter().find(|d| {
        d.arn == text
            || d.arn
                .rsplit_once('/')
                .is_some_and(|(without_id, _)| without_id == text)
    });
    let Some(dest) = dest else {
        errs.push(FieldError::new(
            field,
            "API destination not found: declare it under [[targets.api_destinations]] in Sluice's config file (--config)",
        ));
        return None;
    };
    let before = errs.len();
    let cfield = format!("targets.api_destinations.{}", dest.arn);
    match Url::parse(&dest.endpoint) {
        Ok(u) if u.host_str().is_some() && matches!(u.scheme(), "http" | "https") => {}
        _ => errs.push(FieldError::new(
            format!("{cfield}.endpoint"),
            "must be a valid http(s) URL with a host",
        )),
    }
    let method = match dest.http_method.as_str() {
        "POST" => Method::POST,
        "GET" => Method::GET,
        "PUT" => Method::PUT,
        "PATCH" => Method::PATCH,
        "DELETE" => Method::DELETE,
        "HEAD" => Method::HEAD,
        "OPTIONS" => Method::OPTIONS,
        other => {
            errs.push(FieldError::new(
                format!("{cfield}.http_method"),
                format!("{other:?} is not one of POST, GET, PUT, PATCH, DELETE, HEAD, OPTIONS"),
            ));
            Method::POST
        }
    };
    if dest.invocation_rate_limit_per_second == Some(0) {
        errs.push(FieldError::new(
            format!("{cfield}.invocation_rate_limit_per_second"),
            "must be at least 1",
        ));
    }
    let auth = match &dest.connection {
        None => None,
        Some(name) => match config.connections.iter().find(|c| &c.name == name) {
            Some(c) => {
                auth::check_connection(c, errs);
                Some(c.auth.clone())
            }
            None => {
                errs.push(FieldError::new(
                    format!("{cfield}.connection"),
                    format!("no [[targets.connections]] is named {name:?}"),
                ));
                None
            }
        },
    };
    (errs.len() == before).then(|| Endpoint {
        url: dest.endpoint.clone(),
        method,
        rate_limit: Some(
            dest.invocation_rate_limit_per_second
                .unwrap_or(DEFAULT_RATE_LIMIT),
        ),
        auth,
    })
}

/// Check `HttpParameters` against the endpoint; `prefix` is `TargetParameters` or
/// `EnrichmentParameters`.
pub fn check_params(url: &str, params: &HttpParameters, prefix: &str, errs: &mut Vec<FieldError>) {
    let wildcards = url.matches('*').count();
    let given = params.path_parameter_values.as_ref().map_or(0, Vec::len);
    if given != wildcards {
        errs.push(FieldError::new(
            format!("{prefix}.HttpParameters.PathParameterValues"),
            format!(
                "the endpoint URL has {wildcards} '*' wildcard(s) but {given} value(s) are given"
            ),
        ));
    }
    for (name, value) in params.header_parameters.iter().flatten() {
        let field = format!("{prefix}.HttpParameters.HeaderParameters.{name}");
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            errs.push(FieldError::new(&field, "is not a valid HTTP header name"));
        }
        if !is_dynamic(value) && HeaderValue::from_str(value).is_err() {
            errs.push(FieldError::new(&field, "is not a valid HTTP header value"));
        }
        super::check_param(&field, value, errs);
    }
    for (name, value) in params.query_string_parameters.iter().flatten() {
        super::check_param(
            &format!("{prefix}.HttpParameters.QueryStringParameters.{name}"),
            value,
            errs,
        );
    }
    for value in params.path_parameter_values.iter().flatten() {
        super::check_param(
            &format!("{prefix}.HttpParameters.PathParameterValues"),
            value,
            errs,
        );
    }
}

/// Whether any parameter is a JSON path, so events must carry the decoded record.
pub fn params_need_record(p: &HttpParameters) -> bool {
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

/// A validated HTTP target.
#[derive(Debug, Clone)]
pub struct HttpTargetConfig {
    /// Where requests go.
    pub endpoint: Endpoint,
    /// One request per record, or one per batch.
    pub delivery: HttpDelivery,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Header, query and path parameters (values may be JSON paths).
    pub params: HttpParameters,
}

fn validate(
    def: &PipeDefinition,
    ctx: &TargetContext<'_>,
    errs: &mut Vec<FieldError>,
) -> Option<TargetConfig> {
    let target = def.target.clone().unwrap_or_default();
    let before = errs.len();
    let endpoint = resolve_endpoint(&target, "Target", ctx.config, errs);
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
        let msg = match crate::model::parse::suggest(k, &["InputTemplate", "HttpParameters"]) {
            Some(s) => format!("unknown field `{k}`; did you mean `{s}`?"),
            None => "does not apply to an HTTP target".into(),
        };
        errs.push(FieldError::new(format!("TargetParameters.{k}"), msg));
    }
    let params = tp.http_parameters.unwrap_or_default();
    if let Some(ep) = &endpoint {
        check_params(&ep.url, &params, "TargetParameters", errs);
    }
    let endpoint = endpoint?;
    (errs.len() == before).then_some(TargetConfig::Http(HttpTargetConfig {
        endpoint,
        delivery,
        timeout,
        params,
    }))
}

impl HttpTargetConfig {
    /// Whether any parameter is a JSON path, so events must carry the decoded record.
    pub fn needs_record(&self) -> bool {
        params_need_record(&self.params)
    }

    /// Build the client and fetch the connection's secrets.
    pub async fn build(&self) -> Result<HttpTarget, TargetError> {
        Ok(HttpTarget {
            caller: HttpCaller::build(&self.endpoint, &self.params, self.timeout).await?,
            delivery: self.delivery,
        })
    }
}

/// A built HTTP target.
#[derive(Debug)]
pub struct HttpTarget {
    caller: HttpCaller,
    delivery: HttpDelivery,
}

impl Target for HttpTarget {
    fn deliver<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<Delivered, TargetError>> {
        Box::pin(async move {
            match self.delivery {
                HttpDelivery::PerRecord => {
                    for ev in events {
                        self.caller
                            .call(ev.record.as_deref(), ev.payload.clone(), ev.is_json)
                            .await?;
                    }
                    Ok(Delivered::default())
                }
                HttpDelivery::Batch => {
                    let first = events.first().and_then(|e| e.record.as_deref());
                    let body = self.caller.call(first, batch_body(events), true).await?;
                    Ok(Delivered {
                        item_failures: parse_item_failures(&body),
                    })
                }
            }
        })
    }
}

/// Makes requests to one endpoint: parameters resolved per record, connection authorization,
/// rate limit, error classification. Shared by the HTTP target and the HTTP enrichment.
#[derive(Debug)]
pub struct HttpCaller {
    endpoint: Endpoint,
    /// The endpoint's URL parsed once, when no path parameter changes it per request.
    fixed_url: Option<Url>,
    params: HttpParameters,
    timeout: Duration,
    client: Client,
    auth: Option<ConnectionAuth>,
    /// The earliest time the next request may start (rate limit).
    next_slot: tokio::sync::Mutex<Instant>,
}

struct RequestParts {
    url: Url,
    headers: HeaderMap,
}

/// Responses larger than this are refused (the enrichment response cap).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

impl HttpCaller {
    /// Build the client (connection pool with keep-alive; HTTP/1.1, or h2 where the server offers
    /// it over TLS) and fetch the connection's secrets.
    pub async fn build(
        endpoint: &Endpoint,
        params: &HttpParameters,
        timeout: Duration,
    ) -> Result<HttpCaller, TargetError> {
        let client = Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(64)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| TargetError::Request(format!("cannot build HTTP client: {e}")))?;
        let auth = match &endpoint.auth {
            Some(a) => Some(ConnectionAuth::resolve(a, &SecretResolver::new()).await?),
            None => None,
        };
        let fixed_url = params
            .path_parameter_values
            .as_ref()
            .is_none_or(Vec::is_empty)
            .then(|| Url::parse(&endpoint.url).ok())
            .flatten();
        Ok(HttpCaller {
            endpoint: endpoint.clone(),
            fixed_url,
            params: params.clone(),
            timeout,
            client,
            auth,
            next_slot: tokio::sync::Mutex::new(Instant::now()),
        })
    }

    /// One request for `record`; returns the response body of a 2xx answer.
    pub async fn call(
        &self,
        record: Option<&serde_json::Value>,
        body: Bytes,
        is_json: bool,
    ) -> Result<Bytes, TargetError> {
        let mut parts = self.request_parts(record)?;
        // The trace continues at the target (or enrichment) through the call's `traceparent`.
        crate::traces::inject_http(&mut parts.headers);
        self.wait_for_slot().await;
        self.send(parts, body, is_json).await
    }

    async fn wait_for_slot(&self) {
        let Some(rate) = self.endpoint.rate_limit else {
            return;
        };
        let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let start = {
            let mut next = self.next_slot.lock().await;
            let start = (*next).max(Instant::now());
            *next = start + interval;
            start
        };
        tokio::time::sleep_until(start.into()).await;
    }

    fn request_parts(
        &self,
        record: Option<&serde_json::Value>,
    ) -> Result<RequestParts, TargetError> {
        let p = &self.params;
        let mut url = match &self.fixed_url {
            Some(url) => url.clone(),
            None => self.url_with_path_parameters(record)?,
        };
        if let Some(q) = &p.query_string_parameters {
            let resolved: BTreeMap<&str, String> = q
                .iter()
                .map(|(k, v)| Ok((k.as_str(), resolve_param(v, record)?)))
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
            let value = HeaderValue::from_str(&resolve_param(v, record)?).map_err(|_| {
                TargetError::Request(format!("header {k} resolved to a value HTTP cannot carry"))
            })?;
            headers.append(name, value);
        }
        Ok(RequestParts { url, headers })
    }

    fn url_with_path_parameters(
        &self,
        record: Option<&serde_json::Value>,
    ) -> Result<Url, TargetError> {
        let mut url_text = self.endpoint.url.clone();
        for v in self.params.path_parameter_values.iter().flatten() {
            let value = resolve_param(v, record)?;
            let encoded = percent_encode_segment(&value);
            url_text = url_text.replacen('*', &encoded, 1);
        }
        Url::parse(&url_text).map_err(|e| TargetError::Request(format!("bad URL: {e}")))
    }

    async fn send(
        &self,
        parts: RequestParts,
        body: Bytes,
        is_json: bool,
    ) -> Result<Bytes, TargetError> {
        let content_type = if is_json {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        let mut req = self
            .client
            .request(self.endpoint.method.clone(), parts.url)
            .header(CONTENT_TYPE, content_type)
            .body(body);
        // Given headers win over our content type.
        for (k, v) in &parts.headers {
            req = req.header(k, v);
        }
        if let Some(auth) = &self.auth {
            req = auth.apply(&self.client, req).await?;
        }
        let resp = req.send().await.map_err(|e| self.classify(e))?;
        let status = resp.status();
        if status.is_success() {
            // Read it (the enrichment needs it, and a drained connection goes back to the pool),
            // but no further than the cap: a huge or endless answer is cut off there.
            return match body::read_bounded(resp, MAX_RESPONSE_BYTES).await {
                Ok(Bounded::Whole(body)) => Ok(body),
                Ok(Bounded::TooLarge) => Err(TargetError::Request(format!(
                    "the response is larger than {MAX_RESPONSE_BYTES} bytes"
                ))),
                Err(e) => Err(self.classify(e)),
            };
        }
        if matches!(status.as_u16(), 401 | 407) {
            if let Some(auth) = &self.auth {
                auth.rejected().await;
            }
        }
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = body::read_prefix(resp, ERROR_BODY_MAX).await;
        let text = String::from_utf8_lossy(&body);
        let text = match &self.auth {
            Some(auth) => auth.redact(&text).await,
            None => text.into_owned(),
        };
        let detail = failure_detail(&text);
        Err(TargetError::Status {
            status: status.as_u16(),
            retry_after,
            detail,
        })
    }

    fn classify(&self, e: reqwest::Error) -> TargetError {
        if e.is_timeout() {
            TargetError::Timeout(self.timeout)
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
pub fn batch_body(events: &[Event]) -> Bytes {
    if let Some(array) = written_array(events) {
        return array;
    }
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

/// The JSON array the batch's builder wrote, when `events` are exactly its elements in order (a
/// part of a batch, after a bisection or a partial failure, is written anew). The payloads are
/// found in the array by address: the array is alive and immutable, so a payload at an element's
/// place is that element.
fn written_array(events: &[Event]) -> Option<Bytes> {
    let array = events.first()?.array.as_ref()?;
    let base = array.as_ptr() as usize;
    // Past the '['; each element is followed by its ',' or the ']'.
    let mut at = 1;
    for ev in events {
        if !ev.is_json || ev.payload.as_ptr() as usize != base + at {
            return None;
        }
        at += ev.payload.len() + 1;
    }
    (at == array.len()).then(|| array.clone())
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
            source: None,
            array: None,
        };
        let body = batch_body(&[ev("{\"a\":1}", true), ev("he said \"hi\"", false)]);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, serde_json::json!([{"a": 1}, "he said \"hi\""]));
    }

    #[test]
    fn a_failure_detail_is_one_bounded_line() {
        assert_eq!(
            failure_detail("  {\"error\":\n \"no\"}\n"),
            "{\"error\": \"no\"}"
        );
        let long = "é".repeat(500);
        let d = failure_detail(&long);
        assert_eq!(d.chars().count(), ERROR_DETAIL_MAX + 3);
        assert!(d.ends_with("..."));
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
