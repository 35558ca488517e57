//! Pure validation of a [`PipeDefinition`] into a [`PipeSpec`]: every rule of the AWS model that
//! applies to a Kafka-sourced pipe (names, enums, ranges, limits), filters and templates compiled,
//! the target checked by its own component. All errors are collected, none short-circuits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_pattern::{MAX_FILTERS, MAX_PATTERN_CHARS};

use super::concurrency::{validate_concurrency, ConcurrencySettings};
use super::definition::{KafkaParameters, PipeDefinition};
use super::failure::{validate_failure_handling, FailureSettings};
use super::offsets::validate_commit_interval;
use super::FieldError;
use super::ValidationError;
use crate::dead_letter::DeadLetterConfig;
use crate::kafka::names::{is_host_port, is_valid_topic, TOPIC_MAX_CHARS};
use crate::targets::{self, TargetConfig};
use crate::transforms::{Filter, InputTemplate};

/// Where the pipe lives, for the ARNs we mint.
#[derive(Debug, Clone)]
pub struct ValidationContext {
    /// AWS region used in ARNs (`us-east-1` by default).
    pub region: String,
    /// Account id used in ARNs (`000000000000` by default).
    pub account: String,
    /// Sluice's `[targets]` configuration: API destinations, connections, AWS endpoints.
    pub targets: Arc<targets::TargetsConfig>,
    /// The secret references a definition may use (`[secrets]`; empty: any).
    pub secrets: Arc<crate::secrets::SecretAllowlist>,
}

impl Default for ValidationContext {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account: "000000000000".into(),
            targets: Arc::default(),
            secrets: Arc::default(),
        }
    }
}

/// A validated pipe: everything the runtime needs, already checked and compiled.
#[derive(Debug, Clone)]
pub struct PipeSpec {
    /// The pipe's name.
    pub name: String,
    /// `arn:aws:pipes:<region>:<account>:pipe/<name>`.
    pub arn: String,
    /// The definition as written.
    pub definition: PipeDefinition,
    /// The Kafka source.
    pub source: KafkaSourceSpec,
    /// The compiled filter, when `FilterCriteria` has filters.
    pub filter: Option<Arc<Filter>>,
    /// The target's validated configuration.
    pub target: TargetConfig,
    /// The compiled target input template.
    pub target_template: Option<Arc<InputTemplate>>,
    /// The validated enrichment, when the pipe has one.
    pub enrichment: Option<crate::enrichment::EnrichmentConfig>,
    /// The compiled enrichment input template.
    pub enrichment_template: Option<Arc<InputTemplate>>,
    /// Ceiling of the retry backoff.
    pub max_retry_backoff: Duration,
    /// When failing batches are given up, bisected or partly retried.
    pub failure: FailureSettings,
    /// Where given-up records go.
    pub dead_letter: Option<DeadLetterConfig>,
    /// Sub-lanes per partition and the limit of target calls in flight.
    pub concurrency: ConcurrencySettings,
    /// Least time between two offset commits of a partition (`OffsetCommitIntervalSeconds`);
    /// zero commits after every batch.
    pub commit_interval: Duration,
    /// Execution logs; `None` when the level is `OFF`.
    pub execution_log: Option<crate::execution_log::ExecutionLogConfig>,
}

/// Which kind of Kafka source, which decides the record's `eventSource` fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaSourceKind {
    /// `smk://...`: records carry `eventSource: SelfManagedKafka` and `bootstrapServers`.
    SelfManaged,
    /// An MSK cluster ARN: records carry `eventSource: aws:kafka` and `eventSourceArn`.
    Msk {
        /// The cluster ARN.
        arn: String,
    },
}

/// `TRIM_HORIZON` or `LATEST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    /// Earliest retained offset.
    TrimHorizon,
    /// The end of the partition.
    Latest,
}

/// The validated Kafka source.
#[derive(Debug, Clone)]
pub struct KafkaSourceSpec {
    /// Self-managed or MSK.
    pub kind: KafkaSourceKind,
    /// `host:port` list, the first from `Source` (self-managed) or from our extension (MSK).
    pub bootstrap_servers: Vec<String>,
    /// Topic to read.
    pub topic: String,
    /// Where a group without committed offsets starts.
    pub starting_position: StartingPosition,
    /// Maximum records per batch.
    pub batch_size: usize,
    /// How long a batch may wait to fill.
    pub batching_window: Duration,
    /// The consumer group.
    pub consumer_group_id: String,
    /// Secret references by credential kind (resolved by the auth layer).
    pub credentials: BTreeMap<String, String>,
    /// Authentication method, TLS and CA, decided from `Credentials`, `ServerRootCaCertificate`
    /// and `SluiceParameters` (see `sources::kafka::auth`).
    pub security: crate::sources::kafka::auth::KafkaSecurity,
    /// For an MSK cluster given by ARN alone: how its brokers are looked up when the pipe starts
    /// (`sources::kafka::msk`). Until then `bootstrap_servers` is empty, and for a source without
    /// a secret the method and TLS are those of the listener the lookup finds.
    pub msk_lookup: Option<crate::sources::kafka::msk::MskLookup>,
    /// `SluiceParameters.StartingPositionTimestamp` in milliseconds: where partitions without a
    /// committed offset start (overrides `starting_position`).
    pub starting_timestamp_ms: Option<i64>,
}

