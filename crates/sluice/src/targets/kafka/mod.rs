//! The Kafka target (our extension): `Target: kafka://host:port[,host:port...]/topic` or
//! `Target: kafka://<cluster>/topic` produces each event of a batch to the topic, in order, with an
//! idempotent producer and `acks=all`; the batch succeeds only when every record was acknowledged.
//!
//! What is produced:
//! - value: the source record's value bytes as they were (a mirror) when the pipe has neither a
//!   target `InputTemplate` nor an enrichment; otherwise the event (the template's output, or the
//!   enrichment's item as JSON);
//! - key and headers: the source record's, unless `TargetParameters.KafkaTargetParameters` sets
//!   them (`Key`, `Headers`: literals or JSON paths into the record). After an enrichment there is
//!   no source record: only what the parameters set.
//!
//! Connection security. The rule: **a target whose address part (between `kafka://` and the `/`)
//! has no `:` names a cluster declared in Sluice's config file**, and connects with that cluster's
//! bootstrap servers, TLS and SASL; a `host:port[,host:port]` address connects in plaintext without
//! authentication, as before. Secrets stay out of pipe definitions:
//!
//! ```toml
//! [[targets.kafka_clusters]]
//! name = "events"                                   # Target: kafka://events/orders-out
//! bootstrap_servers = ["b-1.events.example:9096", "b-2.events.example:9096"]
//! tls = { ca_certificate = "file:///etc/sluice/events-ca.pem" }
//! #     client_certificate = "file:///...", client_key = "file:///...", client_key_password = "env:..."
//! #     (mTLS); or `tls = true` (system trust store); or `tls = false` (SASL over plaintext)
//! sasl = { mechanism = "SCRAM-SHA-512", username = "sluice", password = "env:EVENTS_KAFKA_PASSWORD" }
//! ```
//!
//! - `tls` absent is on when `sasl` is given and off otherwise; a table means TLS on. TLS always
//!   verifies the brokers' certificates and host names (against `ca_certificate` or OpenSSL's
//!   default trust store).
//! - `sasl.mechanism` is `SCRAM-SHA-256`, `SCRAM-SHA-512` or `PLAIN`; `password` is a secret
//!   reference (`env:NAME`, `file:///path`, Secrets Manager ARN) to the password text (trailing
//!   line breaks ignored) or to `{"username","password"}` as AWS keeps SCRAM users.
//! - A `host:port` target naming a declared cluster's bootstrap server is a validation error (it
//!   would connect in plaintext to a secured listener): write `kafka://<cluster>/topic`.
//!
//! Cluster settings are checked when a pipe naming the cluster is validated ([`cluster`]: errors
//! name the config field, `targets.kafka_clusters.<name>.sasl.mechanism`, and never a secret).
//! When the pipe starts ([`producer`]), the secrets are fetched and turned into librdkafka
//! settings with the neutral [`crate::kafka`] module (the source's TLS and key handling); a
//! cluster with TLS or SASL is then connected to at once: a refused TLS handshake or refused
//! credentials fail the pipe with the reason (as the source does), an unreachable cluster does not
//! (the start waits for it at most 10 s, then deliveries retry). A refusal seen later makes failed
//! deliveries ([`deliver`]) errors only the user can fix, naming it (the batch is retried, as
//! every failed batch).
//!
//! This file is the target's validation: the `Target` string (servers or a cluster, and the
//! topic, as Kafka accepts it) and `KafkaTargetParameters`.

pub mod cluster;
pub mod deliver;
pub mod producer;

use std::collections::BTreeMap;

use serde::Deserialize;

use super::config::KafkaClusterConfig;
use super::{check_param, is_dynamic, TargetConfig, TargetContext, TargetKind};
use crate::kafka::names::TOPIC_RULE;
use crate::kafka::{is_host_port, is_valid_topic};
use crate::model::{FieldError, PipeDefinition};
pub use cluster::{ClientCertificateRefs, ClusterSasl, ClusterSecurity, ClusterTls};
pub use deliver::KafkaTarget;

/// Registered in [`super::kinds`].
pub const KIND: TargetKind = TargetKind {
    name: "kafka",
    accepts: |t| t.starts_with("kafka://"),
    validate,
};

/// `TargetParameters.KafkaTargetParameters`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct KafkaTargetParameters {
    /// The record key: a literal or a JSON path. Default: the source record's key.
    #[serde(default)]
    pub key: Option<String>,
    /// Headers to set (added to, or replacing, the source record's): literals or JSON paths.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A validated Kafka target.
