//! Connection authorization for HTTP targets and enrichments, as EventBridge connections do it: an
//! API key header, HTTP Basic, or an OAuth 2 client-credentials token (cached until it expires,
//! fetched again after the endpoint answers 401/407).
//!
//! Secret values are fetched once when the pipe starts and held in [`Secret`]; neither they nor
//! tokens ever appear in errors or logs (token endpoint failures report the status only).

use std::time::{Duration, Instant};

use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};
use reqwest::{Client, Method, RequestBuilder};
use serde::Deserialize;

use super::body::{read_bounded, Bounded};
use super::config::{ConnectionAuthConfig, ConnectionConfig};
use super::TargetError;
use crate::model::FieldError;
use crate::secrets::{Secret, SecretRef, SecretResolver};

/// Tokens are refreshed this long before the expiry the endpoint announced.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);
/// Lifetime assumed when the token endpoint does not say.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Largest token endpoint answer read (a token with its claims is a few KiB).
const MAX_TOKEN_RESPONSE_BYTES: usize = 1024 * 1024;
/// Longest a token is cached, whatever `expires_in` says: a huge value would overflow `Instant`
/// (and a day-old token is refreshed anyway; a 401 drops it sooner).
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Pure checks of a connection, with field names pointing into the configuration file.
pub fn check_connection(c: &ConnectionConfig, errs: &mut Vec<FieldError>) {
    let field = |f: &str| format!("targets.connections.{}.auth.{f}", c.name);
    let secret = |f: &str, v: &str, errs: &mut Vec<FieldError>| {
        if let Err(e) = SecretRef::parse(v) {
            errs.push(FieldError::new(field(f), e));
        }
    };
    match &c.auth {
        ConnectionAuthConfig::ApiKey {
            api_key_name,
            api_key_value,
        } => {
            if HeaderName::from_bytes(api_key_name.as_bytes()).is_err() {
                errs.push(FieldError::new(
                    field("api_key_name"),
                    "is not a valid HTTP header name",
                ));
            }
            secret("api_key_value", api_key_value, errs);
        }
        ConnectionAuthConfig::Basic { password, .. } => secret("password", password, errs),
        ConnectionAuthConfig::OauthClientCredentials {
            authorization_endpoint,
            http_method,
            client_secret,
            ..
        } => {
            if url::Url::parse(authorization_endpoint).is_err() {
                errs.push(FieldError::new(
                    field("authorization_endpoint"),
                    "must be an http(s) URL",
                ));
            }
            if !matches!(http_method.as_str(), "POST" | "GET") {
                errs.push(FieldError::new(field("http_method"), "must be POST or GET"));
            }
            secret("client_secret", client_secret, errs);
        }
    }
}

/// A connection's authorization with its secrets fetched.
#[derive(Debug)]
pub enum ConnectionAuth {
    /// A header carrying a key.
    ApiKey {
        /// Header name.
        name: HeaderName,
        /// Header value.
        value: Secret,
    },
    /// `Authorization: Basic ...`, precomputed.
    Basic(Secret),
    /// OAuth client credentials.
    OAuth(OAuth),
}