#[cfg(test)]
impl KafkaSourceSpec {
    /// A self-managed source of `topic` with every default, for unit tests.
    pub fn for_tests(topic: &str) -> Self {
        Self {
            kind: KafkaSourceKind::SelfManaged,
            bootstrap_servers: Vec::new(),
            topic: topic.to_string(),
            starting_position: StartingPosition::Latest,
            batch_size: 100,
            batching_window: Duration::ZERO,
            consumer_group_id: format!("sluice-{topic}"),
            credentials: BTreeMap::new(),
            security: Default::default(),
            msk_lookup: None,
            starting_timestamp_ms: None,
        }
    }
}

impl PipeSpec {
    /// The pipe with `source` as resolved when it starts (an MSK cluster's brokers looked up): a
    /// dead-letter topic on the source cluster goes to the same brokers.
    pub fn with_source(&self, source: KafkaSourceSpec) -> PipeSpec {
        let mut out = self.clone();
        if let Some(DeadLetterConfig::Kafka {
            producer,
            on_source_cluster: true,
        }) = &mut out.dead_letter
        {
            producer.bootstrap_servers = source.bootstrap_servers.clone();
        }
        out.source = source;
        out
    }
}

/// How the HTTP target receives a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpDelivery {
    /// One request per record, in order (API destination semantics; the default).
    PerRecord,
    /// One request with the whole batch as a JSON array (Lambda-style).
    Batch,
}

const NAME_MAX: usize = 64;
const DESCRIPTION_MAX: usize = 512;
const GROUP_MAX: usize = 200;
const BATCH_SIZE_MAX: i64 = 10_000;
const BATCHING_WINDOW_MAX: i64 = 300;
const MAX_TEMPLATE_CHARS: usize = 8192;
const MAX_TAGS: usize = 50;

/// Source parameter blocks AWS knows besides the Kafka ones; named in the error when given.
const OTHER_AWS_SOURCES: &[&str] = &[
    "ActiveMQBrokerParameters",
    "DynamoDBStreamParameters",
    "KinesisStreamParameters",
    "RabbitMQBrokerParameters",
    "SqsQueueParameters",
];

/// The fields of `SourceParameters` a Kafka pipe may have (for suggestions).
const SOURCE_PARAMETER_FIELDS: &[&str] = &[
    "FilterCriteria",
    "SelfManagedKafkaParameters",
    "ManagedStreamingKafkaParameters",
];

const CREDENTIAL_KINDS_SELF_MANAGED: &[&str] = &[
    "BasicAuth",
    "SaslScram512Auth",
    "SaslScram256Auth",
    "ClientCertificateTlsAuth",
];
const CREDENTIAL_KINDS_MSK: &[&str] = &["SaslScram512Auth", "ClientCertificateTlsAuth"];

/// Validate a definition. `ctx` supplies the region and account for ARNs.
pub fn validate(
    def: &PipeDefinition,
    ctx: &ValidationContext,
) -> Result<PipeSpec, ValidationError> {
    let mut errs = Vec::new();

    let name = def.name.clone().unwrap_or_default();
    check_name(&name, &mut errs);
    if let Some(d) = &def.description {
        if d.chars().count() > DESCRIPTION_MAX {
            errs.push(FieldError::new(
                "Description",
                format!("must be at most {DESCRIPTION_MAX} characters"),
            ));
        }
    }
    if let Some(s) = &def.desired_state {
        if s != "RUNNING" && s != "STOPPED" {
            errs.push(FieldError::new(
                "DesiredState",
                format!("must be RUNNING or STOPPED, not {s:?}"),
            ));
        }
    }
    if let Some(role) = &def.role_arn {
        if !is_role_arn(role) {
            errs.push(FieldError::new(
                "RoleArn",
                "must look like arn:aws:iam::<12 digits>:role/<name>",
            ));
        }
    }
    if let Some(tags) = &def.tags {
        check_tags(tags, &mut errs);
    }

    let source = validate_source(def, &name, ctx, &mut errs);
    let filter = validate_filter(def, &mut errs);

    let target_template = def
        .target_parameters
        .as_ref()
        .and_then(|p| p.input_template.as_deref())
        .and_then(|t| compile_template(t, "TargetParameters.InputTemplate", &mut errs));

    let enrichment_template = def
        .enrichment_parameters
        .as_ref()
        .and_then(|p| p.input_template.as_deref())
        .and_then(|t| compile_template(t, "EnrichmentParameters.InputTemplate", &mut errs));
    let enrichment = crate::enrichment::validate(def, &ctx.targets, &mut errs);

    let batch_size = source.as_ref().map(|s| s.batch_size).unwrap_or(1);
    let batch_size_field = format!("{}.BatchSize", kafka_block_path(def));
    let target = targets::validate(
        def,
        &targets::TargetContext {
            batch_size,
            batch_size_field: &batch_size_field,
            config: &ctx.targets,
        },
        &mut errs,
    );

    let max_retry_backoff = match def
        .sluice_parameters
        .as_ref()
        .and_then(|s| s.maximum_retry_backoff_seconds)
    {
        None => Duration::from_secs(30),
        Some(s) if (0.01..=3600.0).contains(&s) => Duration::from_secs_f64(s),
        Some(_) => {
            errs.push(FieldError::new(
                "SluiceParameters.MaximumRetryBackoffSeconds",
                "must be between 0.01 and 3600",
            ));
            Duration::from_secs(30)
        }
    };

    let (failure, dead_letter) = match &source {
        Some(s) => {
            let view = crate::dead_letter::SourceView {
                topic: &s.topic,
                bootstrap_servers: &s.bootstrap_servers,
            };
            validate_failure_handling(def, view, &ctx.targets, &mut errs)
        }
        None => Default::default(),
    };

    let concurrency = validate_concurrency(def, &mut errs);
    let commit_interval = validate_commit_interval(def, &mut errs);
    let execution_log =
        crate::execution_log::config::validate(def, &ctx.region, &ctx.targets, &mut errs);

    match (source, target, errs.is_empty()) {
        (Some(source), Some(target), true) => Ok(PipeSpec {
            arn: format!("arn:aws:pipes:{}:{}:pipe/{}", ctx.region, ctx.account, name),
            name,
            definition: def.clone(),
            source,
            filter,
            target,
            target_template,
            enrichment,
            enrichment_template,
            max_retry_backoff,
            failure,
            dead_letter,
            concurrency,
            commit_interval,
            execution_log,
        }),
        _ => {
            if errs.is_empty() {
                // Defensive: a component returned None without saying why.
                errs.push(FieldError::new("", "invalid pipe definition"));
            }
            Err(ValidationError { fields: errs })
        }
    }
}

