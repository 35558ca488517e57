//! The `[targets]` section of Sluice's configuration file (`sluice run --config`, `sluice serve
//! --config`): what an AWS-shaped pipe names but only AWS could resolve.
//!
//! ```toml
//! [targets.aws]
//! endpoint_url = "http://127.0.0.1:5000"          # every AWS target service (an emulator, a VPC endpoint)
//! service_endpoints = { sqs = "http://127.0.0.1:9324" }   # per service, wins over endpoint_url
//!
//! [[targets.api_destinations]]
//! arn = "arn:aws:events:us-east-1:123456789012:api-destination/orders/0a1b2c"
//! endpoint = "https://orders.example.com/v1/*/events"
//! http_method = "POST"
//! invocation_rate_limit_per_second = 20
//! connection = "orders-auth"
//!
//! [[targets.connections]]
//! name = "orders-auth"
//! auth = { type = "OAUTH_CLIENT_CREDENTIALS", authorization_endpoint = "https://auth.example.com/token",
//!          client_id = "sluice", client_secret = "env:ORDERS_CLIENT_SECRET" }
//!
//! [[targets.kafka_clusters]]                        # `Target: kafka://events/<topic>`
//! name = "events"
//! bootstrap_servers = ["b-1.events.example:9096", "b-2.events.example:9096"]
//! tls = { ca_certificate = "file:///etc/sluice/events-ca.pem" }   # or `tls = true`: system roots
//! sasl = { mechanism = "SCRAM-SHA-512", username = "sluice", password = "env:EVENTS_KAFKA_PASSWORD" }
//! ```
//!
//! Secret values are never in this file: `api_key_value`, `password`, `client_secret` and the
//! Kafka clusters' `ca_certificate`, `client_certificate`, `client_key`, `client_key_password` are
//! secret references (`env:NAME`, `file:///path`, a Secrets Manager ARN), resolved when a pipe
//! starts. The Kafka clusters are described in `targets::kafka`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// The `[targets]` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsConfig {
    /// AWS service targets.
    #[serde(default)]
    pub aws: AwsTargetsConfig,
    /// API destinations that pipes may name by ARN (as `Target` or `Enrichment`).
    #[serde(default)]
    pub api_destinations: Vec<ApiDestinationConfig>,
    /// Connections (authorization) that API destinations refer to by name.
    #[serde(default)]
    pub connections: Vec<ConnectionConfig>,
    /// Kafka clusters that `kafka://<name>/<topic>` targets name, with their TLS and SASL.
    #[serde(default)]
    pub kafka_clusters: Vec<KafkaClusterConfig>,
}

/// `[targets.aws]`: where AWS target calls go. Absent, the standard chain decides
/// (`AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`, then AWS's own endpoints).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsTargetsConfig {
    /// Endpoint for every AWS target service (overrides `AWS_ENDPOINT_URL*`).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Endpoint per service (`lambda`, `sqs`, `sns`, `events`, `kinesis`, `firehose`, `states`,
    /// `logs`); wins over `endpoint_url`.
    #[serde(default)]
    pub service_endpoints: BTreeMap<String, String>,
}

impl AwsTargetsConfig {
    /// The endpoint override for `service` (its ARN service name), if any.
    pub fn endpoint_for(&self, service: &str) -> Option<String> {
        self.service_endpoints
            .get(service)
            .or(self.endpoint_url.as_ref())
            .cloned()
    }
}

/// One API destination.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiDestinationConfig {
    /// The ARN pipes use (`arn:aws:events:<region>:<account>:api-destination/<name>/<id>`); a
    /// pipe may also give it without the trailing `/<id>`.
    pub arn: String,
    /// The URL; each `*` in its path is filled from `HttpParameters.PathParameterValues`.
    pub endpoint: String,
    /// `POST` (default), `GET`, `PUT`, `PATCH`, `DELETE`, `HEAD` or `OPTIONS`.
    #[serde(default = "default_method")]
    pub http_method: String,
    /// At most this many requests per second from one pipe (default 300, AWS's default).
    #[serde(default)]
    pub invocation_rate_limit_per_second: Option<u32>,
    /// Name of the connection whose authorization requests carry.
    #[serde(default)]
    pub connection: Option<String>,
}

fn default_method() -> String {
    "POST".into()
}

