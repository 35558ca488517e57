//! What the Kafka source and the Kafka target share, so neither reaches into the other: the
//! security settings of a librdkafka client with their secrets fetched ([`security`]: protocol,
//! SASL mechanism, CA and mTLS identity, with [`tls`] key handling and [`iam`] MSK IAM tokens),
//! the TLS and SASL refusals librdkafka reports and their hints ([`refusal`]), what Kafka accepts
//! as a topic name and a broker address ([`names`]), librdkafka's logs in `tracing`, and how its
//! callbacks block.
//!
//! Each side decides from its own configuration what to set (the source from a pipe definition,
//! the target from `[[targets.kafka_clusters]]`) and names its settings in its own terms.

pub mod iam;
pub mod names;
pub mod refusal;
pub mod security;
pub mod tls;

use rdkafka::config::RDKafkaLogLevel;

pub use names::{is_host_port, is_valid_topic};
pub use refusal::{Refusal, SettingNames};
pub use security::{
    redact_error, security_protocol, ResolvedSecurity, SaslMechanism, ScramMechanism,
};

/// Run blocking work from a librdkafka callback, which runs on whatever thread polls the client,
/// often a tokio worker: there the worker hands its other tasks, and the runtime's I/O and timers,
/// to another thread for the duration, so a runtime of one worker keeps running.
pub fn block_in_callback<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Forward a librdkafka log line to `tracing` (target `librdkafka`). Clients keep librdkafka's
/// level at warnings and enable no `debug` contexts: its debug output shows connection details.
pub fn log_to_tracing(level: RDKafkaLogLevel, fac: &str, msg: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{msg}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{msg}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", fac, "{msg}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{msg}"),
    }
}