fn check_name(name: &str, errs: &mut Vec<FieldError>) {
    if name.is_empty() {
        errs.push(FieldError::new("Name", "is required"));
    } else if name.len() > NAME_MAX {
        errs.push(FieldError::new(
            "Name",
            format!("must be at most {NAME_MAX} characters"),
        ));
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        // The pattern allows them, but SDKs normalise `pipes/.` and `pipes/..` away, so such a
        // pipe could never be described or deleted.
        || name == "."
        || name == ".."
    {
        errs.push(FieldError::new(
            "Name",
            "must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+",
        ));
    }
}

fn is_role_arn(s: &str) -> bool {
    let Some(rest) = s
        .strip_prefix("arn:aws:iam::")
        .or_else(|| s.strip_prefix("arn:aws-us-gov:iam::"))
        .or_else(|| s.strip_prefix("arn:aws-cn:iam::"))
    else {
        return false;
    };
    let (account, role) = rest.split_at(rest.find(':').unwrap_or(rest.len()));
    account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && role.starts_with(":role/")
        && role.len() > ":role/".len()
}

fn check_tags(tags: &BTreeMap<String, String>, errs: &mut Vec<FieldError>) {
    if tags.len() > MAX_TAGS {
        errs.push(FieldError::new(
            "Tags",
            format!("must have at most {MAX_TAGS} entries"),
        ));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            errs.push(FieldError::new(
                format!("Tags.{k}"),
                "tag keys must be 1-128 characters",
            ));
        }
        if v.chars().count() > 256 {
            errs.push(FieldError::new(
                format!("Tags.{k}"),
                "tag values must be at most 256 characters",
            ));
        }
    }
}