/// The OAuth client-credentials flow and its cached token.
#[derive(Debug)]
pub struct OAuth {
    endpoint: String,
    method: Method,
    client_id: String,
    client_secret: Secret,
    params: Vec<(String, String)>,
    token: tokio::sync::Mutex<Option<(Secret, Instant)>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl ConnectionAuth {
    /// Fetch the connection's secrets.
    pub async fn resolve(
        config: &ConnectionAuthConfig,
        resolver: &SecretResolver,
    ) -> Result<ConnectionAuth, TargetError> {
        let fetch = |r: &str| {
            let r = r.to_string();
            async move {
                let reference = SecretRef::parse(&r)
                    .map_err(|e| TargetError::Request(format!("connection secret: {e}")))?;
                Ok::<_, TargetError>(resolver.fetch(&reference).await?)
            }
        };
        Ok(match config {
            ConnectionAuthConfig::ApiKey {
                api_key_name,
                api_key_value,
            } => ConnectionAuth::ApiKey {
                name: HeaderName::from_bytes(api_key_name.as_bytes())
                    .map_err(|_| TargetError::Request("bad API key header name".into()))?,
                value: fetch(api_key_value).await?,
            },
            ConnectionAuthConfig::Basic { username, password } => {
                use base64::Engine;
                let password = fetch(password).await?;
                let raw = zeroize::Zeroizing::new(format!("{username}:{}", password.expose()));
                ConnectionAuth::Basic(Secret::new(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
                )))
            }
            ConnectionAuthConfig::OauthClientCredentials {
                authorization_endpoint,
                http_method,
                client_id,
                client_secret,
                body_parameters,
            } => ConnectionAuth::OAuth(OAuth {
                endpoint: authorization_endpoint.clone(),
                method: if http_method == "GET" {
                    Method::GET
                } else {
                    Method::POST
                },
                client_id: client_id.clone(),
                client_secret: fetch(client_secret).await?,
                params: body_parameters
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                token: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// Add the authorization to a request.
    pub async fn apply(
        &self,
        client: &Client,
        req: RequestBuilder,
    ) -> Result<RequestBuilder, TargetError> {
        let header = |v: &str| {
            let mut hv = HeaderValue::from_str(v).map_err(|_| {
                TargetError::Request("connection secret is not a valid header value".into())
            })?;
            hv.set_sensitive(true);
            Ok::<_, TargetError>(hv)
        };
        Ok(match self {
            ConnectionAuth::ApiKey { name, value } => req.header(name, header(value.expose())?),
            ConnectionAuth::Basic(v) => req.header(AUTHORIZATION, header(v.expose())?),
            ConnectionAuth::OAuth(o) => {
                let token = o.token(client).await?;
                req.header(
                    AUTHORIZATION,
                    header(&format!("Bearer {}", token.expose()))?,
                )
            }
        })
    }

    /// `text` (a target's answer, for a log line) with every secret of the connection replaced by
    /// `***`: an endpoint may echo the request's authorization back.
    pub async fn redact(&self, text: &str) -> String {
        let mut secrets: Vec<String> = Vec::new();
        match self {
            ConnectionAuth::ApiKey { value, .. } => secrets.push(value.expose().to_string()),
            ConnectionAuth::Basic(v) => {
                let header = v.expose();
                secrets.push(header.to_string());
                secrets.extend(header.strip_prefix("Basic ").map(str::to_string));
            }
            ConnectionAuth::OAuth(o) => {
                secrets.push(o.client_secret.expose().to_string());
                if let Some((token, _)) = o.token.lock().await.as_ref() {
                    secrets.push(token.expose().to_string());
                }
            }
        }
        // Longest first, so a secret inside another is not left half-shown.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut out = text.to_string();
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            out = out.replace(s.as_str(), "***");
        }
        // The copies were secrets too.
        for s in &mut secrets {
            zeroize::Zeroize::zeroize(s);
        }
        out
    }

    /// The endpoint refused our authorization: forget a cached token so the retry fetches one.
    pub async fn rejected(&self) {
        if let ConnectionAuth::OAuth(o) = self {
            *o.token.lock().await = None;
        }
    }
}

impl OAuth {
    async fn token(&self, client: &Client) -> Result<Secret, TargetError> {
        let mut cached = self.token.lock().await;
        if let Some((t, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(t.clone());
            }
        }
        let mut form = vec![("grant_type".to_string(), "client_credentials".to_string())];
        form.extend(self.params.iter().cloned());
        let req = client
            .request(self.method.clone(), &self.endpoint)
            .basic_auth(&self.client_id, Some(self.client_secret.expose()));
        let req = if self.method == Method::GET {
            req.query(&form)
        } else {
            req.form(&form)
        };
        let service = "OAuth token endpoint".to_string();
        let resp = req.send().await.map_err(|e| TargetError::Service {
            service: service.clone(),
            message: format!("cannot reach it: {}", e.without_url()),
            retryable: true,
            throttled: false,
        })?;
        let status = resp.status();
        if !status.is_success() {
            // The body may echo what we sent; report the status only.
            return Err(TargetError::Service {
                service,
                message: format!("answered HTTP {}", status.as_u16()),
                retryable: status.as_u16() == 429 || status.is_server_error(),
                throttled: status.as_u16() == 429,
            });
        }
        let body = match read_bounded(resp, MAX_TOKEN_RESPONSE_BYTES).await {
            Ok(Bounded::Whole(body)) => body,
            Ok(Bounded::TooLarge) => {
                return Err(TargetError::Service {
                    service,
                    message: format!("the answer is larger than {MAX_TOKEN_RESPONSE_BYTES} bytes"),
                    retryable: false,
                    throttled: false,
                })
            }
            Err(e) => {
                return Err(TargetError::Service {
                    service,
                    message: format!("reading the answer: {}", e.without_url()),
                    retryable: true,
                    throttled: false,
                })
            }
        };
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|_| TargetError::Service {
                service,
                message: "the answer has no access_token".into(),
                retryable: false,
                throttled: false,
            })?;
        let token = Secret::new(parsed.access_token);
        *cached = Some((
            token.clone(),
            token_refresh_at(Instant::now(), parsed.expires_in),
        ));
        Ok(token)
    }
}

/// When a token fetched at `now` with the endpoint's `expires_in` (seconds) is fetched again:
/// the lifetime clamped to [`MAX_TOKEN_LIFETIME`], less the refresh margin.
fn token_refresh_at(now: Instant, expires_in: Option<u64>) -> Instant {
    let lifetime = expires_in
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TOKEN_LIFETIME)
        .min(MAX_TOKEN_LIFETIME);
    now + lifetime.saturating_sub(REFRESH_MARGIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_huge_oauth_expires_in_overflowed_instant() {
        let now = Instant::now();
        let at = token_refresh_at(now, Some(u64::MAX));
        assert_eq!(at, now + MAX_TOKEN_LIFETIME - REFRESH_MARGIN);
    }

    #[test]
    fn token_lifetime_is_the_announced_one_less_the_margin() {
        let now = Instant::now();
        assert_eq!(
            token_refresh_at(now, Some(600)),
            now + Duration::from_secs(570)
        );
        assert_eq!(token_refresh_at(now, Some(10)), now);
        assert_eq!(
            token_refresh_at(now, None),
            now + DEFAULT_TOKEN_LIFETIME - REFRESH_MARGIN
        );
    }
}
