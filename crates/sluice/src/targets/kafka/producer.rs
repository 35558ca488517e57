//! The target's idempotent producer: a cluster's secrets fetched into client settings
//! ([`resolve`], with the neutral [`crate::kafka`] settings and key handling), the librdkafka
//! callbacks that log and watch for refusals ([`ProducerCallbacks`], [`ConnectionHealth`]), and
//! the connection check of a secured cluster when the pipe starts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;

use super::cluster::ClusterSecurity;
use super::deliver::KafkaTarget;
use super::KafkaTargetConfig;
use crate::kafka::iam::{oauth_token, IamTokenSource};
use crate::kafka::tls::IdentityFields;
use crate::kafka::{log_to_tracing, redact_error, Refusal, ResolvedSecurity, SettingNames};
use crate::secrets::{json, Secret, SecretError, SecretRef, SecretResolver};
use crate::targets::TargetError;

/// How long one record may wait for its acknowledgement (librdkafka retries within it).
pub(super) const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the start of a pipe waits for a secured cluster to accept (or refuse) the connection.
const CONNECT_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The target's producer.
pub(super) type TargetProducer = FutureProducer<ProducerCallbacks>;

impl KafkaTargetConfig {
    /// Create the producer: fetch the cluster's secrets into client settings, and check that a
    /// secured cluster accepts the connection (a refusal is an error only the user can fix; an
    /// unreachable cluster is not an error here, deliveries retry).
    pub async fn build(&self) -> Result<KafkaTarget, TargetError> {
        let security = match &self.cluster {
            Some(c) if c.is_secured() => Some(resolve(c).await?),
            _ => None,
        };
        self.build_with(security).await
    }

    /// [`Self::build`] with security already resolved (a producer to the source's cluster, which
    /// uses the source's settings).
    pub async fn build_with(
        &self,
        security: Option<ResolvedSecurity>,
    ) -> Result<KafkaTarget, TargetError> {
        let health = Arc::new(ConnectionHealth::default());
        let context = ProducerCallbacks {
            service: self.service(),
            health: health.clone(),
            oauth: security.as_ref().and_then(|s| s.oauth.clone()),
        };
        let producer: TargetProducer = self
            .client_config(security.as_ref())
            .create_with_context(context)
            .map_err(redact_error)
            .map_err(|e| TargetError::Request(format!("cannot create the Kafka producer: {e}")))?;
        if let Some(s) = &security {
            tracing::info!(target_cluster = %self.service(), security = %s.description, "connecting to the target Kafka cluster");
            self.check_connection(&producer, &health).await?;
        }
        Ok(KafkaTarget::new(self.clone(), producer, health))
    }

    /// The producer's librdkafka settings (dropped once the producer exists: they hold secrets).
    fn client_config(&self, security: Option<&ResolvedSecurity>) -> ClientConfig {
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
        if let Some(s) = security {
            s.apply(&mut cfg);
        }
        cfg
    }

    /// Wait until the cluster answered a metadata request, refused us, or is found unreachable.
    async fn check_connection(
        &self,
        producer: &TargetProducer,
        health: &ConnectionHealth,
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
            if let Some(refusal) = health.refusal() {
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
            if health.all_down.load(Ordering::Acquire) {
                tracing::warn!(target_cluster = %self.service(), "the target Kafka cluster is not reachable yet; deliveries will retry");
                return Ok(());
            }
            tokio::select! {
                r = &mut metadata => answered = Some(r),
                _ = health.changed.notified() => {}
            }
        }
    }

    /// The error of a TLS or SASL refusal: only the user can fix it.
    pub(super) fn refused(&self, refusal: String) -> TargetError {
        TargetError::Service {
            service: format!("target {}", self.service()),
            message: refusal,
            retryable: false,
            throttled: false,
        }
    }
}

/// Fetch a cluster's secrets into librdkafka settings.
pub(super) async fn resolve(c: &ClusterSecurity) -> Result<ResolvedSecurity, TargetError> {
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
            out.set_client_identity(&identity, &IDENTITY_FIELDS)
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

/// How TLS errors name the parts of a cluster's client identity.
const IDENTITY_FIELDS: IdentityFields<'static> = IdentityFields {
    certificate: "`tls.client_certificate`",
    key: "`tls.client_key`",
    key_password: "`tls.client_key_password`",
};

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