fn validate_source(
    def: &PipeDefinition,
    name: &str,
    ctx: &ValidationContext,
    errs: &mut Vec<FieldError>,
) -> Option<KafkaSourceSpec> {
    let Some(source) = def.source.as_deref().filter(|s| !s.is_empty()) else {
        errs.push(FieldError::new("Source", "is required"));
        return None;
    };
    let params = def.source_parameters.clone().unwrap_or_default();
    for other in params.other.keys() {
        let msg = if OTHER_AWS_SOURCES.contains(&other.as_str()) {
            "only Kafka sources are supported (SelfManagedKafkaParameters or ManagedStreamingKafkaParameters)".to_string()
        } else {
            super::parse::unknown_field_message(other, SOURCE_PARAMETER_FIELDS)
        };
        errs.push(FieldError::new(format!("SourceParameters.{other}"), msg));
    }
    let extension_servers = def
        .sluice_parameters
        .as_ref()
        .and_then(|s| s.bootstrap_servers.clone());

    let (kind, block_name, kp, mut servers) = if let Some(hostport) = source.strip_prefix("smk://")
    {
        if params.managed_streaming_kafka_parameters.is_some() {
            errs.push(FieldError::new(
                "SourceParameters.ManagedStreamingKafkaParameters",
                "a self-managed (smk://) source takes SelfManagedKafkaParameters",
            ));
        }
        if extension_servers.is_some() {
            errs.push(FieldError::new(
                "SluiceParameters.BootstrapServers",
                super::update::SMK_BOOTSTRAP_SERVERS,
            ));
        }
        let mut servers = Vec::new();
        for (i, hp) in hostport.split(',').enumerate() {
            if is_host_port(hp) {
                servers.push(hp.to_string());
            } else {
                errs.push(FieldError::new(
                    "Source",
                    format!("bootstrap server {} ({hp:?}) must be host:port", i + 1),
                ));
            }
        }
        (
            KafkaSourceKind::SelfManaged,
            "SelfManagedKafkaParameters",
            params.self_managed_kafka_parameters,
            servers,
        )
    } else if is_msk_arn(source) {
        if params.self_managed_kafka_parameters.is_some() {
            errs.push(FieldError::new(
                "SourceParameters.SelfManagedKafkaParameters",
                "an MSK cluster source takes ManagedStreamingKafkaParameters",
            ));
        }
        if extension_servers.is_none() && !cfg!(feature = "aws-msk") {
            errs.push(FieldError::new(
                "SluiceParameters.BootstrapServers",
                "is required for an MSK cluster ARN in this build of Sluice, which has no MSK API client to look the brokers up (build it with the `aws-msk` feature, a default one): list the cluster's bootstrap servers here",
            ));
        }
        (
            KafkaSourceKind::Msk {
                arn: source.to_string(),
            },
            "ManagedStreamingKafkaParameters",
            params.managed_streaming_kafka_parameters,
            Vec::new(),
        )
    } else {
        errs.push(FieldError::new(
            "Source",
            "must be smk://host:port (self-managed Kafka) or an MSK cluster ARN (arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>)",
        ));
        return None;
    };
    let path = format!("SourceParameters.{block_name}");
    let Some(kp) = kp else {
        errs.push(FieldError::new(
            format!("{path}.TopicName"),
            format!("is required ({path} is missing)"),
        ));
        return None;
    };
    if let Some(extra) = extension_servers {
        for hp in &extra {
            if !is_host_port(hp) {
                errs.push(FieldError::new(
                    "SluiceParameters.BootstrapServers",
                    format!("{hp:?} must be host:port"),
                ));
            }
        }
        servers.extend(extra);
    }
    let msk_region = match &kind {
        KafkaSourceKind::Msk { arn } => arn.split(':').nth(3).map(str::to_string),
        KafkaSourceKind::SelfManaged => None,
    };
    let lookup = msk_lookup(def, &kind, msk_region.as_deref(), ctx, errs);
    let mut spec = validate_kafka_params(&kp, &path, kind, name, servers, errs)?;
    spec.security = crate::sources::kafka::auth::validate_security(
        &kp,
        def.sluice_parameters.as_ref(),
        msk_region.as_deref(),
        lookup.is_some(),
        &ctx.secrets,
        &path,
        errs,
    );
    spec.msk_lookup = lookup;
    spec.starting_timestamp_ms = def
        .sluice_parameters
        .as_ref()
        .and_then(|sp| sp.starting_position_timestamp.as_ref())
        .and_then(|t| {
            match super::timestamp::starting_timestamp_ms(t, super::timestamp::now_ms()) {
                Ok(ms) => Some(ms),
                Err(problem) => {
                    errs.push(FieldError::new(super::timestamp::FIELD, problem));
                    None
                }
            }
        });
    Some(spec)
}

/// How an MSK cluster given by ARN alone (no `SluiceParameters.BootstrapServers`) is looked up;
/// `None` for any other source. `MskBrokerAccess` applies only to such a source.
fn msk_lookup(
    def: &PipeDefinition,
    kind: &KafkaSourceKind,
    region: Option<&str>,
    ctx: &ValidationContext,
    errs: &mut Vec<FieldError>,
) -> Option<crate::sources::kafka::msk::MskLookup> {
    use crate::sources::kafka::msk::{MskBrokerAccess, MskLookup};
    const FIELD: &str = "SluiceParameters.MskBrokerAccess";
    let sp = def.sluice_parameters.clone().unwrap_or_default();
    let looked_up = matches!(kind, KafkaSourceKind::Msk { .. })
        && sp.bootstrap_servers.is_none()
        && cfg!(feature = "aws-msk");
    let access = match sp.msk_broker_access.as_deref() {
        None => MskBrokerAccess::default(),
        Some(_) if !looked_up => {
            errs.push(FieldError::new(
                FIELD,
                "applies only to an MSK cluster ARN without SluiceParameters.BootstrapServers (whose brokers are looked up)",
            ));
            return None;
        }
        Some(text) => match MskBrokerAccess::parse(text) {
            Some(a) => a,
            None => {
                errs.push(FieldError::new(
                    FIELD,
                    format!("must be PRIVATE, PUBLIC or VPC_CONNECTIVITY, not {text:?}"),
                ));
                MskBrokerAccess::default()
            }
        },
    };
    let KafkaSourceKind::Msk { arn } = kind else {
        return None;
    };
    looked_up.then(|| MskLookup {
        arn: arn.clone(),
        region: region.unwrap_or_default().to_string(),
        access,
        endpoint: ctx.targets.aws.endpoint_for("kafka"),
    })
}

