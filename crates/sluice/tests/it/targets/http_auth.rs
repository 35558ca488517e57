//! API destination ARNs resolved from Sluice's config, with each connection authorization kind:
//! API key header, Basic, and OAuth client credentials (token cached, fetched again after a 401).
//! Secret values come from `env:` references and never appear in the log.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::support::moto::run_sluice;
use crate::support::{
    pipe, produce, wait_committed, wait_for, Broker, BrokerOptions, Rec, Receiver, Reply, WAIT,
};
use serde_json::json;

const DEST: &str = "arn:aws:events:us-east-1:123456789012:api-destination/orders/8f2c1a";

fn config(endpoint: &str, method: &str, auth: &str) -> String {
    format!(
        r#"
[[targets.api_destinations]]
arn = "{DEST}"
endpoint = "{endpoint}"
http_method = "{method}"
invocation_rate_limit_per_second = 50
connection = "conn"

[[targets.connections]]
name = "conn"
auth = {auth}
"#
    )
}

async fn setup(name: &str, n: usize) -> Broker {
    let broker = Broker::start(name, &BrokerOptions::memory());
    broker.create_topic("t", 1).await;
    let recs: Vec<Rec> = (0..n)
        .map(|i| Rec::kv(0, "k", &json!({"id": format!("o{i}")}).to_string()))
        .collect();
    produce(&broker.producer(), "t", &recs).await;
    broker
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_connection_and_path_wildcards() {
    let broker = setup("auth-apikey", 3).await;
    let rx = Receiver::ok().await;
    let mut p = pipe("apikey", &broker, "t", DEST);
    // Named without the trailing id, as some AWS tooling writes it.
    p["Target"] = json!("arn:aws:events:us-east-1:123456789012:api-destination/orders");
    p["TargetParameters"] = json!({"HttpParameters": {"PathParameterValues": ["$.value.id"]}});
    let cfg = config(
        &format!("{}/*", rx.url),
        "PUT",
        r#"{ type = "API_KEY", api_key_name = "x-api-key", api_key_value = "env:SLUICE_TEST_API_KEY" }"#,
    );
    let sluice = run_sluice(
        &p,
        &cfg,
        &[("SLUICE_TEST_API_KEY", "key-SECRET-123".into())],
    );
    wait_committed(&sluice, &broker, "sluice-apikey", "t", 1, 3).await;
    let a = rx.arrivals();
    assert_eq!(a.len(), 3);
    for (i, x) in a.iter().enumerate() {
        assert_eq!(x.path_and_query, format!("/in/o{i}"));
        assert_eq!(
            x.headers.get("x-api-key").map(String::as_str),
            Some("key-SECRET-123")
        );
    }
    assert!(!sluice.log_text().contains("key-SECRET-123"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_delivery_logs_the_start_of_the_answer_without_the_secret() {
    let broker = setup("auth-detail", 1).await;
    // The first answer is a 500 that echoes the key it was sent, with a long tail.
    let rx = Receiver::start(Arc::new(|n, _| match n {
        0 => Reply::status(500).with_body(&format!(
            "{{\"error\": \"rejected key key-SECRET-789\",\n \"trace\": \"{}\"}}",
            "x".repeat(400)
        )),
        _ => Reply::ok(),
    }))
    .await;
    let mut p = pipe("detail", &broker, "t", DEST);
    p["SluiceParameters"] = json!({"MaximumRetryBackoffSeconds": 0.2});
    let cfg = config(
        &rx.url,
        "POST",
        r#"{ type = "API_KEY", api_key_name = "x-api-key", api_key_value = "env:SLUICE_TEST_API_KEY" }"#,
    );
    let sluice = run_sluice(
        &p,
        &cfg,
        &[("SLUICE_TEST_API_KEY", "key-SECRET-789".into())],
    );
    wait_committed(&sluice, &broker, "sluice-detail", "t", 1, 1).await;
    let log = sluice.log_text();
    assert!(!log.contains("key-SECRET-789"));
    let line = log
        .lines()
        .find(|l| l.contains("batch failed"))
        .expect("a failed batch is logged");
    assert!(
        line.contains(r#"target answered HTTP 500: {"error": "rejected key ***", "trace": "xxx"#),
        "{line}"
    );
    // Bounded: the 400 characters of the tail are cut.
    assert!(
        line.contains("xxx...") && !line.contains(&"x".repeat(300)),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_connection() {
    use base64::Engine;
    let broker = setup("auth-basic", 2).await;
    let rx = Receiver::ok().await;
    let p = pipe("basic", &broker, "t", DEST);
    let cfg = config(
        &rx.url,
        "POST",
        r#"{ type = "BASIC", username = "svc", password = "env:SLUICE_TEST_PW" }"#,
    );
    let sluice = run_sluice(&p, &cfg, &[("SLUICE_TEST_PW", "pw-SECRET-456".into())]);
    wait_committed(&sluice, &broker, "sluice-basic", "t", 1, 2).await;
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("svc:pw-SECRET-456")
    );
    for x in rx.arrivals() {
        assert_eq!(x.headers.get("authorization"), Some(&want));
    }
    assert!(!sluice.log_text().contains("pw-SECRET-456"));
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth_client_credentials_tokens_are_cached_and_refreshed_after_401() {
    use axum::http::HeaderMap;
    let broker = setup("auth-oauth", 5).await;
    // The token endpoint: checks the client credentials and hands out tok-1, tok-2...
    let issued = Arc::new(AtomicUsize::new(0));
    let forms: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let (i2, f2) = (issued.clone(), forms.clone());
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
        let (issued, forms) = (i2.clone(), f2.clone());
        async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            forms.lock().unwrap().push((auth, body));
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            (
                [("content-type", "application/json")],
                json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": 3600})
                    .to_string(),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    // The endpoint refuses the first request (as if the token had been revoked).
    let rx = Receiver::start(Arc::new(|n, _| {
        if n == 0 {
            Reply::status(401)
        } else {
            Reply::ok()
        }
    }))
    .await;
    let mut p = pipe("oauth", &broker, "t", DEST);
    p["SluiceParameters"] = json!({"MaximumRetryBackoffSeconds": 0.2});
    let auth = format!(
        r#"{{ type = "OAUTH_CLIENT_CREDENTIALS", authorization_endpoint = "http://{addr}/token", client_id = "sluice", client_secret = "env:SLUICE_TEST_CS", body_parameters = {{ scope = "orders" }} }}"#
    );
    let sluice = run_sluice(
        &p,
        &config(&rx.url, "POST", &auth),
        &[("SLUICE_TEST_CS", "cs-SECRET-789".into())],
    );
    wait_committed(&sluice, &broker, "sluice-oauth", "t", 1, 5).await;
    wait_for("deliveries", WAIT, || rx.count() >= 6).await;

    assert_eq!(
        issued.load(Ordering::SeqCst),
        2,
        "one token, then one more after the 401"
    );
    let bearer: Vec<String> = rx
        .arrivals()
        .iter()
        .map(|a| a.headers.get("authorization").cloned().unwrap_or_default())
        .collect();
    assert_eq!(bearer[0], "Bearer tok-1");
    assert!(
        bearer[1..].iter().all(|b| b == "Bearer tok-2"),
        "{bearer:?}"
    );
    let (client_auth, form) = forms.lock().unwrap()[0].clone();
    use base64::Engine;
    assert_eq!(
        client_auth,
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("sluice:cs-SECRET-789")
        )
    );
    assert!(
        form.contains("grant_type=client_credentials") && form.contains("scope=orders"),
        "{form}"
    );
    let log = sluice.log_text();
    assert!(
        !log.contains("cs-SECRET-789") && !log.contains("tok-1"),
        "{log}"
    );
    server.abort();
}

/// An API destination named as the `Enrichment`: resolved from the config like a target, with its
/// connection's authorization.
#[tokio::test(flavor = "multi_thread")]
async fn api_destination_as_enrichment() {
    use axum::http::HeaderMap;
    let broker = setup("auth-enrich", 2).await;
    let keys: Arc<Mutex<Vec<String>>> = Arc::default();
    let k2 = keys.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
        let keys = k2.clone();
        async move {
            keys.lock().unwrap().push(
                headers
                    .get("x-api-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string(),
            );
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            json!({"enriched": v["value"]}).to_string()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let rx = Receiver::ok().await;
    let mut p = pipe("enrich-dest", &broker, "t", &rx.url);
    p["Enrichment"] = json!(DEST);
    p["EnrichmentParameters"] = json!({"InputTemplate": "{\"value\": <$.value>}"});
    let cfg = config(
        &format!("http://{addr}/enrich"),
        "POST",
        r#"{ type = "API_KEY", api_key_name = "x-api-key", api_key_value = "env:SLUICE_TEST_EKEY" }"#,
    );
    let sluice = run_sluice(&p, &cfg, &[("SLUICE_TEST_EKEY", "ekey-SECRET".into())]);
    wait_committed(&sluice, &broker, "sluice-enrich-dest", "t", 1, 2).await;
    assert_eq!(*keys.lock().unwrap(), vec!["ekey-SECRET", "ekey-SECRET"]);
    wait_for("deliveries", WAIT, || rx.count() == 2).await;
    assert_eq!(
        rx.accepted(),
        vec![
            json!({"enriched": {"id": "o0"}}),
            json!({"enriched": {"id": "o1"}})
        ]
    );
    server.abort();
}
