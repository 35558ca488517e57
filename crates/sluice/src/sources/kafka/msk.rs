//! An MSK source given by its cluster ARN alone, resolved as AWS's poller does: the MSK API's
//! `GetBootstrapBrokers` answers one broker string per listener the cluster has enabled, and
//! which listeners exist *is* the set of authentication methods active on the cluster. The
//! method then follows `kafka-source.md`, strongest first, never a weaker one ([`choose`]):
//!
//! | secret given / cluster has | broker string | method |
//! |---|---|---|
//! | `ClientCertificateTlsAuth` | `BootstrapBrokerStringTls` | mTLS |
//! | `SaslScram512Auth` | `BootstrapBrokerStringSaslScram` | SASL/SCRAM over TLS |
//! | no secret, `BootstrapBrokerStringSaslIam` present | that | MSK IAM |
//! | no secret, no IAM, `BootstrapBrokerStringTls` present | that | TLS, unauthenticated |
//! | no secret, neither | `BootstrapBrokerString` | plaintext |
//!
//! `SluiceParameters.MskBrokerAccess` picks the `Public` or `VpcConnectivity` strings instead.
//! The pure choice ([`choose`], [`resolved_source`]) is apart from the call ([`look_up`], with the
//! `aws-sdk-kafka` crate behind the `aws-msk` feature) and its retries ([`resolve`]: throttling
//! and unreachable endpoints are retried; any other AWS error fails the pipe with its code and
//! message).

use std::time::Duration;

use super::auth::AuthMethod;
use crate::kafka::names::is_host_port;
use crate::model::KafkaSourceSpec;

/// Which of the cluster's broker strings apply (`SluiceParameters.MskBrokerAccess`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MskBrokerAccess {
    /// From inside the cluster's VPC (the plain strings).
    #[default]
    Private,
    /// Public access (the `...Public...` strings).
    Public,
    /// Multi-VPC private connectivity (the `...VpcConnectivity...` strings).
    VpcConnectivity,
}

impl MskBrokerAccess {
    /// The value as written in `SluiceParameters.MskBrokerAccess`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "PRIVATE" => Some(Self::Private),
            "PUBLIC" => Some(Self::Public),
            "VPC_CONNECTIVITY" => Some(Self::VpcConnectivity),
            _ => None,
        }
    }

    /// The name as written in the definition.
    pub fn name(self) -> &'static str {
        match self {
            Self::Private => "PRIVATE",
            Self::Public => "PUBLIC",
            Self::VpcConnectivity => "VPC_CONNECTIVITY",
        }
    }

    /// The infix of the answer's field names (`BootstrapBrokerString<infix>Tls`).
    fn infix(self) -> &'static str {
        match self {
            Self::Private => "",
            Self::Public => "Public",
            Self::VpcConnectivity => "VpcConnectivity",
        }
    }
}

/// What a source given by ARN alone needs for the lookup (decided at validation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MskLookup {
    /// The cluster ARN.
    pub arn: String,
    /// Its region (signs the call).
    pub region: String,
    /// Which broker strings apply.
    pub access: MskBrokerAccess,
    /// Endpoint override from the config file (`[targets.aws]`, service `kafka`); absent, the
    /// SDK's own rules (`AWS_ENDPOINT_URL_KAFKA`, `AWS_ENDPOINT_URL`, AWS) apply.
    pub endpoint: Option<String>,
}

/// A cluster's listeners, one per authentication method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Unauthenticated plaintext (`BootstrapBrokerString`).
    Plaintext,
    /// TLS, for mTLS or unauthenticated TLS (`BootstrapBrokerStringTls`).
    Tls,
    /// SASL/SCRAM over TLS (`BootstrapBrokerStringSaslScram`).
    SaslScram,
    /// MSK IAM over TLS (`BootstrapBrokerStringSaslIam`).
    SaslIam,
}

impl Listener {
    /// The answer's field name for this listener under `access`.
    pub fn field(self, access: MskBrokerAccess) -> String {
        let suffix = match self {
            Listener::Plaintext => "",
            Listener::Tls => "Tls",
            Listener::SaslScram => "SaslScram",
            Listener::SaslIam => "SaslIam",
        };
        format!("BootstrapBrokerString{}{suffix}", access.infix())
    }
}