fn validate_kafka_params(
    kp: &KafkaParameters,
    path: &str,
    kind: KafkaSourceKind,
    pipe_name: &str,
    mut servers: Vec<String>,
    errs: &mut Vec<FieldError>,
) -> Option<KafkaSourceSpec> {
    let msk = matches!(kind, KafkaSourceKind::Msk { .. });
    let topic = kp.topic_name.clone().unwrap_or_default();
    if topic.is_empty() {
        errs.push(FieldError::new(format!("{path}.TopicName"), "is required"));
    } else if !is_valid_topic(&topic) || topic.starts_with('.') {
        // Kafka's rule, and AWS's `TopicName` pattern (`[^.]...`), which also refuses a leading
        // `.` that Kafka allows.
        errs.push(FieldError::new(
            format!("{path}.TopicName"),
            format!(
                "must be 1-{TOPIC_MAX_CHARS} characters of [a-zA-Z0-9-_.], not starting with '.'"
            ),
        ));
    }
    let starting_position = match kp.starting_position.as_deref() {
        None | Some("LATEST") => StartingPosition::Latest,
        Some("TRIM_HORIZON") => StartingPosition::TrimHorizon,
        Some(other) => {
            errs.push(FieldError::new(
                format!("{path}.StartingPosition"),
                format!("must be TRIM_HORIZON or LATEST, not {other:?}"),
            ));
            StartingPosition::Latest
        }
    };
    let batch_size = match kp.batch_size {
        None => 100,
        Some(n) if (1..=BATCH_SIZE_MAX).contains(&n) => n as usize,
        Some(n) => {
            errs.push(FieldError::new(
                format!("{path}.BatchSize"),
                format!("must be between 1 and {BATCH_SIZE_MAX}, not {n}"),
            ));
            1
        }
    };
    let window = match kp.maximum_batching_window_in_seconds {
        None => 0,
        Some(n) if (0..=BATCHING_WINDOW_MAX).contains(&n) => n as u64,
        Some(n) => {
            errs.push(FieldError::new(
                format!("{path}.MaximumBatchingWindowInSeconds"),
                format!("must be between 0 and {BATCHING_WINDOW_MAX}, not {n}"),
            ));
            0
        }
    };
    let consumer_group_id = match &kp.consumer_group_id {
        None => format!("sluice-{pipe_name}"),
        Some(g) => {
            if g.is_empty()
                || g.len() > GROUP_MAX
                || !g.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || matches!(c, '-' | '/' | '*' | ':' | '_' | '+' | '=' | '.' | '@')
                })
            {
                errs.push(FieldError::new(
                    format!("{path}.ConsumerGroupID"),
                    format!("must be 1-{GROUP_MAX} characters of [a-zA-Z0-9-/*:_+=.@]"),
                ));
            }
            g.clone()
        }
    };
    if let Some(extra) = &kp.additional_bootstrap_servers {
        if msk {
            errs.push(FieldError::new(
                format!("{path}.AdditionalBootstrapServers"),
                "is only valid for self-managed Kafka",
            ));
        } else if extra.len() > 2 {
            errs.push(FieldError::new(
                format!("{path}.AdditionalBootstrapServers"),
                "must have at most 2 entries",
            ));
        }
        for hp in extra {
            if is_host_port(hp) {
                servers.push(hp.clone());
            } else {
                errs.push(FieldError::new(
                    format!("{path}.AdditionalBootstrapServers"),
                    format!("{hp:?} must be host:port"),
                ));
            }
        }
    }
    if msk && kp.server_root_ca_certificate.is_some() {
        errs.push(FieldError::new(
            format!("{path}.ServerRootCaCertificate"),
            "is only valid for self-managed Kafka",
        ));
    }
    let credentials = kp.credentials.clone().unwrap_or_default();
    let allowed = if msk {
        CREDENTIAL_KINDS_MSK
    } else {
        CREDENTIAL_KINDS_SELF_MANAGED
    };
    if credentials.len() > 1 {
        errs.push(FieldError::new(
            format!("{path}.Credentials"),
            "must name exactly one credential kind",
        ));
    }
    for k in credentials.keys() {
        if !allowed.contains(&k.as_str()) {
            errs.push(FieldError::new(
                format!("{path}.Credentials.{k}"),
                format!(
                    "unknown credential kind; expected one of {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Some(KafkaSourceSpec {
        kind,
        bootstrap_servers: servers,
        topic,
        starting_position,
        batch_size,
        batching_window: Duration::from_secs(window),
        consumer_group_id,
        credentials,
        security: Default::default(),
        msk_lookup: None,
        starting_timestamp_ms: None,
    })
}

fn validate_filter(def: &PipeDefinition, errs: &mut Vec<FieldError>) -> Option<Arc<Filter>> {
    let criteria = def
        .source_parameters
        .as_ref()
        .and_then(|p| p.filter_criteria.as_ref())?;
    let field = "SourceParameters.FilterCriteria.Filters";
    if criteria.filters.is_empty() {
        return None;
    }
    if criteria.filters.len() > MAX_FILTERS {
        errs.push(FieldError::new(
            field,
            format!("must have at most {MAX_FILTERS} filters"),
        ));
        return None;
    }
    let mut patterns = Vec::new();
    for (i, f) in criteria.filters.iter().enumerate() {
        match f.pattern.as_deref() {
            None | Some("") => errs.push(FieldError::new(
                format!("{field}[{i}].Pattern"),
                "is required",
            )),
            Some(p) if p.chars().count() > MAX_PATTERN_CHARS => errs.push(FieldError::new(
                format!("{field}[{i}].Pattern"),
                format!("must be at most {MAX_PATTERN_CHARS} characters"),
            )),
            Some(p) => match Filter::check(p) {
                Ok(()) => patterns.push(p),
                Err(e) => errs.push(FieldError::new(format!("{field}[{i}].Pattern"), e)),
            },
        }
    }
    if patterns.len() != criteria.filters.len() {
        return None;
    }
    match Filter::compile(&patterns) {
        Ok(f) => Some(Arc::new(f)),
        Err(e) => {
            errs.push(FieldError::new(field, e));
            None
        }
    }
}

pub(crate) fn compile_template(
    text: &str,
    field: &str,
    errs: &mut Vec<FieldError>,
) -> Option<Arc<InputTemplate>> {
    if text.chars().count() > MAX_TEMPLATE_CHARS {
        errs.push(FieldError::new(
            field,
            format!("must be at most {MAX_TEMPLATE_CHARS} characters"),
        ));
        return None;
    }
    match InputTemplate::compile(text) {
        Ok(t) => Some(Arc::new(t)),
        Err(e) => {
            errs.push(FieldError::new(field, e));
            None
        }
    }
}

/// The path of the source's Kafka parameter block, as the `Source` string decides it.
fn kafka_block_path(def: &PipeDefinition) -> &'static str {
    match def.source.as_deref() {
        Some(s) if is_msk_arn(s) => "SourceParameters.ManagedStreamingKafkaParameters",
        _ => "SourceParameters.SelfManagedKafkaParameters",
    }
}

fn is_msk_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "kafka"
        && is_region(parts[3])
        && parts[5].starts_with("cluster/")
}

