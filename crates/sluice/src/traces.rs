//! OpenTelemetry traces (`observability.md`, "Traces"): when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, the `tracing` spans of target [`TARGET`] become
//! OpenTelemetry spans (`tracing-opentelemetry`), exported by the SDK's batch processor (a thread
//! of its own, never on the delivery path) over OTLP HTTP/protobuf.
//!
//! Spans: `pipe.execution` per attempt at a batch, with children `pipe.enrichment`, `pipe.target`
//! and `pipe.dead_letter`. An execution continues the W3C `traceparent` its records carry (one
//! trace: its parent; several: a link to each), and the HTTP caller and the Kafka target send the
//! current span's `traceparent` on ([`inject_http`], [`current_traceparent`]). Without an
//! endpoint no layer wants these spans, so making one costs a disabled-callsite check.
//!
//! A leaf module: it imports nothing of the crate but the record type.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::record::SourceRecord;

/// The `tracing` target of the spans that are exported (and of nothing else).
pub const TARGET: &str = "sluice::traces";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported in this process.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The OTLP exporter could not be built (a bad endpoint URL).
    #[error("OpenTelemetry OTLP exporter: {0}")]
    Exporter(String),
}

impl TraceError {
    /// Starting again with the same settings cannot help.
    pub fn is_retryable(&self) -> bool {
        false
    }

    /// The endpoint must be fixed.
    pub fn is_user_error(&self) -> bool {
        true
    }
}

/// The running exporter; [`Tracing::shutdown`] exports what is left. Must be dropped outside an
/// async runtime (the exporter's HTTP client is a blocking one).
#[derive(Debug)]
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// Export the spans still buffered and stop.
    pub fn shutdown(self) {
        let _ = self.provider.shutdown();
    }
}

/// The endpoint of traces: `config` (the config file's `[telemetry] otlp_endpoint`, a base URL
/// to which `/v1/traces` is added), else the standard variables. `None`: tracing is off.
fn endpoint(config: Option<&str>) -> Option<Option<String>> {
    if let Some(base) = config.filter(|c| !c.is_empty()) {
        return Some(Some(format!("{}/v1/traces", base.trim_end_matches('/'))));
    }
    let set = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty());
    // The exporter reads the variables itself.
    (set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .then_some(None)
}

/// The layer exporting [`TARGET`] spans, when an endpoint is configured.
pub fn layer<S>(
    config_endpoint: Option<&str>,
) -> Result<Option<(impl Layer<S> + Send + Sync, Tracing)>, TraceError>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    let Some(endpoint) = endpoint(config_endpoint) else {
        return Ok(None);
    };
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(url) = endpoint {
        builder = builder.with_endpoint(url);
    }
    let exporter = builder
        .build()
        .map_err(|e| TraceError::Exporter(e.to_string()))?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("sluice");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("sluice");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(Targets::new().with_target(TARGET, tracing::Level::INFO));
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some((layer, Tracing { provider })))
}

/// What a `pipe.execution` span says of its batch.
#[derive(Debug, Clone, Copy)]
pub struct ExecutionAttributes<'a> {
    /// The pipe's ARN.
    pub pipe_arn: &'a str,
    /// The source topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// First and last offset of the records attempted.
    pub offsets: (i64, i64),
    /// How many records.
    pub size: usize,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// The `pipe.execution` span of an attempt at `records`, continuing their traces. Record its
