//! `sluice serve --tls-cert/--tls-key`: the AWS CLI lists pipes over HTTPS with a CA made by the
//! test, and SIGHUP rotates the certificate (a bad file keeps the one in use).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::poll_blocking;
use crate::support::serve::{Aws, Serve};
use crate::support::tls::{self_signed_ca, server_cert};
use crate::support::tool;

/// The serial number of the certificate a new TLS connection to `port` is served, as Python's
/// `ssl` module sees it (verified against `ca`).
fn served_serial(port: u16, ca: &Path) -> String {
    const SCRIPT: &str = "\
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
with socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5) as s:
    with ctx.wrap_socket(s, server_hostname='127.0.0.1') as t:
        print(t.getpeercert()['serialNumber'])
";
    let out = Command::new(tool("python"))
        .args(["-c", SCRIPT, &port.to_string(), ca.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Put `from` in place of `to` atomically (as certificate tools rotate files).
fn replace(from: &Path, to: &Path) {
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

fn sighup(serve: &Serve) {
    let pid = serve.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
}

#[test]
fn the_aws_cli_lists_pipes_over_https_and_sighup_rotates_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = self_signed_ca(dir.path(), "ca", "sluice-test-ca");
    let first = server_cert(dir.path(), &ca, 1);
    let second = server_cert(dir.path(), &ca, 2);
    let (cert, key) = (dir.path().join("tls.pem"), dir.path().join("tls.key"));
    replace(&first.0, &cert);
    replace(&first.1, &key);
    let serve = Serve::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(serve.url.starts_with("https://127.0.0.1:"), "{}", serve.url);
    let port: u16 = serve.url.rsplit(':').next().unwrap().parse().unwrap();
    let aws = Aws::new(&serve.url);
    let listed = aws.pipes(&["list-pipes", "--ca-bundle", ca.0.to_str().unwrap()]);
    assert_eq!(listed.json()["Pipes"], serde_json::json!([]));
    assert_eq!(served_serial(port, &ca.0), "01");

    replace(&second.0, &cert);
    replace(&second.1, &key);
    sighup(&serve);
    poll_blocking(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || match served_serial(port, &ca.0).as_str() {
            "02" => Ok(()),
            other => Err(format!("still serving serial {other}")),
        },
    );

    // A broken file on reload keeps the certificate in use.
    std::fs::write(&cert, "not a certificate").unwrap();
    sighup(&serve);
    poll_blocking(Duration::from_secs(10), Duration::from_millis(50), || {
        let log = serve.log_text();
        match log.contains("TLS certificate not reloaded, the previous one stays in use") {
            true => Ok(()),
            false => Err(format!("no reload error logged:\n{log}")),
        }
    });
    assert_eq!(served_serial(port, &ca.0), "02");
    let listed = aws.pipes(&["list-pipes", "--ca-bundle", ca.0.to_str().unwrap()]);
    assert!(listed.ok, "{}", listed.stderr);
}
