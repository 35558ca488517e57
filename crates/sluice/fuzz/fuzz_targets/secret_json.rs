//! Fuzz target: secret references and the JSON shapes of Kafka secrets (`secrets::json`), and the
//! TLS material of an mTLS or CA secret through `kafka::tls` (OpenSSL). Nothing may panic, and an
//! error never quotes the secret: every error is one of the fixed problem statements (with line
//! and column numbers), after the reference it names.
//!
//! Input layout: one byte choosing the shape (SASL, mTLS, CA), then `reference NUL secret`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::kafka::tls;
use sluice::secrets::{json, Secret, SecretRef};

/// Every problem a secret's error may state, digits as `#`. An error outside this list may quote
/// the secret (these are the messages of `secrets::json` and `kafka::tls`; keep them in step).
fn known_problems() -> Vec<String> {
    let mut out: Vec<String> = [
        "is not a JSON object",
        "is not valid JSON (line #, column #)",
        "field `certificate` holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        "field `privateKey` is not a PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN ENCRYPTED PRIVATE KEY-----)",
        "holds no PEM certificate (-----BEGIN CERTIFICATE-----), neither as the secret itself nor in field `certificate`",
        "is not a valid PEM certificate",
        "holds no PEM certificate",
        "cannot be re-encoded",
    ]
    .map(String::from)
    .into();
    for name in ["username", "password", "certificate", "privateKey", "privateKeyPassword"] {
        for problem in ["is missing", "is empty", "contains a NUL character", "must be a string"] {
            out.push(format!("field `{name}` {problem}"));
        }
    }
    let (cert, key, pw) = ("field `certificate`", "field `privateKey`", "field `privateKeyPassword`");
    out.extend([
        format!("{cert} is not a valid PEM certificate chain"),
        format!("{cert} holds no PEM certificate"),
        format!("the first certificate of {cert} has no usable public key"),
        format!("{key} does not belong to the first certificate of {cert} (the client certificate must come first)"),
        format!("{cert} cannot be re-encoded"),
        format!("{key} cannot be re-encoded"),
        format!("{pw} is missing and {key} is encrypted"),
        format!("{key} is not a readable PEM private key"),
        format!("{key} uses an encryption this OpenSSL cannot read"),
        format!("{key} could not be decrypted with {pw} (wrong password?)"),
    ]);
    out
}

/// The error must be one of the known problems, after the `secret <reference>: ` prefix of
/// `SecretError` (a TLS error has none).
fn assert_known(error: &str, reference: &str) {
    let problem = error
        .strip_prefix(&format!("secret {reference}: "))
        .unwrap_or(error);
    let shape: String = problem
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect();
    let shape = collapse_digits(&shape);
    assert!(
        known_problems().contains(&shape),
        "an error outside the known messages (it may quote the secret): {error:?}"
    );
}

/// `##` -> `#`: line and column numbers have any length.
fn collapse_digits(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if !(c == '#' && out.ends_with('#')) {
            out.push(c);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (reference, secret_text) = text.split_once('\0').unwrap_or(("env:FUZZ", text));
    let Ok(r) = SecretRef::parse(reference) else {
        return;
    };
    let shown = r.to_string();
    let secret = Secret::new(secret_text.to_string());
    let error = match kind % 3 {
        0 => json::user_password(&r, &secret).err().map(|e| e.to_string()),
        1 => match json::client_certificate(&r, &secret) {
            Ok(c) => tls::client_identity(&c).err().map(|e| e.to_string()),
            Err(e) => Some(e.to_string()),
        },
        _ => match json::ca_certificate(&r, &secret) {
            Ok(pem) => tls::ca_bundle(&pem).err().map(|e| e.to_string()),
            Err(e) => Some(e.to_string()),
        },
    };
    if let Some(error) = error {
        assert_known(&error, &shown);
    }
});
