//! AWS Signature Version 4 verification of API requests (`AWS4-HMAC-SHA256`), in the header form
//! and the presigned-query form (`X-Amz-Algorithm`, `X-Amz-Credential`, ... in the query, good
//! until `X-Amz-Date` + `X-Amz-Expires`, the body signed or `UNSIGNED-PAYLOAD`).
//!
//! Verification runs in two steps so a body is read only for a request that may be genuine:
//! [`Verifier::check_head`] checks the form, key, scope (service and region), time and signed
//! headers, then [`PendingBody::verify`] the signature over the body read. Temporary
//! credentials (`X-Amz-Security-Token`) are refused: configured keys are long-term keys and a
//! session token cannot be checked here.
//!
//! The signature is recomputed from the request as received and compared in constant time. As for
//! every AWS service but S3, the canonical URI is the raw, still percent-encoded path encoded once
//! more (a tag route's `arn%3Aaws%3A...` is canonicalized as `arn%253Aaws%253A...`), so the path
//! must never be decoded before verification. Query parameters are decoded, re-encoded strictly
//! and sorted; the payload hash is computed from the body received, never taken from a header.
//!
//! Implemented with `hmac` + `sha2` (about 200 lines) rather than `aws-sigv4`: that crate signs
//! outgoing requests through the smithy HTTP types, while verifying needs the canonical request of
//! an incoming one built from its raw URI, which is exactly the part we must control.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

use crate::control::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The signing name of the Pipes service.
pub const SERVICE: &str = "pipes";
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Everything but RFC 3986 unreserved characters.
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// The same, keeping `/` (path segments).
const PATH: &AsciiSet = &STRICT.remove(b'/');

/// Why a request is not authenticated. Each is a 403 in AWS's error shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("Missing Authentication Token")]
    Missing,
    /// The access key id is not configured.
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    /// The `Authorization` header or `X-Amz-Date` is malformed.
    #[error("{0}")]
    Malformed(String),
    /// `X-Amz-Date` is too far from now.
    #[error(
        "Signature expired: {signed} is now earlier than {earliest} ({now} - {skew_minutes} min.)"
    )]
    Expired {
        /// The request's time.
        signed: String,
        /// The earliest accepted time.
        earliest: String,
        /// Now.
        now: String,
        /// The allowed skew.
        skew_minutes: u64,
    },
    /// `X-Amz-Date` is further in the future than the allowed skew.
    #[error(
        "Signature not yet current: {signed} is still later than {latest} ({now} + {skew_minutes} min.)"
    )]
    NotYetCurrent {
        /// The request's time.
        signed: String,
        /// The latest accepted time.
        latest: String,
        /// Now.
        now: String,
        /// The allowed skew.
        skew_minutes: u64,
    },
    /// The credential scope names another region than this engine's.
    #[error("Credential should be scoped to a valid region, not '{given}': this endpoint is in '{expected}'.")]
    WrongRegion {
        /// The region of the credential scope.
        given: String,
        /// The engine's region.
        expected: String,
    },
    /// A presigned URL past its `X-Amz-Date` + `X-Amz-Expires`.
    #[error("Request has expired: the presigned URL expired at {expired}, it is now {now}.")]
    PresignExpired {
        /// When the URL expired.
        expired: String,
        /// Now.
        now: String,
    },
    /// `X-Amz-Security-Token` was sent: temporary credentials are not supported.
    #[error("The security token included in the request is invalid: this endpoint accepts only its configured long-term access keys, not temporary credentials (X-Amz-Security-Token).")]
    SessionToken,
    /// The signature does not match.
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")]
    Mismatch,
}

impl AuthError {
    /// The AWS error name (`X-Amzn-ErrorType`).
    pub fn error_type(&self) -> &'static str {
        match self {
            AuthError::Missing | AuthError::UnknownKey | AuthError::SessionToken => {
                "UnrecognizedClientException"
            }
            _ => "InvalidSignatureException",
        }
    }

    /// Always the client's to fix.
    pub fn is_user_error(&self) -> bool {
        true
    }

    /// Only a stale request may pass when sent again (freshly signed).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AuthError::Expired { .. }
                | AuthError::NotYetCurrent { .. }
                | AuthError::PresignExpired { .. }
        )
    }
}

