//! `sluice` child processes: `sluice run` on a pipe definition (and the base of `serve::Serve`),
//! with its output in a log file, and the pipe definitions the tests run.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Broker;

/// How long a member holds its partitions before a test may SIGKILL it (see
/// [`Sluice::wait_settled`]); 6 s of membership was enough in every run seen.
pub const SETTLED_MEMBERSHIP: Duration = Duration::from_secs(6);

/// Longer than the session timeout Sluice asks for (10 s, `sources/kafka`), with a margin.
const SESSION_EXPIRY: Duration = Duration::from_secs(12);

/// Wait, after a member was SIGKILLed, until its session has certainly expired, so that the next
/// member's JoinGroup is what drops it. Tansu 0.6 drops an expired member in two ways, and only
/// one of them works: a JoinGroup starts a new generation without it, but a survivor's Heartbeat
/// removes it and leaves the group formed with the old assignment, so a member that joined while
/// the dead one still held the partitions keeps an empty assignment for good
/// (`../shared/test-broker.md`). The broker's group state is not observable here (DescribeGroups
/// fails on sqlite storage), so this is a wait on the clock the broker itself uses.
pub async fn outlive_session() {
    tokio::time::sleep(SESSION_EXPIRY).await;
}

/// The `sluice` binary under test.
pub fn sluice_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// How [`Sluice::spawn`] starts `sluice run`; `Launch::default()` is a plain run at `info`.
#[derive(Debug, Clone, Default)]
pub struct Launch<'a> {
    /// Arguments after `run PIPE_FILE`.
    pub args: &'a [&'a str],
    /// The content of a config file, passed with `--config`.
    pub config: Option<&'a str>,
    /// Added to the environment.
    pub env: &'a [(&'a str, String)],
    /// `RUST_LOG` unless `SLUICE_TEST_LOG` is set; `info` when empty.
    pub log: &'a str,
    /// Stdout goes to the log as well, for tests that check every byte the process prints.
    pub stdout: bool,
    /// What must never be in the log: [`Sluice::log_text`] panics, without showing the log, when
    /// one of them is, so that no assertion message can print a secret.
    pub secrets: &'a [&'a str],
}

/// A `sluice` child process (`sluice run` here, `sluice serve` in [`super::serve::Serve`]) whose
/// stderr goes to a log file; killed on drop.
#[derive(Debug)]
pub struct Sluice {
    pub child: Child,
    pub log: PathBuf,
    secrets: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Sluice {
    /// Start `sluice run` on a pipe definition (JSON value).
    pub fn run(pipe: &serde_json::Value) -> Sluice {
        Self::spawn(pipe, &Launch::default())
    }

    /// `sluice run` on `pipe` as `launch` says.
    pub fn spawn(pipe: &serde_json::Value, launch: &Launch<'_>) -> Sluice {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pipe.json");
        std::fs::write(&file, serde_json::to_vec_pretty(pipe).unwrap()).unwrap();
        let mut cmd = sluice_command();
        cmd.arg("run").arg(&file).args(launch.args);
        if let Some(toml) = launch.config {
            let config = dir.path().join("sluice.toml");
            std::fs::write(&config, toml).unwrap();
            cmd.arg("--config").arg(config);
        }
        cmd.envs(launch.env.iter().map(|(k, v)| (*k, v.as_str())));
        Self::start(cmd, dir, launch)
    }

    /// Spawn `cmd` (a [`sluice_command`]) with stderr (and stdout, when `launch.stdout`) in a log
    /// file of `dir`, kept as long as the process; `launch` gives the log level and the secrets.
    pub fn start(mut cmd: Command, dir: tempfile::TempDir, launch: &Launch<'_>) -> Sluice {
        let log = dir.path().join("sluice.log");
        let file = std::fs::File::create(&log).unwrap();
        let stdout = if launch.stdout {
            Stdio::from(file.try_clone().unwrap())
        } else {
            Stdio::null()
        };
        let level = match launch.log {
            "" => "info",
            level => level,
        };
        let child = cmd
            .env(
                "RUST_LOG",
                std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| level.into()),
            )
            .stdout(stdout)
            .stderr(file)
            .spawn()
            .expect("spawn sluice");
        Sluice {
            child,
            log,
            secrets: launch.secrets.iter().map(|s| s.to_string()).collect(),
            _dir: dir,
        }
    }

