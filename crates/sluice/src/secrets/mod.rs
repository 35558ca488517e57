//! Secrets: what a pipe definition points at (a [`SecretRef`]), fetching it ([`SecretResolver`]),
//! and the value itself ([`Secret`]), which never shows itself in `Debug`/`Display` and is wiped
//! from memory when dropped.
//!
//! A reference is one of (AWS accepts only the first; the others are our extension, see
//! `beyond-aws.md`):
//! - an AWS Secrets Manager secret ARN, fetched with the AWS SDK (region from the ARN; endpoint from
//!   `AWS_ENDPOINT_URL_SECRETS_MANAGER` / `AWS_ENDPOINT_URL`, or [`SecretResolver::with_endpoint`];
//!   credentials from the SDK's default chain),
//! - `file://PATH`: the file's content (PATH as written, absolute or relative to the working directory),
//! - `env:NAME`: the value of environment variable `NAME`.
//!
//! Which references pipe definitions may use is [`SecretAllowlist`]'s (the serve config's
//! `[secrets]`). Only references are ever stored or shown; errors name the reference and the field that is wrong,
//! never the content. The JSON shapes of Kafka secrets are parsed in [`json`].

pub mod allow;
pub mod aws;
pub mod json;

pub use allow::SecretAllowlist;

use std::fmt;
use std::io::Read;
use std::path::PathBuf;

use zeroize::Zeroizing;

/// AWS's limit on a secret's size, applied to every kind of reference.
pub const MAX_SECRET_BYTES: usize = 65_536;

/// A secret value. `Debug` and `Display` print `<redacted>`; the memory is zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wrap a value.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The value, for handing to the one place that needs it (a client setting).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a secret lives. Displays as the reference (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// An AWS Secrets Manager secret.
    SecretsManager {
        /// The full secret ARN.
        arn: String,
        /// The region, from the ARN.
        region: String,
    },
    /// `file://PATH`.
    File(PathBuf),
    /// `env:NAME`.
    Env(String),
}

/// What a secret reference must look like, for validation messages. The rejected text is never
/// echoed: a user who pasted a password where a reference belongs must not see it in an error.
pub const REFERENCE_FORMS: &str =
    "must be a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>), file://PATH or env:NAME";

impl SecretRef {
    /// Parse a reference; the error says what is expected, without repeating the input.
    pub fn parse(text: &str) -> Result<SecretRef, &'static str> {
        if let Some(path) = text.strip_prefix("file://") {
            if path.is_empty() || path.contains('\0') {
                return Err("file:// needs a path");
            }
            return Ok(SecretRef::File(PathBuf::from(path)));
        }
        if let Some(name) = text.strip_prefix("env:") {
            let mut chars = name.chars();
            let ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err("env: needs a variable name of [A-Za-z_][A-Za-z0-9_]*");
            }
            return Ok(SecretRef::Env(name.to_string()));
        }
        let parts: Vec<&str> = text.splitn(7, ':').collect();
        if parts.len() == 7
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "secretsmanager"
            && !parts[3].is_empty()
            && parts[3]
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && parts[4].len() == 12
            && parts[4].chars().all(|c| c.is_ascii_digit())
            && parts[5] == "secret"
            && !parts[6].is_empty()
            && parts[6]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
        {
            return Ok(SecretRef::SecretsManager {
                arn: text.to_string(),
                region: parts[3].to_string(),
            });
        }
        Err(REFERENCE_FORMS)
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::SecretsManager { arn, .. } => f.write_str(arn),
            SecretRef::File(p) => write!(f, "file://{}", p.display()),
            SecretRef::Env(n) => write!(f, "env:{n}"),
        }
    }
}

/// Why a secret could not be had. Messages name the reference and the problem, never the content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The secret does not exist (file, variable or Secrets Manager secret).
    #[error("secret {reference} not found: {detail}")]
    NotFound {
        /// The reference.
        reference: String,
        /// What was looked for.
        detail: String,
    },
    /// Access was refused (file permissions, IAM policy, KMS key).
    #[error("secret {reference}: access denied: {detail}")]
    AccessDenied {
        /// The reference.
        reference: String,
        /// Who refused, in words.
        detail: String,
    },
    /// The secret is larger than [`MAX_SECRET_BYTES`].
    #[error("secret {reference} is larger than {MAX_SECRET_BYTES} bytes")]
    TooLarge {
        /// The reference.
        reference: String,
    },
    /// The secret's content does not have the expected shape.
    #[error("secret {reference}: {problem}")]
    Malformed {
        /// The reference.
        reference: String,
        /// Which field is missing or bad, and why.
        problem: String,
    },
    /// No AWS credentials or region could be found for a Secrets Manager reference.
    #[error("secret {reference}: {detail}")]
    AwsConfig {
        /// The reference.
        reference: String,
        /// What is missing.
        detail: String,
    },
    /// Secrets Manager could not be reached or answered with a transient error.
    #[error("secret {reference}: Secrets Manager unavailable: {detail}")]
    Unavailable {
        /// The reference.
        reference: String,
        /// The transport or service error.
        detail: String,
    },
}

