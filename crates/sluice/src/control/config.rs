//! The `sluice serve` configuration file (TOML, or JSON for `.json`): the region and account of the
//! ARNs, the access keys requests are signed with, and timing knobs. Unknown keys are errors.
//!
//! ```toml
//! region = "eu-west-1"
//! account = "123456789012"
//! missing_topic_grace_seconds = 60      # a pipe whose topic is still missing then fails
//! msk_lookup_again_after_seconds = 60   # no broker of an MSK cluster looked up by ARN answers
//! max_pipes = 1000                      # CreatePipe beyond: ServiceQuotaExceededException
//!
//! [telemetry]
//! otlp_endpoint = "http://127.0.0.1:4318"   # traces over OTLP/HTTP (else OTEL_EXPORTER_OTLP_ENDPOINT)
//!
//! [[access_keys]]
//! access_key_id = "AKIDEXAMPLE"
//! secret_access_key_env = "SLUICE_SECRET_AKIDEXAMPLE"   # or secret_access_key_file = "/run/secrets/k"
//!
//! [secrets]                                # what pipe definitions may reference (empty: all)
//! allowed_file_dirs = ["/run/sluice-secrets"]
//! allowed_env_prefix = "SLUICE_PIPE_"
//! allowed_secrets_manager_arn_prefix = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sluice/"
//! allowed_secrets_manager_endpoints = ["http://127.0.0.1:4566"]   # SluiceParameters.SecretsManagerEndpoint
//!
//! [source]                                 # librdkafka properties for every pipe's consumer
//! librdkafka_options = { "fetch.max.bytes" = "1048576" }
//!
//! [store]                                  # several instances share pipes in PostgreSQL
//! url = "postgres://sluice@db.example/sluice"
//! password = "env:SLUICE_DB_PASSWORD"      # a secret reference
//! ```
//!
//! The `[store]` section is described in `store::PostgresConfig`; without it (and without
//! `--store`) pipes live in the embedded store under `--data`.
//!
//! The `[targets]` section (AWS endpoints, API destinations, connections) is described in
//! `targets::config`; `sluice run --config` reads it, `[source]`, `missing_topic_grace_seconds` and
//! `msk_lookup_again_after_seconds` from a file of this same format.
//!
//! Access keys may also come from `SLUICE_ACCESS_KEYS=AKID:SECRET,AKID2:SECRET2`. Secret keys are
//! held in [`Secret`], whose `Debug` never shows them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A secret string; `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for computing signatures only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Region used in pipe ARNs (`arn:aws:pipes:<region>:...`).
    #[serde(default = "default_region")]
    pub region: String,
    /// Account id (12 digits) used in pipe ARNs.
    #[serde(default = "default_account")]
    pub account: String,
    /// Access keys whose SigV4 signatures are accepted.
    #[serde(default)]
    pub access_keys: Vec<AccessKeyConfig>,
    /// How far a request's `X-Amz-Date` may be from now, in seconds (AWS: 900).
    #[serde(default = "default_skew")]
    pub max_clock_skew_seconds: u64,
    /// How long a pipe's stop (and the engine's shutdown) waits for batches in flight, in seconds.
    #[serde(default = "default_shutdown")]
    pub shutdown_timeout_seconds: u64,
    /// How long a pipe waits for its source topic to exist, in seconds: a topic still missing
    /// after that fails the pipe (`sluice run` exits 1; through the API the pipe fails with the
    /// reason in `StateReason`). Topics are often created just after the pipe. Default 60.
    #[serde(default = "default_missing_topic_grace")]
    pub missing_topic_grace_seconds: u64,
    /// How long no broker of an MSK cluster looked up by its ARN may answer before its brokers
    /// are looked up again (MSK replaced them), in seconds, at least 1. Default 60.
    #[serde(default = "default_msk_lookup_again_after")]
    pub msk_lookup_again_after_seconds: u64,
    /// How many pipes may exist (AWS: 1,000 per account and region): `CreatePipe` beyond it
    /// answers `ServiceQuotaExceededException`. Default 1000.
    #[serde(default = "default_max_pipes")]
    pub max_pipes: usize,
    /// Whether `sluice serve`'s consumers are static members of their groups (Kafka's KIP-345):
    /// each joins with `group.instance.id` = instance id + pipe name, so an instance restarted
    /// within the session timeout (10 s) takes its partitions back without moving anyone
    /// else's, while one that stops for good hands its partitions over only once that timeout
    /// expires. Needs Kafka 2.3 or later, and an instance id that survives a restart
    /// (`--instance-id`, or the default on a fixed port). Default true.
    #[serde(default = "default_true")]
    pub static_membership: bool,
    /// The secret references pipe definitions may use (see `secrets::SecretAllowlist`); empty,
    /// any file or environment variable the engine can read and any Secrets Manager secret.
    #[serde(default)]
    pub secrets: crate::secrets::SecretAllowlist,
    /// Targets and enrichments: AWS endpoints, API destinations, connections (see
    /// `targets::config`). `sluice run --config` reads the same section.
    #[serde(default)]
    pub targets: crate::targets::TargetsConfig,
    /// Traces: where spans are exported.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// The PostgreSQL database several instances share (see `store::PostgresConfig`); absent,
    /// the embedded store under `--data`.
    #[serde(default)]
    pub store: crate::store::PostgresConfig,
    /// The API listener's timeouts and limits (see `api::limits`).
    #[serde(default)]
    pub listener: crate::api::limits::ListenerConfig,
    /// librdkafka properties for every pipe's consumer (see `sources::kafka::tuning`).
    #[serde(default)]
    pub source: crate::sources::kafka::tuning::SourceTuning,
}

