//! How a pipe authenticates to Kafka, and with which transport: chosen once, at validation, from
//! the definition ([`validate_security`]); made concrete when the pipe starts by fetching its
//! secrets ([`resolve`]) into librdkafka settings ([`ResolvedSecurity::apply`]).
//!
//! Broker choice follows `kafka-source.md`, strongest first. A secret given picks its method:
//! `ClientCertificateTlsAuth` (mTLS), `SaslScram512Auth` / `SaslScram256Auth` (SCRAM), `BasicAuth`
//! (SASL/PLAIN). Without a secret, `SluiceParameters.KafkaAuthentication` says what the cluster has,
//! defaulting to the strongest: MSK IAM for an MSK source over TLS, none otherwise. TLS is on for
//! MSK, for any secret and with `ServerRootCaCertificate`, unless `SluiceParameters.KafkaTls` says
//! otherwise. Exactly one `security.protocol` and mechanism is configured, so librdkafka never tries
//! a weaker one: when the chosen method fails, the pipe fails and says why. TLS always verifies the
//! server certificate (given CA or system roots) and the host name.
//!
//! The client settings themselves (`security.protocol`, SASL, CA, mTLS identity) are made by the
//! neutral [`crate::kafka`] module, which the Kafka target uses too; this module owns what the
//! pipe definition says and how its refusals are worded in the definition's terms ([`explain`]).

use std::sync::Arc;

use crate::kafka::iam::IamTokenSource;
use crate::kafka::{tls, Refusal, ResolvedSecurity, SaslMechanism, ScramMechanism, SettingNames};
use crate::model::definition::{KafkaParameters, SluiceParameters};
use crate::model::FieldError;
use crate::secrets::{self, json, Secret, SecretAllowlist, SecretError, SecretRef, SecretResolver};

/// The authentication method of a pipe's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// No authentication.
    None,
    /// MSK IAM: SASL/OAUTHBEARER with SigV4-signed tokens for the region.
    Iam {
        /// The cluster's region (from its ARN).
        region: String,
    },
    /// SASL/PLAIN (`BasicAuth`).
    Plain(SecretRef),
    /// SASL/SCRAM.
    Scram {
        /// SHA-256 or SHA-512.
        mechanism: ScramMechanism,
        /// The `{"username","password"}` secret.
        secret: SecretRef,
    },
    /// mTLS (`ClientCertificateTlsAuth`).
    MutualTls(SecretRef),
}

/// The validated security of a Kafka source (references only; no secret values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSecurity {
    /// How to authenticate.
    pub method: AuthMethod,
    /// TLS on the connection.
    pub tls: bool,
    /// The CA that signs the brokers' certificates, when not a public one.
    pub server_ca: Option<SecretRef>,
    /// Path of the source parameter block, to name fields in errors.
    pub params_path: String,
    /// Explicit Secrets Manager endpoint (`SluiceParameters.SecretsManagerEndpoint`).
    pub secrets_manager_endpoint: Option<String>,
    /// `secrets.allowed_file_dirs` of the serve config: `file://` secrets are read only when their
    /// real path (symbolic links followed) lies inside one (empty: any file).
    pub allowed_file_dirs: Vec<std::path::PathBuf>,
}

impl Default for KafkaSecurity {
    fn default() -> Self {
        Self {
            method: AuthMethod::None,
            tls: false,
            server_ca: None,
            params_path: "SourceParameters.SelfManagedKafkaParameters".into(),
            secrets_manager_endpoint: None,
            allowed_file_dirs: Vec::new(),
        }
    }
}

