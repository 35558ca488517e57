//! Which secret references pipe definitions may use (`[secrets]` of the serve config). Any API
//! caller writes pipe definitions, and a pipe sends its source secret to the brokers it names: an
//! unrestricted reference lets a caller have any file or variable of the host sent to a broker of
//! their choice. Empty lists (the default) allow every reference, as before.
//!
//! The checks are lexical and pure (validation never touches the file system), so an error says
//! nothing about whether a file outside the allowed directories exists.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::SecretRef;

/// The `[secrets]` section of the serve config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretAllowlist {
    /// Absolute directories `file://` secrets must lie in (a reference must be an absolute path
    /// without `..` inside one of them). Empty: any file the engine can read.
    #[serde(default)]
    pub allowed_file_dirs: Vec<PathBuf>,
    /// Prefix every `env:` secret's variable name must start with (e.g. `SLUICE_PIPE_`). Empty:
    /// any variable of the engine's environment.
    #[serde(default)]
    pub allowed_env_prefix: String,
    /// Prefix every Secrets Manager secret ARN must start with (e.g.
    /// `arn:aws:secretsmanager:eu-west-1:123456789012:secret:sluice/`). Empty: any secret the
    /// engine's AWS credentials can read.
    #[serde(default)]
    pub allowed_secrets_manager_arn_prefix: String,
    /// The Secrets Manager endpoints a pipe's `SluiceParameters.SecretsManagerEndpoint` may name
    /// (the engine signs its requests there with its AWS credentials). Empty: any URL.
    #[serde(default)]
    pub allowed_secrets_manager_endpoints: Vec<String>,
}

impl SecretAllowlist {
    /// Pure checks of the section: the directories must be absolute, without `.` or `..`.
    pub fn validate(&self) -> Result<(), String> {
        for dir in &self.allowed_file_dirs {
            if !dir.is_absolute() || !is_plain(dir) {
                return Err(format!(
                    "secrets.allowed_file_dirs: {} must be an absolute path without . or ..",
                    dir.display()
                ));
            }
        }
        Ok(())
    }

    /// Whether a pipe definition may send Secrets Manager requests to `endpoint`.
    pub fn check_endpoint(&self, endpoint: &str) -> Result<(), String> {
        let listed = self.allowed_secrets_manager_endpoints.is_empty()
            || self
                .allowed_secrets_manager_endpoints
                .iter()
                .any(|e| e.trim_end_matches('/') == endpoint.trim_end_matches('/'));
        if listed {
            Ok(())
        } else {
            Err("is not among the endpoints allowed (secrets.allowed_secrets_manager_endpoints of the serve config): the engine signs its requests there with its AWS credentials".into())
        }
    }

    /// Whether a pipe definition may use `reference`; the error says which rule refuses it.
    pub fn check(&self, reference: &SecretRef) -> Result<(), String> {
        match reference {
            SecretRef::File(path) if !self.allowed_file_dirs.is_empty() => {
                let inside = path.is_absolute()
                    && is_plain(path)
                    && self.allowed_file_dirs.iter().any(|d| path.starts_with(d));
                if inside {
                    Ok(())
                } else {
                    Err(format!(
                        "{reference} is not an absolute path inside the directories allowed for file:// secrets (secrets.allowed_file_dirs of the serve config)"
                    ))
                }
            }
            SecretRef::Env(name) if !name.starts_with(&self.allowed_env_prefix) => Err(format!(
                "{reference}: env: secrets must be variables whose name starts with {} (secrets.allowed_env_prefix of the serve config)",
                self.allowed_env_prefix
            )),
            SecretRef::SecretsManager { arn, .. }
                if !arn.starts_with(&self.allowed_secrets_manager_arn_prefix) =>
            {
                Err(format!(
                    "{reference}: Secrets Manager secrets must have an ARN starting with {} (secrets.allowed_secrets_manager_arn_prefix of the serve config)",
                    self.allowed_secrets_manager_arn_prefix
                ))
            }
            _ => Ok(()),
        }
    }
}

/// No `.` or `..` components (`Path::starts_with` compares components as written).
fn is_plain(path: &Path) -> bool {
    path.components()
        .all(|c| !matches!(c, Component::ParentDir | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(text: &str) -> SecretRef {
        SecretRef::parse(text).unwrap()
    }

    #[test]
    fn an_empty_allowlist_allows_every_reference() {
        let a = SecretAllowlist::default();
        for r in [
            "file:///etc/shadow",
            "file://relative",
            "env:HOME",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:any",
        ] {
            assert_eq!(a.check(&refs(r)), Ok(()), "{r}");
        }
    }

    #[test]
    fn regression_any_caller_could_read_host_files_and_variables() {
        let a = SecretAllowlist {
            allowed_file_dirs: vec!["/run/secrets".into()],
            allowed_env_prefix: "SLUICE_PIPE_".into(),
            allowed_secrets_manager_arn_prefix:
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sluice/".into(),
            allowed_secrets_manager_endpoints: Vec::new(),
        };
        assert_eq!(a.validate(), Ok(()));
        for ok in [
            "file:///run/secrets/kafka.json",
            "env:SLUICE_PIPE_PW",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sluice/p-AbCd",
        ] {
            assert_eq!(a.check(&refs(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "file:///etc/shadow",
            "file:///run/secrets/../../etc/shadow",
            "file:///run/secretsX/k",
            "file://run/secrets/k",
        ] {
            let e = a.check(&refs(bad)).unwrap_err();
            assert!(e.contains("secrets.allowed_file_dirs"), "{bad}: {e}");
        }
        let e = a.check(&refs("env:AWS_SECRET_ACCESS_KEY")).unwrap_err();
        assert!(e.contains("secrets.allowed_env_prefix"), "{e}");
        let e = a
            .check(&refs(
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod-db",
            ))
            .unwrap_err();
        assert!(
            e.contains("secrets.allowed_secrets_manager_arn_prefix"),
            "{e}"
        );
    }

    #[test]
    fn regression_a_pipe_could_have_signed_secrets_manager_requests_sent_to_any_host() {
        assert_eq!(
            SecretAllowlist::default().check_endpoint("http://attacker.example"),
            Ok(())
        );
        let a = SecretAllowlist {
            allowed_secrets_manager_endpoints: vec!["http://127.0.0.1:4566/".into()],
            ..SecretAllowlist::default()
        };
        assert_eq!(a.check_endpoint("http://127.0.0.1:4566"), Ok(()));
        let e = a.check_endpoint("http://attacker.example").unwrap_err();
        assert!(
            e.contains("secrets.allowed_secrets_manager_endpoints"),
            "{e}"
        );
    }

    #[test]
    fn allowed_directories_must_be_absolute_and_plain() {
        for dir in ["run/secrets", "/run/../etc"] {
            let a = SecretAllowlist {
                allowed_file_dirs: vec![dir.into()],
                ..SecretAllowlist::default()
            };
            assert!(
                a.validate().unwrap_err().contains("allowed_file_dirs"),
                "{dir}"
            );
        }
    }
}
