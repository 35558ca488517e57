//! `[source]` of the configuration file: librdkafka consumer properties an operator sets on every
//! pipe's consumer, after Sluice's own (the way Vector's `librdkafka_options` and Kafka Connect's
//! `consumer.override.*` do). Properties that carry Sluice's delivery guarantee, a pipe
//! definition's settings, or credentials are refused, so an option can tune fetching and
//! buffering but never move offsets, change the group, or print connection details.

use std::collections::BTreeMap;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use serde::Deserialize;

/// `[source]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTuning {
    /// librdkafka consumer properties set on every pipe's consumer after Sluice's own, say
    /// `{ "fetch.max.bytes" = "1048576" }`. Each is checked by librdkafka when the file is
    /// loaded; those of [`OWNED`] and `security.*`, `sasl.*`, `ssl.*` are refused.
    #[serde(default)]
    pub librdkafka_options: BTreeMap<String, String>,
}

/// Properties Sluice sets from the pipe definition or needs for its guarantees.
pub const OWNED: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "group.instance.id",
    "client.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "enable.partition.eof",
    "allow.auto.create.topics",
    "partition.assignment.strategy",
    "group.protocol",
    // Its contexts print connection details.
    "debug",
    "log_level",
];

/// Prefixes of the credential and TLS properties, set from the pipe's authentication.
const OWNED_PREFIXES: &[&str] = &["security.", "sasl.", "ssl.", "ssl_"];

impl SourceTuning {
    /// Every option allowed and accepted by librdkafka, or the first that is not (by name, with
    /// librdkafka's reason; the value is not quoted, it may be anything).
    pub fn validate(&self) -> Result<(), String> {
        for (key, value) in &self.librdkafka_options {
            if OWNED.contains(&key.as_str()) || OWNED_PREFIXES.iter().any(|p| key.starts_with(p)) {
                return Err(format!(
                    "source.librdkafka_options: {key:?} is set by Sluice (from the pipe definition or for its delivery guarantee) and cannot be overridden"
                ));
            }
            let mut probe = ClientConfig::new();
            probe.set(key, value);
            if let Err(e) = probe.create_native_config() {
                return Err(format!(
                    "source.librdkafka_options: {key:?} is refused by librdkafka: {}",
                    reason(&e, value)
                ));
            }
        }
        Ok(())
    }

    /// The options, in a stable order, for `RuntimeOptions`.
    pub fn options(&self) -> Vec<(String, String)> {
        self.librdkafka_options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// librdkafka's own wording, with the value left out (it may be anything, a secret included).
fn reason(e: &KafkaError, value: &str) -> String {
    let text = match e {
        KafkaError::ClientConfig(_, description, _, _) => description.clone(),
        other => other.to_string(),
    };
    if value.is_empty() {
        text
    } else {
        text.replace(value, "(the value)")
    }
}

/// Set `options` on `cfg`, after Sluice's own settings (so they win).
pub fn apply(cfg: &mut ClientConfig, options: &[(String, String)]) {
    for (k, v) in options {
        cfg.set(k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuning(pairs: &[(&str, &str)]) -> SourceTuning {
        SourceTuning {
            librdkafka_options: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn fetch_and_buffer_options_are_accepted_and_win_over_sluices() {
        let t = tuning(&[
            ("fetch.max.bytes", "1048576"),
            ("queued.min.messages", "1000"),
        ]);
        t.validate().unwrap();
        let mut cfg = ClientConfig::new();
        cfg.set("fetch.max.bytes", "8388608");
        apply(&mut cfg, &t.options());
        assert_eq!(cfg.get("fetch.max.bytes"), Some("1048576"));
        assert_eq!(cfg.get("queued.min.messages"), Some("1000"));
    }

    #[test]
    fn options_that_carry_the_delivery_guarantee_or_credentials_are_refused() {
        for key in [
            "enable.auto.commit",
            "group.id",
            "debug",
            "sasl.password",
            "ssl.key.pem",
        ] {
            let err = tuning(&[(key, "x")]).validate().unwrap_err();
            assert!(err.contains(key) && err.contains("set by Sluice"), "{err}");
        }
    }

    #[test]
    fn an_unknown_property_or_a_bad_value_names_the_property_without_the_value() {
        let err = tuning(&[("fetch.max.byts", "1")]).validate().unwrap_err();
        assert!(
            err.contains("\"fetch.max.byts\"") && err.contains("refused by librdkafka"),
            "{err}"
        );
        let err = tuning(&[("fetch.max.bytes", "s3cr3t")])
            .validate()
            .unwrap_err();
        assert!(err.contains("\"fetch.max.bytes\""), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}
