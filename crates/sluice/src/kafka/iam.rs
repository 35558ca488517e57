//! MSK IAM authentication: SASL/OAUTHBEARER with a token that is an AWS SigV4-presigned URL for the
//! action `kafka-cluster:Connect`, as AWS's MSK IAM SASL signer libraries make it:
//!
//! `base64url(https://kafka.<region>.amazonaws.com/?Action=kafka-cluster%3AConnect&X-Amz-Algorithm=...
//! &X-Amz-Credential=...&X-Amz-Date=...&X-Amz-Expires=900&X-Amz-SignedHeaders=host
//! [&X-Amz-Security-Token=...]&X-Amz-Signature=...&User-Agent=...)`, without padding.
//!
//! The host signed is the regional MSK service host, not a broker's: one OAUTHBEARER token serves
//! every broker of the client. librdkafka asks for a token through the OAuth refresh callback
//! (`ClientContext::generate_oauth_token`, served when the consumer polls) and again at 80 % of
//! its lifetime; credentials come fresh from the AWS default chain each time, so rotated role
//! credentials are picked up.
//!
//! We sign with `aws-sigv4` rather than the `aws-msk-iam-sasl-signer` crate: that crate is a thin
//! wrapper over the same call but drags in the STS SDK, chrono and a second thiserror, and panics
//! on one error path.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use base64::Engine;

use crate::secrets::Secret;

/// Lifetime of a token (what AWS's signers use); librdkafka refreshes at 80 % of it.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// The action every token is signed for.
pub const ACTION: &str = "kafka-cluster:Connect";

/// The SigV4 service name of MSK IAM.
pub const SIGNING_NAME: &str = "kafka-cluster";

/// How long fetching credentials for one token may take.
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a token could not be made; never carries credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IamError {
    /// The AWS credential chain gave no credentials.
    #[error("no AWS credentials for MSK IAM authentication: {0}")]
    Credentials(String),
    /// Signing failed.
    #[error("cannot sign the MSK IAM token: {0}")]
    Signing(String),
}

impl IamError {
    /// Credentials may appear (a role being assumed, a metadata service starting).
    pub fn is_retryable(&self) -> bool {
        matches!(self, IamError::Credentials(_))
    }

    /// Missing credentials are for the operator to fix.
    pub fn is_user_error(&self) -> bool {
        matches!(self, IamError::Credentials(_))
    }
}

/// A signed token and when it expires (milliseconds since the epoch).
#[derive(Debug, Clone)]
pub struct IamToken {
    /// The base64url token.
    pub token: Secret,
    /// Expiry, ms since the Unix epoch.
    pub expires_at_ms: i64,
}

/// Presign `kafka-cluster:Connect` in `region` with `credentials` at `now`.
pub fn presign(
    region: &str,
    credentials: &Credentials,
    now: SystemTime,
) -> Result<IamToken, IamError> {
    use aws_sigv4::http_request::{
        sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    };
    use aws_sigv4::sign::v4;

    // The region becomes part of the URL: anything but a region's characters could add query
    // parameters to the token or change its host.
    let usable = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !usable {
        return Err(IamError::Signing(format!(
            "{region:?} is not a usable region"
        )));
    }
    let mut url = url::Url::parse(&format!("https://kafka.{region}.amazonaws.com/"))
        .map_err(|_| IamError::Signing(format!("{region:?} is not a usable region")))?;
    url.query_pairs_mut().append_pair("Action", ACTION);

    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_NAME)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| IamError::Signing(e.to_string()))?;
    let request = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::empty(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| IamError::Signing(e.to_string()))?;
    // aws-sigv4 traces the canonical request, which in query-string signing holds the session
    // token: sign with logging switched off for this thread.
    let signed =
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
            sign(request, &params.into())
        });
    let (instructions, _signature) = signed
        .map_err(|e| IamError::Signing(e.to_string()))?
        .into_parts();
    {
        let mut q = url.query_pairs_mut();
        for (name, value) in instructions.params() {
            q.append_pair(name, value);
        }
        q.append_pair("User-Agent", concat!("sluice/", env!("CARGO_PKG_VERSION")));
    }
    let signed_at = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| IamError::Signing("the clock is before 1970".into()))?;
    // SigV4 dates have whole seconds; the expiry is counted from the signed date.
    let expires_at_ms = (signed_at.as_secs() + TOKEN_LIFETIME.as_secs()) as i64 * 1000;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url.as_str());
    Ok(IamToken {
        token: Secret::new(token),
        expires_at_ms,
    })
}

/// Makes tokens on demand for librdkafka's refresh callback.
pub struct IamTokenSource {
    region: String,
    credentials: SharedCredentialsProvider,
    handle: tokio::runtime::Handle,
    refreshes: AtomicUsize,
    last_expiry_ms: AtomicI64,
}

