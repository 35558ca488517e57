//! Delivery of a batch to the topic: each event becomes an [`OutgoingRecord`] (value, key and
//! headers as `KafkaTargetParameters` say), all are enqueued before any is awaited, and the batch
//! succeeds only when every record was acknowledged. With traces exported, each record's
//! `traceparent` header is the target span's.

use std::sync::Arc;

use futures::future::BoxFuture;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use super::producer::{ConnectionHealth, TargetProducer, MESSAGE_TIMEOUT};
use super::KafkaTargetConfig;
use crate::targets::{resolve_param, Delivered, Event, Target, TargetError};

/// A built Kafka target.
pub struct KafkaTarget {
    config: KafkaTargetConfig,
    producer: TargetProducer,
    health: Arc<ConnectionHealth>,
}

impl std::fmt::Debug for KafkaTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTarget")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The record an event is produced as.
struct OutgoingRecord {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    /// Milliseconds since the epoch; `None`: the producer's clock.
    timestamp: Option<i64>,
}

impl KafkaTarget {
    pub(super) fn new(
        config: KafkaTargetConfig,
        producer: TargetProducer,
        health: Arc<ConnectionHealth>,
    ) -> Self {
        Self {
            config,
            producer,
            health,
        }
    }

    /// The value (the source's bytes when mirroring, else the event), the key and the headers
    /// (the source record's, overridden by the parameters) of an event's record.
    fn outgoing(&self, ev: &Event) -> Result<OutgoingRecord, TargetError> {
        let p = &self.config.params;
        let record = ev.record.as_deref();
        let source = ev.source.as_deref();
        let value = match source {
            Some(s) if self.config.mirror_value => s.value().map(<[u8]>::to_vec),
            _ => Some(ev.payload.to_vec()),
        };
        let key = match &p.key {
            Some(k) => Some(resolve_param(k, record)?.into_bytes()),
            None => source.and_then(|s| s.key().map(<[u8]>::to_vec)),
        };
        let mut headers: Vec<(String, Option<Vec<u8>>)> = source
            .map(|s| {
                s.headers()
                    .filter(|(k, _)| !p.headers.contains_key(*k))
                    .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        for (k, v) in &p.headers {
            headers.push((k.clone(), Some(resolve_param(v, record)?.into_bytes())));
        }
        let timestamp = source
            .filter(|s| self.config.mirror_timestamp && s.timestamp >= 0)
            .map(|s| s.timestamp);
        Ok(OutgoingRecord {
            key,
            value,
            headers,
            timestamp,
        })
    }

    /// The batch's result from the first failure of its `total` records (and how many failed).
    fn outcome(
        &self,
        failed: usize,
        total: usize,
        first: Option<(usize, String)>,
    ) -> Result<Delivered, TargetError> {
        let Some((first_index, first)) = first else {
            self.health.delivered();
            return Ok(Delivered::default());
        };
        // A refusal explains the failures better than "Message timed out", and retrying the
        // same credentials cannot help.
        if let Some(refusal) = self.health.refusal() {
            return Err(self.config.refused(refusal));
        }
        Err(TargetError::Partial {
            service: format!("Kafka topic {}", self.config.topic),
            failed,
            total,
            first,
            first_index,
        })
    }
}

impl Target for KafkaTarget {
    fn deliver<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<Delivered, TargetError>> {
        Box::pin(async move {
            let mut records: Vec<OutgoingRecord> = events
                .iter()
                .map(|e| self.outgoing(e))
                .collect::<Result<_, _>>()?;
            // With traces exported, the records carry the target span's context on instead of
            // the one they came with (which is forwarded as is otherwise, with the headers).
            if let Some(tp) = crate::traces::current_traceparent() {
                for r in &mut records {
                    r.headers.retain(|(k, _)| k != "traceparent");
                    r.headers
                        .push(("traceparent".into(), Some(tp.clone().into_bytes())));
                }
            }
            // Everything is enqueued before anything is awaited: the idempotent producer keeps
            // the order within each partition and batches the requests.
            let mut pending = Vec::with_capacity(records.len());
            for r in &records {
                let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
                for (k, v) in &r.headers {
                    headers = headers.insert(Header {
                        key: k,
                        value: v.as_deref(),
                    });
                }
                let mut rec: FutureRecord<'_, [u8], [u8]> =
                    FutureRecord::to(&self.config.topic).headers(headers);
                if let Some(k) = &r.key {
                    rec = rec.key(k.as_slice());
                }
                if let Some(v) = &r.value {
                    rec = rec.payload(v.as_slice());
                }
                if let Some(t) = r.timestamp {
                    rec = rec.timestamp(t);
                }
                pending.push(self.producer.send(rec, MESSAGE_TIMEOUT));
            }
            let total = pending.len();
            let mut failed = 0;
            let mut first = None;
            for (i, f) in pending.into_iter().enumerate() {
                if let Err((e, _)) = f.await {
                    failed += 1;
                    first.get_or_insert_with(|| (i, e.to_string()));
                }
            }
            self.outcome(failed, total, first)
        })
    }
}
