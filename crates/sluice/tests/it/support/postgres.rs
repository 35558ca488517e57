//! PostgreSQL for the tests: a throwaway server from `scripts/postgres` (`initdb` + `pg_ctl` on a
//! free loopback port, in a temp dir), stopped on drop, and the `[store]` section pointing at it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn script() -> PathBuf {
    super::workspace_root().join("scripts/postgres")
}

/// A running server; stopped (and its data removed) on drop.
#[derive(Debug)]
pub struct Postgres {
    pub name: String,
    /// `postgres://sluice@127.0.0.1:PORT/postgres`, without the password.
    pub url: String,
    /// A file holding the password alone.
    pub password_file: PathBuf,
}

impl Postgres {
    pub fn start(prefix: &str) -> Postgres {
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new(script())
            .args(["start", "--no-fsync", "--name", &name])
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/postgres");
        assert!(out.status.success(), "scripts/postgres start failed");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("scripts/postgres printed no {key}: {text}"))
                .to_string()
        };
        Postgres {
            url: get("URL"),
            password_file: get("PASSWORD_FILE").into(),
            name,
        }
    }

    /// The password itself (for checking that it never shows).
    pub fn password(&self) -> String {
        std::fs::read_to_string(&self.password_file).unwrap()
    }

    /// The `[store]` section of a `sluice serve` configuration using this server.
    pub fn store_config(&self) -> String {
        format!(
            "[store]\nurl = \"{}\"\npassword = \"{}\"\nacquire_timeout_ms = 1000\n",
            self.url,
            super::file_ref(&self.password_file)
        )
    }

    fn ctl(&self, what: &str) {
        let ok = Command::new(script())
            .args([what, "--name", &self.name])
            .stderr(Stdio::inherit())
            .status()
            .expect("run scripts/postgres")
            .success();
        assert!(ok, "scripts/postgres {what} failed");
    }

    /// Stop the server, keeping its data and port.
    pub fn pause(&self) {
        self.ctl("pause");
    }

    /// Start it again after [`Postgres::pause`].
    pub fn resume(&self) {
        self.ctl("resume");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", "--name", &self.name])
            .stderr(Stdio::inherit())
            .status();
    }
}
