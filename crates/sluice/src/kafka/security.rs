//! The security settings of a librdkafka client, with their secrets already fetched: one
//! `security.protocol`, the SASL mechanism and credentials, the brokers' CA and the mTLS identity
//! ([`ResolvedSecurity`]). The source (from a pipe definition) and the Kafka target (from a
//! `[[targets.kafka_clusters]]` entry) each decide what to set and fetch the secrets; this module
//! turns the values into settings, the same way for both.

use std::sync::Arc;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;

use super::iam::IamTokenSource;
use super::tls;
use crate::secrets::{json, Secret};

/// A SCRAM hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramMechanism {
    /// `SaslScram256Auth`.
    Sha256,
    /// `SaslScram512Auth`.
    Sha512,
}

impl ScramMechanism {
    /// librdkafka's `sasl.mechanism` name.
    pub fn name(self) -> &'static str {
        SaslMechanism::Scram(self).name()
    }
}

/// A SASL mechanism that authenticates with a user name and a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// SASL/PLAIN.
    Plain,
    /// SASL/SCRAM.
    Scram(ScramMechanism),
}

impl SaslMechanism {
    /// Every mechanism, for messages.
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Scram(ScramMechanism::Sha256),
        SaslMechanism::Scram(ScramMechanism::Sha512),
        SaslMechanism::Plain,
    ];

    /// librdkafka's (and Kafka's) name: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(ScramMechanism::Sha256) => "SCRAM-SHA-256",
            SaslMechanism::Scram(ScramMechanism::Sha512) => "SCRAM-SHA-512",
        }
    }

    /// The mechanism of a Kafka name (exact, upper case).
    pub fn from_name(name: &str) -> Option<SaslMechanism> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// librdkafka's `security.protocol` for a connection with or without SASL and TLS.
pub fn security_protocol(sasl: bool, tls: bool) -> &'static str {
    match (sasl, tls) {
        (false, false) => "PLAINTEXT",
        (false, true) => "SSL",
        (true, false) => "SASL_PLAINTEXT",
        (true, true) => "SASL_SSL",
    }
}

/// A client's security with its secrets fetched: librdkafka settings and, for MSK IAM, the token
/// source for the refresh callback. `Debug` shows setting names only.
#[derive(Clone, Default)]
pub struct ResolvedSecurity {
    settings: Vec<(&'static str, Secret)>,
    /// Tokens for MSK IAM, handed to the client's context.
    pub oauth: Option<Arc<IamTokenSource>>,
    /// What was chosen, for logs.
    pub description: String,
}

impl std::fmt::Debug for ResolvedSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.settings.iter().map(|(k, _)| *k).collect();
        f.debug_struct("ResolvedSecurity")
            .field("settings", &keys)
            .field("oauth", &self.oauth)
            .field("description", &self.description)
            .finish()
    }
}

impl ResolvedSecurity {
    /// The settings of a connection with or without SASL and TLS: `security.protocol` and, with
    /// TLS, verification of the broker's certificate and host name. `description` is for logs.
    pub fn new(sasl: bool, tls: bool, description: String) -> Self {
        let mut out = ResolvedSecurity {
            description,
            ..ResolvedSecurity::default()
        };
        out.set("security.protocol", security_protocol(sasl, tls));
        if tls {
            // Both are librdkafka's defaults today; set so that a changed default cannot weaken us.
            out.set("enable.ssl.certificate.verification", "true");
            out.set("ssl.endpoint.identification.algorithm", "https");
        }
        // Without a CA, OpenSSL's default trust store (system roots; SSL_CERT_FILE/SSL_CERT_DIR).
        out
    }

    /// Trust the brokers' certificates signed by this PEM bundle (checked first).
    pub fn set_server_ca(&mut self, pem: &str) -> Result<(), tls::TlsError> {
        let bundle = tls::ca_bundle(pem)?;
        self.set("ssl.ca.pem", bundle);
        Ok(())
    }

