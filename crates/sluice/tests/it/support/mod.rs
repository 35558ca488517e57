//! The harness every area shares: real brokers through `scripts/broker` (`broker`), a recording
//! HTTP receiver (`receiver`), `sluice` processes (`sluice`), keys and certificates made with
//! `openssl` (`tls`), moto for AWS targets (`moto`), the MSK API and decoy listeners (`msk`),
//! `sluice serve` driven by the AWS CLI and boto3 (`serve`) or by signed requests from Rust
//! (`signed`), throwaway PostgreSQL servers (`postgres`) and clusters of `sluice serve` sharing one
//! (`cluster`); plus the test venv's tools and polling. Everything started here is stopped when
//! its guard drops.

mod broker;
pub mod cluster;
pub mod mock;
pub mod moto;
pub mod msk;
pub mod postgres;
mod receiver;
pub mod serve;
pub mod signed;
mod sluice;
pub mod tls;

pub use broker::*;
pub use receiver::*;
pub use sluice::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a test waits for records to be delivered and committed, or for `sluice` to stop.
pub const WAIT: Duration = Duration::from_secs(90);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn broker_script() -> PathBuf {
    std::env::var_os("SLUICE_BROKER_SCRIPT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("scripts/broker"))
}

/// `name` from the test venv `scripts/setup` installs (`$SLUICE_CACHE/venv`, by default
/// `~/.cache/sluice/venv`: `aws`, `python` with boto3, `moto_server`), else from PATH.
pub fn tool(name: &str) -> PathBuf {
    let cache = std::env::var_os("SLUICE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/sluice")));
    cache
        .map(|c| c.join("venv/bin").join(name))
        .filter(|p| p.exists())
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!("{name} not found in the test venv nor on PATH; run scripts/setup")
        })
}

/// A loopback port nothing listens on (at the time of asking).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `path` as a `file://` secret or certificate reference.
pub fn file_ref(path: impl AsRef<Path>) -> String {
    format!("file://{}", path.as_ref().display())
}

/// Poll `cond` until it holds or `timeout` passes.
pub async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Call `step` every `pause`, blocking the thread (for code without a runtime), until it gives
/// `Ok`; once `timeout` has passed, panic with its last `Err`.
pub fn poll_blocking<T>(
    timeout: Duration,
    pause: Duration,
    mut step: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match step() {
            Ok(v) => return v,
            Err(why) => assert!(Instant::now() < deadline, "{why}"),
        }
        std::thread::sleep(pause);
    }
}