#[derive(Debug, Clone)]
pub struct KafkaTargetConfig {
    /// `host:port` list.
    pub bootstrap_servers: Vec<String>,
    /// The topic produced to.
    pub topic: String,
    /// Key and header overrides.
    pub params: KafkaTargetParameters,
    /// Produce the source value unchanged (no template, no enrichment).
    pub mirror_value: bool,
    /// The declared cluster the target names (`kafka://<name>/topic`); `None`: plaintext.
    pub cluster: Option<ClusterSecurity>,
    /// Produce the source record's timestamp too (dead letters keep the record as it was).
    pub mirror_timestamp: bool,
}

impl KafkaTargetConfig {
    /// A producer that writes source records as they were (key, value, headers, timestamp) to
    /// `topic`: on the declared `cluster`, or (`None`) on `source_servers`. Errors name `field`.
    pub fn mirror(
        field: &str,
        cluster: Option<&str>,
        source_servers: &[String],
        topic: &str,
        clusters: &[KafkaClusterConfig],
        errs: &mut Vec<FieldError>,
    ) -> Option<Self> {
        let before = errs.len();
        let (bootstrap_servers, cluster) = match cluster {
            Some(name) => cluster::named(field, name, clusters, errs),
            None => (source_servers.to_vec(), None),
        };
        (errs.len() == before).then(|| Self {
            bootstrap_servers,
            topic: topic.to_string(),
            params: KafkaTargetParameters::default(),
            mirror_value: true,
            cluster,
            mirror_timestamp: true,
        })
    }
}

fn validate(
    def: &PipeDefinition,
    ctx: &TargetContext<'_>,
    errs: &mut Vec<FieldError>,
) -> Option<TargetConfig> {
    let before = errs.len();
    let target = def.target.as_deref().unwrap_or_default();
    let rest = target.strip_prefix("kafka://").unwrap_or_default();
    let (address, topic) = rest.split_once('/').unwrap_or((rest, ""));
    let (servers, cluster) = servers_of(address, topic, &ctx.config.kafka_clusters, errs);
    if !is_valid_topic(topic) {
        errs.push(FieldError::new(
            "Target",
            format!("the topic (after the last /) must be {TOPIC_RULE}"),
        ));
    }
    let params = target_parameters(def, errs);
    let mirror_value = def
        .target_parameters
        .as_ref()
        .is_none_or(|tp| tp.input_template.is_none())
        && def.enrichment.as_deref().is_none_or(str::is_empty);
    (errs.len() == before).then(|| {
        TargetConfig::Kafka(KafkaTargetConfig {
            bootstrap_servers: servers,
            topic: topic.to_string(),
            params,
            mirror_value,
            cluster,
            mirror_timestamp: false,
        })
    })
}

/// The bootstrap servers of a target's address part (between `kafka://` and the `/`): a declared
/// cluster's, with its security, when the address has no `:`; else the `host:port` list given.
fn servers_of(
    address: &str,
    topic: &str,
    clusters: &[KafkaClusterConfig],
    errs: &mut Vec<FieldError>,
) -> (Vec<String>, Option<ClusterSecurity>) {
    if !address.is_empty() && !address.contains(':') && !address.contains(',') {
        return cluster::named("Target", address, clusters, errs);
    }
    let servers: Vec<String> = address
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if servers.is_empty() || !servers.iter().all(|s| is_host_port(s)) {
        errs.push(FieldError::new(
            "Target",
            "must be kafka://host:port[,host:port...]/topic or kafka://<cluster>/topic",
        ));
    }
    cluster::check_not_declared(&servers, topic, clusters, errs);
    (servers, None)
}

/// `TargetParameters` of a Kafka target: `KafkaTargetParameters` only, its JSON paths parsed.
fn target_parameters(def: &PipeDefinition, errs: &mut Vec<FieldError>) -> KafkaTargetParameters {
    let tp = def.target_parameters.clone().unwrap_or_default();
    if tp.http_parameters.is_some() {
        errs.push(FieldError::new(
            "TargetParameters.HttpParameters",
            "does not apply to a Kafka target",
        ));
    }
    let mut params = KafkaTargetParameters::default();
    for (k, v) in &tp.other {
        if k != "KafkaTargetParameters" {
            errs.push(FieldError::new(
                format!("TargetParameters.{k}"),
                "does not apply to a Kafka target",
            ));
            continue;
        }
        params = crate::model::parse::block(v, "TargetParameters.KafkaTargetParameters", errs);
    }
    if let Some(k) = &params.key {
        check_param("TargetParameters.KafkaTargetParameters.Key", k, errs);
    }
    for (name, v) in &params.headers {
        check_param(
            &format!("TargetParameters.KafkaTargetParameters.Headers.{name}"),
            v,
            errs,
        );
    }
    params
}