/// The signed parts of a request but its body: all that is checked before the body is read.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path as received, still percent-encoded.
    pub raw_path: &'a str,
    /// The query string as received (without `?`).
    pub raw_query: Option<&'a str>,
    /// The headers.
    pub headers: &'a HeaderMap,
}

/// The parts of a request that are signed.
#[derive(Debug)]
pub struct RequestParts<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path as received, still percent-encoded.
    pub raw_path: &'a str,
    /// The query string as received (without `?`).
    pub raw_query: Option<&'a str>,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The body.
    pub body: &'a [u8],
}

impl<'a> RequestParts<'a> {
    /// Everything but the body.
    pub fn head(&self) -> RequestHead<'a> {
        RequestHead {
            method: self.method,
            raw_path: self.raw_path,
            raw_query: self.raw_query,
            headers: self.headers,
        }
    }
}

/// Verifies signatures against configured access keys.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: BTreeMap<String, Secret>,
    max_skew: Duration,
    region: Option<String>,
}

/// A request whose signature checked out in everything but the payload: the body is read only
/// after this (so an unsigned or wrongly scoped request never makes the server read a body).
#[derive(Debug)]
pub struct PendingBody {
    access_key: String,
    canonical_head: String,
    amz_date: String,
    scope: String,
    key: Vec<u8>,
    signature: String,
    presigned: bool,
}

impl PendingBody {
    /// The access key id the request is signed with.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// Check the signature over `body`; the access key id on success. A presigned URL may also
    /// be signed over `UNSIGNED-PAYLOAD`.
    pub fn verify(&self, body: &[u8]) -> Result<String, AuthError> {
        let hashed = hex::encode(Sha256::digest(body));
        let unsigned = self.presigned.then_some(UNSIGNED_PAYLOAD);
        for payload in std::iter::once(hashed.as_str()).chain(unsigned) {
            if constant_time_eq(self.expected(payload).as_bytes(), self.signature.as_bytes()) {
                return Ok(self.access_key.clone());
            }
        }
        // The string to sign names the canonical request by its hash only: the canonical
        // request itself holds header values, which are not ours to log.
        tracing::debug!(
            string_to_sign = %self.string_to_sign(&hashed),
            "signature mismatch"
        );
        Err(AuthError::Mismatch)
    }

    fn string_to_sign(&self, payload: &str) -> String {
        let canonical = format!("{}\n{payload}", self.canonical_head);
        format!(
            "{ALGORITHM}\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            hex::encode(Sha256::digest(canonical.as_bytes()))
        )
    }

    fn expected(&self, payload: &str) -> String {
        hex::encode(hmac(&self.key, self.string_to_sign(payload).as_bytes()))
    }
}

/// What a request's `Authorization` header, or a presigned URL's query, says.
#[derive(Debug, PartialEq, Eq)]
struct Authorization {
    access_key: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
    amz_date: String,
    /// `X-Amz-Expires` of a presigned URL.
    expires_secs: Option<u64>,
}

/// The payload hash of a presigned URL that does not sign its body.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The longest `X-Amz-Expires` AWS accepts (seven days).
const MAX_EXPIRES_SECS: u64 = 604_800;
/// The query parameters of a presigned URL; `X-Amz-Algorithm` marks one.
const PRESIGN_ALGORITHM: &str = "X-Amz-Algorithm";
const PRESIGN_SIGNATURE: &str = "X-Amz-Signature";

impl Verifier {
    /// Accept signatures of these keys, with requests at most `max_skew` away from now, scoped
    /// to any region until [`Verifier::with_region`].
    pub fn new(keys: BTreeMap<String, Secret>, max_skew: Duration) -> Self {
        Verifier {
            keys,
            max_skew,
            region: None,
        }
    }

