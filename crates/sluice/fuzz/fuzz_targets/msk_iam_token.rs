//! Fuzz target: MSK IAM tokens (`kafka::iam::presign`) from arbitrary regions, credentials and
//! clocks (up to the year 9999). Nothing may panic; a token made is a base64url presigned
//! `kafka-cluster:Connect` URL carrying the credentials' key id, the session token when there is
//! one, a 900 s lifetime and a signature; and a region that pipe validation accepts in an MSK
//! cluster ARN (with `KafkaAuthentication: IAM`) yields a token for that region's MSK host.
#![no_main]

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::Credentials;
use base64::Engine;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use sluice::kafka::iam;
use sluice::model::{self, validate, ValidationContext};

/// 9999-12-31T23:59:59Z.
const LAST_SECOND: u64 = 253_402_300_799;

#[derive(Arbitrary, Debug)]
struct Input {
    region: String,
    access_key: String,
    secret_key: String,
    session_token: Option<String>,
    secs: u64,
}

/// The token's URL; panics when it is not one.
fn token_url(token: &str) -> url::Url {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .expect("a token is base64url without padding");
    url::Url::parse(std::str::from_utf8(&bytes).expect("a token is UTF-8")).expect("a token is a URL")
}

fn check_token(input: &Input, token: &iam::IamToken, secs: u64) {
    let url = token_url(token.token.expose());
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q.get("Action").map(String::as_str), Some(iam::ACTION));
    assert_eq!(q.get("X-Amz-Expires").map(String::as_str), Some("900"));
    let credential = q.get("X-Amz-Credential").expect("X-Amz-Credential");
    assert!(credential.starts_with(&format!("{}/", input.access_key)), "credential {credential:?}");
    let signature = q.get("X-Amz-Signature").expect("X-Amz-Signature");
    assert!(signature.len() == 64 && signature.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(q.get("X-Amz-Security-Token"), input.session_token.as_ref());
    assert_eq!(token.expires_at_ms, (secs as i64 + 900) * 1000);
}

/// Does pipe validation accept `region` in an MSK source ARN signed with IAM?
fn region_accepted(region: &str) -> bool {
    let def = json!({
        "Name": "p",
        "Source": format!("arn:aws:kafka:{region}:123456789012:cluster/c/0a1b2c3d"),
        "Target": "http://127.0.0.1:9/in",
        "SourceParameters": {"ManagedStreamingKafkaParameters": {"TopicName": "t"}},
        "SluiceParameters": {"BootstrapServers": ["b-1.c.kafka.local:9098"], "KafkaAuthentication": "IAM"},
    });
    let def = model::parse_definition(&def.to_string(), false).expect("definition parses");
    validate(&def, &ValidationContext::default()).is_ok()
}

fuzz_target!(|input: Input| {
    let secs = input.secs % (LAST_SECOND + 1);
    let now = UNIX_EPOCH + Duration::from_secs(secs);
    let creds = Credentials::new(
        input.access_key.clone(),
        input.secret_key.clone(),
        input.session_token.clone(),
        None,
        "fuzz",
    );
    let result = iam::presign(&input.region, &creds, now);
    if let Ok(token) = &result {
        check_token(&input, token, secs);
    }
    if region_accepted(&input.region) {
        let token = result.unwrap_or_else(|e| panic!("validated region {:?}: {e}", input.region));
        let host = token_url(token.token.expose()).host_str().map(str::to_string);
        assert_eq!(host, Some(format!("kafka.{}.amazonaws.com", input.region)), "token for another host");
    }
});
