//! AWS's error wire shape for restJson1: a JSON body `{"message": ...}` plus the error's fields,
//! and the `X-Amzn-ErrorType` header from which botocore and the SDKs pick the exception class.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::body::BodyError;
use super::sigv4::AuthError;
use crate::control::ControlError;
use crate::model::{FieldError, ValidationError};
use crate::store::StoreError;

/// An error answer of the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `ValidationException` with `fieldList`.
    #[error("{0}")]
    Validation(ValidationError),
    /// 404 `NotFoundException`.
    #[error("{0}")]
    NotFound(String),
    /// 409 `ConflictException`.
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
        /// The pipe's name.
        resource_id: String,
    },
    /// 402 `ServiceQuotaExceededException`: the limit of pipes is reached.
    #[error("{message}")]
    QuotaExceeded {
        /// What is exceeded.
        message: String,
        /// The pipe's name.
        resource_id: String,
    },
    /// 403 `UnrecognizedClientException` / `InvalidSignatureException`.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// 413 (over the body limit), 408 (body too slow) or 400 (body broken); the connection is
    /// closed after the answer.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// 500 `InternalException`; the message is generic, details go to the log.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A validation error of one field.
    pub fn field(name: &str, message: impl Into<String>) -> ApiError {
        ApiError::Validation(ValidationError {
            fields: vec![FieldError::new(name, message)],
        })
    }

    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Body(b) => b.is_retryable(),
            _ => matches!(self, ApiError::Internal(_) | ApiError::Conflict { .. }),
        }
    }

    /// Whether the caller must change the request.
    pub fn is_user_error(&self) -> bool {
        match self {
            ApiError::Body(b) => b.is_user_error(),
            _ => !matches!(self, ApiError::Internal(_)),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::Validation(e)
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::NotFound(_) => ApiError::NotFound(e.to_string()),
            ControlError::Conflict { name, message } => ApiError::Conflict {
                message,
                resource_id: name,
            },
            ControlError::Validation(v) => ApiError::Validation(v),
            ControlError::QuotaExceeded { ref name, .. } => ApiError::QuotaExceeded {
                resource_id: name.clone(),
                message: e.to_string(),
            },
            ControlError::Store(s @ StoreError::Unavailable(_)) => {
                tracing::warn!(error = %s, "request failed: the pipe store is unavailable");
                ApiError::Internal(
                    "The pipe store is unavailable; try again (see the engine's log).".into(),
                )
            }
            ControlError::Store(s) => {
                tracing::error!(error = %s, "pipe store failed");
                ApiError::Internal("The pipe store failed; see the engine's log.".into())
            }
        }
    }
}

/// AWS's summary line of a `ValidationException`.
fn validation_message(e: &ValidationError) -> String {
    let n = e.fields.len();
    let details: Vec<String> = e
        .fields
        .iter()
        .map(|f| {
            if f.name.is_empty() {
                f.message.clone()
            } else {
                format!("{}: {}", f.name, f.message)
            }
        })
        .collect();
    format!(
        "{n} validation error{} detected: {}",
        if n == 1 { "" } else { "s" },
        details.join("; ")
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, body) = match &self {
            ApiError::Validation(v) => (
                StatusCode::BAD_REQUEST,
                "ValidationException",
                json!({"message": validation_message(v), "fieldList": v.fields}),
            ),
            ApiError::NotFound(m) => (
                StatusCode::NOT_FOUND,
                "NotFoundException",
                json!({ "message": m }),
            ),
            ApiError::Conflict {
                message,
                resource_id,
            } => (
                StatusCode::CONFLICT,
                "ConflictException",
                json!({"message": message, "resourceId": resource_id, "resourceType": "pipe"}),
            ),
            ApiError::QuotaExceeded {
                message,
                resource_id,
            } => (
                StatusCode::PAYMENT_REQUIRED,
                "ServiceQuotaExceededException",
                json!({"message": message, "resourceId": resource_id, "resourceType": "pipe",
                    "serviceCode": "pipes", "quotaCode": "max_pipes"}),
            ),
            ApiError::Auth(a) => (
                StatusCode::FORBIDDEN,
                a.error_type(),
                json!({ "message": a.to_string() }),
            ),
            ApiError::Body(b) => (
                match b {
                    BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                    BodyError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
                    BodyError::Broken(_) => StatusCode::BAD_REQUEST,
                },
                match b {
                    BodyError::TooLarge { .. } => "RequestEntityTooLargeException",
                    BodyError::TimedOut(_) => "RequestTimeoutException",
                    BodyError::Broken(_) => "BadRequestException",
                },
                json!({ "message": b.to_string() }),
            ),
            ApiError::Internal(m) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalException",
                json!({ "message": m }),
            ),
        };
        let mut resp = json_response(status, &body);
        resp.headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(kind));
        if matches!(self, ApiError::Body(_)) {
            // The rest of the body is never read: this connection cannot carry another request.
            resp.headers_mut()
                .insert("connection", HeaderValue::from_static("close"));
        }
        if matches!(self, ApiError::Internal(_)) {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        resp
    }
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
