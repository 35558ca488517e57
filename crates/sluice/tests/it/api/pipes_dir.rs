//! `sluice serve --pipes-dir`: pipe files are reconciled with the store at start (created, updated,
//! deleted when their file is gone), pipes created through the API are left alone, and an invalid
//! file stops the start before anything changes. No broker needed: the pipes are STOPPED.

use crate::support::serve::{Aws, Serve, ROLE};
use crate::support::sluice_command;

const FILE_PIPE: &str = "\
Name: from-file
DesiredState: STOPPED
Source: smk://127.0.0.1:9
Target: http://127.0.0.1:9/in
SourceParameters:
  SelfManagedKafkaParameters:
    TopicName: orders
    BatchSize: 10
";

fn names(aws: &Aws) -> Vec<String> {
    aws.pipes(&["list-pipes"]).json()["Pipes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn pipe_files_are_reconciled_and_api_pipes_are_left_alone() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("from-file.yaml");
    std::fs::write(&file, FILE_PIPE).unwrap();
    let pipes_dir = dir.path().to_str().unwrap().to_string();
    let args = ["--pipes-dir", pipes_dir.as_str()];

    let mut serve = Serve::start(data.path(), &args);
    let aws = Aws::new(&serve.url);
    assert_eq!(names(&aws), vec!["from-file"]);
    aws.wait_state("from-file", "STOPPED", std::time::Duration::from_secs(30));
    aws.pipes(&[
        "create-pipe",
        "--name",
        "from-api",
        "--source",
        "smk://127.0.0.1:9",
        "--target",
        "http://127.0.0.1:9/api",
        "--role-arn",
        ROLE,
        "--desired-state",
        "STOPPED",
        "--source-parameters",
        r#"{"SelfManagedKafkaParameters": {"TopicName": "t"}}"#,
    ])
    .json();
    assert_eq!(
        serve.sigterm(),
        Some(0),
        "graceful exit:\n{}",
        serve.log_text()
    );

    // A changed file replaces its pipe.
    std::fs::write(&file, FILE_PIPE.replace("BatchSize: 10", "BatchSize: 7")).unwrap();
    let mut serve = Serve::start(data.path(), &args);
    let aws = Aws::new(&serve.url);
    assert_eq!(names(&aws), vec!["from-api", "from-file"]);
    let d = aws.describe("from-file").unwrap();
    assert_eq!(
        d["SourceParameters"]["SelfManagedKafkaParameters"]["BatchSize"],
        7
    );
    assert_eq!(d["DesiredState"], "STOPPED");
    serve.sigterm();

    // An invalid file stops the start and changes nothing.
    std::fs::write(dir.path().join("bad.json"), r#"{"Name": "bad name!"}"#).unwrap();
    let out = sluice_command()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .args(args)
        .env("SLUICE_ACCESS_KEYS", "A:B")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.json"));
    std::fs::remove_file(dir.path().join("bad.json")).unwrap();

    // A removed file deletes its pipe; the API's pipe stays.
    std::fs::remove_file(&file).unwrap();
    let serve = Serve::start(data.path(), &args);
    let aws = Aws::new(&serve.url);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while names(&aws) != vec!["from-api"] {
        assert!(std::time::Instant::now() < deadline, "{:?}", names(&aws));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(serve);
}
