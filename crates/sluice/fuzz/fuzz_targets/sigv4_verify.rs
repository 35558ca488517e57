//! Fuzz target: SigV4 verification of API requests (`api::sigv4::Verifier`).
//!
//! - Forged requests (any `Authorization`, `X-Amz-Date`, headers, path, query, body): never a
//!   panic, and never accepted.
//! - Requests signed by `aws-sigv4` (the AWS SDK for Rust's signer), shaped as SDK clients send
//!   them (each path segment and query part percent-encoded, no dot segments), with arbitrary
//!   segments, query pairs, header values and bodies: always accepted with the signing key; and
//!   refused once the body, the path, a query value or a signed header changes.
#![no_main]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sluice::api::sigv4::{AuthError, RequestParts, Verifier};
use sluice::control::config::Secret;

const ACCESS_KEY: &str = "AKIDFUZZ";
const SECRET_KEY: &str = "fuzz/secret+key";
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE"];
/// What SDKs leave unencoded in a path label or a query part (RFC 3986 unreserved).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

#[derive(Arbitrary, Debug)]
enum Input {
    Forged {
        method: String,
        path: String,
        query: Option<String>,
        authorization: Vec<u8>,
        amz_date: Vec<u8>,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
        now_secs: u32,
        skew_secs: u64,
    },
    Signed {
        method: u8,
        segments: Vec<String>,
        query: Vec<(String, String)>,
        headers: Vec<(u8, String)>,
        body: Vec<u8>,
        /// Seconds after 2001-09-09 the request is signed at.
        at_secs: u32,
        /// How far (in seconds, within the allowed skew of 300 s) the verifier's clock is off.
        drift: i16,
        /// What to change after signing: 0 nothing, 1 body, 2 path, 3 a query value, 4 a header.
        tamper: u8,
    },
}

fn verifier(skew_secs: u64) -> Verifier {
    let keys = BTreeMap::from([(ACCESS_KEY.to_string(), Secret::new(SECRET_KEY))]);
    Verifier::new(keys, Duration::from_secs(skew_secs))
}

fn forged(
    method: &str,
    path: &str,
    query: Option<&str>,
    authorization: &[u8],
    amz_date: &[u8],
    extra: &[(String, Vec<u8>)],
    body: &[u8],
    now: SystemTime,
    skew_secs: u64,
) {
    let mut headers = HeaderMap::new();
    for (name, value) in extra {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    for (name, value) in [("authorization", authorization), ("x-amz-date", amz_date)] {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.insert(name, v);
        }
    }
    let req = RequestParts { method, raw_path: path, raw_query: query, headers: &headers, body };
    let result = verifier(skew_secs).verify(&req, now);
    assert!(result.is_err(), "a forged request was accepted");
}

struct Shaped {
    method: &'static str,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// The request as an SDK would send it: labels and query parts encoded, header values printable.
fn shape(method: u8, segments: &[String], query: &[(String, String)], headers: &[(u8, String)], body: Vec<u8>) -> Shaped {
    let mut path = String::from("/v1");
    for s in segments.iter().filter(|s| !s.is_empty() && *s != "." && *s != "..") {
        path.push('/');
        path.push_str(&utf8_percent_encode(s, UNRESERVED).to_string());
    }
    let query = query
        .iter()
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| format!("{}={}", utf8_percent_encode(k, UNRESERVED), utf8_percent_encode(v, UNRESERVED)))
        .collect::<Vec<_>>()
        .join("&");
    let mut names = std::collections::BTreeSet::new();
    let headers = headers
        .iter()
        .filter_map(|(n, v)| {
            let name = format!("x-amz-meta-{}", n % 8);
            let value: String = v.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').collect();
            (!value.trim().is_empty() && names.insert(name.clone())).then_some((name, value))
        })
        .collect();
    Shaped { method: METHODS[method as usize % METHODS.len()], path, query, headers, body }
}

/// Sign with aws-sigv4 as an SDK client does; the headers to send. `None` if it refuses.
fn sign(req: &Shaped, at: SystemTime) -> Option<HeaderMap> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let identity = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "fuzz").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("pipes")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .ok()?;
    let uri = if req.query.is_empty() {
        format!("https://pipes.local{}", req.path)
    } else {
        format!("https://pipes.local{}?{}", req.path, req.query)
    };
    let mut sent: Vec<(&str, &str)> = vec![("host", "pipes.local")];
    sent.extend(req.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let signable = SignableRequest::new(req.method, uri, sent.iter().copied(), SignableBody::Bytes(&req.body)).ok()?;
    let (instructions, _) = sign(signable, &params.into()).ok()?.into_parts();
    let mut headers = HeaderMap::new();
    for (n, v) in &sent {
        headers.append(HeaderName::try_from(*n).ok()?, HeaderValue::try_from(*v).ok()?);
    }
    for (n, v) in instructions.headers() {
        headers.insert(HeaderName::try_from(n).ok()?, HeaderValue::try_from(v).ok()?);
    }
    Some(headers)
}

fn signed(req: Shaped, at: SystemTime, drift: i16, tamper: u8) {
    let Some(mut headers) = sign(&req, at) else {
        return;
    };
    let now = if drift >= 0 {
        at + Duration::from_secs((drift % 300) as u64)
    } else {
        at - Duration::from_secs((-(drift as i32) % 300) as u64)
    };
    let (mut path, mut query, mut body) = (req.path.clone(), req.query.clone(), req.body.clone());
    let tampered = match tamper % 5 {
        1 => {
            body.push(b'x');
            true
        }
        2 => {
            path.push_str("x");
            true
        }
        3 if !query.is_empty() => {
            query.push('x');
            true
        }
        4 if !req.headers.is_empty() => {
            let (name, value) = &req.headers[0];
            headers.insert(HeaderName::try_from(name.as_str()).unwrap(), HeaderValue::try_from(format!("{value}x")).unwrap());
            true
        }
        _ => false,
    };
    let parts = RequestParts {
        method: req.method,
        raw_path: &path,
        raw_query: (!query.is_empty()).then_some(query.as_str()),
        headers: &headers,
        body: &body,
    };
    let result = verifier(300).verify(&parts, now);
    if tampered {
        assert_eq!(result, Err(AuthError::Mismatch), "a tampered request was not refused");
    } else {
        assert_eq!(result.as_deref(), Ok(ACCESS_KEY), "an SDK-signed request was refused: {} {}?{} {:?}", req.method, path, query, headers);
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Forged { method, path, query, authorization, amz_date, headers, body, now_secs, skew_secs } => forged(
            &method,
            &path,
            query.as_deref(),
            &authorization,
            &amz_date,
            &headers,
            &body,
            UNIX_EPOCH + Duration::from_secs(now_secs as u64),
            skew_secs,
        ),
        Input::Signed { method, segments, query, headers, body, at_secs, drift, tamper } => {
            let at = UNIX_EPOCH + Duration::from_secs(1_000_000_000 + at_secs as u64);
            signed(shape(method, &segments, &query, &headers, body), at, drift, tamper);
        }
    }
});
