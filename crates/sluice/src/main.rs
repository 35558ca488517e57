//! The `sluice` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use sluice::metrics::Metrics;
use sluice::model::{self, ValidationContext};
use sluice::runtime::{run_pipe, RuntimeOptions};
use sluice::telemetry::{self, LogFormat};

/// Sluice: EventBridge Pipes for Kafka, self-hosted.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one pipe in the foreground until SIGINT/SIGTERM.
    Run {
        /// Pipe definition (JSON, or YAML for .yaml/.yml).
        pipe_file: PathBuf,
        /// Serve Prometheus metrics at http://ADDR/metrics.
        #[arg(long)]
        metrics_addr: Option<SocketAddr>,
        /// Log format.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
        #[command(flatten)]
        arn: ArnArgs,
        /// Seconds a shutdown waits for batches in flight.
        #[arg(long, default_value_t = 30)]
        shutdown_timeout_secs: u64,
        /// Configuration file (the `sluice serve` format; `run` reads its `[targets]` section:
        /// AWS endpoints, API destinations, connections; and `missing_topic_grace_seconds`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Serve the AWS Pipes API and run the pipes it holds, until SIGINT/SIGTERM.
    Serve(ServeArgs),
    /// Check a pipe definition; prints every field error and exits 2 when invalid.
    Validate {
        /// Pipe definition (JSON, or YAML for .yaml/.yml).
        pipe_file: PathBuf,
        #[command(flatten)]
        arn: ArnArgs,
        /// Configuration file whose `[targets]` section resolves API destination ARNs.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Match an event against an event pattern, like `aws events test-event-pattern`.
    TestEventPattern {
        /// The pattern (JSON).
        #[arg(long)]
        event_pattern: String,
        /// The event (JSON), matched as given.
        #[arg(long)]
        event: String,
    },
    /// Render an input template for an event.
    TestInputTemplate {
        /// The template text.
        #[arg(long)]
        template: String,
        /// The event (JSON) the template's paths read.
        #[arg(long)]
        event: String,
        #[command(flatten)]
        vars: TemplateArgs,
    },
}

/// Options of `sluice serve`; the rest is in the configuration file.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address of the AWS Pipes API (port 0 picks a free port; the log says which).
    #[arg(long, default_value = "127.0.0.1:9800")]
    listen: SocketAddr,
    /// Directory of the durable pipe store.
    #[arg(long, default_value = "sluice-data")]
    data: PathBuf,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Directory of pipe files (JSON/YAML) reconciled with the store at start.
    #[arg(long)]
    pipes_dir: Option<PathBuf>,
    /// Configuration file (TOML, or JSON for .json): region, account, access keys, timeouts.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Accept every request without checking its signature. For local development only.
    #[arg(long)]
    dev_accept_any_credentials: bool,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// Region and account used in the ARNs Sluice mints.
#[derive(Debug, clap::Args)]
struct ArnArgs {
    /// Region for pipe ARNs.
    #[arg(long, env = "SLUICE_REGION", default_value = "us-east-1")]
    region: String,
    /// Account id for pipe ARNs.
    #[arg(long, env = "SLUICE_ACCOUNT", default_value = "000000000000")]
    account: String,
}

impl ArnArgs {
    fn context(&self) -> ValidationContext {
        ValidationContext {
            region: self.region.clone(),
            account: self.account.clone(),
            ..ValidationContext::default()
        }
    }
}

/// The validation context of `run`/`validate`: ARN parts from the flags, `[targets]` from the
/// configuration file when one is given; and the file's grace period for a missing source topic.
/// A bad file prints why and gives exit code 2.
fn context_with_config(
    arn: &ArnArgs,
    config: Option<&std::path::Path>,
) -> Result<(ValidationContext, std::time::Duration), ExitCode> {
    let mut ctx = arn.context();
    let mut grace = sluice::runtime::DEFAULT_MISSING_TOPIC_GRACE;
    if let Some(path) = config {
        match sluice::control::config::ServeConfig::load(path) {
            Ok(c) => {
                grace = c.missing_topic_grace();
                ctx.targets = Arc::new(c.targets);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok((ctx, grace))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            pipe_file,
            metrics_addr,
            log_format,
            arn,
            shutdown_timeout_secs,
            config,
        } => {
            let tracing = match start_telemetry(log_format, config.as_deref()) {
                Ok(t) => t,
                Err(code) => return code,
            };
            let (ctx, missing_topic_grace) = match context_with_config(&arn, config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let options = RuntimeOptions {
                shutdown_timeout: std::time::Duration::from_secs(shutdown_timeout_secs),
                missing_topic_grace,
                ..RuntimeOptions::default()
            };
            let code = block_on(run(pipe_file, metrics_addr, ctx, options));
            // Outside the runtime: the exporter's client blocks.
            if let Some(t) = tracing {
                t.shutdown();
            }
            code
        }
        Command::Serve(args) => {
            let tracing = match start_telemetry(args.log_format, args.config.as_deref()) {
                Ok(t) => t,
                Err(code) => return code,
            };
            let code = block_on(serve(args));
            if let Some(t) = tracing {
                t.shutdown();
            }
            code
        }
        Command::Validate {
            pipe_file,
            arn,
            config,
        } => {
            let ctx = match context_with_config(&arn, config.as_deref()) {
                Ok((c, _)) => c,
                Err(code) => return code,
            };
            match load(&pipe_file, &ctx) {
                Ok(spec) => {
                    println!("{}: valid pipe {:?}", pipe_file.display(), spec.name);
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            }
        }
        Command::TestEventPattern {
            event_pattern,
            event,
        } => test_event_pattern(&event_pattern, &event),
        Command::TestInputTemplate {
            template,
            event,
            vars,
        } => test_input_template(&template, &event, &vars),
    }
}

/// Logging, and span export when `[telemetry] otlp_endpoint` of the config file (read here only
/// for that; its errors are reported where it is loaded) or `OTEL_EXPORTER_OTLP_ENDPOINT` says
/// where. A bad endpoint prints why and gives exit code 2.
fn start_telemetry(
    format: LogFormat,
    config: Option<&std::path::Path>,
) -> Result<Option<sluice::traces::Tracing>, ExitCode> {
    let endpoint = config
        .and_then(|p| sluice::control::config::ServeConfig::load(p).ok())
        .and_then(|c| c.telemetry.otlp_endpoint);
    telemetry::init_logging(format, endpoint.as_deref()).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

/// Run a command's future on a multi-threaded runtime; errors are logged and exit 1.
fn block_on(fut: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Load and validate; on failure print the field errors and give the exit code (2).
fn load(path: &std::path::Path, ctx: &ValidationContext) -> Result<model::PipeSpec, ExitCode> {
    let invalid = |e: &model::ValidationError| {
        eprintln!("{}: invalid pipe definition", path.display());
        for f in &e.fields {
            let name = if f.name.is_empty() {
                "(document)"
            } else {
                &f.name
            };
            eprintln!("  {name}: {}", f.message);
        }
        ExitCode::from(2)
    };
    let def = match model::load_definition(path) {
        Ok(d) => d,
        Err(model::LoadError::Invalid(e)) => return Err(invalid(&e)),
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(2));
        }
    };
    model::validate(&def, ctx).map_err(|e| invalid(&e))
}

async fn run(
    pipe_file: PathBuf,
    metrics_addr: Option<SocketAddr>,
    ctx: ValidationContext,
    options: RuntimeOptions,
) -> anyhow::Result<ExitCode> {
    let spec = match load(&pipe_file, &ctx) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let shutdown = CancellationToken::new();
    let metrics = Arc::new(Metrics::new());
    if let Some(addr) = metrics_addr {
        telemetry::serve_metrics(addr, metrics.clone(), shutdown.clone())
            .await
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
    }
    tokio::spawn(wait_for_signal(shutdown.clone()));
    let options = RuntimeOptions {
        client_id: format!("sluice-{}", spec.name),
        ..options
    };
    let (status, _) = tokio::sync::watch::channel(sluice::runtime::PipeStatus::Starting);
    run_pipe(spec, metrics, options, shutdown, status).await?;
    Ok(ExitCode::SUCCESS)
}

const DEV_MODE_WARNING: &str = "\
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! WARNING: --dev-accept-any-credentials: request signatures are NOT checked. !!
!! Anyone who can reach the API can create, change and delete pipes.          !!
!! Never use this outside local development.                                  !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!";

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    use sluice::api::{self, sigv4::Verifier, ApiState, Auth};
    use sluice::control::{config::ServeConfig, files, PipeManager};
    use sluice::store::RedbStore;
    use std::time::Duration;

    let config = match &args.config {
        Some(path) => ServeConfig::load(path)?,
        None => ServeConfig::default(),
    };
    let env_keys = std::env::var("SLUICE_ACCESS_KEYS").ok();
    let keys = config.access_keys(env_keys.as_deref(), |v| std::env::var(v).ok())?;
    let auth = if args.dev_accept_any_credentials {
        eprintln!("{DEV_MODE_WARNING}");
        tracing::warn!("--dev-accept-any-credentials: request signatures are not checked");
        Auth::AcceptAny
    } else if keys.is_empty() {
        anyhow::bail!(
            "no access keys configured: set SLUICE_ACCESS_KEYS=ACCESS_KEY_ID:SECRET or list \
             [[access_keys]] in --config (or use --dev-accept-any-credentials locally)"
        );
    } else {
        tracing::info!(access_keys = ?keys.keys().collect::<Vec<_>>(), "SigV4 authentication on");
        Auth::SigV4(Verifier::new(
            keys,
            Duration::from_secs(config.max_clock_skew_seconds),
        ))
    };
    let store = RedbStore::open(&args.data)?;
    tracing::info!(path = %store.path().display(), "pipe store open");

    let shutdown = CancellationToken::new();
    let metrics = Arc::new(Metrics::new());
    if let Some(addr) = args.metrics_addr {
        telemetry::serve_metrics(addr, metrics.clone(), shutdown.clone())
            .await
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
    }
    let shutdown_timeout = Duration::from_secs(config.shutdown_timeout_seconds);
    let options = RuntimeOptions {
        shutdown_timeout,
        missing_topic_grace: config.missing_topic_grace(),
        ..RuntimeOptions::default()
    };
    let ctx = ValidationContext {
        region: config.region.clone(),
        account: config.account.clone(),
        targets: Arc::new(config.targets.clone()),
    };
    let manager = PipeManager::open(Arc::new(store), ctx, metrics, options)?;
    tracing::info!(pipes = manager.list().len(), "pipes loaded");
    if let Some(dir) = &args.pipes_dir {
        match tokio::task::block_in_place(|| files::reconcile(dir, &manager)) {
            Ok(done) => tracing::info!(created = ?done.created, updated = ?done.updated,
                deleted = ?done.deleted, dir = %dir.display(), "pipe files applied"),
            Err(e) => {
                eprintln!("error: {e}");
                manager.shutdown(shutdown_timeout).await;
                return Ok(ExitCode::from(2));
            }
        }
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let bound = listener.local_addr()?;
    tracing::info!(%bound, "api listening on http://{bound}");
    tokio::spawn(wait_for_signal(shutdown.clone()));
    let state = Arc::new(ApiState {
        manager: manager.clone(),
        auth,
    });
    api::serve(listener, state, shutdown.clone()).await?;
    tracing::info!("stopping pipes");
    manager
        .shutdown(shutdown_timeout + Duration::from_secs(5))
        .await;
    Ok(ExitCode::SUCCESS)
}

/// First SIGINT/SIGTERM: graceful stop. A second one: exit at once.
async fn wait_for_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("signal received; shutting down (send it again to exit at once)");
    shutdown.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::warn!("second signal: exiting without waiting");
    std::process::exit(130);
}

fn test_event_pattern(pattern: &str, event: &str) -> ExitCode {
    let matcher = match sluice_pattern::Matcher::compile(pattern) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("InvalidEventPatternException: {e}");
            return ExitCode::from(2);
        }
    };
    match matcher.matches_json(event.as_bytes()) {
        Ok(r) => {
            println!("{}", serde_json::json!({ "Result": r }));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("InvalidEventException: {e}");
            ExitCode::from(2)
        }
    }
}

/// The reserved variables `test-input-template` fills in.
#[derive(Debug, clap::Args)]
struct TemplateArgs {
    /// `<aws.pipes.pipe-name>`.
    #[arg(long, default_value = "")]
    pipe_name: String,
    /// `<aws.pipes.pipe-arn>`.
    #[arg(long, default_value = "")]
    pipe_arn: String,
    /// `<aws.pipes.source-arn>`.
    #[arg(long, default_value = "")]
    source_arn: String,
    /// `<aws.pipes.enrichment-arn>`.
    #[arg(long, default_value = "")]
    enrichment_arn: String,
    /// `<aws.pipes.target-arn>`.
    #[arg(long, default_value = "")]
    target_arn: String,
    /// `<aws.pipes.event.ingestion-time>` (ISO-8601); now when absent.
    #[arg(long)]
    ingestion_time: Option<String>,
}

fn test_input_template(template: &str, event: &str, a: &TemplateArgs) -> ExitCode {
    let t = match sluice_template::Template::compile(template) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("invalid template: {e}");
            return ExitCode::from(2);
        }
    };
    let json: serde_json::Value = match serde_json::from_str(event) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("invalid event: {e}");
            return ExitCode::from(2);
        }
    };
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let out = t.render(
        &json,
        &sluice_template::Context {
            pipe_arn: &a.pipe_arn,
            pipe_name: &a.pipe_name,
            source_arn: &a.source_arn,
            enrichment_arn: &a.enrichment_arn,
            target_arn: &a.target_arn,
            ingestion_time: a.ingestion_time.as_deref().unwrap_or(&now),
            event_text: event,
            event_json: &json,
        },
    );
    print!("{out}");
    ExitCode::SUCCESS
}