/// The `GetBootstrapBrokers` answer: each broker string the cluster has (absent or empty: that
/// listener is not enabled).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerStrings {
    /// `BootstrapBrokerString`.
    pub plaintext: Option<String>,
    /// `BootstrapBrokerStringTls`.
    pub tls: Option<String>,
    /// `BootstrapBrokerStringSaslScram`.
    pub sasl_scram: Option<String>,
    /// `BootstrapBrokerStringSaslIam`.
    pub sasl_iam: Option<String>,
    /// `BootstrapBrokerStringPublicTls`.
    pub public_tls: Option<String>,
    /// `BootstrapBrokerStringPublicSaslScram`.
    pub public_sasl_scram: Option<String>,
    /// `BootstrapBrokerStringPublicSaslIam`.
    pub public_sasl_iam: Option<String>,
    /// `BootstrapBrokerStringVpcConnectivityTls`.
    pub vpc_connectivity_tls: Option<String>,
    /// `BootstrapBrokerStringVpcConnectivitySaslScram`.
    pub vpc_connectivity_sasl_scram: Option<String>,
    /// `BootstrapBrokerStringVpcConnectivitySaslIam`.
    pub vpc_connectivity_sasl_iam: Option<String>,
}

impl BrokerStrings {
    /// The broker string of `listener` under `access`, if the cluster has it. Public and
    /// multi-VPC access have no plaintext listener.
    pub fn get(&self, access: MskBrokerAccess, listener: Listener) -> Option<&str> {
        use Listener as L;
        use MskBrokerAccess as A;
        let s = match (access, listener) {
            (A::Private, L::Plaintext) => &self.plaintext,
            (A::Private, L::Tls) => &self.tls,
            (A::Private, L::SaslScram) => &self.sasl_scram,
            (A::Private, L::SaslIam) => &self.sasl_iam,
            (A::Public, L::Tls) => &self.public_tls,
            (A::Public, L::SaslScram) => &self.public_sasl_scram,
            (A::Public, L::SaslIam) => &self.public_sasl_iam,
            (A::VpcConnectivity, L::Tls) => &self.vpc_connectivity_tls,
            (A::VpcConnectivity, L::SaslScram) => &self.vpc_connectivity_sasl_scram,
            (A::VpcConnectivity, L::SaslIam) => &self.vpc_connectivity_sasl_iam,
            (A::Public | A::VpcConnectivity, L::Plaintext) => return None,
        };
        s.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
}

/// Why an MSK cluster could not be resolved to brokers. Never holds a secret: the answer is
/// broker addresses, the errors are AWS's codes and messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MskError {
    /// The secret's method has no listener on the cluster: never another method instead.
    #[error("the MSK cluster has no {method} listener for {access} access (GetBootstrapBrokers answered no {field}): enable {method} on the cluster, or give the secret of a method it has; Sluice never connects with another method")]
    MissingListener {
        /// The method the secret asks for.
        method: &'static str,
        /// The answer's field that is absent.
        field: String,
        /// `PRIVATE`, `PUBLIC` or `VPC_CONNECTIVITY`.
        access: &'static str,
    },
    /// Without a secret, no listener at all for the access asked for.
    #[error("the MSK cluster has no listener for {access} access without a secret (GetBootstrapBrokers answered none of {fields})")]
    NoListener {
        /// `PRIVATE`, `PUBLIC` or `VPC_CONNECTIVITY`.
        access: &'static str,
        /// The fields looked at.
        fields: String,
    },
    /// A broker string that is not a `host:port` list.
    #[error("GetBootstrapBrokers answered {field} = {value:?}, which is not a comma-separated host:port list")]
    BadBrokerString {
        /// The field.
        field: String,
        /// What it held (broker addresses, not secret).
        value: String,
    },
    /// The MSK API refused the call (access denied, no such cluster, bad request).
    #[error("MSK GetBootstrapBrokers for {arn} failed: {code}: {message}")]
    Refused {
        /// The cluster ARN.
        arn: String,
        /// AWS's error code (`AccessDeniedException`, `NotFoundException`...).
        code: String,
        /// AWS's message.
        message: String,
    },
    /// The MSK API throttled the call; retried.
    #[error("MSK GetBootstrapBrokers for {arn} was throttled: {detail}")]
    Throttled {
        /// The cluster ARN.
        arn: String,
        /// What AWS said.
        detail: String,
    },
    /// The MSK API could not be reached or failed on its side; retried.
    #[error("MSK GetBootstrapBrokers for {arn} did not succeed: {detail}")]
    Unavailable {
        /// The cluster ARN.
        arn: String,
        /// What went wrong.
        detail: String,
    },
    /// No AWS credentials to sign the call with.
    #[error("MSK GetBootstrapBrokers for {arn}: no AWS credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role): {detail}")]
    NoCredentials {
        /// The cluster ARN.
        arn: String,
        /// What the SDK said.
        detail: String,
    },
    /// This build has no MSK API client.
    #[error("the MSK cluster {arn} is given without SluiceParameters.BootstrapServers, and this build of Sluice has no MSK API client (the `aws-msk` feature) to look its brokers up")]
    NotBuilt {
        /// The cluster ARN.
        arn: String,
    },
}

