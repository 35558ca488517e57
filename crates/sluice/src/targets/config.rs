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
//! ```
//!
//! Secret values are never in this file: `api_key_value`, `password` and `client_secret` are secret
//! references (`env:NAME`, `file:///path`, a Secrets Manager ARN), resolved when a pipe starts.

use std::collections::BTreeMap;

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
