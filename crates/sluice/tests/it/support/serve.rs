//! The control plane under test: a `sluice serve` child process (a [`Sluice`] that knows its URL),
//! and the real AWS CLI and Python (boto3) of the test venv pointed at it.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{poll_blocking, sluice_command, tool, Launch, Sluice};

pub const AKID: &str = "AKIDSLUICETEST";
pub const SECRET: &str = "sluice-test-secret/K7MDENG+bPxRfiCY";
pub const ROLE: &str = "arn:aws:iam::123456789012:role/sluice";

/// A `sluice serve` child process; killed on drop. Its log, `child`, `sigkill`... are those of
/// the [`Sluice`] it derefs to.
pub struct Serve {
    sluice: Sluice,
    pub url: String,
}

impl Deref for Serve {
    type Target = Sluice;
    fn deref(&self) -> &Sluice {
        &self.sluice
    }
}

impl DerefMut for Serve {
    fn deref_mut(&mut self) -> &mut Sluice {
        &mut self.sluice
    }
}

impl Serve {
    /// Start `sluice serve` on a free port with `data` as its store and the test access key.
    pub fn start(data: &Path, extra: &[&str]) -> Serve {
        Self::start_with(data, extra, &Launch::default())
    }

    /// [`Serve::start`] with `env` added to the process's environment.
    pub fn start_with_env(data: &Path, extra: &[&str], env: &[(&str, String)]) -> Serve {
        Self::start_with(
            data,
            extra,
            &Launch {
                env,
                ..Launch::default()
            },
        )
    }

    /// [`Serve::start`] with the log level, environment and secrets never to log of `launch`.
    pub fn start_with(data: &Path, extra: &[&str], launch: &Launch<'_>) -> Serve {
        let mut cmd = sluice_command();
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .envs(launch.env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("SLUICE_ACCESS_KEYS", format!("{AKID}:{SECRET}"));
        let mut sluice = Sluice::start(cmd, tempfile::tempdir().unwrap(), launch);
        let url = listening_url(&mut sluice);
        Serve { sluice, url }
    }

    /// SIGTERM and wait for the exit code (blocking, unlike [`Sluice::sigterm`]).
    pub fn sigterm(&mut self) -> Option<i32> {
        self.terminate();
        poll_blocking(Duration::from_secs(60), Duration::from_millis(20), || {
            self.exit_code()
                .ok_or_else(|| "sluice serve ignored SIGTERM".to_string())
        })
    }
}

/// The URL `sluice serve` logs that it listens on.
fn listening_url(sluice: &mut Sluice) -> String {
    const LISTENING: &str = "api listening on ";
    poll_blocking(Duration::from_secs(60), Duration::from_millis(20), || {
        let text = sluice.log_text();
        if let Some(i) = text.find(LISTENING) {
            let rest = &text[i + LISTENING.len()..];
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            return Ok(rest[..end].to_string());
        }
        if let Some(status) = sluice.child.try_wait().unwrap() {
            panic!("sluice serve exited with {status}:\n{text}");
        }
        Err(format!("sluice serve never listened:\n{text}"))
    })
}

/// The AWS CLI, configured for a `sluice serve`, or for several instances of a cluster, which
/// it then calls in turn (each call goes to the next one).
pub struct Aws {
    endpoints: Vec<String>,
    next: std::cell::Cell<usize>,
    config: tempfile::TempDir,
    pub secret: String,
}

/// What one CLI call gave.
#[derive(Debug)]
pub struct CliResult {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CliResult {
    pub fn json(&self) -> serde_json::Value {
        assert!(self.ok, "aws failed: {}", self.stderr);
        if self.stdout.trim().is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("aws printed no JSON ({e}): {}", self.stdout))
    }
}

impl Aws {
    pub fn new(endpoint: &str) -> Aws {
        Self::alternating(&[endpoint.to_string()])
    }

    /// Calls go to each of `endpoints` in turn.
    pub fn alternating(endpoints: &[String]) -> Aws {
        assert!(!endpoints.is_empty());
        let config = tempfile::tempdir().unwrap();
        // Without this the CLI v1 fetches every parameter value starting with http(s)://.
        std::fs::write(
            config.path().join("config"),
            "[default]\nregion = us-east-1\noutput = json\ncli_follow_urlparam = false\n",
        )
        .unwrap();
        Aws {
            endpoints: endpoints.to_vec(),
            next: std::cell::Cell::new(0),
            config,
            secret: SECRET.to_string(),
        }
    }

    /// Run `aws pipes ARGS...` against the next endpoint.
    pub fn pipes(&self, args: &[&str]) -> CliResult {
        let i = self.next.get();
        self.next.set((i + 1) % self.endpoints.len());
        let out = Command::new(tool("aws"))
            .arg("pipes")
            .args(args)
            .args(["--endpoint-url", &self.endpoints[i]])
            .env("AWS_CONFIG_FILE", self.config.path().join("config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.config.path().join("none"),
            )
            .env("AWS_ACCESS_KEY_ID", AKID)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PAGER", "")
            .env("AWS_MAX_ATTEMPTS", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run aws");
        CliResult {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `describe-pipe`, or `None` once the pipe is gone.
    pub fn describe(&self, name: &str) -> Option<serde_json::Value> {
        let r = self.pipes(&["describe-pipe", "--name", name]);
        if !r.ok && r.stderr.contains("NotFoundException") {
            return None;
        }
        Some(r.json())
    }

    /// Poll `describe-pipe` until `CurrentState` is `state`; every state seen on the way.
    pub fn wait_state(&self, name: &str, state: &str, timeout: Duration) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        poll_blocking(timeout, Duration::from_millis(200), || {
            let d = self
                .describe(name)
                .unwrap_or_else(|| panic!("pipe {name} disappeared"));
            let cur = d["CurrentState"].as_str().unwrap_or("").to_string();
            if seen.last() != Some(&cur) {
                seen.push(cur.clone());
            }
            if cur == state {
                return Ok(());
            }
            Err(format!(
                "{name} never reached {state}; seen {seen:?}; last {d}"
            ))
        });
        seen
    }
}

/// Run a Python script of `tests/python/` with the test venv's interpreter; panics with its output
/// when it fails.
pub fn run_python(script: &str, env: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = Command::new(tool("python"))
        .arg(&path)
        .envs(env.iter().copied())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    stdout
}