    /// Accept only credential scopes of `region` (the region of this engine's ARNs).
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Whether `secret` is the secret key of `access_key_id` (the console's sign-in), compared
    /// in constant time.
    pub fn accepts_secret(&self, access_key_id: &str, secret: &str) -> bool {
        self.keys
            .get(access_key_id)
            .is_some_and(|s| constant_time_eq(s.expose().as_bytes(), secret.as_bytes()))
    }

    /// Check a whole request; the access key id on success.
    pub fn verify(&self, req: &RequestParts<'_>, now: SystemTime) -> Result<String, AuthError> {
        self.check_head(&req.head(), now)?.verify(req.body)
    }

    /// Check everything but the payload: the form, the key, the scope, the time and the signed
    /// headers. The signature itself is checked by [`PendingBody::verify`] once the body is in.
    pub fn check_head(
        &self,
        head: &RequestHead<'_>,
        now: SystemTime,
    ) -> Result<PendingBody, AuthError> {
        refuse_session_token(head)?;
        let query = query_pairs(head.raw_query.unwrap_or(""));
        let auth = if query.iter().any(|(k, _)| k == PRESIGN_ALGORITHM) {
            if head.headers.contains_key("authorization") {
                // AWS's wording: one request, one signature.
                return Err(AuthError::Malformed(
                    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter \
                     or the Authorization header should be specified"
                        .into(),
                ));
            }
            parse_presigned(&query)?
        } else {
            parse_header_form(head.headers)?
        };
        let secret = self
            .keys
            .get(&auth.access_key)
            .ok_or(AuthError::UnknownKey)?;
        self.check_scope(&auth)?;
        let now_secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        self.check_time(&auth, now_secs)?;
        if !auth.signed_headers.iter().any(|h| h == "host") {
            return Err(AuthError::Malformed(
                "the host header must be signed".into(),
            ));
        }
        let signed: Vec<&str> = auth.signed_headers.iter().map(String::as_str).collect();
        let skip = auth.expires_secs.map(|_| PRESIGN_SIGNATURE);
        Ok(PendingBody {
            canonical_head: canonical_head(head, &signed, skip),
            scope: format!(
                "{}/{}/{}/aws4_request",
                auth.date, auth.region, auth.service
            ),
            key: signing_key(secret.expose(), &auth.date, &auth.region, &auth.service),
            presigned: auth.expires_secs.is_some(),
            access_key: auth.access_key,
            amz_date: auth.amz_date,
            signature: auth.signature,
        })
    }

    fn check_scope(&self, auth: &Authorization) -> Result<(), AuthError> {
        if !auth.amz_date.starts_with(&auth.date) || auth.date.len() != 8 {
            return Err(AuthError::Malformed(format!(
                "Credential date {} does not match X-Amz-Date {}",
                auth.date, auth.amz_date
            )));
        }
        if auth.service != SERVICE {
            return Err(AuthError::Malformed(format!(
                "Credential should be scoped to correct service: '{SERVICE}'."
            )));
        }
        match &self.region {
            Some(region) if *region != auth.region => Err(AuthError::WrongRegion {
                given: auth.region.clone(),
                expected: region.clone(),
            }),
            _ => Ok(()),
        }
    }

    fn check_time(&self, auth: &Authorization, now_secs: u64) -> Result<(), AuthError> {
        let signed_at = parse_amz_date(&auth.amz_date).ok_or_else(|| {
            AuthError::Malformed(format!(
                "X-Amz-Date must be YYYYMMDD'T'HHMMSS'Z', not {:?}",
                auth.amz_date
            ))
        })?;
        let skew = self.max_skew.as_secs();
        if signed_at > now_secs.saturating_add(skew) {
            return Err(AuthError::NotYetCurrent {
                signed: auth.amz_date.clone(),
                latest: format_amz_date(now_secs.saturating_add(skew)),
                now: format_amz_date(now_secs),
                skew_minutes: skew / 60,
            });
        }
        let too_old = match auth.expires_secs {
            // A presigned URL is good from its date (give or take the skew) until it expires.
            Some(expires) => {
                if now_secs > signed_at.saturating_add(expires) {
                    return Err(AuthError::PresignExpired {
                        expired: format_amz_date(signed_at.saturating_add(expires)),
                        now: format_amz_date(now_secs),
                    });
                }
                false
            }
            None => now_secs.saturating_sub(skew) > signed_at,
        };
        if too_old {
            return Err(AuthError::Expired {
                signed: auth.amz_date.clone(),
                earliest: format_amz_date(now_secs.saturating_sub(skew)),
                now: format_amz_date(now_secs),
                skew_minutes: skew / 60,
            });
        }
        Ok(())
    }
}

/// Temporary credentials are not supported: the configured keys are long-term keys, and a
/// session token we cannot check must not look accepted.
fn refuse_session_token(head: &RequestHead<'_>) -> Result<(), AuthError> {
    let in_query = head
        .raw_query
        .unwrap_or("")
        .split('&')
        .any(|p| p.split('=').next() == Some("X-Amz-Security-Token"));
    if in_query || head.headers.contains_key("x-amz-security-token") {
        return Err(AuthError::SessionToken);
    }
    Ok(())
}

/// The query's pairs, decoded (lossily: a value that is not UTF-8 cannot be a valid one).
fn query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            (dec(k), dec(v))
        })
        .collect()
}

