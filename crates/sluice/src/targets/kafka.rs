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
//! Cluster settings are checked when a pipe naming the cluster is validated (errors name the
//! config field, `targets.kafka_clusters.<name>.sasl.mechanism`, and never a secret). When the
//! pipe starts, the secrets are fetched and turned into librdkafka settings by the source's code
//! (`sources::kafka::auth::ResolvedSecurity`, the same TLS and key handling); a cluster with TLS or
//! SASL is then connected to at once: a refused TLS handshake or refused credentials fail the pipe
//! with the reason (as the source does), an unreachable cluster does not (the start waits for it
//! at most 10 s, then deliveries retry). A refusal seen later makes failed deliveries errors only
//! the user can fix, naming it (the batch is retried, as every failed batch).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use serde::Deserialize;

use super::config::{KafkaClusterConfig, KafkaTlsConfig};
use super::{
    check_param, is_dynamic, resolve_param, Event, Target, TargetConfig, TargetContext,
    TargetError, TargetKind,
};
use crate::model::{FieldError, PipeDefinition};
use crate::secrets::{json, Secret, SecretError, SecretRef, SecretResolver};
use crate::sources::kafka::auth::{self, Refusal, ResolvedSecurity, SaslMechanism};
use crate::sources::kafka::tls::IdentityFields;

/// Registered in [`super::kinds`].
pub const KIND: TargetKind = TargetKind {
    name: "kafka",
    accepts: |t| t.starts_with("kafka://"),
    validate,
};

/// How long one record may wait for its acknowledgement (librdkafka retries within it).
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the start of a pipe waits for a secured cluster to accept (or refuse) the connection.
const CONNECT_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

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
}

/// A declared cluster's validated connection security: secret references only, no values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSecurity {
    /// The cluster's name in `[[targets.kafka_clusters]]`.
    pub name: String,
    /// TLS, when on.
    pub tls: Option<ClusterTls>,
    /// SASL, when configured.
    pub sasl: Option<ClusterSasl>,
}

/// TLS settings of a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterTls {
    /// The CA of the brokers' certificates; `None`: the system trust store.
    pub ca_certificate: Option<SecretRef>,
    /// mTLS: certificate chain, key, and the key's password.
    pub client: Option<ClientCertificateRefs>,
}

/// Where an mTLS client identity's parts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificateRefs {
    /// The PEM chain, client first.
    pub certificate: SecretRef,
    /// The PEM private key.
    pub key: SecretRef,
    /// The password of an encrypted key.
    pub key_password: Option<SecretRef>,
}

/// SASL settings of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSasl {
    /// SCRAM-SHA-256/512 or PLAIN.
    pub mechanism: SaslMechanism,
    /// The user name.
    pub username: String,
    /// Where the password is.
    pub password: SecretRef,
}

impl ClusterSecurity {
    /// The path of this cluster's settings in the config file, for messages.
    fn path(&self) -> String {
        cluster_path(&self.name)
    }

    /// Whether anything beyond plaintext without authentication is configured.
    fn is_secured(&self) -> bool {
        self.tls.is_some() || self.sasl.is_some()
    }

    /// A short description for logs ("SCRAM-SHA-512 over TLS").
    pub fn describe(&self) -> String {
        let client_cert = self.tls.as_ref().is_some_and(|t| t.client.is_some());
        let method = match (&self.sasl, client_cert) {
            (None, false) => "no authentication".to_string(),
            (None, true) => "mTLS client certificate".to_string(),
            (Some(s), cert) => {
                let m = match s.mechanism {
                    SaslMechanism::Plain => "SASL/PLAIN",
                    m => m.name(),
                };
                if cert {
                    format!("{m} with an mTLS client certificate")
                } else {
                    m.to_string()
                }
            }
        };
        let transport = if self.tls.is_some() {
            "TLS"
        } else {
            "plaintext"
        };
        format!("{method} over {transport}")
    }
}

fn cluster_path(name: &str) -> String {
    format!("targets.kafka_clusters.{name}")
}

fn host_port_ok(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
}

