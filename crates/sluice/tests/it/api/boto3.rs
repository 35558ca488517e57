//! The control-plane API driven by boto3 (botocore from PyPI) and by raw HTTP: shapes, paging and
//! every error case raising the botocore exception AWS would raise, on the embedded store and on
//! two instances sharing PostgreSQL (the requests alternating between them). No broker needed:
//! the pipes point at an unreachable one.

use crate::support::cluster::Cluster;
use crate::support::serve::{run_python, Serve, AKID, SECRET};

#[test]
fn boto3_shapes_paging_and_errors() {
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(data.path(), &[]);
    let out = run_python(
        "api_boto3.py",
        &[
            ("SLUICE_ENDPOINT", &serve.url),
            ("AKID", AKID),
            ("SECRET", SECRET),
        ],
    );
    assert!(out.contains("all boto3 checks passed"), "{out}");
    let log = serve.log_text();
    assert!(!log.contains(SECRET), "the secret key leaked into the log");
}

#[test]
fn boto3_shapes_paging_and_errors_on_two_instances() {
    let cluster = Cluster::start("api-boto3", &["one", "two"], |_| String::new());
    let endpoints = cluster.urls().join(",");
    let out = run_python(
        "api_boto3.py",
        &[
            ("SLUICE_ENDPOINT", &endpoints),
            ("AKID", AKID),
            ("SECRET", SECRET),
        ],
    );
    assert!(out.contains("all boto3 checks passed"), "{out}");
    assert!(out.contains("alternating between 2 endpoints"), "{out}");
    for i in 0..2 {
        // The database password is checked by the harness on every read of the log.
        let log = cluster.serve(i).log_text();
        assert!(!log.contains(SECRET), "the secret key leaked into the log");
        assert!(log.contains("pipe store open (PostgreSQL)"), "{log}");
    }
}

#[tokio::test]
async fn unsigned_requests_get_aws_error_shape_and_dev_mode_warns() {
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(data.path(), &[]);
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/v1/pipes/p/start", serve.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.headers()["x-amzn-errortype"],
        "UnrecognizedClientException"
    );
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert!(body["message"].is_string(), "{body}");
    drop(serve);

    let serve = Serve::start(data.path(), &["--dev-accept-any-credentials"]);
    assert!(serve
        .log_text()
        .contains("WARNING: --dev-accept-any-credentials"));
    let resp = http
        .get(format!("{}/v1/pipes", serve.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http
        .get(format!("{}/v1/pipes/nope", serve.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-amzn-errortype"], "NotFoundException");
}