impl MskError {
    /// Whether trying again later may help (throttling, an endpoint that does not answer).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            MskError::Throttled { .. } | MskError::Unavailable { .. }
        )
    }

    /// Whether the user must change something (the cluster, the secret, the permissions).
    pub fn is_user_error(&self) -> bool {
        !self.is_retryable()
    }
}

/// The listener a source with `method` (its secret's, or none) uses on a cluster that has
/// `strings`, and its broker string; never a weaker listener than the secret's.
pub fn choose<'a>(
    strings: &'a BrokerStrings,
    method: &AuthMethod,
    access: MskBrokerAccess,
) -> Result<(Listener, &'a str), MskError> {
    let required = match method {
        AuthMethod::MutualTls(_) => Some((Listener::Tls, "mTLS (client certificate)")),
        AuthMethod::Scram { .. } => Some((Listener::SaslScram, "SASL/SCRAM")),
        // Validation leaves neither for a source given by ARN alone (IAM is chosen here, MSK has
        // no SASL/PLAIN); answered in their own terms all the same.
        AuthMethod::Iam { .. } => Some((Listener::SaslIam, "MSK IAM")),
        AuthMethod::Plain(_) => {
            return Err(MskError::MissingListener {
                method: "SASL/PLAIN",
                field: "a SASL/PLAIN broker string (MSK has none)".into(),
                access: access.name(),
            })
        }
        AuthMethod::None => None,
    };
    if let Some((listener, name)) = required {
        return strings
            .get(access, listener)
            .map(|s| (listener, s))
            .ok_or_else(|| MskError::MissingListener {
                method: name,
                field: listener.field(access),
                access: access.name(),
            });
    }
    let order = [Listener::SaslIam, Listener::Tls, Listener::Plaintext];
    order
        .iter()
        .find_map(|&l| strings.get(access, l).map(|s| (l, s)))
        .ok_or_else(|| MskError::NoListener {
            access: access.name(),
            fields: order
                .iter()
                .filter(|l| !(access != MskBrokerAccess::Private && **l == Listener::Plaintext))
                .map(|l| l.field(access))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// `source` with the brokers and method chosen from `strings`: the chosen listener's broker
/// list, TLS on every listener but plaintext, MSK IAM for the IAM listener.
pub fn resolved_source(
    source: &KafkaSourceSpec,
    lookup: &MskLookup,
    strings: &BrokerStrings,
) -> Result<KafkaSourceSpec, MskError> {
    let (listener, text) = choose(strings, &source.security.method, lookup.access)?;
    let servers: Vec<String> = text.split(',').map(|s| s.trim().to_string()).collect();
    if servers.iter().any(|s| !is_host_port(s)) {
        return Err(MskError::BadBrokerString {
            field: listener.field(lookup.access),
            value: text.to_string(),
        });
    }
    let mut out = source.clone();
    out.bootstrap_servers = servers;
    out.security.tls = listener != Listener::Plaintext;
    if source.security.method == AuthMethod::None && listener == Listener::SaslIam {
        out.security.method = AuthMethod::Iam {
            region: lookup.region.clone(),
        };
    }
    Ok(out)
}

/// First pause between lookups that may succeed later; doubled up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Longest pause between lookups.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(30);

/// `source` with its brokers looked up, when it is an MSK cluster given by ARN alone (otherwise
/// as it is). Throttling and an unreachable endpoint are retried with capped backoff, for as long
/// as the caller waits; any other failure is returned.
pub async fn resolve(source: &KafkaSourceSpec) -> Result<KafkaSourceSpec, MskError> {
    let Some(lookup) = &source.msk_lookup else {
        return Ok(source.clone());
    };
    let mut pause = FIRST_RETRY_PAUSE;
    loop {
        match look_up(lookup).await {
            Ok(strings) => {
                let out = resolved_source(source, lookup, &strings)?;
                tracing::info!(cluster = %lookup.arn, servers = %out.bootstrap_servers.join(","),
                    security = %out.security.describe(), "MSK brokers looked up");
                return Ok(out);
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "MSK lookup");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
            }
            Err(e) => return Err(e),
        }
    }
}

/// `GetBootstrapBrokers` for the cluster, with the standard credential chain, the region of its
/// ARN and the endpoint override of the config file or the environment.
#[cfg(feature = "aws-msk")]
pub async fn look_up(lookup: &MskLookup) -> Result<BrokerStrings, MskError> {
    use aws_sdk_kafka::error::SdkError;
    let sdk = crate::secrets::aws::sdk_config(&lookup.region).await;
    let mut conf = aws_sdk_kafka::config::Builder::from(&sdk);
    if let Some(ep) = &lookup.endpoint {
        conf = conf.endpoint_url(ep);
    }
    let client = aws_sdk_kafka::Client::from_conf(conf.build());
    let call = client
        .get_bootstrap_brokers()
        .cluster_arn(&lookup.arn)
        .send();
    let out = match tokio::time::timeout(LOOKUP_TIMEOUT, call).await {
        Err(_) => {
            return Err(MskError::Unavailable {
                arn: lookup.arn.clone(),
                detail: format!("no answer within {} s", LOOKUP_TIMEOUT.as_secs()),
            })
        }
        Ok(Err(SdkError::ServiceError(se))) => {
            use aws_sdk_kafka::error::ProvideErrorMetadata;
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("UnknownError").to_string();
            let message = se.err().message().unwrap_or_default().to_string();
            return Err(classify(&lookup.arn, status, code, message));
        }
        Ok(Err(e)) => {
            let detail = aws_sdk_kafka::error::DisplayErrorContext(&e).to_string();
            let arn = lookup.arn.clone();
            return Err(if detail.contains("redentials") {
                MskError::NoCredentials { arn, detail }
            } else {
                MskError::Unavailable { arn, detail }
            });
        }
        Ok(Ok(out)) => out,
    };
    let s = |v: Option<&str>| v.map(str::to_string);
    Ok(BrokerStrings {
        plaintext: s(out.bootstrap_broker_string()),
        tls: s(out.bootstrap_broker_string_tls()),
        sasl_scram: s(out.bootstrap_broker_string_sasl_scram()),
        sasl_iam: s(out.bootstrap_broker_string_sasl_iam()),
        public_tls: s(out.bootstrap_broker_string_public_tls()),
        public_sasl_scram: s(out.bootstrap_broker_string_public_sasl_scram()),
        public_sasl_iam: s(out.bootstrap_broker_string_public_sasl_iam()),
        vpc_connectivity_tls: s(out.bootstrap_broker_string_vpc_connectivity_tls()),
        vpc_connectivity_sasl_scram: s(out.bootstrap_broker_string_vpc_connectivity_sasl_scram()),
        vpc_connectivity_sasl_iam: s(out.bootstrap_broker_string_vpc_connectivity_sasl_iam()),
    })
}

/// Without the MSK API client, a source given by ARN alone cannot be resolved (validation says
/// so first; this is the runtime's word for it).
#[cfg(not(feature = "aws-msk"))]
pub async fn look_up(lookup: &MskLookup) -> Result<BrokerStrings, MskError> {
    Err(MskError::NotBuilt {
        arn: lookup.arn.clone(),
    })
}

/// How long one `GetBootstrapBrokers` call may take, the SDK's own retries included.
#[cfg(feature = "aws-msk")]
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Sort an MSK API error answer: throttling and failures on AWS's side are retried, the rest
/// (access denied, no such cluster, bad request) is the user's to fix.
#[cfg(any(feature = "aws-msk", test))]
fn classify(arn: &str, status: u16, code: String, message: String) -> MskError {
    const THROTTLING: &[&str] = &[
        "TooManyRequestsException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
    ];
    let arn = arn.to_string();
    if status == 429 || THROTTLING.contains(&code.as_str()) {
        MskError::Throttled {
            arn,
            detail: format!("{code}: {message}"),
        }
    } else if status >= 500 {
        MskError::Unavailable {
            arn,
            detail: format!("{code}: {message}"),
        }
    } else {
        MskError::Refused { arn, code, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::ScramMechanism;
    use crate::secrets::SecretRef;

    fn all() -> BrokerStrings {
        BrokerStrings {
            plaintext: Some("p:9092".into()),
            tls: Some("t:9094".into()),
            sasl_scram: Some("s:9096".into()),
            sasl_iam: Some("i:9098".into()),
            public_tls: Some("pt:9194".into()),
            public_sasl_scram: Some("ps:9196".into()),
            public_sasl_iam: Some("pi:9198".into()),
            vpc_connectivity_tls: Some("vt:14001".into()),
            vpc_connectivity_sasl_scram: Some("vs:14002".into()),
            vpc_connectivity_sasl_iam: Some("vi:14003".into()),
        }
    }

    fn scram() -> AuthMethod {
        AuthMethod::Scram {
            mechanism: ScramMechanism::Sha512,
            secret: SecretRef::parse("env:S").unwrap(),
        }
    }

    fn mtls() -> AuthMethod {
        AuthMethod::MutualTls(SecretRef::parse("env:C").unwrap())
    }

    #[test]
    fn each_row_of_the_table_picks_its_string() {
        let a = MskBrokerAccess::Private;
        let s = all();
        assert_eq!(choose(&s, &mtls(), a).unwrap(), (Listener::Tls, "t:9094"));
        assert_eq!(
            choose(&s, &scram(), a).unwrap(),
            (Listener::SaslScram, "s:9096")
        );
        assert_eq!(
            choose(&s, &AuthMethod::None, a).unwrap(),
            (Listener::SaslIam, "i:9098")
        );
        let no_iam = BrokerStrings {
            sasl_iam: None,
            ..all()
        };
        assert_eq!(
            choose(&no_iam, &AuthMethod::None, a).unwrap(),
            (Listener::Tls, "t:9094")
        );
        let plain = BrokerStrings {
            plaintext: Some("p:9092".into()),
            tls: Some("  ".into()),
            ..Default::default()
        };
        assert_eq!(
            choose(&plain, &AuthMethod::None, a).unwrap(),
            (Listener::Plaintext, "p:9092")
        );
    }

    #[test]
    fn a_secret_without_its_listener_names_the_missing_method() {
        let only_iam = BrokerStrings {
            plaintext: Some("p:9092".into()),
            tls: Some("t:9094".into()),
            sasl_iam: Some("i:9098".into()),
            ..Default::default()
        };
        let e = choose(&only_iam, &scram(), MskBrokerAccess::Private).unwrap_err();
        assert!(e.is_user_error());
        let text = e.to_string();
        assert!(text.contains("no SASL/SCRAM listener"), "{text}");
        assert!(text.contains("BootstrapBrokerStringSaslScram"), "{text}");
        let e = choose(&BrokerStrings::default(), &mtls(), MskBrokerAccess::Public).unwrap_err();
        assert!(
            e.to_string().contains("BootstrapBrokerStringPublicTls"),
            "{e}"
        );
    }

    #[test]
    fn access_picks_the_public_or_multi_vpc_strings_and_they_have_no_plaintext() {
        let s = all();
        assert_eq!(
            choose(&s, &scram(), MskBrokerAccess::Public).unwrap().1,
            "ps:9196"
        );
        assert_eq!(
            choose(&s, &AuthMethod::None, MskBrokerAccess::VpcConnectivity)
                .unwrap()
                .1,
            "vi:14003"
        );
        let private_only = BrokerStrings {
            plaintext: Some("p:9092".into()),
            ..Default::default()
        };
        let e = choose(&private_only, &AuthMethod::None, MskBrokerAccess::Public).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the MSK cluster has no listener for PUBLIC access without a secret (GetBootstrapBrokers answered none of BootstrapBrokerStringPublicSaslIam, BootstrapBrokerStringPublicTls)"
        );
    }

    fn source(method: AuthMethod) -> (KafkaSourceSpec, MskLookup) {
        let lookup = MskLookup {
            arn: "arn:aws:kafka:eu-west-1:123456789012:cluster/c/u-1".into(),
            region: "eu-west-1".into(),
            access: MskBrokerAccess::Private,
            endpoint: None,
        };
        let mut spec = KafkaSourceSpec::for_tests("t");
        spec.security.method = method;
        spec.msk_lookup = Some(lookup.clone());
        (spec, lookup)
    }

    #[test]
    fn the_resolved_source_has_the_brokers_and_the_transport_of_its_listener() {
        let (src, lookup) = source(AuthMethod::None);
        let two = BrokerStrings {
            sasl_iam: Some("b-1.c:9098,b-2.c:9098".into()),
            ..Default::default()
        };
        let r = resolved_source(&src, &lookup, &two).unwrap();
        assert_eq!(r.bootstrap_servers, vec!["b-1.c:9098", "b-2.c:9098"]);
        assert_eq!(r.security.security_protocol(), "SASL_SSL");
        assert_eq!(
            r.security.method,
            AuthMethod::Iam {
                region: "eu-west-1".into()
            }
        );
        let plain = BrokerStrings {
            plaintext: Some("b-1.c:9092".into()),
            ..Default::default()
        };
        let r = resolved_source(&src, &lookup, &plain).unwrap();
        assert_eq!(r.security.security_protocol(), "PLAINTEXT");
        let tls = BrokerStrings {
            tls: Some("b-1.c:9094".into()),
            ..plain
        };
        let r = resolved_source(&src, &lookup, &tls).unwrap();
        assert_eq!(r.security.security_protocol(), "SSL");
        let (src, lookup) = source(scram());
        let r = resolved_source(&src, &lookup, &all()).unwrap();
        assert_eq!(r.security.security_protocol(), "SASL_SSL");
        assert_eq!(r.security.method, scram());
        let bad = BrokerStrings {
            sasl_scram: Some("b-1.c".into()),
            ..Default::default()
        };
        assert!(matches!(
            resolved_source(&src, &lookup, &bad),
            Err(MskError::BadBrokerString { .. })
        ));
    }

    #[test]
    fn throttling_and_aws_side_failures_are_retried_the_rest_fails_with_code_and_message() {
        let arn = "arn:aws:kafka:us-east-1:1:cluster/c/u";
        let t = classify(arn, 429, "TooManyRequestsException".into(), "slow".into());
        assert!(t.is_retryable());
        let u = classify(arn, 500, "InternalServerErrorException".into(), "x".into());
        assert!(u.is_retryable());
        let d = classify(
            arn,
            403,
            "AccessDeniedException".into(),
            "User: x is not authorized to perform: kafka:GetBootstrapBrokers".into(),
        );
        assert!(d.is_user_error());
        assert_eq!(
            d.to_string(),
            format!("MSK GetBootstrapBrokers for {arn} failed: AccessDeniedException: User: x is not authorized to perform: kafka:GetBootstrapBrokers")
        );
        let n = classify(arn, 404, "NotFoundException".into(), "no cluster".into());
        assert!(n.is_user_error() && n.to_string().contains("NotFoundException: no cluster"));
    }
}