/// `[telemetry]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP collector (`/v1/traces` is added); wins over
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`. Absent, and without the variable, no spans are exported.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            region: default_region(),
            account: default_account(),
            access_keys: Vec::new(),
            max_clock_skew_seconds: default_skew(),
            shutdown_timeout_seconds: default_shutdown(),
            missing_topic_grace_seconds: default_missing_topic_grace(),
            msk_lookup_again_after_seconds: default_msk_lookup_again_after(),
            max_pipes: default_max_pipes(),
            static_membership: true,
            secrets: Default::default(),
            targets: Default::default(),
            telemetry: TelemetryConfig::default(),
            store: Default::default(),
            listener: Default::default(),
            source: Default::default(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_account() -> String {
    "000000000000".into()
}
fn default_skew() -> u64 {
    900
}
fn default_shutdown() -> u64 {
    30
}
fn default_missing_topic_grace() -> u64 {
    crate::runtime::DEFAULT_MISSING_TOPIC_GRACE.as_secs()
}

fn default_max_pipes() -> usize {
    crate::control::DEFAULT_MAX_PIPES
}

fn default_msk_lookup_again_after() -> u64 {
    crate::runtime::DEFAULT_MSK_LOOKUP_AGAIN_AFTER.as_secs()
}

/// Largest `missing_topic_grace_seconds` (a week).
const MAX_MISSING_TOPIC_GRACE_SECONDS: u64 = 7 * 24 * 3600;

/// One access key. Exactly one of the three secret sources must be given.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyConfig {
    /// The access key id clients sign with.
    pub access_key_id: String,
    /// The secret key inline (prefer the `_env` or `_file` forms, which keep it out of the file).
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Name of an environment variable holding the secret key.
    #[serde(default)]
    pub secret_access_key_env: Option<String>,
    /// A file holding the secret key (surrounding whitespace is ignored).
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
}

impl fmt::Debug for AccessKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKeyConfig")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key_env", &self.secret_access_key_env)
            .field("secret_access_key_file", &self.secret_access_key_file)
            .finish_non_exhaustive()
    }
}

/// Why the configuration cannot be used. Messages never contain secret values.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a valid configuration.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An access key is misconfigured.
    #[error("access key {access_key_id:?}: {message}")]
    AccessKey {
        /// The key id.
        access_key_id: String,
        /// What is wrong.
        message: String,
    },
    /// `SLUICE_ACCESS_KEYS` is malformed.
    #[error(
        "SLUICE_ACCESS_KEYS must be a comma-separated list of ACCESS_KEY_ID:SECRET_ACCESS_KEY"
    )]
    EnvKeys,
}

impl ConfigError {
    /// Configuration errors are the operator's to fix.
    pub fn is_user_error(&self) -> bool {
        true
    }

    /// Retrying with the same configuration cannot help.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

impl ServeConfig {
    /// Read a configuration file: JSON for `.json`, TOML otherwise.
    pub fn load(path: &Path) -> Result<ServeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        };
        let config: ServeConfig = if path.extension().and_then(|e| e.to_str()) == Some("json") {
            serde_json::from_str(&text).map_err(|e| {
                invalid(format!(
                    "{} at line {} column {}",
                    without_values(&e.to_string()),
                    e.line(),
                    e.column()
                ))
            })?
        } else {
            toml::from_str(&text).map_err(|e| invalid(toml_error_message(&text, &e)))?
        };
        config.validate().map_err(invalid)?;
        Ok(config)
    }

    /// Pure checks of the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.account.len() != 12 || !self.account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("account must be 12 digits, not {:?}", self.account));
        }
        if self.region.is_empty()
            || !self
                .region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(format!(
                "region must look like us-east-1, not {:?}",
                self.region
            ));
        }
        if self.max_pipes == 0 {
            return Err("max_pipes must be at least 1".into());
        }
        if self.max_clock_skew_seconds == 0 {
            return Err("max_clock_skew_seconds must be positive".into());
        }
        if self.missing_topic_grace_seconds > MAX_MISSING_TOPIC_GRACE_SECONDS {
            return Err(format!(
                "missing_topic_grace_seconds must be at most {MAX_MISSING_TOPIC_GRACE_SECONDS} (a week)"
            ));
        }
        if !(1..=MAX_MISSING_TOPIC_GRACE_SECONDS).contains(&self.msk_lookup_again_after_seconds) {
            return Err(format!(
                "msk_lookup_again_after_seconds must be between 1 and {MAX_MISSING_TOPIC_GRACE_SECONDS} (a week)"
            ));
        }
        self.secrets.validate()?;
        self.store.validate()?;
        self.listener.validate()?;
        self.source.validate()?;
        Ok(())
    }

    /// How long a pipe waits for its source topic to exist.
    pub fn missing_topic_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.missing_topic_grace_seconds)
    }

    /// The runtime options this file sets (the rest at their defaults).
    pub fn runtime_options(&self) -> crate::runtime::RuntimeOptions {
        crate::runtime::RuntimeOptions {
            shutdown_timeout: std::time::Duration::from_secs(self.shutdown_timeout_seconds),
            missing_topic_grace: self.missing_topic_grace(),
            msk_lookup_again_after: std::time::Duration::from_secs(
                self.msk_lookup_again_after_seconds,
            ),
            librdkafka_options: self.source.options(),
            ..crate::runtime::RuntimeOptions::default()
        }
    }

    /// Resolve every access key: the file's, then `env_keys` (the value of `SLUICE_ACCESS_KEYS`).
    /// `getenv` reads environment variables (a parameter so tests need not touch the process's).
    pub fn access_keys(
        &self,
        env_keys: Option<&str>,
        getenv: impl Fn(&str) -> Option<String>,
    ) -> Result<BTreeMap<String, Secret>, ConfigError> {
        let mut out = BTreeMap::new();
        for k in &self.access_keys {
            let err = |message: &str| ConfigError::AccessKey {
                access_key_id: k.access_key_id.clone(),
                message: message.to_string(),
            };
            if k.access_key_id.is_empty() {
                return Err(err("access_key_id must not be empty"));
            }
            let given = [
                k.secret_access_key.is_some(),
                k.secret_access_key_env.is_some(),
                k.secret_access_key_file.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if given != 1 {
                return Err(err(
                    "give exactly one of secret_access_key, secret_access_key_env, secret_access_key_file",
                ));
            }
            let secret = if let Some(s) = &k.secret_access_key {
                s.clone()
            } else if let Some(var) = &k.secret_access_key_env {
                getenv(var).ok_or_else(|| err(&format!("environment variable {var} is not set")))?
            } else if let Some(file) = &k.secret_access_key_file {
                std::fs::read_to_string(file)
                    .map_err(|e| err(&format!("cannot read {}: {e}", file.display())))?
                    .trim()
                    .to_string()
            } else {
                unreachable!("exactly one source was checked above")
            };
            if secret.is_empty() {
                return Err(err("the secret access key is empty"));
            }
            out.insert(k.access_key_id.clone(), Secret(secret));
        }
        if let Some(env) = env_keys.filter(|s| !s.trim().is_empty()) {
            for pair in env.split(',') {
                let (id, secret) = pair.trim().split_once(':').ok_or(ConfigError::EnvKeys)?;
                if id.is_empty() || secret.is_empty() {
                    return Err(ConfigError::EnvKeys);
                }
                out.insert(id.to_string(), Secret(secret.to_string()));
            }
        }
        Ok(out)
    }
}

/// A TOML error as its message and position only: toml's own `Display` quotes the offending
/// line, which may hold a secret key.
fn toml_error_message(text: &str, e: &toml::de::Error) -> String {
    let message = without_values(e.message().trim_end());
    let Some(span) = e.span() else {
        return message;
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("{message} at line {line} column {column}")
}

/// A serde message without the value it found (`invalid type: string "s3cr3t", expected u64`
/// becomes `invalid type: string, expected u64`): the value may be a secret in the wrong field.
fn without_values(message: &str) -> String {
    for head in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(head) {
            let kind = rest.split([' ', ',']).next().unwrap_or("");
            let expected = rest.find(", expected ").map_or("", |i| &rest[i..]);
            let expected = expected.split(" at line ").next().unwrap_or("");
            return format!("{head}{kind}{expected}");
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_toml_error_quoted_the_line_with_a_secret_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(
            &path,
            "region = \"eu-west-1\"\n\n[[access_keys]]\naccess_key_id = \"A1\"\n  secret_acess_key = \"wJalrXUtnFEMI-s3cr3t\"\n",
        )
        .unwrap();
        let err = ServeConfig::load(&path).unwrap_err().to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(err.contains("unknown field `secret_acess_key`"), "{err}");
        assert!(err.contains("line 5 column 3"), "{err}");
        // A syntax error on the secret's own line.
        std::fs::write(
            &path,
            "[[access_keys]]\naccess_key_id = \"A1\"\nsecret_access_key = wJalrXUtnFEMI-s3cr3t\n",
        )
        .unwrap();
        let err = ServeConfig::load(&path).unwrap_err().to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(err.contains("line 3 column 21"), "{err}");
    }

    #[test]
    fn regression_config_type_errors_quoted_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, "max_clock_skew_seconds = \"wJalr-s3cr3t\"\n").unwrap();
        let err = ServeConfig::load(&path).unwrap_err().to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(err.contains("invalid type: string, expected u64"), "{err}");
        assert!(err.contains("line 1 column 26"), "{err}");
        let path = dir.path().join("sluice.json");
        std::fs::write(&path, "{\n \"max_clock_skew_seconds\": \"wJalr-s3cr3t\"}").unwrap();
        let err = ServeConfig::load(&path).unwrap_err().to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(
            err.contains("invalid type: string, expected u64 at line 2"),
            "{err}"
        );
    }

    #[test]
    fn toml_with_keys_from_every_source() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("k");
        std::fs::write(&key_file, "from-file\n").unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(
            &path,
            format!(
                r#"
region = "eu-west-1"
account = "123456789012"
[[access_keys]]
access_key_id = "A1"
secret_access_key = "inline"
[[access_keys]]
access_key_id = "A2"
secret_access_key_env = "MY_SECRET"
[[access_keys]]
access_key_id = "A3"
secret_access_key_file = "{}"
"#,
                key_file.display()
            ),
        )
        .unwrap();
        let c = ServeConfig::load(&path).unwrap();
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.max_clock_skew_seconds, 900);
        assert_eq!(c.missing_topic_grace(), std::time::Duration::from_secs(60));
        let keys = c
            .access_keys(Some("A4:env-list"), |v| {
                (v == "MY_SECRET").then(|| "from-env".to_string())
            })
            .unwrap();
        let got: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        assert_eq!(
            got,
            vec![
                ("A1", "inline"),
                ("A2", "from-env"),
                ("A3", "from-file"),
                ("A4", "env-list")
            ]
        );
        assert!(!format!("{keys:?}").contains("inline"));
        assert!(!format!("{c:?}").contains("inline"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.json");
        std::fs::write(&path, r#"{"regoin":"x"}"#).unwrap();
        assert!(ServeConfig::load(&path)
            .unwrap_err()
            .to_string()
            .contains("unknown field"));
        std::fs::write(&path, r#"{"account":"12"}"#).unwrap();
        assert!(ServeConfig::load(&path).is_err());
        std::fs::write(&path, r#"{"missing_topic_grace_seconds":5}"#).unwrap();
        assert_eq!(
            ServeConfig::load(&path)
                .unwrap()
                .missing_topic_grace_seconds,
            5
        );
        std::fs::write(&path, r#"{"missing_topic_grace_seconds":-1}"#).unwrap();
        assert!(ServeConfig::load(&path).is_err());
        std::fs::write(&path, r#"{"missing_topic_grace_seconds":99999999}"#).unwrap();
        assert!(ServeConfig::load(&path)
            .unwrap_err()
            .to_string()
            .contains("missing_topic_grace_seconds"));
        std::fs::write(&path, r#"{"store":{"url":"postgres://u:pw@db/x"}}"#).unwrap();
        let err = ServeConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("store.url must not contain a password"),
            "{err}"
        );
        assert!(!err.contains("pw@"), "{err}");
        std::fs::write(
            &path,
            r#"{"store":{"url":"postgres://u@db/x","pasword":"env:P"}}"#,
        )
        .unwrap();
        assert!(ServeConfig::load(&path)
            .unwrap_err()
            .to_string()
            .contains("unknown field"));
        std::fs::write(&path, r#"{"missing_topic_grace_secs":5}"#).unwrap();
        assert!(ServeConfig::load(&path)
            .unwrap_err()
            .to_string()
            .contains("unknown field"));
        assert!(matches!(
            ServeConfig::default().access_keys(Some("nocolon"), |_| None),
            Err(ConfigError::EnvKeys)
        ));
    }
}