impl KafkaSecurity {
    /// librdkafka's `security.protocol`.
    pub fn security_protocol(&self) -> &'static str {
        crate::kafka::security_protocol(self.uses_sasl(), self.tls)
    }

    fn uses_sasl(&self) -> bool {
        matches!(
            self.method,
            AuthMethod::Plain(_) | AuthMethod::Scram { .. } | AuthMethod::Iam { .. }
        )
    }

    /// A short description for logs ("SCRAM-SHA-512 over TLS").
    pub fn describe(&self) -> String {
        let method = match &self.method {
            AuthMethod::None => "no authentication",
            AuthMethod::Iam { .. } => "MSK IAM (OAUTHBEARER)",
            AuthMethod::Plain(_) => "SASL/PLAIN",
            AuthMethod::Scram { mechanism, .. } => mechanism.name(),
            AuthMethod::MutualTls(_) => "mTLS client certificate",
        };
        let transport = if self.tls { "TLS" } else { "plaintext" };
        format!("{method} over {transport}")
    }

    /// The credential field that names the secret of the chosen method.
    fn credential_field(&self, kind: &str) -> String {
        format!("{}.Credentials.{kind}", self.params_path)
    }
}

/// A secret reference of the definition, parsed and checked against the allowlist.
fn allowed_reference(text: &str, allow: &SecretAllowlist) -> Result<SecretRef, String> {
    let reference = SecretRef::parse(text)?;
    allow.check(&reference)?;
    Ok(reference)
}

