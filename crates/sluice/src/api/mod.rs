//! The AWS Pipes REST API (restJson1, API version 2015-10-07) over the [`PipeManager`]: all ten
//! operations, routed by method and raw path only (clients send empty POSTs without a content
//! type), every request authenticated with SigV4 ([`sigv4`]) first (the head before the body
//! is read, the body within [`limits`] after), errors in AWS's wire shape ([`error`]), served
//! by [`listener`] over TCP or TLS ([`tls`]). Timestamps are epoch seconds.

pub mod body;
pub mod error;
pub mod limits;
pub mod listener;
pub mod sigv4;
pub mod tls;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use percent_encoding::percent_decode_str;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::control::{PipeManager, PipeView};
use crate::model::{self, update, PipeDefinition};
use crate::store::Origin;
use crate::store::{CurrentState, DesiredState};
use error::{json_response, ApiError};
use limits::ListenerLimits;
use sigv4::{RequestHead, Verifier};

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Verify SigV4 signatures against configured keys.
    SigV4(Verifier),
    /// Accept every request, signed or not (local development only).
    AcceptAny,
}

/// What the API serves from.
#[derive(Debug)]
pub struct ApiState {
    /// The pipes.
    pub manager: PipeManager,
    /// Authentication.
    pub auth: Auth,
    /// The listener's limits (the body limit is applied here, after the signature's head).
    pub limits: ListenerLimits,
    /// Whether the listener serves HTTPS (a cookie set over it can be `Secure`).
    pub tls: bool,
    /// More routes served on the same listener, with their own authentication (the console).
    pub console: Option<Router>,
}

/// Serve the API on `listener` (HTTPS with `tls`) until `shutdown`, then drain its connections.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limits = state.limits;
    listener::run(listener, router(state), tls, limits, shutdown).await
}

/// Every route of the listener.
pub fn router(state: Arc<ApiState>) -> Router {
    let console = state.console.clone();
    let app = Router::new().fallback(handle).with_state(state);
    match console {
        Some(console) => app.merge(console),
        None => app,
    }
}

async fn handle(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let (method, uri) = (&parts.method, &parts.uri);
    let raw_path = uri.path();
    let raw_query = uri.query();
    let body = match authenticated_body(&state, &parts, body).await {
        Ok(body) => body,
        Err(e) => {
            tracing::info!(%method, path = raw_path, "request refused: {e}");
            return e.into_response();
        }
    };
    let result = route(&state.manager, method, raw_path, raw_query, &body).await;
    match result {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => {
            tracing::debug!(%method, path = raw_path, error = %e, "request failed");
            e.into_response()
        }
    }
}

/// The body of a request whose signature holds: the head is checked first, so a body is read
/// (up to the limit) only for a request that may be genuine.
async fn authenticated_body(
    state: &ApiState,
    parts: &axum::http::request::Parts,
    body: Body,
) -> Result<Bytes, ApiError> {
    let pending = match &state.auth {
        Auth::SigV4(verifier) => {
            let head = RequestHead {
                method: parts.method.as_str(),
                raw_path: parts.uri.path(),
                raw_query: parts.uri.query(),
                headers: &parts.headers,
            };
            Some(verifier.check_head(&head, SystemTime::now())?)
        }
        Auth::AcceptAny => None,
    };
    let body = body::read_limited(body, state.limits.max_body_bytes).await?;
    if let Some(pending) = pending {
        pending.verify(&body)?;
    }
    Ok(body)
}

