//! Logging setup (`tracing`, filtered by `RUST_LOG`, with the OpenTelemetry layer of
//! [`crate::traces`] when an OTLP endpoint is set) and the Prometheus `/metrics` endpoint.

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

/// Install the global subscriber: `RUST_LOG` (default `info`) on stderr, and span export when
/// an OTLP endpoint is set (`otlp_endpoint`, else `OTEL_EXPORTER_OTLP_ENDPOINT`). The exported
/// spans never decorate log lines. Keep the returned exporter until the end, and shut it down
/// outside the async runtime.
pub fn init_logging(
    format: LogFormat,
    otlp_endpoint: Option<&str>,
) -> Result<Option<crate::traces::Tracing>, crate::traces::TraceError> {
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // A directive rather than a filter function, so that the callsite's interest stays static:
    // without an exporter, a span of `traces::TARGET` is never built.
    let env = match format!("{}=off", crate::traces::TARGET).parse() {
        Ok(d) => env.add_directive(d),
        Err(_) => env,
    };
    let registry = tracing_subscriber::registry().with(fmt.with_filter(env));
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

/// Serve `GET /metrics` on `addr` until `shutdown`. Returns the bound address (port 0 picks one).
pub async fn serve_metrics(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
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
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    });
    tracing::info!(%bound, "metrics on http://{bound}/metrics");
    Ok(bound)
}