/// end with [`finish`].
pub fn execution_span(a: &ExecutionAttributes<'_>, records: &[&SourceRecord]) -> Span {
    let span = tracing::info_span!(target: TARGET, "pipe.execution",
        pipe.arn = a.pipe_arn,
        messaging.system = "kafka",
        messaging.destination.name = a.topic,
        messaging.destination.partition.id = a.partition,
        messaging.kafka.first_offset = a.offsets.0,
        messaging.kafka.last_offset = a.offsets.1,
        messaging.batch.message_count = a.size as u64,
        pipe.attempt = a.attempt,
        pipe.outcome = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    if span.is_disabled() {
        return span;
    }
    let remote = remote_contexts(records);
    match remote.as_slice() {
        [] => {}
        [one] => {
            let cx = opentelemetry::Context::new().with_remote_span_context(one.clone());
            let _ = span.set_parent(cx);
        }
        many => {
            for sc in many {
                span.add_link(sc.clone());
            }
        }
    }
    span
}

/// Record how an execution ended (`succeeded`, `failed`, ...); anything but success marks the
/// span as an error.
pub fn finish(span: &Span, outcome: &str) {
    span.record("pipe.outcome", outcome);
    if outcome != "succeeded" {
        span.record("otel.status_code", "ERROR");
    }
}

/// The `pipe.enrichment` span (a child of the current execution).
pub fn enrichment_span() -> Span {
    tracing::info_span!(target: TARGET, "pipe.enrichment")
}

/// The `pipe.target` span (a child of the current execution).
pub fn target_span() -> Span {
    tracing::info_span!(target: TARGET, "pipe.target")
}

/// The `pipe.dead_letter` span (a child of the current execution).
pub fn dead_letter_span(records: usize) -> Span {
    tracing::info_span!(target: TARGET, "pipe.dead_letter", messaging.batch.message_count = records as u64)
}

/// The distinct valid trace contexts of the records' `traceparent` headers, in record order.
fn remote_contexts(records: &[&SourceRecord]) -> Vec<SpanContext> {
    let propagator = TraceContextPropagator::new();
    let mut out: Vec<SpanContext> = Vec::new();
    for r in records {
        if !r.headers().any(|(k, _)| k == "traceparent") {
            continue;
        }
        let cx = propagator.extract(&RecordHeaders(r));
        let sc = cx.span().span_context().clone();
        if sc.is_valid() && !out.iter().any(|o| o.trace_id() == sc.trace_id()) {
            out.push(sc);
        }
    }
    out
}

struct RecordHeaders<'a>(&'a SourceRecord);

impl Extractor for RecordHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .headers()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.headers().map(|(k, _)| k).collect()
    }
}

/// The current span's `traceparent`, when spans are exported and one is current.
pub fn current_traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    let mut fields = HashMap::new();
    TraceContextPropagator::new().inject_context(&Span::current().context(), &mut fields);
    fields.remove("traceparent")
}

/// Add the current span's `traceparent` (and `tracestate`) to a request's headers, unless the
/// request already has one.
pub fn inject_http(headers: &mut reqwest::header::HeaderMap) {
    if !enabled() || headers.contains_key("traceparent") {
        return;
    }
    TraceContextPropagator::new()
        .inject_context(&Span::current().context(), &mut HttpHeaders(headers));
}

struct HttpHeaders<'a>(&'a mut reqwest::header::HeaderMap);

impl Injector for HttpHeaders<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            reqwest::header::HeaderName::from_bytes(key.as_bytes()),
            reqwest::header::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(traceparent: Option<&str>) -> SourceRecord {
        SourceRecord::new(0, 0)
            .with_timestamp(0, crate::record::TimestampType::CreateTime)
            .with_headers(traceparent.map(|t| ("traceparent", Some(t.as_bytes()))))
    }

    #[test]
    fn distinct_traces_of_a_batch_are_found_once_each() {
        let a = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let b = "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01";
        let recs = [
            record(Some(a)),
            record(None),
            record(Some(a)),
            record(Some(b)),
            record(Some("garbage")),
        ];
        let refs: Vec<&SourceRecord> = recs.iter().collect();
        let found = remote_contexts(&refs);
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert!(found[0].is_remote());
    }

    #[test]
    fn nothing_is_injected_while_tracing_is_off() {
        let mut h = reqwest::header::HeaderMap::new();
        inject_http(&mut h);
        assert!(h.is_empty());
        assert_eq!(current_traceparent(), None);
    }
}