/// One connection: a name and how requests authorize.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// Name API destinations refer to.
    pub name: String,
    /// The authorization.
    pub auth: ConnectionAuthConfig,
}

/// How a connection authorizes, as EventBridge connections do.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum ConnectionAuthConfig {
    /// A header carrying a key.
    ApiKey {
        /// Header name (e.g. `x-api-key`).
        api_key_name: String,
        /// Secret reference of the header value.
        api_key_value: String,
    },
    /// HTTP Basic.
    Basic {
        /// User name (not secret).
        username: String,
        /// Secret reference of the password.
        password: String,
    },
    /// OAuth 2 client credentials: a token from `authorization_endpoint`, cached until it
    /// expires and fetched again when the endpoint answers 401.
    OauthClientCredentials {
        /// The token endpoint.
        authorization_endpoint: String,
        /// `POST` (default) or `GET`.
        #[serde(default = "default_method")]
        http_method: String,
        /// Client id (not secret).
        client_id: String,
        /// Secret reference of the client secret.
        client_secret: String,
        /// Extra form parameters of the token request (`scope`, `audience`...).
        #[serde(default)]
        body_parameters: BTreeMap<String, String>,
    },
}

/// One Kafka cluster a Kafka target may name (`Target: kafka://<name>/<topic>`): where its brokers
/// are and how to connect to them. Checked when a pipe names it (`targets::kafka`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaClusterConfig {
    /// The name targets use: 1-249 characters of `[A-Za-z0-9._-]`.
    pub name: String,
    /// The brokers to bootstrap from, `host:port` each.
    pub bootstrap_servers: Vec<String>,
    /// TLS to the brokers: `true` (verify them against the system trust store), `false`, or a
    /// table with a CA and/or a client certificate (TLS on). Absent: on when `sasl` is given
    /// (SASL over plaintext needs `tls = false`), off otherwise.
    #[serde(default)]
    pub tls: Option<KafkaTlsConfig>,
    /// SASL authentication (SCRAM or PLAIN); absent: none.
    #[serde(default)]
    pub sasl: Option<KafkaSaslConfig>,
}

/// `tls` of a Kafka cluster: a switch, or the settings of a TLS connection.
#[derive(Debug, Clone, PartialEq)]
pub enum KafkaTlsConfig {
    /// `tls = true` / `tls = false`.
    Enabled(bool),
    /// `tls = { ... }`: TLS with these settings.
    Settings(KafkaTlsSettings),
}

/// The settings of a TLS connection to a Kafka cluster. Each value is a secret reference.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTlsSettings {
    /// The CA bundle that signs the brokers' certificates: PEM text, or `{"certificate": PEM}` as
    /// AWS stores it. Absent: the system trust store (`SSL_CERT_FILE` / `SSL_CERT_DIR` apply).
    #[serde(default)]
    pub ca_certificate: Option<String>,
    /// mTLS: the client certificate chain, PEM, the client's certificate first.
    #[serde(default)]
    pub client_certificate: Option<String>,
    /// mTLS: the client's private key, PEM (PKCS#8, plain or encrypted with PBES1/PBES2).
    #[serde(default)]
    pub client_key: Option<String>,
    /// mTLS: the password of an encrypted `client_key`.
    #[serde(default)]
    pub client_key_password: Option<String>,
}

impl<'de> Deserialize<'de> for KafkaTlsConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KafkaTlsConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, or a table of ca_certificate, client_certificate, client_key, client_key_password")
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KafkaTlsConfig, E> {
                Ok(KafkaTlsConfig::Enabled(v))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<KafkaTlsConfig, A::Error> {
                KafkaTlsSettings::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(KafkaTlsConfig::Settings)
            }
        }
        d.deserialize_any(V)
    }
}

/// SASL authentication to a Kafka cluster.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSaslConfig {
    /// `SCRAM-SHA-256`, `SCRAM-SHA-512` or `PLAIN`.
    #[serde(default)]
    pub mechanism: Option<String>,
    /// The user name (not secret).
    #[serde(default)]
    pub username: Option<String>,
    /// Secret reference of the password: the password text (trailing line breaks ignored), or
    /// `{"username": ..., "password": ...}` as AWS keeps SCRAM users.
    #[serde(default)]
    pub password: Option<String>,
}