/// Check a declared cluster, adding field errors named after its config keys.
fn check_cluster(c: &KafkaClusterConfig, errs: &mut Vec<FieldError>) -> Option<ClusterSecurity> {
    let before = errs.len();
    let path = cluster_path(&c.name);
    let field = |f: &str| format!("{path}.{f}");
    let reference = |f: &str, text: &str, errs: &mut Vec<FieldError>| match SecretRef::parse(text) {
        Ok(r) => Some(r),
        // The text is not echoed: a password pasted where a reference belongs must not show.
        Err(problem) => {
            errs.push(FieldError::new(field(f), problem));
            None
        }
    };
    if c.bootstrap_servers.is_empty() || !c.bootstrap_servers.iter().all(|s| host_port_ok(s)) {
        errs.push(FieldError::new(
            field("bootstrap_servers"),
            "must be a non-empty list of host:port",
        ));
    }
    let sasl = c.sasl.as_ref().map(|s| {
        let mechanism = match s.mechanism.as_deref() {
            None => {
                errs.push(FieldError::new(
                    field("sasl.mechanism"),
                    "is required: SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN",
                ));
                None
            }
            Some(m) => {
                let found = SaslMechanism::from_name(m);
                if found.is_none() {
                    errs.push(FieldError::new(
                        field("sasl.mechanism"),
                        format!("unknown mechanism {m:?}: must be SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN"),
                    ));
                }
                found
            }
        };
        let username = s.username.clone().unwrap_or_default();
        if username.is_empty() {
            errs.push(FieldError::new(field("sasl.username"), "is required"));
        } else if username.contains('\0') {
            errs.push(FieldError::new(
                field("sasl.username"),
                "must not contain a NUL character",
            ));
        }
        let password = match s.password.as_deref() {
            None => {
                errs.push(FieldError::new(
                    field("sasl.password"),
                    "is required: a secret reference (env:NAME, file:///path or a Secrets Manager secret ARN)",
                ));
                None
            }
            Some(text) => reference("sasl.password", text, errs),
        };
        (mechanism, username, password)
    });
    let tls = match &c.tls {
        None => c.sasl.is_some().then(ClusterTls::default),
        Some(KafkaTlsConfig::Enabled(on)) => on.then(ClusterTls::default),
        Some(KafkaTlsConfig::Settings(t)) => {
            let ca_certificate = t
                .ca_certificate
                .as_deref()
                .and_then(|r| reference("tls.ca_certificate", r, errs));
            let client = match (&t.client_certificate, &t.client_key) {
                (Some(cert), Some(key)) => {
                    let certificate = reference("tls.client_certificate", cert, errs);
                    let key = reference("tls.client_key", key, errs);
                    let key_password = t
                        .client_key_password
                        .as_deref()
                        .and_then(|r| reference("tls.client_key_password", r, errs));
                    certificate
                        .zip(key)
                        .map(|(certificate, key)| ClientCertificateRefs {
                            certificate,
                            key,
                            key_password,
                        })
                }
                (Some(_), None) => {
                    errs.push(FieldError::new(
                        field("tls.client_key"),
                        "is required with tls.client_certificate (mTLS needs both)",
                    ));
                    None
                }
                (None, Some(_)) => {
                    errs.push(FieldError::new(
                        field("tls.client_certificate"),
                        "is required with tls.client_key (mTLS needs both)",
                    ));
                    None
                }
                (None, None) => None,
            };
            if t.client_key_password.is_some() && t.client_key.is_none() {
                errs.push(FieldError::new(
                    field("tls.client_key_password"),
                    "applies only with tls.client_key",
                ));
            }
            Some(ClusterTls {
                ca_certificate,
                client,
            })
        }
    };
    if errs.len() != before {
        return None;
    }
    let sasl = match sasl {
        Some((Some(mechanism), username, Some(password))) => Some(ClusterSasl {
            mechanism,
            username,
            password,
        }),
        _ => None,
    };
    Some(ClusterSecurity {
        name: c.name.clone(),
        tls,
        sasl,
    })
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
    let clusters = &ctx.config.kafka_clusters;
    let mut cluster = None;
    let servers: Vec<String>;
    if !address.is_empty() && !address.contains(':') && !address.contains(',') {
        // A declared cluster's name.
        let named: Vec<&KafkaClusterConfig> =
            clusters.iter().filter(|c| c.name == address).collect();
        servers = named
            .first()
            .map(|c| c.bootstrap_servers.clone())
            .unwrap_or_default();
        match named.as_slice() {
            [] => errs.push(FieldError::new(
                "Target",
                format!("names the Kafka cluster {address:?}, which is not declared: declare it under [[targets.kafka_clusters]] in Sluice's config file (--config), or write kafka://host:port[,host:port...]/topic"),
            )),
            [c] => cluster = check_cluster(c, errs),
            _ => errs.push(FieldError::new(
                format!("{}.name", cluster_path(address)),
                "is declared more than once",
            )),
        }
    } else {
        servers = address
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if servers.is_empty() || !servers.iter().all(|s| host_port_ok(s)) {
            errs.push(FieldError::new(
                "Target",
                "must be kafka://host:port[,host:port...]/topic or kafka://<cluster>/topic",
            ));
        }
        let declared = servers.iter().find_map(|s| {
            clusters
                .iter()
                .find(|c| {
                    c.bootstrap_servers
                        .iter()
                        .any(|b| b.eq_ignore_ascii_case(s))
                })
                .map(|c| (s, c))
        });
        if let Some((server, c)) = declared {
            errs.push(FieldError::new(
                "Target",
                format!(
                    "{server} is a bootstrap server of the Kafka cluster {:?} declared in the config file; write kafka://{}/{topic} to connect with its TLS and SASL settings",
                    c.name, c.name
                ),
            ));
        }
    }
    let topic_ok = !topic.is_empty()
        && topic.len() <= 249
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !topic_ok {
        errs.push(FieldError::new(
            "Target",
            "the topic (after the last /) must be 1-249 characters of [a-zA-Z0-9._-]",
        ));
    }
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
        match serde_json::from_value::<KafkaTargetParameters>(v.clone()) {
            Ok(p) => params = p,
            Err(e) => errs.push(FieldError::new(
                "TargetParameters.KafkaTargetParameters",
                e.to_string(),
            )),
        }
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
    let mirror_value =
        tp.input_template.is_none() && def.enrichment.as_deref().is_none_or(str::is_empty);
    (errs.len() == before).then(|| {
        TargetConfig::Kafka(KafkaTargetConfig {
            bootstrap_servers: servers,
            topic: topic.to_string(),
            params,
            mirror_value,
            cluster,
        })
    })
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

    /// Create the producer: fetch the cluster's secrets into client settings, and check that a
    /// secured cluster accepts the connection (a refusal is an error only the user can fix; an
    /// unreachable cluster is not an error here, deliveries retry).
    pub async fn build(&self) -> Result<KafkaTarget, TargetError> {
        let security = match &self.cluster {
            Some(c) if c.is_secured() => Some(resolve(c).await?),
            _ => None,
        };
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", self.bootstrap_servers.join(","))
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set(
                "message.timeout.ms",
                MESSAGE_TIMEOUT.as_millis().to_string(),
            )
            // As for the source: librdkafka's debug output would show connection details.
            .set_log_level(RDKafkaLogLevel::Warning);
        if let Some(s) = &security {
            s.apply(&mut cfg);
        }
        let observed = Arc::new(Observed::default());
        let context = ProducerCallbacks {
            service: self.service(),
            observed: observed.clone(),
        };
        let producer: FutureProducer<ProducerCallbacks> = cfg
            .create_with_context(context)
            .map_err(auth::redact_error)
            .map_err(|e| TargetError::Request(format!("cannot create the Kafka producer: {e}")))?;
        drop(cfg);
        if let Some(s) = &security {
            tracing::info!(target_cluster = %self.service(), security = %s.description, "connecting to the target Kafka cluster");
            self.check_connection(&producer, &observed).await?;
        }
        Ok(KafkaTarget {
            config: self.clone(),
            producer,
            observed,
        })
    }

    /// Wait until the cluster answered a metadata request, refused us, or is found unreachable.
    async fn check_connection(
        &self,
        producer: &FutureProducer<ProducerCallbacks>,
        observed: &Observed,
    ) -> Result<(), TargetError> {
        let client = producer.clone();
        let topic = self.topic.clone();
        let mut metadata = tokio::task::spawn_blocking(move || {
            client
                .client()
                .fetch_metadata(Some(&topic), CONNECT_CHECK_TIMEOUT)
                .map(|_| ())
        });
        let mut answered = None;
        loop {
            // A refusal is reported through the error callback, possibly just before the
            // metadata request gives up, so it is looked at first.
            if let Some(refusal) = observed.refusal() {
                return Err(self.refused(refusal));
            }
            if let Some(result) = answered {
                match result {
                    Ok(Ok(())) => {
                        tracing::info!(target_cluster = %self.service(), "connected to the target Kafka cluster")
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(target_cluster = %self.service(), error = %e, "the target Kafka cluster did not answer yet; deliveries will retry")
                    }
                    Err(e) => {
                        tracing::warn!(target_cluster = %self.service(), error = %e, "the connection check of the target Kafka cluster was interrupted")
                    }
                }
                return Ok(());
            }
            if observed.all_down.load(Ordering::Acquire) {
                tracing::warn!(target_cluster = %self.service(), "the target Kafka cluster is not reachable yet; deliveries will retry");
                return Ok(());
            }
            tokio::select! {
                r = &mut metadata => answered = Some(r),
                _ = observed.changed.notified() => {}
            }
        }
    }

    /// The error of a TLS or SASL refusal: only the user can fix it.
    fn refused(&self, refusal: String) -> TargetError {
        TargetError::Service {
            service: format!("target {}", self.service()),
            message: refusal,
            retryable: false,
            throttled: false,
        }
    }
}