/// One API operation, already authenticated (the console calls it too).
pub(crate) async fn route(
    m: &PipeManager,
    method: &Method,
    raw_path: &str,
    raw_query: Option<&str>,
    body: &[u8],
) -> Result<Value, ApiError> {
    let segments: Vec<&str> = raw_path.trim_start_matches('/').split('/').collect();
    let query = parse_query(raw_query.unwrap_or(""))?;
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["v1", "pipes"] | ["v1", "pipes", ""]) => list_pipes(m, &query).await,
        ("POST", ["v1", "pipes", name]) => {
            let name = path_name(name)?;
            let def = parse_create_body(m, &name, body)?;
            if def.name.as_ref().is_some_and(|n| *n != name) {
                return Err(ApiError::field("Name", "must match the name in the path"));
            }
            update::check_create_request(&def)?;
            Ok(summary(m, &m.create(&name, def, Origin::Api).await?))
        }
        ("GET", ["v1", "pipes", name]) => Ok(describe(m, &m.get(&path_name(name)?).await?)),
        ("PUT", ["v1", "pipes", name]) => {
            let name = path_name(name)?;
            let def = parse_body(body)?;
            Ok(summary(m, &m.update(&name, &def).await?))
        }
        ("DELETE", ["v1", "pipes", name]) => Ok(summary(m, &m.delete(&path_name(name)?).await?)),
        ("POST", ["v1", "pipes", name, "start"]) => {
            Ok(summary(m, &m.start(&path_name(name)?).await?))
        }
        ("POST", ["v1", "pipes", name, "stop"]) => {
            Ok(summary(m, &m.stop(&path_name(name)?).await?))
        }
        ("GET", ["tags", arn]) => {
            let view = m.get(&pipe_of_arn(m, arn)?).await?;
            Ok(json!({ "tags": view.record.definition.tags.unwrap_or_default() }))
        }
        ("POST", ["tags", arn]) => {
            let name = pipe_of_arn(m, arn)?;
            let tags = parse_tag_body(body)?;
            m.tag(&name, &tags).await?;
            Ok(json!({}))
        }
        ("DELETE", ["tags", arn]) => {
            let name = pipe_of_arn(m, arn)?;
            let keys: Vec<String> = query
                .iter()
                .filter(|(k, _)| k == "tagKeys")
                .map(|(_, v)| v.clone())
                .collect();
            if keys.is_empty() {
                return Err(ApiError::field("tagKeys", "is required"));
            }
            m.untag(&name, &keys).await?;
            Ok(json!({}))
        }
        _ => Err(ApiError::NotFound(format!(
            "No operation matches {method} {raw_path}."
        ))),
    }
}

fn decode(segment: &str, field: &str) -> Result<String, ApiError> {
    percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::field(field, "is not valid UTF-8"))
}

/// The pipe name of a path, checked as AWS does (1-64 characters of `[.\-_A-Za-z0-9]`), but
/// `.` and `..`, which clients normalise away before they send (so no client could reach them).
fn path_name(segment: &str) -> Result<String, ApiError> {
    let name = decode(segment, "Name")?;
    if name == "." || name == ".." {
        return Err(ApiError::field(
            "Name",
            "must not be . or .. (a path segment clients remove)",
        ));
    }
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::field("Name", "must have length between 1 and 64"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(ApiError::field(
            "Name",
            "must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+",
        ));
    }
    Ok(name)
}

/// The pipe named by a (percent-encoded) pipe ARN of this engine.
fn pipe_of_arn(m: &PipeManager, segment: &str) -> Result<String, ApiError> {
    let arn = decode(segment, "resourceArn")?;
    if !arn.starts_with("arn:") || arn.len() > 1600 {
        return Err(ApiError::field("resourceArn", "must be a pipe ARN"));
    }
    let prefix = m.arn("");
    match arn.strip_prefix(&prefix) {
        Some(name) if !name.is_empty() && !name.contains('/') => Ok(name.to_string()),
        _ => Err(ApiError::NotFound(format!(
            "Resource {arn} does not exist."
        ))),
    }
}

fn body_text(body: &[u8]) -> Result<&str, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| ApiError::field("", "body is not UTF-8"))?;
    Ok(if text.trim().is_empty() { "{}" } else { text })
}

fn parse_body(body: &[u8]) -> Result<PipeDefinition, ApiError> {
    Ok(model::parse_definition(body_text(body)?, false)?)
}

/// A CreatePipe body; when its shape is wrong, the field errors of the rest (the create rules
/// and validation) come in the same ValidationException.
fn parse_create_body(m: &PipeManager, name: &str, body: &[u8]) -> Result<PipeDefinition, ApiError> {
    let parsed = model::parse_lenient(body_text(body)?, false)?;
    if parsed.errors.is_empty() {
        return Ok(parsed.value);
    }
    let checked = parsed.check(|d| {
        let mut d = d.clone();
        d.name = Some(name.to_string());
        let mut errs = update::check_create_request(&d)
            .err()
            .map_or(Vec::new(), |e| e.fields);
        errs.extend(m.compile(&d).err().map_or(Vec::new(), |e| e.fields));
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    });
    let fields = checked.err().unwrap_or_default();
    Err(model::ValidationError { fields }.into())
}

fn parse_tag_body(body: &[u8]) -> Result<BTreeMap<String, String>, ApiError> {
    #[derive(serde::Deserialize)]
    struct TagBody {
        tags: Option<BTreeMap<String, String>>,
    }
    let parsed: TagBody = serde_json::from_slice(if body.is_empty() { b"{}" } else { body })
        .map_err(|e| ApiError::field("tags", e.to_string()))?;
    match parsed.tags {
        Some(t) if !t.is_empty() => Ok(t),
        _ => Err(ApiError::field("tags", "is required (1-50 tags)")),
    }
}

