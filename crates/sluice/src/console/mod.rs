//! The web console under `/console/` (`../shared/spec/console.md`): sign-in with the API's access
//! keys, the pages (one embedded single-page app in [`assets`]), the read-only JSON of live
//! figures ([`figures`]), the last execution errors (kept by each pipe's execution log, read
//! through [`PipeManager::recent_errors`]) and the try-it boxes ([`try_out`]). State changes go
//! through the API's own routing ([`crate::api::route`]) on the same [`PipeManager`], so they
//! answer with the API's validation messages; the console adds the session and CSRF checks
//! ([`session`]) in front.

mod assets;
pub mod figures;
pub mod session;
pub mod try_out;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::api::error::json_response;
use crate::api::sigv4::Verifier;
use crate::control::PipeManager;
use crate::metrics::Metrics;
use crate::transforms::TemplateVars;
use figures::Figures;
use session::{Session, Sessions, SignInLimiter};

const COOKIE: &str = "sluice_console";

/// Everything the console serves from.
#[derive(Debug)]
pub struct ConsoleState {
    manager: PipeManager,
    /// `None`: `--dev-accept-any-credentials`, no sign-in.
    verifier: Option<Verifier>,
    /// Session cookies carry `Secure` (served over TLS).
    secure_cookies: bool,
    sessions: Mutex<Sessions>,
    limiter: Mutex<SignInLimiter>,
    figures: Arc<Mutex<Figures>>,
}

impl ConsoleState {
    /// The console of `manager`, its figures sampled from `metrics` until `shutdown`. `verifier`
    /// `None` opens it without sign-in (`--dev-accept-any-credentials`).
    pub fn start(
        manager: PipeManager,
        metrics: Arc<Metrics>,
        verifier: Option<Verifier>,
        secure_cookies: bool,
        shutdown: CancellationToken,
    ) -> Arc<ConsoleState> {
        let figures = Arc::new(Mutex::new(Figures::default()));
        figures::spawn_sampler(metrics, figures.clone(), shutdown);
        Arc::new(ConsoleState {
            manager,
            verifier,
            secure_cookies,
            sessions: Mutex::default(),
            limiter: Mutex::default(),
            figures,
        })
    }

    fn dev(&self) -> bool {
        self.verifier.is_none()
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn figures(&self) -> std::sync::MutexGuard<'_, Figures> {
        self.figures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session of the request's cookie.
    fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let token = cookie(headers)?;
        self.sessions().get(&token, Instant::now()).cloned()
    }

    fn cookie_header(&self, token: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        let value = format!(
            "{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
        );
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The console's routes, all under `/console`, to merge into the API's router.
pub fn router(state: Arc<ConsoleState>) -> Router {
    Router::new()
        .route("/console", get(|| async { redirect("/console/") }))
        .route("/console/", get(index))
        .route("/console/signin", post(sign_in))
        .route("/console/signout", post(sign_out))
        .route("/console/assets/{file}", get(asset))
        .route("/console/api/session", get(session_info))
        .route("/console/api/pipes", get(pipes))
        .route("/console/api/pipes/{name}", get(pipe))
        .route("/console/api/instances", get(instances))
        .route("/console/api/try/pattern", post(try_pattern))
        .route("/console/api/try/template", post(try_template))
        .route("/console/api/v1/{*rest}", any(forward))
        .with_state(state)
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

fn html(status: StatusCode, body: String) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, assets::CSP),
    ];
    (status, headers, body).into_response()
}

fn unauthorized() -> Response {
    ConsoleError::Unauthorized.into_response()
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    json_response(status, &json!({ "message": message.to_string() }))
}

/// The page: the app once signed in (in dev mode a session is opened at once), else sign-in.
async fn index(State(s): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    if s.session(&headers).is_some() {
        return html(StatusCode::OK, assets::app_page());
    }
    if s.dev() {
        let token = s.sessions().open("dev", Instant::now());
        let mut resp = html(StatusCode::OK, assets::app_page());
        let cookie = s.cookie_header(&token, session::SESSION_TTL.as_secs());
        resp.headers_mut().insert(header::SET_COOKIE, cookie);
        return resp;
    }
    html(StatusCode::OK, assets::sign_in_page(None))
}

#[derive(serde::Deserialize)]
struct SignIn {
    access_key_id: String,
    secret_access_key: String,
}

async fn sign_in(State(s): State<Arc<ConsoleState>>, body: Bytes) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<SignIn>(&body) else {
        let page = assets::sign_in_page(Some("Enter an access key id and a secret key."));
        return html(StatusCode::BAD_REQUEST, page);
    };
    let Some(verifier) = &s.verifier else {
        return redirect("/console/");
    };
    let now = Instant::now();
    let akid = form.access_key_id.trim();
    let mut limiter = s.limiter.lock().unwrap_or_else(|e| e.into_inner());
    if !limiter.allows(akid, now) {
        tracing::warn!(
            access_key_id = akid,
            "console sign-in refused: too many failures"
        );
        let page = assets::sign_in_page(Some("Too many failed sign-ins; wait a minute."));
        return html(StatusCode::TOO_MANY_REQUESTS, page);
    }
    if !verifier.accepts_secret(akid, &form.secret_access_key) {
        limiter.failed(akid, now);
        tracing::info!(access_key_id = akid, "console sign-in refused: wrong key");
        let page = assets::sign_in_page(Some("That access key id and secret key are refused."));
        return html(StatusCode::UNAUTHORIZED, page);
    }
    drop(limiter);
    tracing::info!(access_key_id = akid, "console sign-in");
    let token = s.sessions().open(akid, now);
    let mut resp = redirect("/console/");
    let cookie = s.cookie_header(&token, session::SESSION_TTL.as_secs());
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    resp
}

