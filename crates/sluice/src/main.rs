//! The `sluice` command line.

use std::io::IsTerminal as _;
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
use sluice::transforms::record_json::{self, RecordJson};
use sluice::transforms::Filter;

/// Small allocations per record dominate; glibc's malloc spent a quarter of a pipe's CPU on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h` of v2, the one built), which
/// libmimalloc-sys does not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long memory freed stays committed before mimalloc gives it back to the OS. Its default,
/// 10 ms, is shorter than the gap between two batches of a lane, so each batch's large buffers
/// (the record JSON, the request) were given back and faulted in again: the decommits' TLB
/// shootdowns to the other cores and the page faults took about 6% of a pipe's CPU at BatchSize
/// 1000 (issue 21). An idle pipe still returns its memory within a second or so.
const PURGE_DELAY_MS: std::ffi::c_long = 1000;

/// Set [`PURGE_DELAY_MS`], unless `MIMALLOC_PURGE_DELAY` in the environment chose already.
#[allow(unsafe_code)]
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mimalloc's options may be set at any time from any thread.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
}

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
        /// AWS endpoints, API destinations, connections; `[source]`; and
        /// `missing_topic_grace_seconds`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Kafka bootstrap servers (host:port[,host:port]) in place of the pipe file's: the
        /// address of an `smk://` Source, or `SluiceParameters.BootstrapServers` of an MSK source.
        #[arg(long, env = "SLUICE_BOOTSTRAP_SERVERS")]
        bootstrap_servers: Option<String>,
        /// Join the consumer group as a static member (`group.instance.id`: this id and the
        /// pipe's name), so a restart within the session timeout gets its partitions back without
        /// a rebalance. Without it, a dynamic member.
        #[arg(long)]
        instance_id: Option<String>,
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
        /// The event (JSON). A record as a target receives it (`key`/`value` base64) is decoded
        /// first, as the pipe does before filtering; anything else is matched as given.
        #[arg(long)]
        event: String,
    },
    /// Render an input template for an event.
    TestInputTemplate {
        /// The template text.
        #[arg(long)]
        template: String,
        /// The event (JSON) the template's paths read. A record as a target receives it is
        /// decoded first, as the pipe does before applying templates.
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
    /// Directory of the embedded pipe store (one instance).
    #[arg(long, default_value = "sluice-data")]
    data: PathBuf,
    /// PostgreSQL database that several instances share (`postgres://USER@HOST[:PORT]/DB`,
    /// without a password: give it in the config's `[store] password`). Replaces `[store] url`.
    /// Without either: the embedded store under --data.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// This instance's id in a cluster: labels its metrics, logs and reports. Default: the host
    /// name and the API port (`host:9800`).
    #[arg(long)]
    instance_id: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Directory of pipe files (JSON/YAML) reconciled with the store at start.
    #[arg(long)]
    pipes_dir: Option<PathBuf>,
    /// Configuration file (TOML, or JSON for .json): region, account, access keys, timeouts.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Serve the API over HTTPS with this PEM certificate chain (with --tls-key). SIGHUP
    /// reloads both files; a file that fails to load keeps the certificate in use.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
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
/// configuration file when one is given; and the runtime options the file sets (grace period
/// for a missing source topic, MSK lookup interval). A bad file prints why and gives exit code 2.
fn context_with_config(
    arn: &ArnArgs,
    config: Option<&std::path::Path>,
) -> Result<(ValidationContext, RuntimeOptions), ExitCode> {
    let mut ctx = arn.context();
    let mut options = RuntimeOptions::default();
    if let Some(path) = config {
        match sluice::control::config::ServeConfig::load(path) {
            Ok(c) => {
                options = c.runtime_options();
                ctx.targets = Arc::new(c.targets);
                ctx.secrets = Arc::new(c.secrets);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok((ctx, options))
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            pipe_file,
            metrics_addr,
            log_format,
            arn,
            shutdown_timeout_secs,
            config,
            bootstrap_servers,
            instance_id,
        } => {
            let instance = match instance_id.as_deref().map(checked_instance_id).transpose() {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let tracing = match start_telemetry(log_format, config.as_deref()) {
                Ok(t) => t,
                Err(code) => return code,
            };
            let (ctx, file_options) = match context_with_config(&arn, config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let options = RuntimeOptions {
                shutdown_timeout: std::time::Duration::from_secs(shutdown_timeout_secs),
                ..file_options
            };
            let spec = match load(&pipe_file, &ctx, bootstrap_servers.as_deref()) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let options = RuntimeOptions {
                group_instance_id: instance
                    .map(|i| sluice::control::group_instance_id(&i, &spec.name)),
                ..options
            };
            let code = block_on(run(spec, metrics_addr, options));
            // Outside the runtime: the exporter's client blocks.
            if let Some(t) = tracing {
                t.shutdown();
            }
            code
        }
        // Logging starts once the instance id is known (it labels every line).
        Command::Serve(args) => {
            let mut tracing = None;
            let code = block_on(serve(args, &mut tracing));
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
            match load(&pipe_file, &ctx, None) {
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
    telemetry::init_logging(format, None, endpoint.as_deref()).map_err(|e| {
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
        // Said once, on stderr (not also as a log line: both go to the same terminal).
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Load and validate (with `bootstrap` in place of the file's bootstrap servers, when given); on
/// failure print the field errors and give the exit code (2).
fn load(
    path: &std::path::Path,
    ctx: &ValidationContext,
    bootstrap: Option<&str>,
) -> Result<model::PipeSpec, ExitCode> {
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
    let check = |d: &model::PipeDefinition| match bootstrap {
        Some(servers) => model::validate(&d.with_bootstrap_servers(servers), ctx),
        None => model::validate(d, ctx),
    };
    match model::load_and_check(path, check) {
        Ok(spec) => Ok(spec),
        Err(model::LoadError::Invalid(e)) => Err(invalid(&e)),
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(2))
        }
    }
}

async fn run(
    spec: model::PipeSpec,
    metrics_addr: Option<SocketAddr>,
    options: RuntimeOptions,
) -> anyhow::Result<ExitCode> {
    let shutdown = CancellationToken::new();
    let metrics = Arc::new(Metrics::new());
    if let Some(addr) = metrics_addr {
        let limits = sluice::api::limits::ListenerLimits::default();
        telemetry::serve_metrics(addr, metrics.clone(), limits, shutdown.clone())
            .await
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
    }
    tokio::spawn(wait_for_signal(shutdown.clone()));
    let options = RuntimeOptions {
        client_id: format!("sluice-{}", spec.name),
        ..options
    };
    let (status, updates) = tokio::sync::watch::channel(sluice::runtime::PipeStatus::Starting);
    tokio::spawn(show_state(spec.name.clone(), updates, metrics.clone()));
    match run_pipe(spec, metrics, options, shutdown, status).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // The runtime logged why ("pipe failed"); saying it again would repeat it.
        Err(sluice::runtime::RuntimeError::Failed(_)) => Ok(ExitCode::FAILURE),
        Err(e) => Err(e.into()),
    }
}

/// `sluice_pipe_state` of a pipe run in the foreground: the states `sluice serve` would show
/// (STARTING, RUNNING, START_FAILED, STOPPED), from what the runtime reports.
async fn show_state(
    pipe: String,
    mut updates: tokio::sync::watch::Receiver<sluice::runtime::PipeStatus>,
    metrics: Arc<Metrics>,
) {
    use sluice::control::state::phase_of;
    use sluice::store::{Change, CurrentState, Phase};
    let mut phase = Phase::starting(false);
    metrics.set_pipe_state(&pipe, CurrentState::Starting.as_str());
    while updates.changed().await.is_ok() {
        let status = updates.borrow_and_update().clone();
        let Some(next) = phase_of(&status, &phase) else {
            continue;
        };
        phase = next;
        let state = match &phase {
            Phase::Starting { .. } => Change::Start.transitional(),
            Phase::Running => CurrentState::Running,
            Phase::Failed {
                after_running: false,
                ..
            } => Change::Start.failed(),
            Phase::Failed { .. } | Phase::Stopped => CurrentState::Stopped,
        };
        metrics.set_pipe_state(&pipe, state.as_str());
    }
}

const DEV_MODE_WARNING: &str = "\
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! WARNING: --dev-accept-any-credentials: request signatures are NOT checked. !!
!! Anyone who can reach the API can create, change and delete pipes.          !!
!! Never use this outside local development.                                  !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!";

/// `tracing` receives the span exporter, for the caller to shut down outside the runtime.
async fn serve(
    args: ServeArgs,
    tracing: &mut Option<sluice::traces::Tracing>,
) -> anyhow::Result<ExitCode> {
    use sluice::api::{self, sigv4::Verifier, ApiState, Auth};
    use sluice::console::{self, ConsoleState};
    use sluice::control::{config::ServeConfig, files, ClusterOptions, PipeManager};
    use std::time::Duration;

    let mut config = match &args.config {
        Some(path) => ServeConfig::load(path)?,
        None => ServeConfig::default(),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let bound = listener.local_addr()?;
    let instance_id = instance_id(args.instance_id.as_deref(), bound.port())?;
    let endpoint = config.telemetry.otlp_endpoint.as_deref();
    *tracing = match telemetry::init_logging(args.log_format, Some(&instance_id), endpoint) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
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
        Auth::SigV4(
            Verifier::new(keys, Duration::from_secs(config.max_clock_skew_seconds))
                .with_region(&config.region),
        )
    };
    let limits = config.listener.validate().map_err(anyhow::Error::msg)?;
    api::listener::ensure_open_files(limits.max_connections);
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let cert = Arc::new(api::tls::ReloadableCert::load(cert, key)?);
            api::tls::reload_on_sighup(cert.clone())?;
            Some(cert.acceptor()?)
        }
        _ => None,
    };
    if let Some(url) = &args.store {
        config.store.url = Some(url.clone());
    }
    let store = open_store(&config, &args.data).await?;

    let shutdown = CancellationToken::new();
    let metrics = Arc::new(Metrics::for_instance(&instance_id));
    if let Some(addr) = args.metrics_addr {
        telemetry::serve_metrics(addr, metrics.clone(), limits, shutdown.clone())
            .await
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
    }
    let shutdown_timeout = Duration::from_secs(config.shutdown_timeout_seconds);
    let options = RuntimeOptions {
        shutdown_timeout,
        ..config.runtime_options()
    };
    let ctx = ValidationContext {
        region: config.region.clone(),
        account: config.account.clone(),
        targets: Arc::new(config.targets.clone()),
        secrets: Arc::new(config.secrets.clone()),
    };
    let cluster = ClusterOptions {
        instance_id,
        max_pipes: config.max_pipes,
        static_membership: static_membership(&config, &args),
        ..ClusterOptions::default()
    };
    let manager = PipeManager::open(store, ctx, metrics.clone(), options, cluster).await?;
    tracing::info!(pipes = manager.list().await?.len(), "pipes loaded");
    if let Some(dir) = &args.pipes_dir {
        match files::reconcile(dir, &manager).await {
            Ok(done) => tracing::info!(created = ?done.created, updated = ?done.updated,
                deleted = ?done.deleted, dir = %dir.display(), "pipe files applied"),
            Err(e) => {
                eprintln!("error: {e}");
                manager.shutdown(shutdown_timeout).await;
                return Ok(ExitCode::from(2));
            }
        }
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%bound, "api listening on {scheme}://{bound}");
    tokio::spawn(wait_for_signal(shutdown.clone()));
    let verifier = match &auth {
        Auth::SigV4(v) => Some(v.clone()),
        Auth::AcceptAny => None,
    };
    // Over HTTPS the session cookie is Secure.
    let secure = tls.is_some();
    let console = ConsoleState::start(manager.clone(), metrics, verifier, secure, shutdown.clone());
    tracing::info!("console on {scheme}://{bound}/console/");
    let state = Arc::new(ApiState {
        manager: manager.clone(),
        auth,
        limits,
        tls: tls.is_some(),
        console: Some(console::router(console)),
    });
    api::serve(listener, state, tls, shutdown.clone()).await?;
    tracing::info!("stopping pipes");
    manager
        .shutdown(shutdown_timeout + Duration::from_secs(5))
        .await;
    Ok(ExitCode::SUCCESS)
}

/// Static membership needs an instance id that survives a restart: one given, or the default on
/// a fixed port. On a port the system picks, the id changes at every start, and the member a
/// crashed instance leaves behind only holds its partitions until its session expires.
fn static_membership(config: &sluice::control::config::ServeConfig, args: &ServeArgs) -> bool {
    let stable = args.instance_id.is_some() || args.listen.port() != 0;
    if config.static_membership && !stable {
        tracing::info!("dynamic group membership: the instance id holds a port the system chose (give --instance-id or a fixed port for static membership)");
    }
    config.static_membership && stable
}

/// `--instance-id`, or the host name and the API's port.
fn instance_id(given: Option<&str>, port: u16) -> anyhow::Result<String> {
    let id = match given {
        Some(id) => id.to_string(),
        None => format!("{}:{port}", gethostname::gethostname().to_string_lossy()),
    };
    checked_instance_id(&id)
}

/// An instance id as given: 1-200 characters, no spaces or control characters.
fn checked_instance_id(id: &str) -> anyhow::Result<String> {
    if id.is_empty() || id.len() > 200 || id.chars().any(|c| c.is_control() || c == ' ') {
        anyhow::bail!("--instance-id must be 1-200 characters without spaces, not {id:?}");
    }
    Ok(id.to_string())
}

/// PostgreSQL when `[store] url` (or `--store`) is given, else redb under `data`.
async fn open_store(
    config: &sluice::control::config::ServeConfig,
    data: &std::path::Path,
) -> anyhow::Result<Arc<dyn sluice::store::PipeStore>> {
    use sluice::store::{PostgresStore, RedbStore};
    match config.store.validate().map_err(anyhow::Error::msg)? {
        Some(settings) => {
            let store = PostgresStore::connect(&settings)
                .await
                .with_context(|| format!("cannot open the pipe store {}", settings.url))?;
            tracing::info!(url = %settings.url, "pipe store open (PostgreSQL)");
            Ok(Arc::new(store))
        }
        None => {
            let store = RedbStore::open(data)?;
            tracing::info!(path = %store.path().display(), "pipe store open");
            Ok(Arc::new(store))
        }
    }
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
        Err(e) => return usage_error(&format!("--event-pattern is invalid: {e}")),
    };
    let record = match read_event(event) {
        Ok((_, record)) => record,
        Err(code) => return code,
    };
    let result = match record {
        Some((json, rec)) => match Filter::compile(&[pattern]) {
            Ok(filter) => filter.matches(&json, &rec),
            Err(e) => return usage_error(&format!("--event-pattern is invalid: {e}")),
        },
        None => match matcher.matches_json(event.as_bytes()) {
            Ok(r) => r,
            Err(e) => return usage_error(&format!("--event is not valid JSON: {e}")),
        },
    };
    println!("{}", serde_json::json!({ "Result": result }));
    ExitCode::SUCCESS
}

/// Print a usage error (bad pattern, template or event) and give exit code 2.
fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// A record as a target receives it, read back into the pipe's view of it.
type Delivered = (RecordJson, sluice::record::SourceRecord);

/// Parse `--event`, worded the same for both test commands; a record as a target receives it is
/// also read back (and said so on stderr), since the pipe filters and templates it decoded.
fn read_event(event: &str) -> Result<(serde_json::Value, Option<Delivered>), ExitCode> {
    let json: serde_json::Value = serde_json::from_str(event)
        .map_err(|e| usage_error(&format!("--event is not valid JSON: {e}")))?;
    match record_json::from_wire(&json) {
        Ok(Some(record)) => {
            eprintln!(
                "note: --event is a record as a target receives it; key and value are decoded \
                 from base64 (and parsed when they are JSON), as the pipe does"
            );
            Ok((json, Some(record)))
        }
        Ok(None) => Ok((json, None)),
        Err(why) => Err(usage_error(&format!(
            "--event looks like a record as a target receives it, but {why}"
        ))),
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
        Err(e) => return usage_error(&format!("--template is invalid: {e}")),
    };
    let json = match read_event(event) {
        Ok((_, Some((record_json, rec)))) => record_json.decoded(&rec),
        Ok((json, None)) => json,
        Err(code) => return code,
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
    // The output exactly; on a terminal a line break after it, so the prompt starts on a line
    // of its own.
    if std::io::stdout().is_terminal() && !out.ends_with('\n') {
        println!("{out}");
    } else {
        print!("{out}");
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option number is mimalloc's purge delay (its default is 10 ms, its neighbours' 1 and 0)
    /// and takes the value set.
    #[test]
    #[allow(unsafe_code)]
    fn the_allocator_keeps_freed_memory_for_a_second() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // The environment's choice applies, not ours.
        }
        // SAFETY: reading an option.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(get(), 10);
        tune_allocator();
        assert_eq!(get(), PURGE_DELAY_MS);
    }
}