fn parse_header_form(headers: &HeaderMap) -> Result<Authorization, AuthError> {
    let header = headers
        .get("authorization")
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::Malformed("Authorization header is not ASCII".into()))?;
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| AuthError::Malformed("X-Amz-Date header is required".into()))?;
    parse_authorization(header, amz_date)
}

fn parse_authorization(header: &str, amz_date: &str) -> Result<Authorization, AuthError> {
    let malformed = |what: &str| AuthError::Malformed(format!("Authorization header: {what}"));
    let rest = header
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| malformed("only AWS4-HMAC-SHA256 is supported"))?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let credential = credential.ok_or_else(|| malformed("Credential is missing"))?;
    let signed = signed.ok_or_else(|| malformed("SignedHeaders is missing"))?;
    let signature = signature.ok_or_else(|| malformed("Signature is missing"))?;
    authorization(credential, signed, signature, amz_date, None).map_err(|what| malformed(&what))
}

/// The `X-Amz-*` parameters of a presigned URL, each exactly once.
fn parse_presigned(query: &[(String, String)]) -> Result<Authorization, AuthError> {
    let malformed = |what: String| AuthError::Malformed(format!("Presigned URL: {what}"));
    let one = |name: &str| -> Result<&str, AuthError> {
        let mut values = query.iter().filter(|(k, _)| k == name);
        match (values.next(), values.next()) {
            (Some((_, v)), None) => Ok(v.as_str()),
            (None, _) => Err(malformed(format!("{name} is missing"))),
            (Some(_), Some(_)) => Err(malformed(format!("{name} is given more than once"))),
        }
    };
    if one(PRESIGN_ALGORITHM)? != ALGORITHM {
        return Err(malformed(format!(
            "{PRESIGN_ALGORITHM} must be {ALGORITHM}"
        )));
    }
    let expires = one("X-Amz-Expires")?;
    let expires = expires
        .parse::<u64>()
        .ok()
        .filter(|e| (1..=MAX_EXPIRES_SECS).contains(e))
        .ok_or_else(|| {
            malformed(format!(
                "X-Amz-Expires must be a number of seconds between 1 and {MAX_EXPIRES_SECS}, \
                 not {expires:?}"
            ))
        })?;
    authorization(
        one("X-Amz-Credential")?,
        one("X-Amz-SignedHeaders")?,
        one(PRESIGN_SIGNATURE)?,
        one("X-Amz-Date")?,
        Some(expires),
    )
    .map_err(malformed)
}

fn authorization(
    credential: &str,
    signed_headers: &str,
    signature: &str,
    amz_date: &str,
    expires_secs: Option<u64>,
) -> Result<Authorization, String> {
    let parts: Vec<&str> = credential.split('/').collect();
    let shape = || "Credential must be ACCESS_KEY/DATE/REGION/SERVICE/aws4_request".to_string();
    let [access_key, date, region, service, terminator] = parts.as_slice() else {
        return Err(shape());
    };
    if *terminator != "aws4_request" || access_key.is_empty() {
        return Err(shape());
    }
    Ok(Authorization {
        access_key: access_key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed_headers.split(';').map(str::to_string).collect(),
        signature: signature.to_string(),
        amz_date: amz_date.to_string(),
        expires_secs,
    })
}