/// What the producer's callbacks saw of the connection to the cluster.
#[derive(Default)]
pub(super) struct ConnectionHealth {
    /// The last TLS or SASL refusal, explained; cleared by a delivered batch.
    refusal: Mutex<Option<String>>,
    /// librdkafka said every broker is down.
    all_down: AtomicBool,
    /// Wakes the connection check at start.
    changed: tokio::sync::Notify,
}

impl ConnectionHealth {
    /// The last refusal, explained, unless a batch was delivered since.
    pub(super) fn refusal(&self) -> Option<String> {
        self.lock_refusal().clone()
    }

    /// A batch was delivered: whatever refused us before no longer does.
    pub(super) fn delivered(&self) {
        *self.lock_refusal() = None;
    }

    fn lock_refusal(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.refusal.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The producer's librdkafka callbacks: logs through `tracing`, refusals explained in the terms
/// of the `[targets]` configuration.
pub(super) struct ProducerCallbacks {
    service: String,
    health: Arc<ConnectionHealth>,
    /// MSK IAM tokens, when the producer writes to an IAM-authenticated source cluster.
    oauth: Option<Arc<IamTokenSource>>,
}

impl ClientContext for ProducerCallbacks {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        log_to_tracing(level, fac, msg);
    }

    // Only consulted when `sasl.mechanism` is OAUTHBEARER (MSK IAM).
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        oauth_token(self.oauth.as_deref())
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match refusal(&error, reason) {
            Some(text) => {
                let mut last = self.health.lock_refusal();
                // librdkafka reconnects and is refused again; say it once per change.
                if last.as_deref() != Some(text.as_str()) {
                    tracing::error!(target_cluster = %self.service, reason = %text, "the target Kafka cluster refused the connection");
                    *last = Some(text);
                }
                drop(last);
                self.health.changed.notify_one();
            }
            None => {
                if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
                    self.health.all_down.store(true, Ordering::Release);
                    self.health.changed.notify_one();
                }
                tracing::warn!(target_cluster = %self.service, error = %error, reason, "Kafka target client error");
            }
        }
    }
}

/// What `[[targets.kafka_clusters]]` calls a cluster's security settings, for refusal hints.
const SETTING_NAMES: SettingNames = SettingNames {
    host_name: "its host name in bootstrap_servers",
    ca: "tls.ca_certificate",
    client_certificate: "tls.client_certificate and tls.client_key",
    credentials: "sasl.username or sasl.password",
    mechanism: "sasl.mechanism",
};

/// Whether a client error is one that retrying cannot heal (the errors the source treats as
/// fatal), explained in the terms of `[[targets.kafka_clusters]]`.
fn refusal(error: &KafkaError, reason: &str) -> Option<String> {
    use RDKafkaErrorCode as C;
    let hint = match Refusal::classify(reason) {
        Some(r) => r.hint(&SETTING_NAMES),
        // What librdkafka says when the broker hangs up on the mechanism (Tansu without PLAIN).
        None if reason.contains("mechanism handshake failed") => {
            Refusal::MechanismNotOffered.hint(&SETTING_NAMES)
        }
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
        }
        .to_string(),
    };
    Some(format!("{hint}; librdkafka: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::{SaslMechanism, ScramMechanism};
    use crate::targets::kafka::cluster::{ClusterSasl, ClusterTls};

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
            SaslMechanism::Scram(ScramMechanism::Sha256),
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
            cfg.create().map_err(redact_error).unwrap();

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
        let hint = |r: Refusal| r.hint(&SETTING_NAMES);
        let r = Refusal::classify("SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512").unwrap();
        assert!(hint(r).contains("sasl.password"));
        let r =
            Refusal::classify("SSL handshake failed: tlsv13 alert certificate required").unwrap();
        assert!(hint(r).contains("tls.client_certificate"));
        let r = Refusal::classify("SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified").unwrap();
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
