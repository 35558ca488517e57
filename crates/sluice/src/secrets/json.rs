//! The shapes of Kafka secrets, as AWS defines them:
//! - SASL (SCRAM, PLAIN): `{"username": "...", "password": "..."}`;
//! - mTLS: `{"certificate": "<PEM chain, client first>", "privateKey": "<PKCS#8 PEM>",
//!   "privateKeyPassword": "..."}` (the password only for an encrypted key);
//! - server root CA: `{"certificate": "<PEM>"}` as AWS stores it, or (our convenience) the PEM
//!   text itself.
//!
//! Errors name the field that is missing or bad and never quote content: serde's own messages can
//! quote the offending value, so only its line and column are passed on.

use serde_json::{Map, Value};

use super::{Secret, SecretError, SecretRef};

/// A SASL user and password.
#[derive(Debug, Clone)]
pub struct UserPassword {
    /// The user name (not secret, but not logged either).
    pub username: String,
    /// The password.
    pub password: Secret,
}

/// A client certificate chain and its private key.
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    /// PEM certificates, the client's first.
    pub certificate: String,
    /// The PEM private key, possibly encrypted.
    pub private_key: Secret,
    /// The key's password, when given.
    pub private_key_password: Option<Secret>,
}

fn object(r: &SecretRef, s: &Secret) -> Result<Map<String, Value>, SecretError> {
    match serde_json::from_str::<Value>(s.expose()) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(SecretError::malformed(r, "is not a JSON object")),
        Err(e) => Err(SecretError::malformed(
            r,
            format!(
                "is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )),
    }
}

/// Take string field `name`: missing, not a string, empty or holding NUL are errors naming it.
fn field(
    r: &SecretRef,
    m: &mut Map<String, Value>,
    name: &str,
    required: bool,
) -> Result<Option<String>, SecretError> {
    match m.remove(name) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(SecretError::malformed(
            r,
            format!("field `{name}` is missing"),
        )),
        Some(Value::String(s)) if s.is_empty() => Err(SecretError::malformed(
            r,
            format!("field `{name}` is empty"),
        )),
        Some(Value::String(s)) if s.contains('\0') => Err(SecretError::malformed(
            r,
            format!("field `{name}` contains a NUL character"),
        )),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(SecretError::malformed(
            r,
            format!("field `{name}` must be a string"),
        )),
    }
}

/// Parse a SASL secret.
pub fn user_password(r: &SecretRef, s: &Secret) -> Result<UserPassword, SecretError> {
    let mut m = object(r, s)?;
    let username = field(r, &mut m, "username", true)?.unwrap_or_default();
    let password = Secret::new(field(r, &mut m, "password", true)?.unwrap_or_default());
    Ok(UserPassword { username, password })
}

/// Parse an mTLS secret.
pub fn client_certificate(r: &SecretRef, s: &Secret) -> Result<ClientCertificate, SecretError> {
    let mut m = object(r, s)?;
    let certificate = field(r, &mut m, "certificate", true)?.unwrap_or_default();
    let private_key = Secret::new(field(r, &mut m, "privateKey", true)?.unwrap_or_default());
    let private_key_password = field(r, &mut m, "privateKeyPassword", false)?.map(Secret::new);
    if !certificate.contains("-----BEGIN CERTIFICATE-----") {
        return Err(SecretError::malformed(
            r,
            "field `certificate` holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    if !private_key.expose().contains("PRIVATE KEY-----") {
        return Err(SecretError::malformed(
            r,
            "field `privateKey` is not a PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN ENCRYPTED PRIVATE KEY-----)",
        ));
    }
    Ok(ClientCertificate {
        certificate,
        private_key,
        private_key_password,
    })
}

/// Parse a server root CA secret: `{"certificate": PEM}` or the PEM itself.
pub fn ca_certificate(r: &SecretRef, s: &Secret) -> Result<String, SecretError> {
    let text = s.expose().trim_start();
    let pem = if text.starts_with('{') {
        let mut m = object(r, s)?;
        field(r, &mut m, "certificate", true)?.unwrap_or_default()
    } else {
        text.to_string()
    };
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(SecretError::malformed(
            r,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----), neither as the secret itself nor in field `certificate`",
        ));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> SecretRef {
        SecretRef::Env("X".into())
    }

    fn err(json: &str) -> String {
        user_password(&r(), &Secret::new(json.into()))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn user_password_parses() {
        let up = user_password(
            &r(),
            &Secret::new(r#"{"username":"alice","password":"pw"}"#.into()),
        )
        .unwrap();
        assert_eq!(up.username, "alice");
        assert_eq!(up.password.expose(), "pw");
    }

    #[test]
    fn malformed_secrets_name_the_field_not_the_content() {
        assert_eq!(
            err(r#"{"username":"alice"}"#),
            "secret env:X: field `password` is missing"
        );
        assert_eq!(
            err(r#"{"username":"alice","password":12345678}"#),
            "secret env:X: field `password` must be a string"
        );
        assert_eq!(
            err(r#"{"password":"topsecret"}"#),
            "secret env:X: field `username` is missing"
        );
        let e = err(r#"{"username":"alice","password":"topsecret""#);
        assert!(e.contains("is not valid JSON (line 1"), "{e}");
        assert!(!e.contains("topsecret"), "{e}");
        let e = err("topsecret-not-json");
        assert!(!e.contains("topsecret"), "{e}");
        assert_eq!(err("[1]"), "secret env:X: is not a JSON object");
        assert!(err(r#"{"username":"a","password":"x\u0000y"}"#).contains("NUL"));
    }

    #[test]
    fn client_certificate_needs_pem_fields() {
        let e = client_certificate(
            &r(),
            &Secret::new(r#"{"certificate":"nope","privateKey":"k"}"#.into()),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("field `certificate` holds no PEM"), "{e}");
        let e = client_certificate(
            &r(),
            &Secret::new(r#"{"certificate":"-----BEGIN CERTIFICATE-----"}"#.into()),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("field `privateKey` is missing"), "{e}");
    }

    #[test]
    fn ca_certificate_accepts_json_or_pem() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert_eq!(ca_certificate(&r(), &Secret::new(pem.into())).unwrap(), pem);
        let json = serde_json::json!({ "certificate": pem }).to_string();
        assert_eq!(ca_certificate(&r(), &Secret::new(json)).unwrap(), pem);
        assert!(ca_certificate(&r(), &Secret::new("{}".into()))
            .unwrap_err()
            .to_string()
            .contains("field `certificate` is missing"));
    }
}