async fn sign_out(State(s): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    if let Err(e) = changing(&s, &headers) {
        return e.into_response();
    }
    if let Some(token) = cookie(&headers) {
        s.sessions().close(&token);
    }
    let mut resp = json_response(StatusCode::OK, &json!({}));
    resp.headers_mut()
        .insert(header::SET_COOKIE, s.cookie_header("", 0));
    resp
}

/// The sign-in page's stylesheet is served to anyone; the scripts only with a session.
async fn asset(
    State(s): State<Arc<ConsoleState>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some((content_type, body, public)) = assets::file(&file) else {
        return error(StatusCode::NOT_FOUND, "No such console file.");
    };
    if !public && s.session(&headers).is_none() {
        return unauthorized();
    }
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    (StatusCode::OK, headers, body).into_response()
}

fn csrf_header(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-csrf-token").and_then(|v| v.to_str().ok())
}

async fn session_info(State(s): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    let Some(session) = s.session(&headers) else {
        return unauthorized();
    };
    let body = json!({
        "AccessKeyId": session.access_key_id,
        "CsrfToken": session.csrf,
        "DevMode": s.dev(),
        "Instance": s.manager.instance_id(),
    });
    json_response(StatusCode::OK, &body)
}

/// Every pipe with its state, source topic, target and figures.
async fn pipes(State(s): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    if s.session(&headers).is_none() {
        return unauthorized();
    }
    let views = match s.manager.list().await {
        Ok(v) => v,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let figures = s.figures();
    let pipes: Vec<Value> = views
        .iter()
        .map(|v| {
            let r = &v.record;
            let f = figures.summary(&r.name);
            json!({
                "Name": r.name,
                "CurrentState": v.current_state.as_str(),
                "DesiredState": r.desired_state.as_str(),
                "StateReason": v.state_reason,
                "Topic": topic_of(&r.definition),
                "Target": r.definition.target,
                "RecordsPerSecond": f.records_per_second,
                "Lag": f.lag,
            })
        })
        .collect();
    json_response(StatusCode::OK, &json!({ "Pipes": pipes }))
}

fn topic_of(def: &crate::model::PipeDefinition) -> Option<String> {
    let p = def.source_parameters.as_ref()?;
    let topic = p
        .self_managed_kafka_parameters
        .as_ref()
        .map(|k| k.topic_name.clone())
        .or_else(|| {
            p.managed_streaming_kafka_parameters
                .as_ref()
                .map(|k| k.topic_name.clone())
        });
    topic.flatten()
}

/// One pipe: its definition as DescribePipe answers it, its charts' points, and its last
/// execution errors on this instance (`LastErrors`, newest first; `ExecutionLogs` says whether
/// its `LogConfiguration` logs at all).
async fn pipe(
    State(s): State<Arc<ConsoleState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if s.session(&headers).is_none() {
        return unauthorized();
    }
    let path = format!("/v1/pipes/{}", encode_segment(&name));
    let described = match crate::api::route(&s.manager, &Method::GET, &path, None, b"").await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let series = s.figures().series(&name);
    let body = json!({
        "ExecutionLogs": execution_logs_on(&described),
        "LastErrors": s.manager.recent_errors(&name),
        "Pipe": described,
        "Series": series,
        "SampleIntervalSeconds": figures::SAMPLE_INTERVAL.as_secs(),
    });
    json_response(StatusCode::OK, &body)
}

/// Whether a described pipe's `LogConfiguration` has a level other than `OFF`.
fn execution_logs_on(described: &Value) -> bool {
    described["LogConfiguration"]["Level"]
        .as_str()
        .is_some_and(|l| !l.eq_ignore_ascii_case("OFF"))
}

fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The live instances, each with its last heartbeat and what it reports about the pipes it runs
/// (phase, version, the partitions it owns).
async fn instances(State(s): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    if s.session(&headers).is_none() {
        return unauthorized();
    }
    match s.manager.observed().await {
        Ok(o) => json_response(
            StatusCode::OK,
            &instances_json(&o, crate::control::now_ms(), s.manager.instance_id()),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// `/console/api/instances`: each live instance with its heartbeat (its age by the store's clock,
/// and the time that makes by ours, `now_ms`) and its observations.
fn instances_json(o: &crate::store::Observed, now_ms: u64, this: &str) -> Value {
    let instances: Vec<Value> = o
        .live
        .iter()
        .map(|(id, age)| {
            let age = age.as_millis() as u64;
            let pipes: Vec<Value> = o
                .observations
                .iter()
                .filter(|x| &x.instance == id)
                .map(|x| {
                    json!({"Pipe": x.pipe, "Phase": x.phase.as_str(), "Version": x.version,
                        "Partitions": x.partitions})
                })
                .collect();
            json!({
                "Instance": id,
                "This": id == this,
                "HeartbeatAgeMs": age,
                "LastHeartbeatMs": now_ms.saturating_sub(age),
                "Pipes": pipes,
            })
        })
        .collect();
    json!({ "Instances": instances })
}

/// Why the console refused a request before it reached a handler's work.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No session (401).
    #[error("Sign in to the console first.")]
    Unauthorized,
    /// A state change without the session's CSRF token (403).
    #[error("The CSRF token is missing or wrong.")]
    Csrf,
    /// A body that is not the endpoint's JSON (400).
    #[error("{0}")]
    BadBody(String),
}

impl ConsoleError {
    /// Never: the request must change (sign in, send the token, fix the body).
    pub fn is_retryable(&self) -> bool {
        false
    }

    /// Always.
    pub fn is_user_error(&self) -> bool {
        true
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = match self {
            ConsoleError::Unauthorized => StatusCode::UNAUTHORIZED,
            ConsoleError::Csrf => StatusCode::FORBIDDEN,
            ConsoleError::BadBody(_) => StatusCode::BAD_REQUEST,
        };
        error(status, self)
    }
}

/// The session of a state-changing request, which must carry its CSRF token.
fn changing(s: &ConsoleState, headers: &HeaderMap) -> Result<Session, ConsoleError> {
    let session = s.session(headers).ok_or(ConsoleError::Unauthorized)?;
    if !session::csrf_ok(&session, csrf_header(headers)) {
        return Err(ConsoleError::Csrf);
    }
    Ok(session)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TryBody {
    pattern: Option<String>,
    template: Option<String>,
    event: String,
    pipe_name: Option<String>,
}

fn try_body(body: &[u8]) -> Result<TryBody, ConsoleError> {
    serde_json::from_slice(body).map_err(|e| ConsoleError::BadBody(e.to_string()))
}

async fn try_pattern(
    State(s): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let b = match changing(&s, &headers).and_then(|_| try_body(&body)) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match try_out::test_pattern(b.pattern.as_deref().unwrap_or(""), &b.event) {
        Ok(result) => json_response(StatusCode::OK, &json!({ "Result": result })),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn try_template(
    State(s): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let b = match changing(&s, &headers).and_then(|_| try_body(&body)) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let name = b.pipe_name.unwrap_or_default();
    let vars = TemplateVars {
        pipe_arn: s.manager.arn(&name),
        pipe_name: name,
        ..TemplateVars::default()
    };
    match try_out::preview_template(b.template.as_deref().unwrap_or(""), &b.event, &vars) {
        Ok(out) => json_response(StatusCode::OK, &json!({ "Output": out })),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// `/console/api/v1/...`: the API's own operation on `/v1/...`, for a signed-in session; the
/// state-changing ones with its CSRF token.
async fn forward(
    State(s): State<Arc<ConsoleState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let session = if method == Method::GET {
        s.session(&headers).ok_or(ConsoleError::Unauthorized)
    } else {
        changing(&s, &headers)
    };
    let session = match session {
        Ok(session) => session,
        Err(e) => return e.into_response(),
    };
    let path = uri.path().trim_start_matches("/console/api");
    match crate::api::route(&s.manager, &method, path, uri.query(), &body).await {
        Ok(v) => {
            if method != Method::GET {
                tracing::info!(%method, path, access_key_id = %session.access_key_id,
                    "console request");
            }
            json_response(StatusCode::OK, &v)
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Observation, Observed, Phase};
    use std::time::Duration;

    #[test]
    fn instances_show_their_heartbeat_and_owned_partitions() {
        let observed = Observed {
            live: [
                ("a".to_string(), Duration::from_millis(1500)),
                ("b".to_string(), Duration::from_millis(200)),
            ]
            .into(),
            observations: vec![Observation {
                pipe: "orders".into(),
                instance: "b".into(),
                version: 3,
                phase: Phase::Running,
                partitions: vec![0, 2],
            }],
        };
        let json = instances_json(&observed, 10_000, "b");
        let list = json["Instances"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["Instance"], "a");
        assert_eq!(list[0]["HeartbeatAgeMs"], 1500);
        assert_eq!(list[0]["LastHeartbeatMs"], 8500);
        assert_eq!(list[0]["Pipes"], json!([]));
        assert_eq!(list[1]["This"], true);
        assert_eq!(
            list[1]["Pipes"],
            json!([{"Pipe": "orders", "Phase": "RUNNING", "Version": 3, "Partitions": [0, 2]}])
        );
    }

    #[test]
    fn execution_logs_are_on_unless_the_level_is_off_or_missing() {
        let on = |v: Value| execution_logs_on(&v);
        assert!(on(json!({"LogConfiguration": {"Level": "ERROR"}})));
        assert!(!on(json!({"LogConfiguration": {"Level": "OFF"}})));
        assert!(!on(json!({"Name": "p"})));
    }
}
