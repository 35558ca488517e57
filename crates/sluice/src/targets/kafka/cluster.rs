//! The Kafka clusters a target may name (`[[targets.kafka_clusters]]`, `Target:
//! kafka://<cluster>/topic`): finding the one a target names, and checking its settings into a
//! [`ClusterSecurity`] of secret references (pure; the secrets are fetched by [`super::producer`]).
//! Errors name the config key (`targets.kafka_clusters.<name>.sasl.mechanism`), never a value.

use crate::field_error::FieldError;
use crate::kafka::{is_host_port, SaslMechanism};
use crate::secrets::SecretRef;
use crate::targets::config::{
    KafkaClusterConfig, KafkaSaslConfig, KafkaTlsConfig, KafkaTlsSettings,
};

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
    pub(super) fn path(&self) -> String {
        cluster_path(&self.name)
    }

    /// Whether anything beyond plaintext without authentication is configured.
    pub(super) fn is_secured(&self) -> bool {
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

/// The cluster a `kafka://<name>/topic` target names: its bootstrap servers and, when its
/// settings are valid, its security. A missing or twice-declared cluster is a field error.
pub(super) fn named(
    field: &str,
    name: &str,
    clusters: &[KafkaClusterConfig],
    errs: &mut Vec<FieldError>,
) -> (Vec<String>, Option<ClusterSecurity>) {
    let named: Vec<&KafkaClusterConfig> = clusters.iter().filter(|c| c.name == name).collect();
    let servers = named
        .first()
        .map(|c| c.bootstrap_servers.clone())
        .unwrap_or_default();
    let security = match named.as_slice() {
        [] => {
            errs.push(FieldError::new(
                field,
                format!("names the Kafka cluster {name:?}, which is not declared: declare it under [[targets.kafka_clusters]] in Sluice's config file (--config), or write kafka://host:port[,host:port...]/topic"),
            ));
            None
        }
        [c] => check_cluster(c, errs),
        _ => {
            errs.push(FieldError::new(
                format!("{}.name", cluster_path(name)),
                "is declared more than once",
            ));
            None
        }
    };
    (servers, security)
}

/// Refuse a `host:port` target naming a declared cluster's bootstrap server: it would connect in
/// plaintext to a secured listener.
pub(super) fn check_not_declared(
    servers: &[String],
    topic: &str,
    clusters: &[KafkaClusterConfig],
    errs: &mut Vec<FieldError>,
) {
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

/// Check a declared cluster, adding field errors named after its config keys.
fn check_cluster(c: &KafkaClusterConfig, errs: &mut Vec<FieldError>) -> Option<ClusterSecurity> {
    let before = errs.len();
    let keys = Keys(cluster_path(&c.name));
    if c.bootstrap_servers.is_empty() || !c.bootstrap_servers.iter().all(|s| is_host_port(s)) {
        errs.push(FieldError::new(
            keys.field("bootstrap_servers"),
            "must be a non-empty list of host:port",
        ));
    }
    let sasl = c.sasl.as_ref().and_then(|s| check_sasl(s, &keys, errs));
    let tls = match &c.tls {
        None => c.sasl.is_some().then(ClusterTls::default),
        Some(KafkaTlsConfig::Enabled(on)) => on.then(ClusterTls::default),
        Some(KafkaTlsConfig::Settings(t)) => Some(check_tls(t, &keys, errs)),
    };
    (errs.len() == before).then(|| ClusterSecurity {
        name: c.name.clone(),
        tls,
        sasl,
    })
}

/// The config keys of one cluster.
struct Keys(String);

impl Keys {
    fn field(&self, key: &str) -> String {
        format!("{}.{key}", self.0)
    }

    /// The secret reference under `key`, or a field error.
    fn reference(&self, key: &str, text: &str, errs: &mut Vec<FieldError>) -> Option<SecretRef> {
        match SecretRef::parse(text) {
            Ok(r) => Some(r),
            // The text is not echoed: a password pasted where a reference belongs must not show.
            Err(problem) => {
                errs.push(FieldError::new(self.field(key), problem));
                None
            }
        }
    }
}

/// `sasl = { mechanism, username, password }`: all three are required.
fn check_sasl(s: &KafkaSaslConfig, keys: &Keys, errs: &mut Vec<FieldError>) -> Option<ClusterSasl> {
    let mechanism = match s.mechanism.as_deref() {
        None => {
            errs.push(FieldError::new(
                keys.field("sasl.mechanism"),
                "is required: SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN",
            ));
            None
        }
        Some(m) => {
            let found = SaslMechanism::from_name(m);
            if found.is_none() {
                errs.push(FieldError::new(
                    keys.field("sasl.mechanism"),
                    format!(
                        "unknown mechanism {m:?}: must be SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN"
                    ),
                ));
            }
            found
        }
    };
    let username = s.username.clone().unwrap_or_default();
    if username.is_empty() {
        errs.push(FieldError::new(keys.field("sasl.username"), "is required"));
    } else if username.contains('\0') {
        errs.push(FieldError::new(
            keys.field("sasl.username"),
            "must not contain a NUL character",
        ));
    }
    let password = match s.password.as_deref() {
        None => {
            errs.push(FieldError::new(
                keys.field("sasl.password"),
                "is required: a secret reference (env:NAME, file:///path or a Secrets Manager secret ARN)",
            ));
            None
        }
        Some(text) => keys.reference("sasl.password", text, errs),
    };
    Some(ClusterSasl {
        mechanism: mechanism?,
        username,
        password: password?,
    })
}

/// `tls = { ... }`: a CA and/or an mTLS identity, whose certificate and key come together.
fn check_tls(t: &KafkaTlsSettings, keys: &Keys, errs: &mut Vec<FieldError>) -> ClusterTls {
    let ca_certificate = t
        .ca_certificate
        .as_deref()
        .and_then(|r| keys.reference("tls.ca_certificate", r, errs));
    let client = match (&t.client_certificate, &t.client_key) {
        (Some(cert), Some(key)) => {
            let certificate = keys.reference("tls.client_certificate", cert, errs);
            let key = keys.reference("tls.client_key", key, errs);
            let key_password = t
                .client_key_password
                .as_deref()
                .and_then(|r| keys.reference("tls.client_key_password", r, errs));
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
                keys.field("tls.client_key"),
                "is required with tls.client_certificate (mTLS needs both)",
            ));
            None
        }
        (None, Some(_)) => {
            errs.push(FieldError::new(
                keys.field("tls.client_certificate"),
                "is required with tls.client_key (mTLS needs both)",
            ));
            None
        }
        (None, None) => None,
    };
    if t.client_key_password.is_some() && t.client_key.is_none() {
        errs.push(FieldError::new(
            keys.field("tls.client_key_password"),
            "applies only with tls.client_key",
        ));
    }
    ClusterTls {
        ca_certificate,
        client,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::kafka::tests::{check, cluster, errors, has};
    use crate::targets::TargetsConfig;

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
}