    /// Authenticate with SASL `mechanism` as `username`.
    pub fn set_sasl(&mut self, mechanism: SaslMechanism, username: String, password: Secret) {
        self.set("sasl.mechanism", mechanism.name());
        self.set("sasl.username", username);
        self.settings.push(("sasl.password", password));
    }

    /// Authenticate with MSK IAM: SASL/OAUTHBEARER with tokens from `tokens`.
    pub fn set_iam(&mut self, tokens: Arc<IamTokenSource>) {
        self.set("sasl.mechanism", "OAUTHBEARER");
        self.oauth = Some(tokens);
    }

    /// Present this client certificate chain and key (checked, and decrypted in memory, first;
    /// errors name the parts with `names`).
    pub fn set_client_identity(
        &mut self,
        c: &json::ClientCertificate,
        names: &tls::IdentityFields<'_>,
    ) -> Result<(), tls::TlsError> {
        let id = tls::client_identity_named(c, names)?;
        self.set("ssl.certificate.pem", id.certificate_pem);
        self.settings.push(("ssl.key.pem", id.key_pem));
        Ok(())
    }

    /// Put the settings into a client configuration.
    pub fn apply(&self, cfg: &mut ClientConfig) {
        for (k, v) in &self.settings {
            cfg.set(*k, v.expose());
        }
    }

    /// The value of one setting (tests and diagnostics; never log it).
    pub fn setting(&self, key: &str) -> Option<&Secret> {
        self.settings
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    fn set(&mut self, key: &'static str, value: impl Into<String>) {
        self.settings.push((key, Secret::new(value.into())));
    }
}

/// Settings whose values must never appear in an error.
const SENSITIVE: &[&str] = &[
    "sasl.password",
    "sasl.username",
    "ssl.key.pem",
    "ssl.key.password",
    "ssl.certificate.pem",
    "ssl.ca.pem",
    "sasl.oauthbearer.config",
];

/// Strip setting values from a client-creation error: rdkafka's `ClientConfig` error quotes the
/// value it could not set.
pub fn redact_error(e: KafkaError) -> KafkaError {
    match e {
        KafkaError::ClientConfig(code, desc, key, _value) if SENSITIVE.contains(&key.as_str()) => {
            KafkaError::ClientConfig(code, desc, key, "<redacted>".into())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_of_tls_and_sasl_and_their_debug_form() {
        let mut r = ResolvedSecurity::new(true, true, "SCRAM-SHA-512 over TLS".into());
        r.set_sasl(
            SaslMechanism::Scram(ScramMechanism::Sha512),
            "bob".into(),
            Secret::new("s3cr3t-pw".into()),
        );
        let get = |k: &str| r.setting(k).unwrap().expose().to_string();
        assert_eq!(get("security.protocol"), "SASL_SSL");
        assert_eq!(get("enable.ssl.certificate.verification"), "true");
        assert_eq!(get("sasl.mechanism"), "SCRAM-SHA-512");
        assert_eq!(get("sasl.password"), "s3cr3t-pw");
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("s3cr3t-pw") && !dbg.contains("bob"), "{dbg}");
        let plain = ResolvedSecurity::new(false, false, String::new());
        assert_eq!(
            plain.setting("security.protocol").unwrap().expose(),
            "PLAINTEXT"
        );
        assert!(plain
            .setting("ssl.endpoint.identification.algorithm")
            .is_none());
    }

    #[test]
    fn mechanisms_round_trip_their_kafka_names() {
        for m in SaslMechanism::ALL {
            assert_eq!(SaslMechanism::from_name(m.name()), Some(m));
        }
        assert_eq!(SaslMechanism::from_name("scram-sha-256"), None);
    }

    #[test]
    fn config_errors_of_secret_settings_do_not_quote_the_value() {
        use rdkafka::types::RDKafkaConfRes;
        let e = |key: &str| {
            let e = KafkaError::ClientConfig(
                RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
                "invalid value".into(),
                key.into(),
                "hunter2".into(),
            );
            redact_error(e).to_string()
        };
        assert!(!e("sasl.password").contains("hunter2"));
        assert!(!e("ssl.key.pem").contains("hunter2"));
        assert!(e("linger.ms").contains("hunter2"));
    }
}