/// AWS's region shape (`[a-z]{2}(-gov|-iso|-isob)?-[a-z]+-[0-9]`): the region signs MSK IAM tokens
/// and names their host, so anything else (a newline the URL parser drops) must not get that far.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let letters = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    let (first, rest) = match parts.as_slice() {
        [first, rest @ ..] => (*first, rest),
        [] => return false,
    };
    let middle = match rest {
        [middle @ .., digit] if digit.len() == 1 && digit.bytes().all(|b| b.is_ascii_digit()) => {
            middle
        }
        _ => return false,
    };
    let middle = match middle {
        ["gov" | "iso" | "isob", name] | [name] => *name,
        _ => return false,
    };
    first.len() == 2 && letters(first) && letters(middle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_definition;

    fn def(json: &str) -> PipeDefinition {
        parse_definition(json, false).unwrap()
    }

    fn errors(json: &str) -> Vec<FieldError> {
        validate(&def(json), &ValidationContext::default())
            .unwrap_err()
            .fields
    }

    const GOOD: &str = r#"{"Name":"orders","Source":"smk://127.0.0.1:9092","Target":"http://127.0.0.1:8080/in",
        "SourceParameters":{"SelfManagedKafkaParameters":{"TopicName":"orders","BatchSize":10,"StartingPosition":"TRIM_HORIZON"}}}"#;

    #[test]
    fn a_good_definition_validates_with_defaults() {
        let spec = validate(&def(GOOD), &ValidationContext::default()).unwrap();
        assert_eq!(spec.arn, "arn:aws:pipes:us-east-1:000000000000:pipe/orders");
        assert_eq!(spec.source.bootstrap_servers, vec!["127.0.0.1:9092"]);
        assert_eq!(spec.source.batch_size, 10);
        assert_eq!(spec.source.batching_window, Duration::ZERO);
        assert_eq!(spec.source.consumer_group_id, "sluice-orders");
        assert_eq!(spec.source.starting_position, StartingPosition::TrimHorizon);
        assert_eq!(spec.source.kind, KafkaSourceKind::SelfManaged);
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let errs = errors(
            r#"{"Name":"bad name!","Source":"smk://h","Target":"ftp://x",
            "SourceParameters":{"SelfManagedKafkaParameters":{"TopicName":".x","BatchSize":0,
            "MaximumBatchingWindowInSeconds":301,"StartingPosition":"AT_TIMESTAMP","ConsumerGroupID":"a b"}}}"#,
        );
        let names: Vec<&str> = errs.iter().map(|e| e.name.as_str()).collect();
        for expected in [
            "Name",
            "Source",
            "SourceParameters.SelfManagedKafkaParameters.TopicName",
            "SourceParameters.SelfManagedKafkaParameters.BatchSize",
            "SourceParameters.SelfManagedKafkaParameters.MaximumBatchingWindowInSeconds",
            "SourceParameters.SelfManagedKafkaParameters.StartingPosition",
            "SourceParameters.SelfManagedKafkaParameters.ConsumerGroupID",
            "Target",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
    }

    #[test]
    fn regression_pipe_names_dot_and_dot_dot_were_accepted() {
        for name in [".", ".."] {
            let errs =
                errors(&GOOD.replace("\"Name\":\"orders\"", &format!("\"Name\":\"{name}\"")));
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert_eq!(errs[0].name, "Name");
            assert_eq!(
                errs[0].message,
                "must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+"
            );
        }
        let ok = GOOD.replace("\"Name\":\"orders\"", "\"Name\":\"...\"");
        assert!(validate(&def(&ok), &ValidationContext::default()).is_ok());
    }

    #[test]
    fn regression_bootstrap_servers_added_brokers_to_a_self_managed_source() {
        let with = GOOD.replace(
            "\"Target\":",
            "\"SluiceParameters\":{\"BootstrapServers\":[\"evil:9092\"]},\"Target\":",
        );
        let errs = errors(&with);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].name, "SluiceParameters.BootstrapServers");
        assert!(errs[0].message.contains("only to an MSK cluster source"));
    }

    #[test]
    fn a_secrets_manager_endpoint_outside_the_allowlist_is_refused() {
        let ctx = ValidationContext {
            secrets: Arc::new(crate::secrets::SecretAllowlist {
                allowed_secrets_manager_endpoints: vec!["http://127.0.0.1:4566".into()],
                ..Default::default()
            }),
            ..ValidationContext::default()
        };
        let with = |endpoint: &str| {
            GOOD.replace(
                "\"Target\"",
                &format!(
                    "\"SluiceParameters\":{{\"SecretsManagerEndpoint\":\"{endpoint}\"}},\"Target\""
                ),
            )
        };
        validate(&def(&with("http://127.0.0.1:4566")), &ctx).unwrap();
        let errs = validate(&def(&with("https://collector.example")), &ctx)
            .unwrap_err()
            .fields;
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].name, "SluiceParameters.SecretsManagerEndpoint");
        assert!(
            errs[0]
                .message
                .contains("secrets.allowed_secrets_manager_endpoints"),
            "{errs:?}"
        );
    }

    #[test]
    fn regression_secret_references_outside_the_allowlist_were_accepted() {
        let ctx = ValidationContext {
            secrets: Arc::new(crate::secrets::SecretAllowlist {
                allowed_file_dirs: vec!["/run/secrets".into()],
                ..Default::default()
            }),
            ..ValidationContext::default()
        };
        let with = |credentials: &str, ca: &str| {
            GOOD.replace(
                "\"TopicName\":\"orders\"",
                &format!("\"TopicName\":\"orders\",\"Credentials\":{{\"SaslScram512Auth\":\"{credentials}\"}},\"ServerRootCaCertificate\":\"{ca}\""),
            )
        };
        let errs = validate(
            &def(&with("file:///etc/shadow", "file:///etc/ssl/ca.pem")),
            &ctx,
        )
        .unwrap_err()
        .fields;
        let names: Vec<&str> = errs.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "SourceParameters.SelfManagedKafkaParameters.Credentials.SaslScram512Auth",
                "SourceParameters.SelfManagedKafkaParameters.ServerRootCaCertificate"
            ],
            "{errs:?}"
        );
        assert!(
            errs[0].message.contains("secrets.allowed_file_dirs"),
            "{errs:?}"
        );
        let ok = with(
            "file:///run/secrets/scram.json",
            "file:///run/secrets/ca.pem",
        );
        assert!(validate(&def(&ok), &ctx).is_ok());
    }

    #[test]
    fn batch_size_message_names_the_range() {
        let errs = errors(&GOOD.replace("\"BatchSize\":10", "\"BatchSize\":10001"));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].message, "must be between 1 and 10000, not 10001");
    }

    /// Found by the `msk_iam_token` fuzz target: a region of "\n" passed validation, and the
    /// token was then signed for region "\n" but named the host `kafka..amazonaws.com`.
    #[test]
    fn fuzz_msk_iam_token_newline_region_is_refused() {
        let source = |region: &str| {
            format!(
                r#"{{"Name":"m","Source":"arn:aws:kafka:{region}:123456789012:cluster/c/abc-1","Target":"http://x:1/",
                "SourceParameters":{{"ManagedStreamingKafkaParameters":{{"TopicName":"t"}}}},
                "SluiceParameters":{{"BootstrapServers":["b-1.c.kafka.local:9098"]}}}}"#
            )
        };
        for region in [
            "\\n",
            "",
            "US-EAST-1",
            "us-east-",
            "us east 1",
            "us-east-1a",
        ] {
            let errs = errors(&source(region));
            assert!(
                errs.iter().any(|e| e.name == "Source"),
                "{region:?}: {errs:?}"
            );
        }
        for region in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-4",
        ] {
            assert!(
                validate(&def(&source(region)), &ValidationContext::default()).is_ok(),
                "{region}"
            );
        }
    }

    const MSK: &str = r#"{"Name":"m","Source":"arn:aws:kafka:eu-west-1:123456789012:cluster/c/abc-1","Target":"http://x:1/",
            "SourceParameters":{"ManagedStreamingKafkaParameters":{"TopicName":"t"}}"#;

    fn msk(sluice: &str) -> String {
        format!("{MSK},\"SluiceParameters\":{sluice}}}")
    }

    #[test]
    fn an_msk_arn_alone_is_looked_up_and_explicit_servers_skip_the_lookup() {
        let alone = validate(&def(&format!("{MSK}}}")), &ValidationContext::default());
        if cfg!(feature = "aws-msk") {
            let spec = alone.unwrap();
            let lookup = spec.source.msk_lookup.unwrap();
            assert_eq!(lookup.region, "eu-west-1");
            assert_eq!(
                lookup.access,
                crate::sources::kafka::msk::MskBrokerAccess::Private
            );
            assert!(spec.source.bootstrap_servers.is_empty());
        } else {
            let errs = alone.unwrap_err().fields;
            assert_eq!(errs[0].name, "SluiceParameters.BootstrapServers");
            assert!(errs[0].message.contains("`aws-msk` feature"), "{errs:?}");
        }
        let spec = validate(
            &def(&msk(r#"{"BootstrapServers":["b1:9092","b2:9092"]}"#)),
            &ValidationContext::default(),
        )
        .unwrap();
        assert_eq!(spec.source.bootstrap_servers, vec!["b1:9092", "b2:9092"]);
        assert!(spec.source.msk_lookup.is_none());
        assert!(matches!(spec.source.kind, KafkaSourceKind::Msk { .. }));
    }

    #[test]
    #[cfg(feature = "aws-msk")]
    fn broker_access_and_transport_settings_fit_only_their_kind_of_msk_source() {
        let ctx = ValidationContext::default();
        let public = validate(&def(&msk(r#"{"MskBrokerAccess":"PUBLIC"}"#)), &ctx).unwrap();
        assert_eq!(
            public.source.msk_lookup.unwrap().access,
            crate::sources::kafka::msk::MskBrokerAccess::Public
        );
        let e = errors(&msk(r#"{"MskBrokerAccess":"INTERNET"}"#));
        assert_eq!(e[0].name, "SluiceParameters.MskBrokerAccess");
        assert!(e[0].message.contains("PRIVATE, PUBLIC or VPC_CONNECTIVITY"));
        let e = errors(&msk(
            r#"{"MskBrokerAccess":"PUBLIC","BootstrapServers":["b:1"]}"#,
        ));
        assert_eq!(e[0].name, "SluiceParameters.MskBrokerAccess");
        let e = errors(&msk(r#"{"KafkaTls":false,"KafkaAuthentication":"NONE"}"#));
        let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "SluiceParameters.KafkaTls",
                "SluiceParameters.KafkaAuthentication"
            ]
        );
        assert!(e[0]
            .message
            .contains("only with SluiceParameters.BootstrapServers"));
    }

    #[test]
    fn a_starting_timestamp_is_milliseconds_and_never_in_the_future() {
        let ctx = ValidationContext::default();
        let sp = |t: &str| {
            GOOD.replace(
                "\"SourceParameters\"",
                &format!("\"SluiceParameters\":{{\"StartingPositionTimestamp\":{t}}},\"SourceParameters\""),
            )
        };
        let spec = validate(&def(&sp("1714564800")), &ctx).unwrap();
        assert_eq!(spec.source.starting_timestamp_ms, Some(1_714_564_800_000));
        let spec = validate(&def(&sp("\"2024-05-01T12:00:00.5Z\"")), &ctx).unwrap();
        assert_eq!(spec.source.starting_timestamp_ms, Some(1_714_564_800_500));
        let e = errors(&sp("\"2999-01-01T00:00:00Z\""));
        assert_eq!(e[0].name, "SluiceParameters.StartingPositionTimestamp");
        assert!(e[0].message.starts_with("is in the future"), "{e:?}");
        assert!(validate(&def(GOOD), &ctx)
            .unwrap()
            .source
            .starting_timestamp_ms
            .is_none());
    }

    #[test]
    fn a_batch_size_over_the_target_limit_names_the_kafka_block() {
        let errs = errors(
            &GOOD
                .replace(
                    "\"http://127.0.0.1:8080/in\"",
                    "\"arn:aws:sqs:us-east-1:123456789012:q\"",
                )
                .replace("\"BatchSize\":10", "\"BatchSize\":11"),
        );
        assert_eq!(
            errs[0].name,
            "SourceParameters.SelfManagedKafkaParameters.BatchSize"
        );
        assert!(
            errs[0].message.contains("at most 10"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn a_bad_filter_is_named_once_by_its_index() {
        let errs = errors(&GOOD.replace(
            "\"SelfManagedKafkaParameters\"",
            r#""FilterCriteria":{"Filters":[{"Pattern":"{\"a\":[1]}"},{"Pattern":"{\"a\":5}"}]},"SelfManagedKafkaParameters""#,
        ));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            errs[0].name,
            "SourceParameters.FilterCriteria.Filters[1].Pattern"
        );
        assert!(!errs[0].message.contains("Filter "), "{}", errs[0].message);
    }

    #[test]
    fn other_source_kinds_are_rejected_by_name() {
        let errs = errors(&GOOD.replace(
            "\"SelfManagedKafkaParameters\"",
            "\"SqsQueueParameters\":{},\"SelfManagedKafkaParameters\"",
        ));
        assert_eq!(errs[0].name, "SourceParameters.SqsQueueParameters");
    }

    #[test]
    fn additional_bootstrap_servers_are_appended_and_limited() {
        let errs = errors(&GOOD.replace(
            "\"TopicName\"",
            "\"AdditionalBootstrapServers\":[\"a:1\",\"b:2\",\"c:3\"],\"TopicName\"",
        ));
        assert_eq!(
            errs[0].name,
            "SourceParameters.SelfManagedKafkaParameters.AdditionalBootstrapServers"
        );
    }

    #[test]
    fn credentials_of_unknown_kind_are_rejected() {
        let errs = errors(&GOOD.replace(
            "\"TopicName\"",
            "\"Credentials\":{\"Kerberos\":\"x\"},\"TopicName\"",
        ));
        assert_eq!(
            errs[0].name,
            "SourceParameters.SelfManagedKafkaParameters.Credentials.Kerberos"
        );
    }
}
