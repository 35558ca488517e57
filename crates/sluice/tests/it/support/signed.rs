//! The Pipes API called from Rust with requests signed as the AWS SDKs sign them (aws-sigv4), for
//! tests that race requests or read what the CLI does not show (status, `Retry-After`).

use std::time::SystemTime;

use serde_json::Value;

use super::serve::{AKID, SECRET};

/// A client of one `sluice serve`.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    pub url: String,
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// `X-Amzn-ErrorType`.
    pub error: Option<String>,
    pub retry_after: Option<String>,
    pub body: Value,
}

impl Answer {
    /// The body of a success; panics with the answer otherwise.
    pub fn ok(self) -> Value {
        assert_eq!(self.status, 200, "{self:?}");
        self.body
    }
}

impl Api {
    pub fn new(url: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            url: url.trim_end_matches('/').to_string(),
        }
    }

    /// `method path` with a JSON body, signed.
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        use aws_sigv4::sign::v4;
        let url = format!("{}{path}", self.url);
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let identity = aws_credential_types::Credentials::new(AKID, SECRET, None, None, "test");
        let identity = identity.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("pipes")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap();
        let content_type = [("content-type", "application/json")];
        let headers = if body.is_some() {
            &content_type[..]
        } else {
            &[]
        };
        let signable = SignableRequest::new(
            method,
            &url,
            headers.iter().copied(),
            SignableBody::Bytes(&bytes),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params.into()).unwrap().into_parts();
        let mut req = self
            .http
            .request(method.parse().unwrap(), &url)
            .body(bytes.clone());
        for (k, v) in headers.iter().copied().chain(instructions.headers()) {
            req = req.header(k, v);
        }
        let resp = req.send().await.expect("send a request to sluice serve");
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap_or_default().to_string())
        };
        let (error, retry_after) = (header("x-amzn-errortype"), header("retry-after"));
        let text = resp.bytes().await.unwrap();
        let body = serde_json::from_slice(&text).unwrap_or(Value::Null);
        Answer {
            status,
            error,
            retry_after,
            body,
        }
    }

    pub async fn create(&self, name: &str, def: &Value) -> Answer {
        self.call("POST", &format!("/v1/pipes/{name}"), Some(def))
            .await
    }

    pub async fn describe(&self, name: &str) -> Answer {
        self.call("GET", &format!("/v1/pipes/{name}"), None).await
    }

    pub async fn update(&self, name: &str, body: &Value) -> Answer {
        self.call("PUT", &format!("/v1/pipes/{name}"), Some(body))
            .await
    }

    pub async fn start(&self, name: &str) -> Answer {
        self.call("POST", &format!("/v1/pipes/{name}/start"), None)
            .await
    }

    pub async fn stop(&self, name: &str) -> Answer {
        self.call("POST", &format!("/v1/pipes/{name}/stop"), None)
            .await
    }

    pub async fn delete(&self, name: &str) -> Answer {
        self.call("DELETE", &format!("/v1/pipes/{name}"), None)
            .await
    }

    /// The console's JSON at `/console/api/{path}`, read in a session signed in with the test
    /// key (the console takes no signed requests, only its session cookie).
    pub async fn console_json(&self, path: &str) -> Value {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let signed_in = http
            .post(format!("{}/console/signin", self.url))
            .form(&[("access_key_id", AKID), ("secret_access_key", SECRET)])
            .send()
            .await
            .unwrap();
        let cookie = signed_in
            .headers()
            .get(reqwest::header::SET_COOKIE)
            .and_then(|c| c.to_str().ok()?.split(';').next().map(str::to_string))
            .unwrap_or_else(|| panic!("no session cookie: {signed_in:?}"));
        let got = http
            .get(format!("{}/console/api/{path}", self.url))
            .header(reqwest::header::COOKIE, cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200, "console {path}");
        serde_json::from_slice(&got.bytes().await.unwrap()).unwrap()
    }
}

/// Header or query pairs.
pub type Pairs = Vec<(String, String)>;

/// How [`sign`] signs.
#[derive(Debug, Clone, Copy)]
pub struct Signing<'a> {
    pub region: &'a str,
    pub time: SystemTime,
    /// `Some(expiry)`: a presigned URL (the signature in the query) instead of headers.
    pub presign_for: Option<std::time::Duration>,
}

impl Default for Signing<'_> {
    fn default() -> Self {
        Signing {
            region: "us-east-1",
            time: SystemTime::now(),
            presign_for: None,
        }
    }
}

/// Sign `method url` with `headers` and `body` as the SDKs do, but over the path as given (no
/// normalisation, so hostile paths stay as sent): the headers to add and the query parameters
/// to append (presigned).
pub fn sign(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    how: Signing<'_>,
) -> (Pairs, Pairs) {
    use aws_sigv4::http_request::{
        sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
        UriPathNormalizationMode,
    };
    use aws_sigv4::sign::v4;
    let identity = aws_credential_types::Credentials::new(AKID, SECRET, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    if let Some(expiry) = how.presign_for {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expiry);
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(how.region)
        .name("pipes")
        .time(how.time)
        .settings(settings)
        .build()
        .unwrap();
    let body = if how.presign_for.is_some() {
        SignableBody::UnsignedPayload
    } else {
        SignableBody::Bytes(body)
    };
    let signable = SignableRequest::new(method, url, headers.iter().copied(), body).unwrap();
    let (instructions, _) = sign(signable, &params.into()).unwrap().into_parts();
    let own = |(k, v): (&str, &str)| (k.to_string(), v.to_string());
    let headers = instructions.headers().map(own).collect();
    let params = instructions
        .params()
        .iter()
        .map(|(k, v)| own((k, v.as_ref())))
        .collect();
    (headers, params)
}
