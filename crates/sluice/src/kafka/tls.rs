//! TLS material for librdkafka, prepared in memory: the client certificate chain and private key of
//! mTLS (an encrypted PKCS#8 key is decrypted here, PBES1 or PBES2, and handed on as unencrypted
//! PEM text that only ever lives in memory), and the server CA bundle.
//!
//! OpenSSL 3 reads PBES1 with single DES (PBE-SHA1-DES, PBE-MD5-DES) and RC2 only with its legacy
//! provider; it is loaded on first need, next to the default provider, and stays loaded.

use std::sync::OnceLock;

use openssl::pkey::{PKey, Private};
use openssl::provider::Provider;
use openssl::x509::X509;
use zeroize::Zeroizing;

use crate::secrets::json::ClientCertificate;
use crate::secrets::Secret;

/// A client certificate chain and its key, as librdkafka's `ssl.certificate.pem` and `ssl.key.pem`.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// PEM certificates, the client's first, one block per certificate.
    pub certificate_pem: String,
    /// The unencrypted PKCS#8 PEM key.
    pub key_pem: Secret,
}

/// What is wrong with TLS material; the message names the field, never its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// How errors name the three parts of a client identity: the fields of an AWS mTLS secret
/// ([`SECRET_FIELDS`]) or, for a Kafka target, the keys of its `[targets]` configuration.
#[derive(Debug, Clone, Copy)]
pub struct IdentityFields<'a> {
    /// The certificate chain (in a secret: field `certificate`).
    pub certificate: &'a str,
    /// The private key (in a secret: field `privateKey`).
    pub key: &'a str,
    /// The key's password (in a secret: field `privateKeyPassword`).
    pub key_password: &'a str,
}

/// The field names of an AWS `ClientCertificateTlsAuth` secret.
pub const SECRET_FIELDS: IdentityFields<'static> = IdentityFields {
    certificate: "field `certificate`",
    key: "field `privateKey`",
    key_password: "field `privateKeyPassword`",
};

/// Check and prepare a client certificate secret.
pub fn client_identity(c: &ClientCertificate) -> Result<ClientIdentity, TlsError> {
    client_identity_named(c, &SECRET_FIELDS)
}

/// Check and prepare a client certificate chain and key; errors name the parts with `names`.
pub fn client_identity_named(
    c: &ClientCertificate,
    names: &IdentityFields<'_>,
) -> Result<ClientIdentity, TlsError> {
    let cert_field = names.certificate;
    let chain = X509::stack_from_pem(c.certificate.as_bytes())
        .map_err(|_| TlsError(format!("{cert_field} is not a valid PEM certificate chain")))?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError(format!("{cert_field} holds no PEM certificate")));
    };
    let key = private_key(&c.private_key, c.private_key_password.as_ref(), names)?;
    let leaf_key = leaf.public_key().map_err(|_| {
        TlsError(format!(
            "the first certificate of {cert_field} has no usable public key"
        ))
    })?;
    if !leaf_key.public_eq(&key) {
        return Err(TlsError(format!(
            "{} does not belong to the first certificate of {cert_field} (the client certificate must come first)",
            names.key
        )));
    }
    let mut certificate_pem = String::new();
    for cert in &chain {
        let pem = cert
            .to_pem()
            .map_err(|_| TlsError(format!("{cert_field} cannot be re-encoded")))?;
        certificate_pem.push_str(&String::from_utf8_lossy(&pem));
    }
    let der = Zeroizing::new(
        key.private_key_to_pem_pkcs8()
            .map_err(|_| TlsError(format!("{} cannot be re-encoded", names.key)))?,
    );
    let key_pem = Secret::new(String::from_utf8_lossy(&der).into_owned());
    Ok(ClientIdentity {
        certificate_pem,
        key_pem,
    })
}

/// Read a PEM private key, decrypting it with `password` when it is encrypted.
fn private_key(
    pem: &Secret,
    password: Option<&Secret>,
    names: &IdentityFields<'_>,
) -> Result<PKey<Private>, TlsError> {
    let encrypted = pem
        .expose()
        .contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || pem.expose().contains("Proc-Type: 4,ENCRYPTED");
    if encrypted && password.is_none() {
        return Err(TlsError(format!(
            "{} is missing and {} is encrypted",
            names.key_password, names.key
        )));
    }
    let read = || {
        // A callback even for unencrypted keys: without one OpenSSL would prompt on the terminal.
        PKey::private_key_from_pem_callback(pem.expose().as_bytes(), |buf| {
            let pw = password.map(|p| p.expose().as_bytes()).unwrap_or_default();
            if pw.len() > buf.len() {
                return Ok(0);
            }
            buf[..pw.len()].copy_from_slice(pw);
            Ok(pw.len())
        })
    };
    match read() {
        Ok(k) => Ok(k),
        Err(e) if encrypted && is_unsupported(&e) && load_legacy_provider() => {
            read().map_err(|e| decrypt_error(&e, names))
        }
        Err(e) if encrypted => Err(decrypt_error(&e, names)),
        Err(_) => Err(TlsError(format!(
            "{} is not a readable PEM private key",
            names.key
        ))),
    }
}

fn is_unsupported(e: &openssl::error::ErrorStack) -> bool {
    e.errors().iter().any(|e| {
        e.reason()
            .is_some_and(|r| r.contains("unsupported") || r.contains("fetch failed"))
    })
}

