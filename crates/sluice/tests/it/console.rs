//! The web console in a real browser: `sluice serve` over HTTPS and a real broker, driven by one
//! Playwright script in headless Chromium (`tests/console/console_test.py`, which asserts every
//! step and saves a screenshot of each page under the run directory). The server's certificate is
//! signed by a CA made here; Chromium trusts exactly that certificate (its SPKI pin), and
//! Playwright's own requests exactly that CA (`NODE_EXTRA_CA_CERTS`). Skipped, saying so, only when
//! Chromium or Playwright are missing and `SLUICE_REQUIRE_BROWSER` is unset (`scripts/test`
//! sets it, so CI never skips).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::support::serve::{Serve, AKID, SECRET};
use crate::support::tls::{self_signed_ca, server_cert, spki_sha256_base64};
use crate::support::{tool, Broker, BrokerOptions, Receiver, Reply};

const CHROMIUM: &str = "/usr/bin/chromium";

/// The venv's python when Chromium and Playwright are there; `None` means skip.
fn browser_python() -> Option<PathBuf> {
    let python = tool("python");
    let playwright = std::process::Command::new(&python)
        .args(["-c", "import playwright"])
        .status()
        .is_ok_and(|s| s.success());
    if Path::new(CHROMIUM).exists() && playwright {
        return Some(python);
    }
    let missing = "Chromium (/usr/bin/chromium) or Playwright for Python is missing";
    if std::env::var_os("SLUICE_REQUIRE_BROWSER").is_some() {
        panic!("{missing} and SLUICE_REQUIRE_BROWSER is set: run scripts/setup");
    }
    eprintln!("SKIPPED console browser test: {missing} (scripts/setup installs both)");
    None
}

/// Where the screenshots go: the run directory when there is one.
fn shots_dir() -> PathBuf {
    let base = std::env::var_os("SLUICE_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("console-shots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_pipes_and_acts_on_them_in_a_browser() {
    let Some(python) = browser_python() else {
        return;
    };
    let broker = Broker::start("console", &BrokerOptions::memory());
    broker.create_topic("orders", 1).await;
    let data = tempfile::tempdir().unwrap();
    // A target that holds every delivery for a second until the script opens the gate, so the
    // backlog is still there when the lag is next measured, however fast this machine is.
    let gate = data.path().join("gate-open");
    let gate_seen = gate.clone();
    let rx = Receiver::start(Arc::new(move |_, _| Reply {
        delay: if gate_seen.exists() {
            Duration::ZERO
        } else {
            Duration::from_secs(1)
        },
        ..Reply::ok()
    }))
    .await;
    // A target that always fails, for a pipe whose execution log keeps the errors.
    broker.create_topic("failing", 1).await;
    let failing = Receiver::start(Arc::new(|_, _| Reply {
        status: 500,
        ..Reply::ok()
    }))
    .await;
    let ca = self_signed_ca(data.path(), "ca", "sluice-console-test-ca");
    let (cert, key) = server_cert(data.path(), &ca, 1);
    let tls = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let serve = Serve::start(&data.path().join("store"), &tls);
    assert!(serve.url.starts_with("https://"), "{}", serve.url);
    let shots = shots_dir();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/console_test.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .env("CONSOLE_URL", &serve.url)
        .env("SPKI_PIN", spki_sha256_base64(&cert))
        .env("NODE_EXTRA_CA_CERTS", &ca.0)
        .env("AKID", AKID)
        .env("SECRET", SECRET)
        .env("BOOTSTRAP", broker.bootstrap())
        .env("TOPIC", "orders")
        .env("TARGET_URL", &rx.url)
        .env("GATE_FILE", &gate)
        .env("FAILING_TOPIC", "failing")
        .env("FAILING_TARGET_URL", &failing.url)
        .env("LOG_FILE", data.path().join("failing.jsonl"))
        .env("SHOTS", &shots)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}screenshots in {}", shots.display());
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{}\nsluice serve log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        serve.log_text()
    );
    assert!(!stdout.contains(SECRET), "the secret key was printed");
}
