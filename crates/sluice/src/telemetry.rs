//! Logging setup (`tracing`, filtered by `RUST_LOG`, with the OpenTelemetry layer of
//! [`crate::traces`] when an OTLP endpoint is set) and the Prometheus `/metrics` endpoint.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::metrics::Metrics;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Install the global subscriber: `RUST_LOG` (default `info`) on stderr, in colour only when
/// stderr is a terminal and `NO_COLOR` is unset or empty, every line labelled with `instance`
/// when given (`sluice serve --instance-id`); and span export when an OTLP endpoint is set
/// (`otlp_endpoint`, else `OTEL_EXPORTER_OTLP_ENDPOINT`). The exported spans never decorate log
/// lines. Keep the returned exporter until the end, and shut it down outside the async runtime.
pub fn init_logging(
    format: LogFormat,
    instance: Option<&str>,
    otlp_endpoint: Option<&str>,
) -> Result<Option<crate::traces::Tracing>, crate::traces::TraceError> {
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A directive rather than a filter function, so that the callsite's interest stays static:
    // without an exporter, a span of `traces::TARGET` is never built.
    let env = match format!("{}=off", crate::traces::TARGET).parse() {
        Ok(d) => env.add_directive(d),
        Err(_) => env,
    };
    let registry =
        tracing_subscriber::registry().with(log_lines(format, instance).with_filter(env));
    match crate::traces::layer(otlp_endpoint)? {
        Some((otel, tracing)) => {
            registry.with(otel).init();
            Ok(Some(tracing))
        }
        None => {
            registry.init();
            Ok(None)
        }
    }
}

/// The layer writing log lines to stderr: text or JSON, labelled with `instance` when given
/// (`instance=<id>` first on a text line, an `"instance"` field first in a JSON one).
fn log_lines(format: LogFormat, instance: Option<&str>) -> Box<dyn Layer<Registry> + Send + Sync> {
    use tracing_subscriber::fmt::format as event_format;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let base = tracing_subscriber::fmt::layer()
        .with_ansi(use_colour(std::io::stderr().is_terminal(), no_color))
        .with_writer(std::io::stderr);
    match (format, instance) {
        (LogFormat::Text, None) => base.boxed(),
        (LogFormat::Json, None) => base.json().boxed(),
        (LogFormat::Text, Some(id)) => base
            .event_format(WithInstance::new(event_format(), id, false))
            .boxed(),
        (LogFormat::Json, Some(id)) => base
            .json()
            .event_format(WithInstance::new(event_format().json(), id, true))
            .boxed(),
    }
}

/// An event format that puts the instance label in front of what `inner` writes. tracing has
/// no process-wide fields, and a span would not reach the tasks the runtime spawns.
struct WithInstance<F> {
    inner: F,
    /// `instance=<id> ` or `"instance":"<id>",`.
    label: String,
    json: bool,
}

impl<F> WithInstance<F> {
    fn new(inner: F, instance: &str, json: bool) -> Self {
        let label = if json {
            format!("\"instance\":{},", serde_json::Value::from(instance))
        } else {
            format!("instance={instance} ")
        };
        WithInstance { inner, label, json }
    }
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for WithInstance<F>
where
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if !self.json {
            writer.write_str(&self.label)?;
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        let buffer = tracing_subscriber::fmt::format::Writer::new(&mut line);
        self.inner.format_event(ctx, buffer, event)?;
        match line.strip_prefix('{') {
            Some(rest) => {
                writer.write_char('{')?;
                writer.write_str(&self.label)?;
                writer.write_str(rest)
            }
            None => writer.write_str(&line),
        }
    }
}

/// Colours only on a terminal, and never when `NO_COLOR` asks (https://no-color.org).
fn use_colour(terminal: bool, no_color: bool) -> bool {
    terminal && !no_color
}

/// Serve `GET /metrics` on `addr` with `limits` until `shutdown`. Returns the bound address (port
/// 0 picks one).
pub async fn serve_metrics(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    limits: crate::api::limits::ListenerLimits,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let m = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    m.encode(),
                )
            }
        }),
    );
    // The API listener's accept loop and limits: header and body timeouts, a connection cap and
    // a bounded drain (a scraper that stalls must not hold a task forever).
    tokio::spawn(crate::api::listener::run(
        listener, app, None, limits, shutdown,
    ));
    tracing::info!(%bound, "metrics on http://{bound}/metrics");
    Ok(bound)
}
