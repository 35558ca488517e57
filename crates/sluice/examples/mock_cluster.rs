//! librdkafka's mock cluster, hosted on loopback for tests that need what the test broker lacks:
//! it keeps offset commit metadata (where a failing batch's attempt count lives). `sluice` and the
//! tests connect to it like to any broker.
//!
//! ```text
//! mock_cluster --topic NAME[:PARTITIONS]... [--brokers N]
//! ```
//!
//! Prints `BOOTSTRAP=host:port,...` on stdout once the topics exist, then serves until its stdin
//! closes (the test that started it ended) or it is killed. Lines on stdin steer it:
//! `down <broker id>` and `up <broker id>` (1-based) make a broker unreachable and back; each is
//! answered `ok` or `error: ...` on stdout.

use std::io::{BufRead, Write};

use rdkafka::mocking::MockCluster;

fn main() {
    let mut topics: Vec<(String, i32)> = Vec::new();
    let mut brokers = 1;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--topic" => {
                let spec = args
                    .next()
                    .unwrap_or_else(|| usage("--topic needs a value"));
                let (name, parts) = match spec.split_once(':') {
                    Some((n, p)) => (n.to_string(), p.parse().unwrap_or_else(|_| usage(&spec))),
                    None => (spec, 1),
                };
                topics.push((name, parts));
            }
            "--brokers" => {
                brokers = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| usage("--brokers needs a number"));
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let cluster = MockCluster::new(brokers).unwrap_or_else(|e| fail(&format!("mock cluster: {e}")));
    for (name, parts) in &topics {
        cluster
            .create_topic(name, *parts, brokers.min(3))
            .unwrap_or_else(|e| fail(&format!("topic {name}: {e}")));
    }
    println!("BOOTSTRAP={}", cluster.bootstrap_servers());
    let _ = std::io::stdout().flush();
    // Serve until whoever started us goes away.
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let answer = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["down", id] => id
                .parse()
                .map_err(|_| "bad id".to_string())
                .and_then(|id| cluster.broker_down(id).map_err(|e| e.to_string())),
            ["up", id] => id
                .parse()
                .map_err(|_| "bad id".to_string())
                .and_then(|id| cluster.broker_up(id).map_err(|e| e.to_string())),
            [] => continue,
            _ => Err(format!("unknown command {line:?}")),
        };
        match answer {
            Ok(()) => println!("ok"),
            Err(e) => println!("error: {e}"),
        }
        let _ = std::io::stdout().flush();
    }
}

fn usage(problem: &str) -> ! {
    fail(&format!(
        "{problem}\nusage: mock_cluster --topic NAME[:PARTITIONS]... [--brokers N]"
    ))
}

fn fail(message: &str) -> ! {
    eprintln!("mock_cluster: {message}");
    std::process::exit(2)
}
