//! MSK IAM tokens: decoded, checked field by field, and their SigV4 signature recomputed here from
//! first principles (HMAC-SHA256 chain) so the check does not trust the signer it tests; and
//! librdkafka really asks our context for tokens through its OAuth refresh hook.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use base64::Engine;
use hmac::{Hmac, Mac};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use sha2::{Digest, Sha256};
use sluice::sources::kafka::iam::{presign, IamTokenSource, TOKEN_LIFETIME};
use sluice::sources::kafka::{PartitionHandler, SourceContext};

const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn creds(session: Option<&str>) -> Credentials {
    Credentials::new(KEY_ID, SECRET, session.map(str::to_string), None, "test")
}

fn decode(token: &str) -> url::Url {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .expect("base64url without padding");
    url::Url::parse(std::str::from_utf8(&bytes).unwrap()).unwrap()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// SigV4 URI encoding: everything but unreserved characters as %XX.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The signature of a presigned GET, recomputed from the URL's own parameters.
fn expected_signature(url: &url::Url, secret: &str, payload_hash: &str) -> String {
    let params: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    let mut signed: Vec<(String, String)> = params
        .iter()
        // The signature itself and the User-Agent appended after signing are not signed.
        .filter(|(k, _)| *k != "X-Amz-Signature" && *k != "User-Agent")
        .map(|(k, v)| (enc(k), enc(v)))
        .collect();
    signed.sort();
    let query = signed
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let host = url.host_str().unwrap();
    let canonical = format!("GET\n/\n{query}\nhost:{host}\n\nhost\n{payload_hash}");
    let date_time = &params["X-Amz-Date"];
    let scope = params["X-Amz-Credential"]
        .split_once('/')
        .unwrap()
        .1
        .to_string();
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut parts = scope.split('/');
    let (date, region, service) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let k = hmac(format!("AWS4{secret}").as_bytes(), date);
    let k = hmac(&k, region);
    let k = hmac(&k, service);
    let k = hmac(&k, "aws4_request");
    hex::encode(hmac(&k, &string_to_sign))
}

#[test]
fn the_token_is_a_presigned_kafka_cluster_connect_request_with_a_valid_signature() {
    let at = UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01T00:00:00Z
    for session in [None, Some("IQoJb3JpZ2luX2VjEXAMPLE/+=")] {
        let t = presign("ap-southeast-2", &creds(session), at).unwrap();
        let url = decode(t.token.expose());
        assert_eq!(url.scheme(), "https");
        assert_eq!(url.host_str(), Some("kafka.ap-southeast-2.amazonaws.com"));
        assert_eq!(url.path(), "/");
        let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["Action"], "kafka-cluster:Connect");
        assert_eq!(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(
            q["X-Amz-Credential"],
            format!("{KEY_ID}/20260101/ap-southeast-2/kafka-cluster/aws4_request")
        );
        assert_eq!(q["X-Amz-Date"], "20260101T000000Z");
        assert_eq!(q["X-Amz-Expires"], TOKEN_LIFETIME.as_secs().to_string());
        assert_eq!(q["X-Amz-Expires"], "900");
        assert_eq!(q["X-Amz-SignedHeaders"], "host");
        assert_eq!(q.get("X-Amz-Security-Token").map(String::as_str), session);
        assert_eq!(t.expires_at_ms, (1_767_225_600 + 900) * 1000);

        let empty_payload = hex::encode(Sha256::digest(b""));
        assert_eq!(
            q["X-Amz-Signature"],
            expected_signature(&url, SECRET, &empty_payload),
            "signature does not verify"
        );
        // Any change to what was signed breaks it.
        assert_ne!(
            q["X-Amz-Signature"],
            expected_signature(&url, "another-secret", &empty_payload)
        );
        // The same inputs sign the same way (aws-sigv4 is deterministic for a given time).
        let again = presign("ap-southeast-2", &creds(session), at).unwrap();
        assert_eq!(again.token.expose(), t.token.expose());
    }
    // A later time gives another date, expiry and signature.
    let later = presign("ap-southeast-2", &creds(None), at + Duration::from_secs(60)).unwrap();
    assert_eq!(later.expires_at_ms, (1_767_225_660 + 900) * 1000);
}

struct NoPartitions;

impl PartitionHandler for NoPartitions {
    fn assigned(&self, _: &BaseConsumer<SourceContext>, _: &[i32]) {}
    fn revoking(&self, _: &BaseConsumer<SourceContext>, _: &[i32]) {}
    fn client_error(&self, _: &KafkaError, _: &str) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_asks_the_context_for_tokens_when_the_consumer_polls() {
    let source = Arc::new(IamTokenSource::new(
        "us-east-1",
        SharedCredentialsProvider::new(creds(None)),
        tokio::runtime::Handle::current(),
    ));
    let context = SourceContext::new("t", Arc::new(NoPartitions)).with_oauth(Some(source.clone()));
    let mut cfg = ClientConfig::new();
    // Nothing listens on port 1: the token is asked for before any connection succeeds.
    cfg.set("bootstrap.servers", "127.0.0.1:1")
        .set("group.id", "iam-refresh")
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "OAUTHBEARER")
        .set("log_level", "0");
    let consumer: BaseConsumer<SourceContext> = cfg.create_with_context(context).unwrap();
    consumer.subscribe(&["t"]).unwrap();
    let before_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let deadline = Instant::now() + Duration::from_secs(30);
    let s = source.clone();
    tokio::task::spawn_blocking(move || {
        while s.refreshes() == 0 {
            assert!(
                Instant::now() < deadline,
                "librdkafka never asked for a token"
            );
            let _ = consumer.poll(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    assert!(source.refreshes() >= 1);
    // The token handed to librdkafka lives one lifetime (whole seconds) from when it was made.
    let lifetime_ms = TOKEN_LIFETIME.as_millis() as i64;
    let expiry = source.last_expiry_ms();
    assert!(
        expiry > before_ms + lifetime_ms - 2_000 && expiry <= before_ms + lifetime_ms + 60_000,
        "expiry {expiry} vs now {before_ms}"
    );
}
