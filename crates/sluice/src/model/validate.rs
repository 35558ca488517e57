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
}

impl Default for ValidationContext {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account: "000000000000".into(),
            targets: Arc::default(),
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

    let source = validate_source(def, &name, &mut errs);
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
    let target = targets::validate(
        def,
        &targets::TargetContext {
            batch_size,
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
    errs: &mut Vec<FieldError>,
) -> Option<KafkaSourceSpec> {
    let Some(source) = def.source.as_deref().filter(|s| !s.is_empty()) else {
        errs.push(FieldError::new("Source", "is required"));
        return None;
    };
    let params = def.source_parameters.clone().unwrap_or_default();
    for other in params.other.keys() {
        let msg = if OTHER_AWS_SOURCES.contains(&other.as_str()) {
            "only Kafka sources are supported (SelfManagedKafkaParameters or ManagedStreamingKafkaParameters)"
        } else {
            "unknown field"
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
        if extension_servers.is_none() {
            errs.push(FieldError::new(
                "SluiceParameters.BootstrapServers",
                "an MSK cluster ARN cannot be resolved to brokers without AWS: list the cluster's bootstrap servers here",
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
    let mut spec = validate_kafka_params(&kp, &path, kind, name, servers, errs)?;
    spec.security = crate::sources::kafka::auth::validate_security(
        &kp,
        def.sluice_parameters.as_ref(),
        msk_region.as_deref(),
        &path,
        errs,
    );
    Some(spec)
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
            Some(p) => match Filter::compile(&[p]) {
                Ok(_) => patterns.push(p),
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

fn is_msk_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "kafka"
        && parts[5].starts_with("cluster/")
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
    fn batch_size_message_names_the_range() {
        let errs = errors(&GOOD.replace("\"BatchSize\":10", "\"BatchSize\":10001"));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].message, "must be between 1 and 10000, not 10001");
    }

    #[test]
    fn msk_arn_needs_bootstrap_servers_from_the_extension() {
        let base = r#"{"Name":"m","Source":"arn:aws:kafka:us-east-1:123456789012:cluster/c/abc-1","Target":"http://x:1/",
            "SourceParameters":{"ManagedStreamingKafkaParameters":{"TopicName":"t"}}"#;
        let errs = errors(&format!("{base}}}"));
        assert_eq!(errs[0].name, "SluiceParameters.BootstrapServers");
        let spec = validate(
            &def(&format!(
                "{base},\"SluiceParameters\":{{\"BootstrapServers\":[\"b1:9092\",\"b2:9092\"]}}}}"
            )),
            &ValidationContext::default(),
        )
        .unwrap();
        assert_eq!(spec.source.bootstrap_servers, vec!["b1:9092", "b2:9092"]);
        assert!(matches!(spec.source.kind, KafkaSourceKind::Msk { .. }));
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