/// Fetch a cluster's secrets into librdkafka settings.
async fn resolve(c: &ClusterSecurity) -> Result<ResolvedSecurity, TargetError> {
    let resolver = SecretResolver::new();
    let path = c.path();
    let fail = |f: &str, problem: String, retryable: bool| TargetError::Service {
        service: "Kafka target".into(),
        message: format!("{path}.{f}: {problem}"),
        retryable,
        throttled: false,
    };
    let secret_error = |f: &str, e: SecretError| {
        let retryable = e.is_retryable();
        fail(f, e.to_string(), retryable)
    };
    let fetch = |f: &'static str, r: &SecretRef| {
        let resolver = resolver.clone();
        let r = r.clone();
        async move { resolver.fetch(&r).await.map_err(|e| secret_error(f, e)) }
    };
    let mut out = ResolvedSecurity::new(c.sasl.is_some(), c.tls.is_some(), c.describe());
    if let Some(tls) = &c.tls {
        if let Some(r) = &tls.ca_certificate {
            let f = "tls.ca_certificate";
            let s = fetch(f, r).await?;
            let pem = json::ca_certificate(r, &s).map_err(|e| secret_error(f, e))?;
            out.set_server_ca(&pem)
                .map_err(|e| fail(f, format!("secret {r}: {e}"), false))?;
        }
        if let Some(refs) = &tls.client {
            let certificate = fetch("tls.client_certificate", &refs.certificate).await?;
            let key = fetch("tls.client_key", &refs.key).await?;
            let key_password = match &refs.key_password {
                Some(r) => Some(fetch("tls.client_key_password", r).await?),
                None => None,
            };
            let identity = json::ClientCertificate {
                certificate: certificate.expose().to_string(),
                private_key: key,
                private_key_password: key_password,
            };
            let names = IdentityFields {
                certificate: "`tls.client_certificate`",
                key: "`tls.client_key`",
                key_password: "`tls.client_key_password`",
            };
            out.set_client_identity(&identity, &names)
                .map_err(|e| fail("tls", e.0, false))?;
        }
    }
    if let Some(sasl) = &c.sasl {
        let f = "sasl.password";
        let s = fetch(f, &sasl.password).await?;
        let password =
            password_of(&sasl.password, &s, &sasl.username).map_err(|e| secret_error(f, e))?;
        out.set_sasl(sasl.mechanism, sasl.username.clone(), password);
    }
    Ok(out)
}