/// The canonical request of SigV4 for `req`, signing `signed_headers` (lowercase names).
pub fn canonical_request(req: &RequestParts<'_>, signed_headers: &[&str]) -> String {
    format!(
        "{}\n{}",
        canonical_head(&req.head(), signed_headers, None),
        hex::encode(Sha256::digest(req.body))
    )
}

/// The canonical request up to (without) the payload hash; `skip` is a query parameter left
/// out (a presigned URL's signature).
fn canonical_head(head: &RequestHead<'_>, signed_headers: &[&str], skip: Option<&str>) -> String {
    let path = if head.raw_path.is_empty() {
        "/"
    } else {
        head.raw_path
    };
    let uri = utf8_percent_encode(path, PATH).to_string();
    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = head
            .headers
            .get_all(*name)
            .iter()
            .map(|v| collapse_spaces(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&values.join(","));
        headers.push('\n');
    }
    let mut query = head.raw_query.unwrap_or("").to_string();
    if let Some(skip) = skip {
        query = query
            .split('&')
            .filter(|p| p.split('=').next() != Some(skip))
            .collect::<Vec<_>>()
            .join("&");
    }
    format!(
        "{}\n{}\n{}\n{}\n{}",
        head.method,
        uri,
        canonical_query(&query),
        headers,
        signed_headers.join(";"),
    )
}