impl SecretError {
    /// Whether trying again later may help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SecretError::Unavailable { .. })
    }

    /// Whether the user must change something (the reference, the secret, or permissions).
    pub fn is_user_error(&self) -> bool {
        !self.is_retryable()
    }

    /// A malformed-content error for `reference`.
    pub fn malformed(reference: &SecretRef, problem: impl Into<String>) -> Self {
        SecretError::Malformed {
            reference: reference.to_string(),
            problem: problem.into(),
        }
    }
}

/// Fetches secrets. Cheap to clone; Secrets Manager clients are made per call (a pipe resolves its
/// secrets once, when it starts).
#[derive(Debug, Clone, Default)]
pub struct SecretResolver {
    endpoint: Option<String>,
    /// Where `file://` secrets may really be (see [`SecretAllowlist`]); empty: anywhere.
    file_dirs: Vec<PathBuf>,
}

impl SecretResolver {
    /// A resolver using the standard AWS configuration (environment, profile, instance role).
    pub fn new() -> Self {
        Self::default()
    }

    /// Send Secrets Manager requests to `endpoint` (e.g. a local emulator) instead of AWS's, taking
    /// precedence over `AWS_ENDPOINT_URL*`.
    pub fn with_endpoint(mut self, endpoint: Option<String>) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Read `file://` secrets only when their real path (symbolic links followed) lies inside
    /// one of `dirs` (empty: any file). Every other case gives one error, which says nothing
    /// about what lies outside.
    pub fn with_file_dirs(mut self, dirs: Vec<PathBuf>) -> Self {
        self.file_dirs = dirs;
        self
    }

    /// Fetch the value `reference` points at.
    pub async fn fetch(&self, reference: &SecretRef) -> Result<Secret, SecretError> {
        let value = match reference {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) => v,
                Err(std::env::VarError::NotPresent) => {
                    return Err(SecretError::NotFound {
                        reference: reference.to_string(),
                        detail: format!("environment variable {name} is not set"),
                    })
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(SecretError::malformed(reference, "is not valid UTF-8"))
                }
            },
            SecretRef::File(path) => {
                read_file(reference, path.clone(), self.file_dirs.clone()).await?
            }
            SecretRef::SecretsManager { arn, region } => {
                aws::get_secret_value(reference, arn, region, self.endpoint.as_deref()).await?
            }
        };
        if value.len() > MAX_SECRET_BYTES {
            return Err(SecretError::TooLarge {
                reference: reference.to_string(),
            });
        }
        Ok(Secret::new(value))
    }
}

/// Why a file is not read under an allowlist: the same words whether it is missing, outside the
/// directories through a link, or both.
const NOT_IN_ALLOWED_DIRS: &str =
    "no such file inside the directories allowed for file:// secrets (secrets.allowed_file_dirs)";

/// `path` itself when `dirs` is empty; else its real path if that lies inside one of them
/// (`None`: missing, or outside through a link).
fn confined(path: &std::path::Path, dirs: &[PathBuf]) -> Option<PathBuf> {
    if dirs.is_empty() {
        return Some(path.to_path_buf());
    }
    let real = std::fs::canonicalize(path).ok()?;
    dirs.iter()
        .filter_map(|d| std::fs::canonicalize(d).ok())
        .any(|d| real.starts_with(d))
        .then_some(real)
}