/// The password in a `sasl.password` secret: its text without trailing line breaks, or the
/// `password` of a `{"username","password"}` JSON secret whose `username` is the configured one.
fn password_of(r: &SecretRef, s: &Secret, username: &str) -> Result<Secret, SecretError> {
    if s.expose().trim_start().starts_with('{') {
        let up = json::user_password(r, s)?;
        if up.username != username {
            return Err(SecretError::malformed(
                r,
                "field `username` is not the cluster's sasl.username",
            ));
        }
        return Ok(up.password);
    }
    let text = s.expose().trim_end_matches(['\r', '\n']);
    if text.is_empty() {
        return Err(SecretError::malformed(r, "is empty"));
    }
    if text.contains('\0') {
        return Err(SecretError::malformed(r, "contains a NUL character"));
    }
    Ok(Secret::new(text.to_string()))
}

/// What the producer's librdkafka callbacks saw.
#[derive(Default)]
struct Observed {
    /// The last TLS or SASL refusal, explained; cleared by a delivered batch.
    refusal: Mutex<Option<String>>,
    /// librdkafka said every broker is down.
    all_down: AtomicBool,
    /// Wakes the connection check at start.
    changed: tokio::sync::Notify,
}

impl Observed {
    fn refusal(&self) -> Option<String> {
        self.refusal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The producer's librdkafka callbacks: logs through `tracing`, refusals explained in the terms
/// of the `[targets]` configuration.
struct ProducerCallbacks {
    service: String,
    observed: Arc<Observed>,
}

impl ClientContext for ProducerCallbacks {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        crate::sources::kafka::log_to_tracing(level, fac, msg);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match refusal(&error, reason) {
            Some(text) => {
                let mut last = self
                    .observed
                    .refusal
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                // librdkafka reconnects and is refused again; say it once per change.
                if last.as_deref() != Some(text.as_str()) {
                    tracing::error!(target_cluster = %self.service, reason = %text, "the target Kafka cluster refused the connection");
                    *last = Some(text);
                }
                drop(last);
                self.observed.changed.notify_one();
            }
            None => {
                if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
                    self.observed.all_down.store(true, Ordering::Release);
                    self.observed.changed.notify_one();
                }
                tracing::warn!(target_cluster = %self.service, error = %error, reason, "Kafka target client error");
            }
        }
    }
}

