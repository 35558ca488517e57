//! librdkafka's mock cluster, hosted on loopback for tests that need what the test broker lacks:
//! it keeps offset commit metadata (where a failing batch's attempt count lives). `sluice` and the
//! tests connect to it like to any broker.
//!
//! ```text
//! mock_cluster --topic NAME[:PARTITIONS]... [--brokers N]
//! ```
//!
//! Prints `BOOTSTRAP=host:port,...` on stdout once the topics exist, then serves until its stdin
//! closes (the test that started it ended) or it is killed.

use std::io::Read;

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
    // Serve until whoever started us goes away.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
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