/// The query's pairs. Only `tagKeys` is a list: any other name given twice is refused, since
/// its value would be ambiguous (the signature covers both, sorted; a reader takes one).
fn parse_query(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k, "query")?, decode(v, k)?))
        })
        .collect::<Result<_, ApiError>>()?;
    let mut seen = std::collections::BTreeSet::new();
    for (k, _) in &pairs {
        if k != "tagKeys" && !seen.insert(k.as_str()) {
            return Err(ApiError::field(
                k,
                "is given more than once in the query string",
            ));
        }
    }
    Ok(pairs)
}

fn seconds(ms: u64) -> Value {
    json!(ms as f64 / 1000.0)
}

fn summary(m: &PipeManager, v: &PipeView) -> Value {
    let r = &v.record;
    json!({
        "Arn": m.arn(&r.name),
        "Name": r.name,
        "DesiredState": r.desired_state.as_str(),
        "CurrentState": v.current_state.as_str(),
        "CreationTime": seconds(r.creation_time_ms),
        "LastModifiedTime": seconds(r.last_modified_time_ms),
    })
}

fn describe(m: &PipeManager, view: &PipeView) -> Value {
    let mut v = match serde_json::to_value(&view.record.definition) {
        Ok(Value::Object(o)) => o,
        _ => Map::new(),
    };
    v.retain(|_, val| !val.is_null());
    if let Value::Object(s) = summary(m, view) {
        v.extend(s);
    }
    if let Some(reason) = &view.state_reason {
        v.insert("StateReason".into(), json!(reason));
    }
    if !v.contains_key("Tags") {
        v.insert("Tags".into(), json!({}));
    }
    Value::Object(v)
}

const NEXT_TOKEN_PREFIX: &str = "sluice-v1:";

async fn list_pipes(m: &PipeManager, query: &[(String, String)]) -> Result<Value, ApiError> {
    let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    let limit = match get("Limit") {
        None => 100,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Err(ApiError::field(
                    "Limit",
                    "must be a number between 1 and 100",
                ))
            }
        },
    };
    let desired = get("DesiredState")
        .map(|s| {
            DesiredState::parse(s).ok_or_else(|| {
                ApiError::field("DesiredState", "must be RUNNING, STOPPED or DELETED")
            })
        })
        .transpose()?;
    let current = get("CurrentState")
        .map(|s| {
            CurrentState::parse(s)
                .ok_or_else(|| ApiError::field("CurrentState", "is not a pipe state"))
        })
        .transpose()?;
    let after = get("NextToken")
        .map(|t| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.strip_prefix(NEXT_TOKEN_PREFIX).map(str::to_string))
                .ok_or_else(|| ApiError::field("NextToken", "is not a token this engine issued"))
        })
        .transpose()?;
    let prefix = |field: Option<&str>, value: &Option<String>| {
        get(field.unwrap_or_default()).is_none_or(|p| value.as_deref().unwrap_or("").starts_with(p))
    };
    let matching: Vec<PipeView> = m
        .list()
        .await?
        .into_iter()
        .filter(|v| {
            after
                .as_ref()
                .is_none_or(|a| v.record.name.as_str() > a.as_str())
        })
        .filter(|v| get("NamePrefix").is_none_or(|p| v.record.name.starts_with(p)))
        .filter(|v| prefix(Some("SourcePrefix"), &v.record.definition.source))
        .filter(|v| prefix(Some("TargetPrefix"), &v.record.definition.target))
        .filter(|v| desired.is_none_or(|d| v.record.desired_state == d))
        .filter(|v| current.is_none_or(|c| v.current_state == c))
        .collect();
    let more = matching.len() > limit;
    let page = &matching[..matching.len().min(limit)];
    let pipes: Vec<Value> = page
        .iter()
        .map(|view| {
            let mut item = summary(m, view);
            let r = &view.record;
            if let Value::Object(o) = &mut item {
                for (k, v) in [
                    ("Source", &r.definition.source),
                    ("Target", &r.definition.target),
                    ("Enrichment", &r.definition.enrichment),
                    ("StateReason", &view.state_reason),
                ] {
                    if let Some(v) = v {
                        o.insert(k.into(), json!(v));
                    }
                }
            }
            item
        })
        .collect();
    let mut out = json!({ "Pipes": pipes });
    if more {
        if let Some(last) = page.last() {
            out["NextToken"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(format!("{NEXT_TOKEN_PREFIX}{}", last.record.name)));
        }
    }
    Ok(out)
}