impl std::fmt::Debug for IamTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamTokenSource")
            .field("region", &self.region)
            .field("refreshes", &self.refreshes.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl IamTokenSource {
    /// Tokens for `region`, signed with credentials from `credentials`; async credential lookups
    /// run on `handle`.
    pub fn new(
        region: &str,
        credentials: SharedCredentialsProvider,
        handle: tokio::runtime::Handle,
    ) -> Self {
        Self {
            region: region.to_string(),
            credentials,
            handle,
            refreshes: AtomicUsize::new(0),
            last_expiry_ms: AtomicI64::new(0),
        }
    }

    /// The region tokens are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// How many tokens were made (librdkafka asked for them).
    pub fn refreshes(&self) -> usize {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// Expiry (ms since the epoch) of the last token made, 0 before the first.
    pub fn last_expiry_ms(&self) -> i64 {
        self.last_expiry_ms.load(Ordering::Relaxed)
    }

    /// Make a token now. Blocking: called from librdkafka's callback on the polling thread.
    pub fn token(&self) -> Result<IamToken, IamError> {
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let provider = self.credentials.clone();
        let handle = self.handle.clone();
        // A fresh thread may block on the runtime whatever the calling thread is (a tokio worker
        // polling the consumer cannot); the caller, when a worker, hands the runtime over while
        // it waits (the lookup's I/O needs a worker that is not blocked).
        let creds = super::block_in_callback(|| {
            std::thread::scope(|s| {
                s.spawn(move || {
                    handle.block_on(async move {
                        tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials())
                            .await
                    })
                })
                .join()
            })
        })
        .map_err(|_| IamError::Credentials("the credentials lookup panicked".into()))?
        .map_err(|_| IamError::Credentials("timed out".into()))?
        .map_err(|e| IamError::Credentials(e.to_string()))?;
        let token = presign(&self.region, &creds, SystemTime::now())?;
        self.last_expiry_ms
            .store(token.expires_at_ms, Ordering::Relaxed);
        tracing::debug!(region = %self.region, expires_at_ms = token.expires_at_ms, "made an MSK IAM token");
        Ok(token)
    }
}

/// Answer librdkafka's OAUTHBEARER refresh callback (`ClientContext::generate_oauth_token`) of
/// a client whose token source is `source` (the source's consumer, a producer to the same cluster).
pub fn oauth_token(
    source: Option<&IamTokenSource>,
) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
    let Some(source) = source else {
        return Err("no OAUTHBEARER token source is configured for this client".into());
    };
    match source.token() {
        Ok(t) => Ok(rdkafka::client::OAuthToken {
            token: t.token.expose().to_string(),
            // librdkafka wants a non-empty principal; MSK takes the identity from the token.
            principal_name: "sluice".into(),
            lifetime_ms: t.expires_at_ms,
        }),
        Err(e) => {
            // librdkafka retries the refresh; the pipe fails only if the broker then refuses us.
            tracing::warn!(error = %e, "cannot make an MSK IAM token");
            Err(e.to_string().into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(session: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session.map(str::to_string),
            None,
            "test",
        )
    }

    fn decode(token: &Secret) -> url::Url {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.expose())
            .unwrap();
        url::Url::parse(std::str::from_utf8(&bytes).unwrap()).unwrap()
    }

    /// Credentials that take a tokio timer to arrive, as a lookup over the network does.
    #[derive(Debug)]
    struct SlowCredentials;

    impl ProvideCredentials for SlowCredentials {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            aws_credential_types::provider::future::ProvideCredentials::new(async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(creds(None))
            })
        }
    }

    /// With `TOKIO_WORKER_THREADS=1` the token callback blocked the only worker while the lookup
    /// waited for that worker's timers and I/O: the token never came.
    #[test]
    fn regression_a_token_asked_for_on_the_only_worker_arrives() {
        let (tx, rx) = std::sync::mpsc::channel();
        // Its own thread: when the bug is back, it stays blocked and the test fails on time.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let source = IamTokenSource::new(
                "us-east-1",
                SharedCredentialsProvider::new(SlowCredentials),
                rt.handle().clone(),
            );
            let made = rt.block_on(async move {
                tokio::spawn(async move { source.token().map(|t| t.expires_at_ms) })
                    .await
                    .unwrap()
            });
            let _ = tx.send(made.is_ok());
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)), Ok(true));
    }

    /// Found by the `msk_iam_token` fuzz target: a "region" holding `?` and `&` turned into query
    /// text of the token's URL (an injected `X-Amz-Security-Token`).
    #[test]
    fn fuzz_msk_iam_token_query_in_region_is_refused() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for region in [
            "?&X-Amz-Security-Token&",
            "eu-west-1/x",
            "\n",
            "",
            "EU-WEST-1",
        ] {
            let e = presign(region, &creds(None), at).unwrap_err();
            assert!(matches!(e, IamError::Signing(_)), "{region:?}: {e}");
        }
        assert!(presign("eu-west-1", &creds(None), at).is_ok());
    }

    #[test]
    fn token_is_a_presigned_connect_url() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let t = presign("eu-west-1", &creds(Some("SESSION")), at).unwrap();
        assert!(!t.token.expose().contains('='), "no padding");
        let url = decode(&t.token);
        assert_eq!(url.host_str(), Some("kafka.eu-west-1.amazonaws.com"));
        let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["Action"], "kafka-cluster:Connect");
        assert_eq!(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(
            q["X-Amz-Credential"],
            "AKIDEXAMPLE/20231114/eu-west-1/kafka-cluster/aws4_request"
        );
        assert_eq!(q["X-Amz-Date"], "20231114T221320Z");
        assert_eq!(q["X-Amz-Expires"], "900");
        assert_eq!(q["X-Amz-SignedHeaders"], "host");
        assert_eq!(q["X-Amz-Security-Token"], "SESSION");
        assert_eq!(q["X-Amz-Signature"].len(), 64);
        assert!(q["User-Agent"].starts_with("sluice/"));
        assert_eq!(t.expires_at_ms, (1_700_000_000 + 900) * 1000);
    }
}