/// Decide a source's security from its definition, adding field errors to `errs`. `msk_region` is
/// the region of an MSK cluster ARN (None for self-managed sources); `looked_up` says that the
/// cluster's brokers are looked up by ARN, which then decides the method of a source without a
/// secret ([`super::msk`]). Assumes `Credentials` was already checked for count and kind names;
/// unknown kinds are ignored here.
pub(crate) fn validate_security(
    kp: &KafkaParameters,
    sluice: Option<&SluiceParameters>,
    msk_region: Option<&str>,
    looked_up: bool,
    allow: &SecretAllowlist,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> KafkaSecurity {
    let msk = msk_region.is_some();
    let credentials = kp.credentials.clone().unwrap_or_default();
    let mut reference = |kind: &str, text: &str| match allowed_reference(text, allow) {
        Ok(r) => Some(r),
        Err(problem) => {
            errs.push(FieldError::new(
                format!("{path}.Credentials.{kind}"),
                problem,
            ));
            None
        }
    };
    let mut from_secret = None;
    for (kind, text) in &credentials {
        let m = match kind.as_str() {
            "BasicAuth" => reference(kind, text).map(AuthMethod::Plain),
            "SaslScram512Auth" => reference(kind, text).map(|secret| AuthMethod::Scram {
                mechanism: ScramMechanism::Sha512,
                secret,
            }),
            "SaslScram256Auth" => reference(kind, text).map(|secret| AuthMethod::Scram {
                mechanism: ScramMechanism::Sha256,
                secret,
            }),
            "ClientCertificateTlsAuth" => reference(kind, text).map(AuthMethod::MutualTls),
            _ => None,
        };
        if from_secret.is_none() {
            from_secret = m;
        }
    }
    let server_ca =
        kp.server_root_ca_certificate.as_deref().and_then(|text| {
            match allowed_reference(text, allow) {
                Ok(r) => Some(r),
                Err(problem) => {
                    errs.push(FieldError::new(
                        format!("{path}.ServerRootCaCertificate"),
                        problem,
                    ));
                    None
                }
            }
        });

    let sp = sluice.cloned().unwrap_or_default();
    let has_secret = !credentials.is_empty();
    if let Some(ep) = &sp.secrets_manager_endpoint {
        if !(ep.starts_with("http://") || ep.starts_with("https://"))
            || url::Url::parse(ep).is_err()
        {
            errs.push(FieldError::new(
                "SluiceParameters.SecretsManagerEndpoint",
                "must be an http:// or https:// URL",
            ));
        } else if let Err(e) = allow.check_endpoint(ep) {
            errs.push(FieldError::new(
                "SluiceParameters.SecretsManagerEndpoint",
                e,
            ));
        }
    }
    if looked_up {
        return looked_up_security(from_secret, &sp, allow, path, errs);
    }
    let tls = sp
        .kafka_tls
        .unwrap_or(msk || has_secret || kp.server_root_ca_certificate.is_some());
    let explicit_auth = match sp.kafka_authentication.as_deref() {
        None => None,
        Some(a @ ("IAM" | "NONE")) => Some(a),
        Some(_) => {
            errs.push(FieldError::new(
                "SluiceParameters.KafkaAuthentication",
                "must be IAM or NONE",
            ));
            None
        }
    };
    if has_secret && explicit_auth.is_some() {
        errs.push(FieldError::new(
            "SluiceParameters.KafkaAuthentication",
            "applies only to a source without Credentials (the secret given picks its method)",
        ));
    }
    let method = match (from_secret, explicit_auth, msk_region) {
        (Some(m), _, _) => m,
        (None, Some("IAM"), Some(region)) => AuthMethod::Iam {
            region: region.to_string(),
        },
        (None, Some("IAM"), None) => {
            errs.push(FieldError::new(
                "SluiceParameters.KafkaAuthentication",
                "IAM authentication needs an MSK cluster ARN as Source (its region signs the token)",
            ));
            AuthMethod::None
        }
        (None, None, Some(region)) if tls && !has_secret => AuthMethod::Iam {
            region: region.to_string(),
        },
        _ => AuthMethod::None,
    };
    if !tls {
        let why = if matches!(method, AuthMethod::MutualTls(_)) {
            Some("ClientCertificateTlsAuth needs TLS")
        } else if kp.server_root_ca_certificate.is_some() {
            Some("ServerRootCaCertificate needs TLS")
        } else if matches!(method, AuthMethod::Iam { .. }) {
            Some("IAM authentication needs TLS (set KafkaAuthentication NONE for a plaintext MSK listener)")
        } else {
            None
        };
        if let Some(why) = why {
            errs.push(FieldError::new(
                "SluiceParameters.KafkaTls",
                format!("cannot be false: {why}"),
            ));
        }
    }
    KafkaSecurity {
        method,
        tls,
        server_ca,
        params_path: path.to_string(),
        secrets_manager_endpoint: sp.secrets_manager_endpoint.clone(),
        allowed_file_dirs: allow.allowed_file_dirs.clone(),
    }
}

/// The security of an MSK source whose brokers are looked up: the secret's method over TLS, or,
/// without a secret, none yet (the lookup picks the cluster's strongest listener). The transport
/// settings of explicit brokers do not apply.
fn looked_up_security(
    from_secret: Option<AuthMethod>,
    sp: &SluiceParameters,
    allow: &SecretAllowlist,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> KafkaSecurity {
    let why = "applies only with SluiceParameters.BootstrapServers: the brokers of an MSK cluster looked up by ARN are reached through the listener of the strongest method it has";
    if sp.kafka_tls.is_some() {
        errs.push(FieldError::new("SluiceParameters.KafkaTls", why));
    }
    if sp.kafka_authentication.is_some() {
        errs.push(FieldError::new("SluiceParameters.KafkaAuthentication", why));
    }
    KafkaSecurity {
        method: from_secret.unwrap_or(AuthMethod::None),
        tls: true,
        server_ca: None,
        params_path: path.to_string(),
        secrets_manager_endpoint: sp.secrets_manager_endpoint.clone(),
        allowed_file_dirs: allow.allowed_file_dirs.clone(),
    }
}

/// Why a pipe's security could not be set up; names the field and the problem, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A secret could not be fetched or has the wrong shape.
    #[error("{field}: {source}")]
    Secret {
        /// The definition field holding the reference.
        field: String,
        /// What went wrong.
        source: SecretError,
    },
    /// TLS material in a secret is unusable (bad PEM, wrong key password, key of another cert).
    #[error("{field}: secret {reference}: {problem}")]
    Tls {
        /// The definition field holding the reference.
        field: String,
        /// The reference.
        reference: String,
        /// What is wrong.
        problem: String,
    },
    /// MSK IAM could not be set up.
    #[error("MSK IAM authentication: {0}")]
    Iam(String),
}

impl AuthError {
    /// Whether trying again later may help (Secrets Manager unreachable).
    pub fn is_retryable(&self) -> bool {
        matches!(self, AuthError::Secret { source, .. } if source.is_retryable())
    }

    /// Whether the user must change something.
    pub fn is_user_error(&self) -> bool {
        !self.is_retryable()
    }
}

/// Fetch the secrets of `sec` and turn them into librdkafka settings. Called when a pipe starts,
/// on a tokio runtime (whose handle the IAM token source keeps).
pub async fn resolve(sec: &KafkaSecurity) -> Result<ResolvedSecurity, AuthError> {
    let resolver = SecretResolver::new()
        .with_endpoint(sec.secrets_manager_endpoint.clone())
        .with_file_dirs(sec.allowed_file_dirs.clone());
    let mut out = ResolvedSecurity::new(sec.uses_sasl(), sec.tls, sec.describe());
    if sec.tls {
        if let Some(r) = &sec.server_ca {
            let field = format!("{}.ServerRootCaCertificate", sec.params_path);
            let s = fetch(&resolver, r, &field).await?;
            let pem = json::ca_certificate(r, &s).map_err(|source| AuthError::Secret {
                field: field.clone(),
                source,
            })?;
            out.set_server_ca(&pem).map_err(|e| AuthError::Tls {
                field,
                reference: r.to_string(),
                problem: e.0,
            })?;
        }
    }
    match &sec.method {
        AuthMethod::None => {}
        AuthMethod::Plain(r) | AuthMethod::Scram { secret: r, .. } => {
            let (kind, mechanism) = match &sec.method {
                AuthMethod::Scram { mechanism, .. } => (
                    match mechanism {
                        ScramMechanism::Sha256 => "SaslScram256Auth",
                        ScramMechanism::Sha512 => "SaslScram512Auth",
                    },
                    SaslMechanism::Scram(*mechanism),
                ),
                _ => ("BasicAuth", SaslMechanism::Plain),
            };
            let field = sec.credential_field(kind);
            let s = fetch(&resolver, r, &field).await?;
            let up =
                json::user_password(r, &s).map_err(|source| AuthError::Secret { field, source })?;
            out.set_sasl(mechanism, up.username, up.password);
        }
        AuthMethod::MutualTls(r) => {
            let field = sec.credential_field("ClientCertificateTlsAuth");
            let s = fetch(&resolver, r, &field).await?;
            let c = json::client_certificate(r, &s).map_err(|source| AuthError::Secret {
                field: field.clone(),
                source,
            })?;
            out.set_client_identity(&c, &tls::SECRET_FIELDS)
                .map_err(|e| AuthError::Tls {
                    field,
                    reference: r.to_string(),
                    problem: e.0,
                })?;
        }
        AuthMethod::Iam { region } => {
            let sdk = secrets::aws::sdk_config(region).await;
            let Some(credentials) = sdk.credentials_provider() else {
                return Err(AuthError::Iam("no AWS credentials provider".into()));
            };
            out.set_iam(Arc::new(IamTokenSource::new(
                region,
                credentials,
                tokio::runtime::Handle::current(),
            )));
        }
    }
    Ok(out)
}

async fn fetch(resolver: &SecretResolver, r: &SecretRef, field: &str) -> Result<Secret, AuthError> {
    resolver.fetch(r).await.map_err(|source| AuthError::Secret {
        field: field.to_string(),
        source,
    })
}

/// What a pipe definition calls the source's security settings, for refusal hints.
const SETTING_NAMES: SettingNames = SettingNames {
    host_name: "its host name",
    ca: "ServerRootCaCertificate",
    client_certificate: "Credentials.ClientCertificateTlsAuth",
    credentials: "user name or password",
    mechanism: "the chosen SASL mechanism",
};

/// Say what a fatal authentication or TLS error means for the user, in the terms of the pipe
/// definition, when its text allows.
pub fn explain(reason: &str) -> Option<String> {
    Refusal::classify(reason).map(|r| r.hint(&SETTING_NAMES))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::redact_error;
    use rdkafka::config::ClientConfig;

    fn kp(creds: &[(&str, &str)], ca: Option<&str>) -> KafkaParameters {
        KafkaParameters {
            topic_name: Some("t".into()),
            credentials: (!creds.is_empty()).then(|| {
                creds
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            server_root_ca_certificate: ca.map(str::to_string),
            ..KafkaParameters::default()
        }
    }

    fn sec(
        kp: &KafkaParameters,
        sp: Option<SluiceParameters>,
        msk: Option<&str>,
    ) -> (KafkaSecurity, Vec<FieldError>) {
        let mut errs = Vec::new();
        let s = validate_security(
            kp,
            sp.as_ref(),
            msk,
            false,
            &SecretAllowlist::default(),
            "P",
            &mut errs,
        );
        (s, errs)
    }

    #[test]
    fn the_secret_picks_the_method_and_tls_is_the_default_with_one() {
        let (s, e) = sec(&kp(&[("SaslScram512Auth", "env:PW")], None), None, None);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(s.security_protocol(), "SASL_SSL");
        assert_eq!(s.describe(), "SCRAM-SHA-512 over TLS");
        let (s, _) = sec(
            &kp(&[("ClientCertificateTlsAuth", "env:C")], None),
            None,
            None,
        );
        assert_eq!(s.security_protocol(), "SSL");
        assert!(matches!(s.method, AuthMethod::MutualTls(_)));
        let (s, _) = sec(&kp(&[("BasicAuth", "env:B")], None), None, None);
        assert_eq!(s.security_protocol(), "SASL_SSL");
    }

    #[test]
    fn without_a_secret_self_managed_is_plaintext_unless_a_ca_is_given() {
        let (s, _) = sec(&kp(&[], None), None, None);
        assert_eq!(s.security_protocol(), "PLAINTEXT");
        let (s, _) = sec(&kp(&[], Some("file:///ca.pem")), None, None);
        assert_eq!(s.security_protocol(), "SSL");
        let tls = SluiceParameters {
            kafka_tls: Some(true),
            ..Default::default()
        };
        let (s, _) = sec(&kp(&[], None), Some(tls), None);
        assert_eq!(s.security_protocol(), "SSL");
    }

    #[test]
    fn msk_without_a_secret_is_iam_over_tls_unless_told_otherwise() {
        let (s, e) = sec(&kp(&[], None), None, Some("eu-west-1"));
        assert!(e.is_empty());
        assert_eq!(
            s.method,
            AuthMethod::Iam {
                region: "eu-west-1".into()
            }
        );
        assert_eq!(s.security_protocol(), "SASL_SSL");
        let none = SluiceParameters {
            kafka_authentication: Some("NONE".into()),
            ..Default::default()
        };
        let (s, _) = sec(&kp(&[], None), Some(none), Some("eu-west-1"));
        assert_eq!(s.security_protocol(), "SSL");
        let plain = SluiceParameters {
            kafka_tls: Some(false),
            ..Default::default()
        };
        let (s, e) = sec(&kp(&[], None), Some(plain), Some("eu-west-1"));
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(s.security_protocol(), "PLAINTEXT");
    }

    #[test]
    fn contradictions_are_field_errors() {
        let plain = || SluiceParameters {
            kafka_tls: Some(false),
            ..Default::default()
        };
        let (_, e) = sec(
            &kp(&[("ClientCertificateTlsAuth", "env:C")], None),
            Some(plain()),
            None,
        );
        assert_eq!(e[0].name, "SluiceParameters.KafkaTls");
        let (_, e) = sec(&kp(&[], Some("env:CA")), Some(plain()), None);
        assert_eq!(e[0].name, "SluiceParameters.KafkaTls");
        let iam = SluiceParameters {
            kafka_authentication: Some("IAM".into()),
            ..Default::default()
        };
        let (_, e) = sec(&kp(&[], None), Some(iam.clone()), None);
        assert_eq!(e[0].name, "SluiceParameters.KafkaAuthentication");
        let (_, e) = sec(
            &kp(&[("SaslScram512Auth", "env:PW")], None),
            Some(iam),
            None,
        );
        assert_eq!(e[0].name, "SluiceParameters.KafkaAuthentication");
        let (_, e) = sec(&kp(&[("SaslScram512Auth", "hunter2")], None), None, None);
        assert_eq!(e[0].name, "P.Credentials.SaslScram512Auth");
        assert!(!e[0].message.contains("hunter2"));
        let (_, e) = sec(&kp(&[], Some("-----BEGIN CERTIFICATE-----")), None, None);
        assert_eq!(e[0].name, "P.ServerRootCaCertificate");
    }

    #[tokio::test]
    async fn sasl_plain_settings_come_from_the_secret() {
        // No broker here offers SASL/PLAIN; this checks the client configuration it would get.
        let name = format!("SLUICE_BASIC_{}", std::process::id());
        std::env::set_var(&name, r#"{"username":"bob","password":"pl41n-pw"}"#);
        let (s, e) = sec(
            &kp(&[("BasicAuth", &format!("env:{name}"))], None),
            None,
            None,
        );
        assert!(e.is_empty());
        let r = resolve(&s).await.unwrap();
        std::env::remove_var(&name);
        assert_eq!(r.setting("security.protocol").unwrap().expose(), "SASL_SSL");
        assert_eq!(r.setting("sasl.mechanism").unwrap().expose(), "PLAIN");
        assert_eq!(r.setting("sasl.username").unwrap().expose(), "bob");
        assert_eq!(r.setting("sasl.password").unwrap().expose(), "pl41n-pw");
        assert_eq!(
            r.setting("ssl.endpoint.identification.algorithm")
                .unwrap()
                .expose(),
            "https"
        );
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("pl41n-pw") && !dbg.contains("bob"), "{dbg}");
        // A client really accepts these settings.
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", "127.0.0.1:1");
        r.apply(&mut cfg);
        let _consumer: rdkafka::consumer::BaseConsumer =
            cfg.create().map_err(redact_error).unwrap();
    }

    #[tokio::test]
    async fn a_malformed_secret_names_its_field() {
        let name = format!("SLUICE_SCRAM_{}", std::process::id());
        std::env::set_var(&name, r#"{"user":"bob","password":"s3cr3t-value"}"#);
        let (s, _) = sec(
            &kp(&[("SaslScram256Auth", &format!("env:{name}"))], None),
            None,
            None,
        );
        let e = resolve(&s).await.unwrap_err().to_string();
        std::env::remove_var(&name);
        assert_eq!(
            e,
            format!(
                "P.Credentials.SaslScram256Auth: secret env:{name}: field `username` is missing"
            )
        );
    }

    #[test]
    fn explanations_name_the_cause() {
        assert!(explain("SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified").unwrap().contains("unknown CA"));
        assert!(explain("SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512").unwrap().contains("wrong user name or password"));
        assert!(
            explain("SSL handshake failed: tlsv13 alert certificate required")
                .unwrap()
                .contains("client certificate")
        );
        assert_eq!(explain("Connection refused"), None);
        assert!(
            explain("SSL handshake failed: tlsv13 alert certificate required")
                .unwrap()
                .contains("Credentials.ClientCertificateTlsAuth")
        );
    }
}