impl KafkaTargetConfig {
    /// Whether a key or header is a JSON path.
    pub fn needs_record(&self) -> bool {
        self.params.key.as_deref().is_some_and(is_dynamic)
            || self.params.headers.values().any(|v| is_dynamic(v))
    }

    /// Who the target talks to, for messages.
    fn service(&self) -> String {
        match &self.cluster {
            Some(c) => format!("Kafka cluster {:?}", c.name),
            None => format!("Kafka {}", self.bootstrap_servers.join(",")),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{parse_definition, validate as validate_pipe, ValidationContext};
    use crate::targets::TargetsConfig;

    /// Validate a pipe with `target` against the `[targets]` section `config`.
    pub(super) fn check(target: &str, config: &str) -> Result<KafkaTargetConfig, Vec<FieldError>> {
        let text = format!(
            r#"{{"Name":"p","Source":"smk://h:9092","Target":"{target}",
               "SourceParameters":{{"SelfManagedKafkaParameters":{{"TopicName":"t"}}}}}}"#
        );
        let def = parse_definition(&text, false).unwrap();
        let ctx = ValidationContext {
            targets: Arc::new(toml::from_str::<TargetsConfig>(config).unwrap()),
            ..ValidationContext::default()
        };
        match validate_pipe(&def, &ctx).map_err(|e| e.fields)?.target {
            TargetConfig::Kafka(k) => Ok(k),
            other => panic!("{other:?}"),
        }
    }

    pub(super) fn cluster(body: &str) -> String {
        format!("[[kafka_clusters]]\nname = \"events\"\nbootstrap_servers = [\"b-1:9096\", \"b-2:9096\"]\n{body}\n")
    }

    pub(super) fn errors(target: &str, config: &str) -> Vec<FieldError> {
        let errs = check(target, config).unwrap_err();
        assert!(!format!("{errs:?}").contains("hunter2"), "{errs:?}");
        errs
    }

    pub(super) fn has(errs: &[FieldError], name: &str, message: &str) {
        assert!(
            errs.iter()
                .any(|e| e.name == name && e.message.contains(message)),
            "no {name}: {message:?} in {errs:?}"
        );
    }

    #[test]
    fn regression_kafka_target_took_topics_dot_and_dot_dot() {
        // Kafka refuses `.` and `..` as topic names; the target took them (the source did not).
        for topic in [".", ".."] {
            has(
                &errors(&format!("kafka://h:9092/{topic}"), ""),
                "Target",
                "the topic (after the last /) must be 1-249 characters of [a-zA-Z0-9._-], not . or ..",
            );
        }
        // A leading `.` is Kafka's to allow: the target takes it; a source's `TopicName` does
        // not, as AWS's pattern refuses it.
        assert_eq!(
            check("kafka://h:9092/.hidden", "").unwrap().topic,
            ".hidden"
        );
        let source = r#"{"Name":"p","Source":"smk://h:9092","Target":"kafka://h:9092/out",
            "SourceParameters":{"SelfManagedKafkaParameters":{"TopicName":".hidden"}}}"#;
        let errs = validate_pipe(
            &parse_definition(source, false).unwrap(),
            &Default::default(),
        )
        .unwrap_err()
        .fields;
        has(
            &errs,
            "SourceParameters.SelfManagedKafkaParameters.TopicName",
            "not starting with '.'",
        );
    }

    #[test]
    fn regression_kafka_target_took_port_0_and_a_slash_in_host_port() {
        // A port is 1-65535 and a host has no `/`, for the target as for the source.
        for target in ["kafka://h:0/out", "kafka://a:9092,h:0/out"] {
            has(&errors(target, ""), "Target", "must be kafka://host:port");
        }
        for servers in [r#"["b-1:0"]"#, r#"["b/1:9096"]"#] {
            let config =
                format!("[[kafka_clusters]]\nname = \"events\"\nbootstrap_servers = {servers}\n");
            has(
                &errors("kafka://events/out", &config),
                "targets.kafka_clusters.events.bootstrap_servers",
                "host:port",
            );
        }
        let source = r#"{"Name":"p","Source":"smk://h:0","Target":"kafka://h:9092/out",
            "SourceParameters":{"SelfManagedKafkaParameters":{"TopicName":"t"}}}"#;
        let errs = validate_pipe(
            &parse_definition(source, false).unwrap(),
            &Default::default(),
        )
        .unwrap_err()
        .fields;
        has(&errs, "Source", "must be host:port");
    }
}