    /// The log so far, after checking that none of the launch's secrets is in it.
    pub fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        for secret in &self.secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a secret is in the output of sluice"
            );
        }
        text
    }

    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Send SIGTERM, without waiting.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// `Some(exit code)` once the process has exited (`Some(None)`: killed by a signal).
    pub fn exit_code(&mut self) -> Option<Option<i32>> {
        self.child.try_wait().unwrap().map(|st| st.code())
    }

    /// SIGTERM and wait for exit; returns the exit code.
    pub async fn sigterm(&mut self) -> Option<i32> {
        self.terminate();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(code) = self.exit_code() {
                return code;
            }
            assert!(
                Instant::now() < deadline,
                "sluice did not exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait for the process to exit by itself within `timeout`; its exit code (`None` when it
    /// still runs then, or was killed by a signal).
    pub async fn exited(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(code) = self.exit_code() {
                return code;
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait for partitions, then until they have been held for [`SETTLED_MEMBERSHIP`]: Tansu
    /// leaves the next member without partitions for minutes when a member is SIGKILLed within
    /// about a second of joining (`../shared/test-broker.md`), so a test kills only after this
    /// (and starts the next member only after [`outlive_session`]).
    pub async fn wait_settled(&self) {
        self.wait_assigned().await;
        tokio::time::sleep(SETTLED_MEMBERSHIP).await;
    }

    /// Wait until the log says the group assigned partitions.
    pub async fn wait_assigned(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.log_text().contains("partitions assigned") {
            assert!(
                Instant::now() < deadline,
                "sluice never got partitions:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal pipe definition from a broker topic to a URL.
pub fn pipe(name: &str, broker: &Broker, topic: &str, target: &str) -> serde_json::Value {
    serde_json::json!({
        "Name": name,
        "Source": format!("smk://{}", broker.bootstrap()),
        "Target": target,
        "SourceParameters": {
            "SelfManagedKafkaParameters": {
                "TopicName": topic,
                "StartingPosition": "TRIM_HORIZON",
                "BatchSize": 100
            }
        }
    })
}

/// (partition, offset) of a delivered record JSON.
pub fn position(v: &serde_json::Value) -> (i32, i64) {
    (
        v["partition"].as_str().unwrap().parse().unwrap(),
        v["offset"].as_i64().unwrap(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A [`Sluice`] around `sh -c script` (the harness does not care what the child is).
    async fn exited_shell(script: &str, launch: &Launch<'_>) -> Sluice {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        let mut sh = Sluice::start(cmd, tempfile::tempdir().unwrap(), launch);
        assert_eq!(sh.exited(Duration::from_secs(10)).await, Some(0));
        sh
    }

    #[tokio::test]
    async fn the_log_holds_stdout_only_when_asked() {
        let script = "echo to-stdout; echo to-stderr >&2";
        let both = Launch {
            stdout: true,
            ..Launch::default()
        };
        let log = exited_shell(script, &both).await.log_text();
        assert!(
            log.contains("to-stdout") && log.contains("to-stderr"),
            "{log}"
        );
        let log = exited_shell(script, &Launch::default()).await.log_text();
        assert!(
            !log.contains("to-stdout") && log.contains("to-stderr"),
            "{log}"
        );
    }

    #[tokio::test]
    #[should_panic(expected = "a secret is in the output of sluice")]
    async fn a_log_with_a_secret_in_it_is_never_returned() {
        let launch = Launch {
            secrets: &["hunter2"],
            ..Launch::default()
        };
        exited_shell("echo password=hunter2 >&2", &launch)
            .await
            .log_text();
    }
}
