//! librdkafka's mock cluster in a helper process (`examples/mock_cluster.rs`), for what the test
//! broker lacks: it keeps offset commit metadata, moves a dead group member's partitions to the
//! others after the session timeout, and `down`/`up` steer its broker.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};

use rdkafka::ClientConfig;

/// librdkafka's mock cluster in a helper process (`examples/mock_cluster.rs`), which keeps commit
/// metadata; `down`/`up` steer its broker. Stopped when dropped.
pub struct MockCluster {
    child: Child,
    stdin: ChildStdin,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    pub bootstrap: String,
}

impl MockCluster {
    pub fn start(topics: &[&str]) -> MockCluster {
        let exe = mock_cluster_exe();
        let mut cmd = Command::new(exe);
        for t in topics {
            cmd.args(["--topic", t]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("mock_cluster");
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let bootstrap = first.strip_prefix("BOOTSTRAP=").unwrap().to_string();
        MockCluster {
            child,
            stdin,
            lines,
            bootstrap,
        }
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c
    }

    pub fn command(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        let answer = self.lines.next().unwrap().unwrap();
        assert_eq!(answer, "ok", "mock cluster: {line}");
    }
}

impl Drop for MockCluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `mock_cluster` example beside the test binary, built first when it is not there yet
/// (`cargo test --test it` alone builds no examples).
fn mock_cluster_exe() -> std::path::PathBuf {
    let deps = std::env::current_exe().unwrap();
    let exe = deps
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/mock_cluster");
    if !exe.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "sluice", "--example", "mock_cluster"])
            .status()
            .unwrap();
        assert!(status.success(), "cannot build the mock_cluster example");
    }
    exe
}
