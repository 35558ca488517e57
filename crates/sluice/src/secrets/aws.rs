//! The AWS side of secrets: loading the SDK configuration (credentials chain, region, endpoint
//! overrides from the standard `AWS_*` variables) and fetching a Secrets Manager secret.
//!
//! The HTTPS client is rustls on ring, chosen explicitly so the SDK does not pull in its default
//! aws-lc crypto (a long C build) next to the ring that reqwest already brings.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::{SecretError, SecretRef};

/// How long one Secrets Manager lookup may take, retries included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The SDK configuration for `region`: credentials from the default chain (environment, profile,
/// web identity, container and instance roles), endpoint overrides from `AWS_ENDPOINT_URL*`.
pub async fn sdk_config(region: &str) -> SdkConfig {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .http_client(https)
        .load()
        .await
}

/// `GetSecretValue` for `arn`. A binary secret must hold UTF-8 text.
pub(super) async fn get_secret_value(
    reference: &SecretRef,
    arn: &str,
    region: &str,
    endpoint: Option<&str>,
) -> Result<String, SecretError> {
    let sdk = sdk_config(region).await;
    let mut conf = aws_sdk_secretsmanager::config::Builder::from(&sdk);
    if let Some(ep) = endpoint {
        conf = conf.endpoint_url(ep);
    }
    let client = aws_sdk_secretsmanager::Client::from_conf(conf.build());
    let call = client.get_secret_value().secret_id(arn).send();
    let out = match tokio::time::timeout(FETCH_TIMEOUT, call).await {
        Err(_) => {
            return Err(SecretError::Unavailable {
                reference: reference.to_string(),
                detail: format!("no answer within {} s", FETCH_TIMEOUT.as_secs()),
            })
        }
        Ok(Err(e)) => return Err(classify(reference, &e)),
        Ok(Ok(out)) => out,
    };
    if let Some(s) = out.secret_string() {
        return Ok(s.to_string());
    }
    if let Some(b) = out.secret_binary() {
        return match std::str::from_utf8(b.as_ref()) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => Err(SecretError::malformed(
                reference,
                "SecretBinary is not UTF-8 text",
            )),
        };
    }
    Err(SecretError::malformed(reference, "has no value"))
}

/// Sort an SDK failure into what the user can do about it. Service messages do not carry the
/// secret's value (the output that does is never part of an error).
fn classify<E, R>(reference: &SecretRef, e: &SdkError<E, R>) -> SecretError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let reference = reference.to_string();
    let detail = DisplayErrorContext(e).to_string();
    if let SdkError::ServiceError(se) = e {
        let code = se.err().code().unwrap_or_default();
        let message = se.err().message().unwrap_or(code).to_string();
        return match code {
            "ResourceNotFoundException" => SecretError::NotFound {
                reference,
                detail: message,
            },
            "AccessDeniedException"
            | "DecryptionFailure"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "ExpiredTokenException" => SecretError::AccessDenied {
                reference,
                detail: format!("{code}: {message}"),
            },
            "InvalidRequestException" | "InvalidParameterException" => SecretError::NotFound {
                reference,
                detail: format!("{code}: {message}"),
            },
            _ => SecretError::Unavailable {
                reference,
                detail: format!("{code}: {message}"),
            },
        };
    }
    if detail.contains("credentials") || detail.contains("Credentials") {
        return SecretError::AwsConfig {
            reference,
            detail: format!(
                "no AWS credentials for Secrets Manager (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role): {detail}"
            ),
        };
    }
    SecretError::Unavailable { reference, detail }
}
