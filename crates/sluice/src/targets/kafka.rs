//! The Kafka target (our extension): `Target: kafka://host:port[,host:port...]/topic` produces each
//! event of a batch to the topic, in order, with an idempotent producer and `acks=all`; the batch
//! succeeds only when every record was acknowledged.
//!
//! What is produced:
//! - value: the source record's value bytes as they were (a mirror) when the pipe has neither a
//!   target `InputTemplate` nor an enrichment; otherwise the event (the template's output, or the
//!   enrichment's item as JSON);
//! - key and headers: the source record's, unless `TargetParameters.KafkaTargetParameters` sets
//!   them (`Key`, `Headers`: literals or JSON paths into the record). After an enrichment there is
//!   no source record: only what the parameters set.
//!
//! The producer connects in plaintext without authentication (a local or in-VPC cluster).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Deserialize;

use super::{
    check_param, is_dynamic, resolve_param, Event, Target, TargetConfig, TargetContext,
    TargetError, TargetKind,
};
use crate::model::{FieldError, PipeDefinition};

/// Registered in [`super::kinds`].
pub const KIND: TargetKind = TargetKind {
    name: "kafka",
    accepts: |t| t.starts_with("kafka://"),
    validate,
};

/// How long one record may wait for its acknowledgement (librdkafka retries within it).
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

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
}

fn validate(
    def: &PipeDefinition,
    _ctx: &TargetContext<'_>,
    errs: &mut Vec<FieldError>,
) -> Option<TargetConfig> {
    let before = errs.len();
    let target = def.target.as_deref().unwrap_or_default();
    let rest = target.strip_prefix("kafka://").unwrap_or_default();
    let (servers, topic) = rest.split_once('/').unwrap_or((rest, ""));
    let servers: Vec<String> = servers
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let host_port_ok = |s: &String| {
        s.rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
    };
    if servers.is_empty() || !servers.iter().all(host_port_ok) {
        errs.push(FieldError::new(
            "Target",
            "must be kafka://host:port[,host:port...]/topic",
        ));
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
        })
    })
}

impl KafkaTargetConfig {
    /// Whether a key or header is a JSON path.
    pub fn needs_record(&self) -> bool {
        self.params.key.as_deref().is_some_and(is_dynamic)
            || self.params.headers.values().any(|v| is_dynamic(v))
    }

    /// Create the producer (it connects lazily).
    pub fn build(&self) -> Result<KafkaTarget, TargetError> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap_servers.join(","))
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set(
                "message.timeout.ms",
                MESSAGE_TIMEOUT.as_millis().to_string(),
            )
            .create()
            .map_err(|e| TargetError::Request(format!("cannot create the Kafka producer: {e}")))?;
        Ok(KafkaTarget {
            config: self.clone(),
            producer,
        })
    }
}

/// A built Kafka target.
pub struct KafkaTarget {
    config: KafkaTargetConfig,
    producer: FutureProducer,
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