/// Query parameters decoded, re-encoded strictly and sorted by name, then value.
pub fn canonical_query(raw: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let enc = |s: &str| {
                let decoded: Vec<u8> = percent_decode_str(s).collect();
                percent_encoding::percent_encode(&decoded, STRICT).to_string()
            };
            (enc(k), enc(v))
        })
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn collapse_spaces(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; the error branch cannot happen.
    let mut mac = HmacSha256::new_from_slice(key)
        .unwrap_or_else(|_| HmacSha256::new_from_slice(&[]).expect("an empty HMAC key is valid"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `20240102T030405Z` -> seconds since the epoch.
fn parse_amz_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(y as i64, m as i64, d as i64);
    u64::try_from(days * 86_400 + (hh * 3600 + mm * 60 + ss) as i64).ok()
}

fn format_amz_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// Howard Hinnant's civil-date algorithms.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn dates_round_trip() {
        let s = parse_amz_date("20240229T235959Z").unwrap();
        assert_eq!(format_amz_date(s), "20240229T235959Z");
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("2024-02-29T23:59:59Z"), None);
        assert_eq!(parse_amz_date("20241301T000000Z"), None);
    }

    #[test]
    fn encoded_arn_paths_are_encoded_once_more() {
        let headers = HeaderMap::new();
        let req = RequestParts {
            method: "GET",
            raw_path: "/tags/arn%3Aaws%3Apipes%3Aus-east-1%3A000000000000%3Apipe%2Fp",
            raw_query: None,
            headers: &headers,
            body: b"",
        };
        let c = canonical_request(&req, &[]);
        assert_eq!(
            c.lines().nth(1).unwrap(),
            "/tags/arn%253Aaws%253Apipes%253Aus-east-1%253A000000000000%253Apipe%252Fp"
        );
    }

    #[test]
    fn query_is_decoded_reencoded_and_sorted() {
        assert_eq!(
            canonical_query("tagKeys=b&tagKeys=a%3Ax&Limit=2&NamePrefix=a b"),
            "Limit=2&NamePrefix=a%20b&tagKeys=a%3Ax&tagKeys=b"
        );
        assert_eq!(canonical_query(""), "");
    }

    /// A request signed by botocore 1.44 (`SigV4Auth`, service `pipes`) with key
    /// AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY.
    /// The botocore vector's request with `headers` (from [`botocore_request`]).
    fn botocore_parts(headers: &HeaderMap) -> RequestParts<'_> {
        RequestParts {
            method: "DELETE",
            raw_path: VECTOR_PATH,
            raw_query: Some(VECTOR_QUERY),
            headers,
            body: b"",
        }
    }

    fn botocore_request() -> (HeaderMap, SystemTime) {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:9800"));
        h.insert("x-amz-date", HeaderValue::from_static(VECTOR_DATE));
        h.insert("authorization", HeaderValue::from_static(VECTOR_AUTH));
        let now = UNIX_EPOCH + Duration::from_secs(parse_amz_date(VECTOR_DATE).unwrap());
        (h, now)
    }

    const VECTOR_PATH: &str = "/tags/arn%3Aaws%3Apipes%3Aus-east-1%3A000000000000%3Apipe%2Fp";
    const VECTOR_QUERY: &str = "tagKeys=team&tagKeys=sluice%3AHttpDelivery";
    const VECTOR_DATE: &str = include_str!("testdata/sigv4_date.txt");
    const VECTOR_AUTH: &str = include_str!("testdata/sigv4_authorization.txt");

    fn verifier() -> Verifier {
        Verifier::new(
            BTreeMap::from([(
                "AKIDEXAMPLE".to_string(),
                Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            )]),
            Duration::from_secs(900),
        )
    }

    #[test]
    fn a_botocore_signature_over_an_encoded_arn_verifies() {
        let (headers, now) = botocore_request();
        let req = botocore_parts(&headers);
        assert_eq!(verifier().verify(&req, now), Ok("AKIDEXAMPLE".into()));
    }

    #[test]
    fn tampering_staleness_and_unknown_keys_are_refused() {
        let (headers, now) = botocore_request();
        let req = |path: &'static str| RequestParts {
            method: "DELETE",
            raw_path: path,
            raw_query: Some(VECTOR_QUERY),
            headers: &headers,
            body: b"",
        };
        // The decoded path is a different canonical URI.
        let decoded = "/tags/arn:aws:pipes:us-east-1:000000000000:pipe%2Fp";
        assert_eq!(
            verifier().verify(&req(decoded), now),
            Err(AuthError::Mismatch)
        );
        let early = now - Duration::from_secs(901);
        let err = verifier().verify(&req(VECTOR_PATH), early).unwrap_err();
        assert!(
            err.to_string().starts_with("Signature not yet current"),
            "{err}"
        );
        let edge = now - Duration::from_secs(900);
        assert!(verifier().verify(&req(VECTOR_PATH), edge).is_ok());
        let late = now + Duration::from_secs(901);
        let err = verifier().verify(&req(VECTOR_PATH), late).unwrap_err();
        assert_eq!(err.error_type(), "InvalidSignatureException");
        assert!(err.to_string().starts_with("Signature expired"), "{err}");
        let other = Verifier::new(BTreeMap::new(), Duration::from_secs(900));
        let err = other.verify(&req(VECTOR_PATH), now).unwrap_err();
        assert_eq!(err, AuthError::UnknownKey);
        assert_eq!(err.error_type(), "UnrecognizedClientException");
        let empty = HeaderMap::new();
        let unsigned = RequestParts {
            method: "GET",
            raw_path: "/v1/pipes",
            raw_query: None,
            headers: &empty,
            body: b"",
        };
        assert_eq!(verifier().verify(&unsigned, now), Err(AuthError::Missing));
    }

    /// A ListPipes URL presigned by botocore 1.44 (`SigV4QueryAuth`, 300 s) with AKIDEXAMPLE.
    const PRESIGNED_URL: &str = include_str!("testdata/sigv4_presigned_url.txt");

    fn presigned(query: &str) -> (HeaderMap, String) {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:9800"));
        (h, query.to_string())
    }

    fn presigned_at(secs_after: u64, query: &str) -> Result<String, AuthError> {
        let (headers, query) = presigned(query);
        let signed = parse_amz_date("20261201T141803Z").unwrap();
        let req = RequestParts {
            method: "GET",
            raw_path: "/v1/pipes",
            raw_query: Some(&query),
            headers: &headers,
            body: b"",
        };
        let now = UNIX_EPOCH + Duration::from_secs(signed + secs_after);
        verifier().with_region("us-east-1").verify(&req, now)
    }

    #[test]
    fn a_botocore_presigned_url_verifies_until_it_expires() {
        let query = PRESIGNED_URL.split_once('?').unwrap().1;
        assert_eq!(presigned_at(0, query), Ok("AKIDEXAMPLE".into()));
        assert_eq!(presigned_at(300, query), Ok("AKIDEXAMPLE".into()));
        let err = presigned_at(301, query).unwrap_err();
        assert!(matches!(err, AuthError::PresignExpired { .. }), "{err}");
        assert!(err.to_string().starts_with("Request has expired"), "{err}");
        // Another query is another signature.
        let changed = query.replace("Limit=5", "Limit=6");
        assert_eq!(presigned_at(0, &changed), Err(AuthError::Mismatch));
    }

    #[test]
    fn presigned_parameters_must_be_given_once_and_in_range() {
        let query = PRESIGNED_URL.split_once('?').unwrap().1;
        let twice = format!("{query}&X-Amz-Expires=600");
        let err = presigned_at(0, &twice).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Presigned URL: X-Amz-Expires is given more than once"
        );
        let long = query.replace("X-Amz-Expires=300", "X-Amz-Expires=604801");
        let err = presigned_at(0, &long).unwrap_err();
        assert!(
            err.to_string()
                .contains("X-Amz-Expires must be a number of seconds between 1 and 604800"),
            "{err}"
        );
        let (mut headers, query_owned) = presigned(query);
        headers.insert(
            "authorization",
            HeaderValue::from_static("AWS4-HMAC-SHA256 x"),
        );
        let both = RequestParts {
            method: "GET",
            raw_path: "/v1/pipes",
            raw_query: Some(&query_owned),
            headers: &headers,
            body: b"",
        };
        let err = verifier().verify(&both, SystemTime::now()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Only one auth mechanism allowed"),
            "{err}"
        );
        let no_signature = query.split("&X-Amz-Signature").next().unwrap();
        let err = presigned_at(0, no_signature).unwrap_err();
        assert_eq!(err.to_string(), "Presigned URL: X-Amz-Signature is missing");
    }

    #[test]
    fn the_scope_must_name_this_engines_region() {
        let (headers, now) = botocore_request();
        let req = botocore_parts(&headers);
        let err = verifier()
            .with_region("eu-west-1")
            .verify(&req, now)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Credential should be scoped to a valid region, not 'us-east-1': this endpoint is in 'eu-west-1'."
        );
        assert_eq!(err.error_type(), "InvalidSignatureException");
        let ok = verifier().with_region("us-east-1").verify(&req, now);
        assert_eq!(ok, Ok("AKIDEXAMPLE".into()));
    }

    #[test]
    fn session_tokens_are_refused_in_header_and_query() {
        let (mut headers, now) = botocore_request();
        let req = |headers: &HeaderMap, query: &'static str| {
            let parts = RequestParts {
                method: "DELETE",
                raw_path: VECTOR_PATH,
                raw_query: Some(query),
                headers,
                body: b"",
            };
            verifier().verify(&parts, now)
        };
        let q = "tagKeys=team&X-Amz-Security-Token=abc";
        assert_eq!(req(&headers, q), Err(AuthError::SessionToken));
        headers.insert(
            "x-amz-security-token",
            HeaderValue::from_static("FQoGZXIvYXdzEXAMPLE"),
        );
        let err = req(&headers, VECTOR_QUERY).unwrap_err();
        assert_eq!(err, AuthError::SessionToken);
        assert_eq!(err.error_type(), "UnrecognizedClientException");
        assert!(!err.to_string().contains("FQoGZXIvYXdzEXAMPLE"));
    }

    #[test]
    fn the_head_is_checked_before_any_body() {
        let (headers, now) = botocore_request();
        let head = RequestHead {
            method: "DELETE",
            raw_path: VECTOR_PATH,
            raw_query: Some(VECTOR_QUERY),
            headers: &headers,
        };
        let pending = verifier().check_head(&head, now).unwrap();
        assert_eq!(pending.access_key(), "AKIDEXAMPLE");
        assert_eq!(pending.verify(b""), Ok("AKIDEXAMPLE".into()));
        assert_eq!(pending.verify(b"{}"), Err(AuthError::Mismatch));
    }
}