/// Read at most one byte more than the limit, so a huge file is refused without reading it all.
async fn read_file(
    reference: &SecretRef,
    path: PathBuf,
    dirs: Vec<PathBuf>,
) -> Result<String, SecretError> {
    let r = reference.clone();
    let result = tokio::task::spawn_blocking(move || {
        let path = confined(&path, &dirs)?;
        let read = || -> Result<Vec<u8>, std::io::Error> {
            let file = std::fs::File::open(&path)?;
            let mut buf = Vec::new();
            file.take(MAX_SECRET_BYTES as u64 + 1)
                .read_to_end(&mut buf)?;
            Ok(buf)
        };
        Some(read())
    })
    .await
    .map_err(|_| SecretError::Unavailable {
        reference: r.to_string(),
        detail: "reading the file was interrupted".into(),
    })?;
    let bytes = match result {
        None => {
            return Err(SecretError::NotFound {
                reference: r.to_string(),
                detail: NOT_IN_ALLOWED_DIRS.into(),
            })
        }
        Some(Ok(b)) => Zeroizing::new(b),
        Some(Err(e)) => {
            let detail = e.kind().to_string();
            return Err(match e.kind() {
                std::io::ErrorKind::NotFound => SecretError::NotFound {
                    reference: r.to_string(),
                    detail: "no such file".into(),
                },
                std::io::ErrorKind::PermissionDenied => SecretError::AccessDenied {
                    reference: r.to_string(),
                    detail: "the file is not readable".into(),
                },
                _ => SecretError::NotFound {
                    reference: r.to_string(),
                    detail,
                },
            });
        }
    };
    if bytes.len() > MAX_SECRET_BYTES {
        return Err(SecretError::TooLarge {
            reference: r.to_string(),
        });
    }
    match std::str::from_utf8(&bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(_) => Err(SecretError::malformed(&r, "is not valid UTF-8")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_value() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(Secret(<redacted>))");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn references_parse() {
        assert_eq!(
            SecretRef::parse("env:KAFKA_PW").unwrap(),
            SecretRef::Env("KAFKA_PW".into())
        );
        assert_eq!(
            SecretRef::parse("file:///etc/kafka/pw.json").unwrap(),
            SecretRef::File("/etc/kafka/pw.json".into())
        );
        assert_eq!(
            SecretRef::parse("file://relative/pw.json").unwrap(),
            SecretRef::File("relative/pw.json".into())
        );
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:AmazonMSK_alice-AbCdEf";
        assert_eq!(
            SecretRef::parse(arn).unwrap(),
            SecretRef::SecretsManager {
                arn: arn.into(),
                region: "eu-west-1".into()
            }
        );
        assert_eq!(SecretRef::parse(arn).unwrap().to_string(), arn);
    }

    #[test]
    fn bad_references_are_refused_without_echoing_them() {
        for bad in [
            "hunter2",
            "env:",
            "env:1X",
            "env:A-B",
            "file://",
            "arn:aws:secretsmanager:eu-west-1:123:secret:x",
            "arn:aws:kms:eu-west-1:123456789012:key/abc",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:",
        ] {
            assert!(SecretRef::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(!SecretRef::parse("hunter2").unwrap_err().contains("hunter2"));
    }

    #[tokio::test]
    async fn env_and_file_references_resolve() {
        let name = format!("SLUICE_SECRET_TEST_{}", std::process::id());
        std::env::set_var(&name, "v1");
        let r = SecretResolver::new();
        let got = r.fetch(&SecretRef::Env(name.clone())).await.unwrap();
        assert_eq!(got.expose(), "v1");
        std::env::remove_var(&name);
        let err = r.fetch(&SecretRef::Env(name.clone())).await.unwrap_err();
        assert!(matches!(err, SecretError::NotFound { .. }), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(&path, "{\"username\":\"u\"}").unwrap();
        let got = r.fetch(&SecretRef::File(path.clone())).await.unwrap();
        assert_eq!(got.expose(), "{\"username\":\"u\"}");
        let missing = r
            .fetch(&SecretRef::File(dir.path().join("nope")))
            .await
            .unwrap_err();
        assert!(missing.to_string().contains("not found"), "{missing}");
    }

    #[tokio::test]
    async fn regression_links_in_an_allowed_directory_led_outside() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("allowed");
        std::fs::create_dir(&allowed).unwrap();
        std::fs::write(allowed.join("ok"), "inside").unwrap();
        std::fs::write(dir.path().join("outside"), "host secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), allowed.join("link")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("none"), allowed.join("dangling")).unwrap();
        let r = SecretResolver::new().with_file_dirs(vec![allowed.clone()]);
        let got = r.fetch(&SecretRef::File(allowed.join("ok"))).await.unwrap();
        assert_eq!(got.expose(), "inside");
        let err = |name: &str| {
            let r = r.clone();
            let path = allowed.join(name);
            async move {
                let e = r.fetch(&SecretRef::File(path.clone())).await.unwrap_err();
                e.to_string().replace(&path.display().to_string(), "PATH")
            }
        };
        let (link, dangling, missing) = (
            err("link").await,
            err("dangling").await,
            err("missing").await,
        );
        assert!(link.contains("secrets.allowed_file_dirs"), "{link}");
        assert_eq!(link, dangling);
        assert_eq!(link, missing);
        assert!(!link.contains("host secret"), "{link}");
    }

    #[tokio::test]
    async fn oversized_secrets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'a'; MAX_SECRET_BYTES + 1]).unwrap();
        let r = SecretResolver::new();
        let err = r.fetch(&SecretRef::File(path.clone())).await.unwrap_err();
        assert!(matches!(err, SecretError::TooLarge { .. }), "{err}");
        std::fs::write(&path, vec![b'a'; MAX_SECRET_BYTES]).unwrap();
        assert_eq!(
            r.fetch(&SecretRef::File(path)).await.unwrap().len(),
            MAX_SECRET_BYTES
        );
    }
}
