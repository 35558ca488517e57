//! Helpers of the control-plane API tests: a `sluice serve` child process, the real AWS CLI and
//! Python (boto3) from the test venv, pointed at it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const AKID: &str = "AKIDSLUICETEST";
pub const SECRET: &str = "sluice-test-secret/K7MDENG+bPxRfiCY";
pub const ROLE: &str = "arn:aws:iam::123456789012:role/sluice";

/// The venv `scripts/setup` installs (AWS CLI, boto3).
fn venv_bin(tool: &str) -> Option<PathBuf> {
    let cache = std::env::var_os("SLUICE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/sluice")))?;
    let p = cache.join("venv/bin").join(tool);
    p.exists().then_some(p)
}

/// `tool` from PATH if it is there, else from the test venv.
pub fn tool(tool: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    });
    // Prefer the venv's python (it has boto3); the system one usually does not.
    if tool == "python" || tool == "python3" {
        if let Some(v) = venv_bin("python") {
            return v;
        }
    }
    on_path.or_else(|| venv_bin(tool)).unwrap_or_else(|| {
        panic!("{tool} not found on PATH nor in the test venv; run scripts/setup")
    })
}

/// A `sluice serve` child process; killed on drop.
pub struct Serve {
    pub child: Child,
    pub url: String,
    pub log: PathBuf,
    _logdir: tempfile::TempDir,
}

impl Serve {
    /// Start `sluice serve` on a free port with `data` as its store and the test access key.
    pub fn start(data: &Path, extra: &[&str]) -> Serve {
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("serve.log");
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .env("SLUICE_ACCESS_KEYS", format!("{AKID}:{SECRET}"))
            .env(
                "RUST_LOG",
                std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn sluice serve");
        let mut s = Serve {
            child,
            url: String::new(),
            log,
            _logdir: logdir,
        };
        s.url = s.wait_listening();
        s
    }

    fn wait_listening(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.log_text();
            if let Some(i) = text.find("api listening on ") {
                let rest = &text[i + "api listening on ".len()..];
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                return rest[..end].to_string();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("sluice serve exited with {status}:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "sluice serve never listened:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit code.
    pub fn sigterm(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            assert!(Instant::now() < deadline, "sluice serve ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The AWS CLI, configured for a `sluice serve`.
pub struct Aws {
    pub endpoint: String,
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
        let config = tempfile::tempdir().unwrap();
        // Without this the CLI v1 fetches every parameter value starting with http(s)://.
        std::fs::write(
            config.path().join("config"),
            "[default]\nregion = us-east-1\noutput = json\ncli_follow_urlparam = false\n",
        )
        .unwrap();
        Aws {
            endpoint: endpoint.to_string(),
            config,
            secret: SECRET.to_string(),
        }
    }

    /// Run `aws pipes ARGS...`.
    pub fn pipes(&self, args: &[&str]) -> CliResult {
        let out = Command::new(tool("aws"))
            .arg("pipes")
            .args(args)
            .args(["--endpoint-url", &self.endpoint])
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
        let deadline = Instant::now() + timeout;
        let mut seen: Vec<String> = Vec::new();
        loop {
            let d = self
                .describe(name)
                .unwrap_or_else(|| panic!("pipe {name} disappeared"));
            let cur = d["CurrentState"].as_str().unwrap_or("").to_string();
            if seen.last() != Some(&cur) {
                seen.push(cur.clone());
            }
            if cur == state {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never reached {state}; seen {seen:?}; last {d}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
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