/// Whether OpenSSL lacks the key's cipher. Its decoder also says "unsupported" when it cannot decode
/// what a wrong password decrypted to (one wrong password in 256 passes the padding check), so
/// the decoder's own errors do not count.
fn is_unsupported_cipher(e: &openssl::error::ErrorStack) -> bool {
    e.errors().iter().any(|e| {
        e.library() != Some("DECODER routines")
            && e.reason()
                .is_some_and(|r| r.contains("unsupported") || r.contains("fetch failed"))
    })
}

fn decrypt_error(e: &openssl::error::ErrorStack, names: &IdentityFields<'_>) -> TlsError {
    if is_unsupported_cipher(e) {
        TlsError(format!(
            "{} uses an encryption this OpenSSL cannot read",
            names.key
        ))
    } else {
        TlsError(format!(
            "{} could not be decrypted with {} (wrong password?)",
            names.key, names.key_password
        ))
    }
}

/// Load OpenSSL's legacy provider once (for single-DES and RC2 PBES1 keys). False when unavailable.
fn load_legacy_provider() -> bool {
    static LEGACY: OnceLock<Option<Provider>> = OnceLock::new();
    LEGACY
        .get_or_init(|| match Provider::try_load(None, "legacy", true) {
            Ok(p) => {
                tracing::debug!("loaded the OpenSSL legacy provider for a PBES1 private key");
                Some(p)
            }
            Err(_) => {
                tracing::warn!("the OpenSSL legacy provider is not available; legacy PBES1 keys cannot be read");
                None
            }
        })
        .is_some()
}

/// Check a CA bundle (one or more PEM certificates) and return it as librdkafka's `ssl.ca.pem`.
pub fn ca_bundle(pem: &str) -> Result<String, TlsError> {
    let certs = X509::stack_from_pem(pem.as_bytes())
        .map_err(|_| TlsError("is not a valid PEM certificate".into()))?;
    if certs.is_empty() {
        return Err(TlsError("holds no PEM certificate".into()));
    }
    let mut out = String::new();
    for c in &certs {
        let pem = c
            .to_pem()
            .map_err(|_| TlsError("cannot be re-encoded".into()))?;
        out.push_str(&String::from_utf8_lossy(&pem));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::rsa::Rsa;
    use openssl::symm::Cipher;
    use openssl::x509::X509Name;

    fn self_signed(key: &PKey<Private>) -> X509 {
        let mut name = X509Name::builder().unwrap();
        name.append_entry_by_text("CN", "test").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(key, MessageDigest::sha256()).unwrap();
        b.build()
    }

    fn key() -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
    }

    fn cert_secret(cert: &X509, key_pem: String, pw: Option<&str>) -> ClientCertificate {
        ClientCertificate {
            certificate: String::from_utf8(cert.to_pem().unwrap()).unwrap(),
            private_key: Secret::new(key_pem),
            private_key_password: pw.map(|p| Secret::new(p.into())),
        }
    }

    #[test]
    fn plain_and_pbes2_keys_work_and_wrong_passwords_are_named() {
        let k = key();
        let cert = self_signed(&k);
        let plain = String::from_utf8(k.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let id = client_identity(&cert_secret(&cert, plain.clone(), None)).unwrap();
        assert!(id.key_pem.expose().contains("BEGIN PRIVATE KEY"));
        assert!(id.certificate_pem.contains("BEGIN CERTIFICATE"));

        let enc = String::from_utf8(
            k.private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"kpw")
                .unwrap(),
        )
        .unwrap();
        assert!(enc.contains("BEGIN ENCRYPTED PRIVATE KEY"));
        let id = client_identity(&cert_secret(&cert, enc.clone(), Some("kpw"))).unwrap();
        assert_eq!(id.key_pem.expose(), plain);

        let e = client_identity(&cert_secret(&cert, enc.clone(), Some("nope"))).unwrap_err();
        assert!(e.0.contains("wrong password"), "{e}");
        let e = client_identity(&cert_secret(&cert, enc, None)).unwrap_err();
        assert!(e.0.contains("`privateKeyPassword` is missing"), "{e}");
    }

    /// About one wrong password in 256 passes the CBC padding check; OpenSSL then fails to decode
    /// the garbage ("DECODER routines::unsupported"), which was taken for an unreadable cipher.
    #[test]
    fn regression_a_wrong_password_was_reported_as_an_unsupported_encryption() {
        let k = key();
        let cert = self_signed(&k);
        let enc = String::from_utf8(
            k.private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"kpw")
                .unwrap(),
        )
        .unwrap();
        for i in 0..2000 {
            let pw = format!("wrong-{i}");
            let e = client_identity(&cert_secret(&cert, enc.clone(), Some(&pw))).unwrap_err();
            assert!(e.0.contains("wrong password"), "password {pw}: {e}");
        }
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let cert = self_signed(&key());
        let other = String::from_utf8(key().private_key_to_pem_pkcs8().unwrap()).unwrap();
        let e = client_identity(&cert_secret(&cert, other, None)).unwrap_err();
        assert!(e.0.contains("does not belong"), "{e}");
    }

    #[test]
    fn garbage_is_named_not_echoed() {
        let cert = self_signed(&key());
        let bad = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n";
        let e = client_identity(&cert_secret(&cert, bad.into(), None)).unwrap_err();
        assert!(e.0.contains("`privateKey` is not a readable"), "{e}");
        assert!(!e.0.contains("c2VjcmV0"));
        assert!(ca_bundle("-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n").is_err());
    }
}
