//! Keys and certificates made with the `openssl` command, for the TLS tests: a broker's client key
//! encrypted as PKCS#8 (PBES1 or PBES2), self-signed CAs, a server certificate for 127.0.0.1
//! signed by one (and its SPKI pin for Chromium), and a CA that signed nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Broker;

/// Run `openssl` with `args`; panics with its stderr when it fails.
pub fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `broker`'s client key encrypted under `password` as `how` says (`openssl pkcs8` arguments:
/// `-v2 aes-256-cbc`, `-v1 PBE-SHA1-3DES`...), written to `out`; returns `out`.
pub fn encrypted_client_key(broker: &Broker, out: &Path, how: &[&str], password: &str) -> PathBuf {
    let out_s = out.display().to_string();
    let pass = format!("pass:{password}");
    let mut args = vec!["pkcs8", "-topk8", "-in", &broker.info["CLIENT_KEY"]];
    args.extend_from_slice(how);
    args.extend_from_slice(&["-passout", &pass, "-out", &out_s]);
    openssl(&args);
    out.to_path_buf()
}

/// A self-signed CA named `cn`, made in `dir` as `<stem>.pem` and `<stem>.key`: (certificate, key).
pub fn self_signed_ca(dir: &Path, stem: &str, cn: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
        "-days",
        "1",
        "-subj",
        &format!("/CN={cn}"),
    ]);
    (cert, key)
}

/// A certificate for 127.0.0.1 signed by `ca`, with `serial`: (certificate, key) in `dir`.
pub fn server_cert(dir: &Path, ca: &(PathBuf, PathBuf), serial: u32) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("server-{serial}.key"));
    let csr = dir.join(format!("server-{serial}.csr"));
    let cert = dir.join(format!("server-{serial}.pem"));
    let ext = dir.join("san.ext");
    std::fs::write(&ext, "subjectAltName = IP:127.0.0.1\n").unwrap();
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        csr.to_str().unwrap(),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        ca.0.to_str().unwrap(),
        "-CAkey",
        ca.1.to_str().unwrap(),
        "-set_serial",
        &serial.to_string(),
        "-days",
        "1",
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    (cert, key)
}

/// The pin Chromium's `--ignore-certificate-errors-spki-list` takes for the certificate in `pem`:
/// the base64 SHA-256 of its SubjectPublicKeyInfo (DER).
pub fn spki_sha256_base64(pem: &Path) -> String {
    use base64::Engine;
    use sha2::Digest;
    let cert = openssl::x509::X509::from_pem(&std::fs::read(pem).unwrap()).unwrap();
    let spki = cert.public_key().unwrap().public_key_to_der().unwrap();
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(spki))
}

/// The PEM certificate of a CA, made in `dir`, that signed no broker's certificate.
pub fn stranger_ca(dir: &Path) -> String {
    let (pem, _) = self_signed_ca(dir, "other-ca", "not-the-broker-ca");
    std::fs::read_to_string(pem).unwrap()
}
