//! TLS and SASL refusals read from librdkafka's error texts, and what each means for the user:
//! one table ([`Refusal::hint`]) worded with the names the user knows the settings by
//! ([`SettingNames`]: pipe fields for the source, `[[targets.kafka_clusters]]` keys for the
//! target). librdkafka would retry a refusal forever; it never heals by retrying.

/// A TLS or SASL refusal, read from the text of a librdkafka error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The broker's certificate is not valid for its host name.
    HostNameMismatch,
    /// The broker's certificate is not signed by a trusted CA.
    UnknownCa,
    /// The broker wants a client certificate and got none.
    ClientCertificateRequired,
    /// The broker refused the client certificate.
    ClientCertificateRefused,
    /// The broker refused the TLS handshake for another reason.
    HandshakeRefused,
    /// Wrong user name or password.
    BadCredentials,
    /// The broker does not offer the SASL mechanism.
    MechanismNotOffered,
}

/// What a client's user calls its security settings, so that a hint names what to change: the
/// raw librdkafka reason talks about librdkafka's own settings (`ssl.ca.location`).
#[derive(Debug, Clone, Copy)]
pub struct SettingNames {
    /// What the broker's host name is (`its host name in bootstrap_servers`).
    pub host_name: &'static str,
    /// The setting that gives the brokers' CA.
    pub ca: &'static str,
    /// The setting(s) that give a client certificate.
    pub client_certificate: &'static str,
    /// The user name and password.
    pub credentials: &'static str,
    /// The SASL mechanism.
    pub mechanism: &'static str,
}

impl Refusal {
    /// Classify a librdkafka error text as a refusal, when it is one.
    pub fn classify(reason: &str) -> Option<Refusal> {
        let r = reason.to_ascii_lowercase();
        if r.contains("certificate verify failed")
            || r.contains("broker certificate could not be verified")
        {
            if r.contains("hostname mismatch") || r.contains("host name") {
                return Some(Refusal::HostNameMismatch);
            }
            return Some(Refusal::UnknownCa);
        }
        if r.contains("alert certificate required")
            || r.contains("peer did not return a certificate")
        {
            return Some(Refusal::ClientCertificateRequired);
        }
        if r.contains("alert bad certificate")
            || r.contains("alert unknown ca")
            || r.contains("alert certificate unknown")
        {
            return Some(Refusal::ClientCertificateRefused);
        }
        if r.contains("alert handshake failure") {
            return Some(Refusal::HandshakeRefused);
        }
        if r.contains("invalid credentials")
            || r.contains("authentication failed")
            || r.contains("sasl authentication error")
        {
            return Some(Refusal::BadCredentials);
        }
        if r.contains("unsupported sasl mechanism")
            || r.contains("mechanism") && r.contains("not enabled")
        {
            return Some(Refusal::MechanismNotOffered);
        }
        None
    }

    /// What the refusal means for the user, naming the settings as `names` does.
    pub fn hint(self, names: &SettingNames) -> String {
        match self {
            Refusal::HostNameMismatch => format!(
                "the broker's TLS certificate does not match {}",
                names.host_name
            ),
            Refusal::UnknownCa => format!(
                "the broker's TLS certificate is not trusted (unknown CA): set {} or install the CA in the system trust store",
                names.ca
            ),
            Refusal::ClientCertificateRequired => format!(
                "the broker requires a client certificate: set {}",
                names.client_certificate
            ),
            Refusal::ClientCertificateRefused => {
                "the broker refused the client certificate (not signed by a CA it trusts?)".into()
            }
            Refusal::HandshakeRefused => {
                "the broker refused the TLS handshake (does it require a client certificate?)"
                    .into()
            }
            Refusal::BadCredentials => format!(
                "the broker refused the credentials (wrong {}?)",
                names.credentials
            ),
            Refusal::MechanismNotOffered => {
                format!("the broker does not offer {}", names.mechanism)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: SettingNames = SettingNames {
        host_name: "HOST",
        ca: "CA",
        client_certificate: "CERT",
        credentials: "CREDS",
        mechanism: "MECH",
    };

    #[test]
    fn librdkafka_texts_classify_as_their_refusal() {
        let cases = [
            ("SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified", Refusal::UnknownCa),
            ("SSL handshake failed: certificate verify failed: Hostname mismatch", Refusal::HostNameMismatch),
            ("SSL handshake failed: tlsv13 alert certificate required", Refusal::ClientCertificateRequired),
            ("SSL handshake failed: tlsv1 alert unknown ca", Refusal::ClientCertificateRefused),
            ("SSL handshake failed: sslv3 alert handshake failure", Refusal::HandshakeRefused),
            ("SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512", Refusal::BadCredentials),
            ("Unsupported SASL mechanism: broker's supported mechanisms: PLAIN", Refusal::MechanismNotOffered),
        ];
        for (text, refusal) in cases {
            assert_eq!(Refusal::classify(text), Some(refusal), "{text}");
        }
        assert_eq!(Refusal::classify("Connection refused"), None);
    }

    #[test]
    fn hints_name_the_settings_to_change() {
        let hint = |r: Refusal| r.hint(&NAMES);
        assert!(hint(Refusal::HostNameMismatch).ends_with("does not match HOST"));
        assert!(hint(Refusal::UnknownCa).contains("(unknown CA): set CA or install"));
        assert!(hint(Refusal::ClientCertificateRequired).ends_with("client certificate: set CERT"));
        assert!(hint(Refusal::BadCredentials).ends_with("(wrong CREDS?)"));
        assert!(hint(Refusal::MechanismNotOffered).ends_with("does not offer MECH"));
    }
}
