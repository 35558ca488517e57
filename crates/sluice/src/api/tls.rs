//! HTTPS for the API listener (`--tls-cert` / `--tls-key`, PEM): rustls on ring, with the
//! certificate behind a [`ReloadableCert`] that SIGHUP reloads from the same files, so
//! certificates rotate without a restart. A file that fails to load on reload keeps the
//! certificate in use (and the error is logged); new connections get the new certificate, open
//! ones keep theirs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// Why a certificate or key cannot be used. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is unreadable or holds no PEM certificate.
    #[error("--tls-cert {path}: {message}")]
    Cert {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The key file is unreadable, holds no PEM private key, or does not match the certificate.
    #[error("--tls-key {path}: {message}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl TlsError {
    /// The operator's files to fix.
    pub fn is_user_error(&self) -> bool {
        true
    }

    /// Loading the same files again fails the same way.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// The certificate chain and key of the listener, swapped whole on reload.
#[derive(Debug)]
pub struct ReloadableCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    /// Load the PEM chain at `cert_path` and the PEM key at `key_path`.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<ReloadableCert, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let first = load_pair(cert_path, key_path, &provider)?;
        Ok(ReloadableCert {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(first)),
        })
    }

    /// Read the files again; on error the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let next = load_pair(&self.cert_path, &self.key_path, &self.provider)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        Ok(())
    }

    /// An acceptor serving this certificate (HTTP/1.1 only, as the listener speaks).
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Cert {
                path: self.cert_path.display().to_string(),
                message: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        let mut config = config;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

fn load_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let cert_err = |message: String| TlsError::Cert {
        path: cert_path.display().to_string(),
        message,
    };
    let key_err = |message: String| TlsError::Key {
        path: key_path.display().to_string(),
        message,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("holds no PEM CERTIFICATE".into()));
    }
    // The pki-types error names the PEM section, never the key's bytes.
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| key_err(e.to_string()))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| key_err(e.to_string()))
}

/// Reload `cert` at every SIGHUP until the process ends, logging each outcome.
pub fn reload_on_sighup(cert: Arc<ReloadableCert>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match cert.reload() {
                Ok(()) => tracing::info!(
                    cert = %cert.cert_path.display(),
                    "SIGHUP: TLS certificate reloaded"
                ),
                Err(e) => tracing::error!(
                    error = %e,
                    "SIGHUP: TLS certificate not reloaded, the previous one stays in use"
                ),
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let err = ReloadableCert::load(&cert, &key).unwrap_err();
        assert!(err.to_string().starts_with("--tls-cert "), "{err}");
        std::fs::write(&cert, "not pem").unwrap();
        let err = ReloadableCert::load(&cert, &key).unwrap_err();
        assert!(
            err.to_string().contains("holds no PEM CERTIFICATE"),
            "{err}"
        );
    }
}