/// Whether a client error is one that retrying cannot heal (the errors the source treats as
/// fatal), explained in the terms of `[[targets.kafka_clusters]]`.
fn refusal(error: &KafkaError, reason: &str) -> Option<String> {
    use RDKafkaErrorCode as C;
    let hint = match auth::classify(reason) {
        Some(r) => hint(r),
        // What librdkafka says when the broker hangs up on the mechanism (Tansu without PLAIN).
        None if reason.contains("mechanism handshake failed") => hint(Refusal::MechanismNotOffered),
        None => match error.rdkafka_error_code()? {
            C::Authentication | C::SaslAuthenticationFailed => {
                "authentication failed (check sasl.mechanism, sasl.username and sasl.password)"
            }
            C::SSL => "the TLS connection failed (is the listener TLS? check tls)",
            C::ClusterAuthorizationFailed => {
                "not authorized on the cluster (an idempotent producer needs IdempotentWrite)"
            }
            C::TopicAuthorizationFailed => "not authorized to write to the topic",
            C::Fatal => "fatal Kafka producer error",
            _ => return None,
        },
    };
    Some(format!("{hint}; librdkafka: {reason}"))
}

/// What a refusal means, in the terms of `[[targets.kafka_clusters]]`.
fn hint(r: Refusal) -> &'static str {
    match r {
        Refusal::HostNameMismatch => {
            "the broker's TLS certificate does not match its host name in bootstrap_servers"
        }
        Refusal::UnknownCa => "the broker's TLS certificate is not trusted (unknown CA): set tls.ca_certificate or install the CA in the system trust store",
        Refusal::ClientCertificateRequired => {
            "the broker requires a client certificate: set tls.client_certificate and tls.client_key"
        }
        Refusal::ClientCertificateRefused => {
            "the broker refused the client certificate (not signed by a CA it trusts?)"
        }
        Refusal::HandshakeRefused => {
            "the broker refused the TLS handshake (does it require a client certificate?)"
        }
        Refusal::BadCredentials => {
            "the broker refused the credentials (wrong sasl.username or sasl.password?)"
        }
        Refusal::MechanismNotOffered => "the broker does not offer sasl.mechanism",
    }
}

/// A built Kafka target.
pub struct KafkaTarget {
    config: KafkaTargetConfig,
    producer: FutureProducer<ProducerCallbacks>,
    observed: Arc<Observed>,
}

impl std::fmt::Debug for KafkaTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTarget")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

struct Prepared {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

impl KafkaTarget {
    fn prepare(&self, ev: &Event) -> Result<Prepared, TargetError> {
        let p = &self.config.params;
        let record = ev.record.as_deref();
        let source = ev.source.as_deref();
        let value = match source {
            Some(s) if self.config.mirror_value => s.value.clone(),
            _ => Some(ev.payload.to_vec()),
        };
        let key = match &p.key {
            Some(k) => Some(resolve_param(k, record)?.into_bytes()),
            None => source.and_then(|s| s.key.clone()),
        };
        let mut headers: Vec<(String, Option<Vec<u8>>)> = source
            .map(|s| {
                s.headers
                    .iter()
                    .filter(|(k, _)| !p.headers.contains_key(k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for (k, v) in &p.headers {
            headers.push((k.clone(), Some(resolve_param(v, record)?.into_bytes())));
        }
        Ok(Prepared {
            key,
            value,
            headers,
        })
    }
}

impl Target for KafkaTarget {
    fn deliver<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            let prepared: Vec<Prepared> = events
                .iter()
                .map(|e| self.prepare(e))
                .collect::<Result<_, _>>()?;
            // Everything is enqueued before anything is awaited: the idempotent producer keeps
            // the order within each partition and batches the requests.
            let mut pending = Vec::with_capacity(prepared.len());
            for p in &prepared {
                let mut headers = OwnedHeaders::new_with_capacity(p.headers.len());
                for (k, v) in &p.headers {
                    headers = headers.insert(Header {
                        key: k,
                        value: v.as_deref(),
                    });
                }
                let mut rec: FutureRecord<'_, [u8], [u8]> =
                    FutureRecord::to(&self.config.topic).headers(headers);
                if let Some(k) = &p.key {
                    rec = rec.key(k.as_slice());
                }
                if let Some(v) = &p.value {
                    rec = rec.payload(v.as_slice());
                }
                pending.push(self.producer.send(rec, MESSAGE_TIMEOUT));
            }
            let total = pending.len();
            let mut failed = 0;
            let mut first = None;
            for f in pending {
                if let Err((e, _)) = f.await {
                    failed += 1;
                    first.get_or_insert_with(|| e.to_string());
                }
            }
            if first.is_none() {
                *self
                    .observed
                    .refusal
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = None;
            }
            // A refusal explains the failures better than "Message timed out", and retrying
            // the same credentials cannot help.
            if let (Some(_), Some(refusal)) = (&first, self.observed.refusal()) {
                return Err(self.config.refused(refusal));
            }
            match first {
                None => Ok(()),
                Some(first) => Err(TargetError::Partial {
                    service: format!("Kafka topic {}", self.config.topic),
                    failed,
                    total,
                    first,
                }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{parse_definition, validate as validate_pipe, ValidationContext};
    use crate::targets::TargetsConfig;

    /// Validate a pipe with `target` against the `[targets]` section `config`.
    fn check(target: &str, config: &str) -> Result<KafkaTargetConfig, Vec<FieldError>> {
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

    fn cluster(body: &str) -> String {
        format!("[[kafka_clusters]]\nname = \"events\"\nbootstrap_servers = [\"b-1:9096\", \"b-2:9096\"]\n{body}\n")
    }

    fn errors(target: &str, config: &str) -> Vec<FieldError> {
        let errs = check(target, config).unwrap_err();
        assert!(!format!("{errs:?}").contains("hunter2"), "{errs:?}");
        errs
    }

    fn has(errs: &[FieldError], name: &str, message: &str) {
        assert!(
            errs.iter()
                .any(|e| e.name == name && e.message.contains(message)),
            "no {name}: {message:?} in {errs:?}"
        );
    }

    #[test]
    fn a_named_cluster_gives_its_servers_and_security() {
        let k = check(
            "kafka://events/out",
            &cluster(
                r#"tls = { ca_certificate = "file:///etc/ca.pem" }
                   sasl = { mechanism = "SCRAM-SHA-512", username = "sluice", password = "env:EV_PW" }"#,
            ),
        )
        .unwrap();
        assert_eq!(k.bootstrap_servers, ["b-1:9096", "b-2:9096"]);
        assert_eq!(k.topic, "out");
        let c = k.cluster.unwrap();
        assert_eq!(c.describe(), "SCRAM-SHA-512 over TLS");
        assert_eq!(
            c.tls.unwrap().ca_certificate,
            Some(SecretRef::File("/etc/ca.pem".into()))
        );
        let sasl = c.sasl.unwrap();
        assert_eq!(sasl.username, "sluice");
        assert_eq!(sasl.password, SecretRef::Env("EV_PW".into()));

        // SASL alone means TLS (system roots); `tls = false` is SASL over plaintext.
        let sasl = r#"sasl = { mechanism = "SCRAM-SHA-256", username = "u", password = "env:P" }"#;
        let c = check("kafka://events/out", &cluster(sasl)).unwrap();
        assert_eq!(c.cluster.unwrap().describe(), "SCRAM-SHA-256 over TLS");
        let plain = r#"tls = false
            sasl = { mechanism = "PLAIN", username = "u", password = "env:P" }"#;
        let c = check("kafka://events/out", &cluster(plain)).unwrap();
        assert_eq!(c.cluster.unwrap().describe(), "SASL/PLAIN over plaintext");
        let mtls = r#"tls = { client_certificate = "file:///c.pem", client_key = "file:///k.pem", client_key_password = "env:KP" }"#;
        let c = check("kafka://events/out", &cluster(mtls)).unwrap();
        assert_eq!(
            c.cluster.unwrap().describe(),
            "mTLS client certificate over TLS"
        );
        let c = check("kafka://events/out", &cluster("tls = true")).unwrap();
        assert_eq!(c.cluster.unwrap().describe(), "no authentication over TLS");
        let c = check("kafka://events/out", &cluster("")).unwrap();
        assert!(!c.cluster.unwrap().is_secured());

        // host:port targets stay plaintext, whatever the config declares.
        let k = check("kafka://other:9092/out", &cluster(sasl)).unwrap();
        assert!(k.cluster.is_none());
    }

    #[test]
    fn cluster_errors_name_the_field_and_never_a_secret() {
        let sasl = |body: &str| cluster(&format!("sasl = {{ {body} }}"));
        let errs = errors(
            "kafka://events/out",
            &sasl(r#"mechanism = "SCRAM-SHA-1", username = "u", password = "env:P""#),
        );
        has(
            &errs,
            "targets.kafka_clusters.events.sasl.mechanism",
            "unknown mechanism \"SCRAM-SHA-1\": must be SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN",
        );
        let errs = errors(
            "kafka://events/out",
            &sasl(r#"mechanism = "PLAIN", username = "u""#),
        );
        has(
            &errs,
            "targets.kafka_clusters.events.sasl.password",
            "is required",
        );
        // A password pasted where its reference belongs is refused without being echoed.
        let errs = errors(
            "kafka://events/out",
            &sasl(r#"mechanism = "PLAIN", username = "u", password = "hunter2""#),
        );
        has(
            &errs,
            "targets.kafka_clusters.events.sasl.password",
            "must be a Secrets Manager secret ARN",
        );
        let errs = errors("kafka://events/out", &sasl(r#"password = "env:P""#));
        has(
            &errs,
            "targets.kafka_clusters.events.sasl.mechanism",
            "is required",
        );
        has(
            &errs,
            "targets.kafka_clusters.events.sasl.username",
            "is required",
        );

        let errs = errors(
            "kafka://events/out",
            &cluster(r#"tls = { client_certificate = "file:///c.pem" }"#),
        );
        has(
            &errs,
            "targets.kafka_clusters.events.tls.client_key",
            "mTLS needs both",
        );
        let errs = errors(
            "kafka://events/out",
            &cluster(r#"tls = { ca_certificate = "hunter2", client_key_password = "env:K" }"#),
        );
        has(
            &errs,
            "targets.kafka_clusters.events.tls.ca_certificate",
            "file://PATH",
        );
        has(
            &errs,
            "targets.kafka_clusters.events.tls.client_key_password",
            "only with tls.client_key",
        );

        let bad_servers = "[[kafka_clusters]]\nname = \"events\"\nbootstrap_servers = [\"b-1\"]\n";
        has(
            &errors("kafka://events/out", bad_servers),
            "targets.kafka_clusters.events.bootstrap_servers",
            "host:port",
        );
        has(
            &errors("kafka://nowhere/out", &cluster("")),
            "Target",
            "names the Kafka cluster \"nowhere\", which is not declared",
        );
        let twice = format!("{}{}", cluster(""), cluster(""));
        has(
            &errors("kafka://events/out", &twice),
            "targets.kafka_clusters.events.name",
            "declared more than once",
        );
        // Plaintext to a declared (secured) listener cannot work: say how to name the cluster.
        has(
            &errors("kafka://B-2:9096/out", &cluster("tls = true")),
            "Target",
            "write kafka://events/out",
        );
    }

    #[test]
    fn the_config_section_refuses_unknown_keys_and_bad_shapes() {
        let e = toml::from_str::<TargetsConfig>(
            "[[kafka_clusters]]\nname = \"e\"\nbootstrap_servers = [\"h:1\"]\nsasl = { mechanism = \"PLAIN\", username = \"u\", pasword = \"env:P\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `pasword`"), "{e}");
        let e = toml::from_str::<TargetsConfig>(
            "[[kafka_clusters]]\nname = \"e\"\nbootstrap_servers = [\"h:1\"]\ntls = \"yes\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("true, false, or a table"), "{e}");
        let e = toml::from_str::<TargetsConfig>(
            "[[kafka_clusters]]\nname = \"e\"\nbootstrap_servers = [\"h:1\"]\ntls = { ca = \"env:CA\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `ca`"), "{e}");
        // The same section as JSON (`--config sluice.json`).
        let c: TargetsConfig = serde_json::from_str(
            r#"{"kafka_clusters":[{"name":"e","bootstrap_servers":["h:1"],"tls":{"ca_certificate":"env:CA"}}]}"#,
        )
        .unwrap();
        assert!(matches!(
            c.kafka_clusters[0].tls,
            Some(KafkaTlsConfig::Settings(_))
        ));
    }

    fn sasl_cluster(mechanism: SaslMechanism, username: &str, password: &str) -> ClusterSecurity {
        ClusterSecurity {
            name: "events".into(),
            tls: Some(ClusterTls::default()),
            sasl: Some(ClusterSasl {
                mechanism,
                username: username.into(),
                password: SecretRef::parse(password).unwrap(),
            }),
        }
    }

    #[tokio::test]
    async fn sasl_settings_come_from_the_password_secret() {
        let var = format!("SLUICE_KT_PW_{}", std::process::id());
        std::env::set_var(&var, "s3cr3t-scram-pw\n");
        let c = sasl_cluster(
            SaslMechanism::Scram(crate::sources::kafka::auth::ScramMechanism::Sha256),
            "sluice",
            &format!("env:{var}"),
        );
        let r = resolve(&c).await.unwrap();
        let get = |k: &str| r.setting(k).unwrap().expose().to_string();
        assert_eq!(get("security.protocol"), "SASL_SSL");
        assert_eq!(get("sasl.mechanism"), "SCRAM-SHA-256");
        assert_eq!(get("sasl.username"), "sluice");
        assert_eq!(get("sasl.password"), "s3cr3t-scram-pw");
        assert_eq!(get("ssl.endpoint.identification.algorithm"), "https");
        assert_eq!(r.description, "SCRAM-SHA-256 over TLS");
        assert!(!format!("{r:?}").contains("s3cr3t"));

        // SASL/PLAIN (no test broker offers it: Tansu 0.6 builds rsasl without PLAIN), from a
        // JSON secret as AWS keeps users; a client really accepts the settings.
        std::env::set_var(&var, r#"{"username":"sluice","password":"pl41n-pw"}"#);
        let c = sasl_cluster(SaslMechanism::Plain, "sluice", &format!("env:{var}"));
        let r = resolve(&c).await.unwrap();
        assert_eq!(r.setting("sasl.mechanism").unwrap().expose(), "PLAIN");
        assert_eq!(r.setting("sasl.password").unwrap().expose(), "pl41n-pw");
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", "127.0.0.1:1");
        r.apply(&mut cfg);
        let _producer: rdkafka::producer::BaseProducer =
            cfg.create().map_err(auth::redact_error).unwrap();

        // The JSON's user must be the configured one; errors name the field, not the values.
        let c = sasl_cluster(SaslMechanism::Plain, "someone-else", &format!("env:{var}"));
        let e = resolve(&c).await.unwrap_err();
        assert!(e.is_user_error() && !e.is_retryable());
        let text = e.to_string();
        assert!(
            text.contains("targets.kafka_clusters.events.sasl.password: secret env:SLUICE_KT_PW_")
                && text.contains("field `username` is not the cluster's sasl.username"),
            "{text}"
        );
        assert!(
            !text.contains("pl41n-pw") && !text.contains("sluice\""),
            "{text}"
        );

        std::env::remove_var(&var);
        let e = resolve(&c).await.unwrap_err().to_string();
        assert!(
            e.starts_with("Kafka target: targets.kafka_clusters.events.sasl.password: secret env:")
                && e.contains("is not set"),
            "{e}"
        );
    }

    #[test]
    fn refusals_are_explained_in_config_terms() {
        let r = auth::classify("SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512").unwrap();
        assert!(hint(r).contains("sasl.password"));
        let r = auth::classify("SSL handshake failed: tlsv13 alert certificate required").unwrap();
        assert!(hint(r).contains("tls.client_certificate"));
        let r = auth::classify("SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified").unwrap();
        assert!(hint(r).contains("tls.ca_certificate"));

        // As the source: authentication and TLS error codes are refusals whatever their text.
        use RDKafkaErrorCode as C;
        let plain = "sasl_ssl://127.0.0.1:1/bootstrap: SASL PLAIN mechanism handshake failed: Local: Broker transport failure: broker's supported mechanisms: (n/a)";
        let text = refusal(&KafkaError::Global(C::Authentication), plain).unwrap();
        assert!(
            text.starts_with("the broker does not offer sasl.mechanism; librdkafka: sasl_ssl://"),
            "{text}"
        );
        let text = refusal(
            &KafkaError::Global(C::Authentication),
            "SASL handshake failed",
        )
        .unwrap();
        assert!(
            text.starts_with("authentication failed (check sasl.mechanism"),
            "{text}"
        );
        assert!(refusal(
            &KafkaError::Global(C::AllBrokersDown),
            "1/1 brokers are down"
        )
        .is_none());
        assert!(refusal(
            &KafkaError::Global(C::BrokerTransportFailure),
            "Connect to ipv4#127.0.0.1:1 failed: Connection refused"
        )
        .is_none());
    }
}
