//! Errors at the HTTP boundary, and the one place that maps them to the
//! contract's status codes, `type` strings and JSON bodies.
//!
//! Everything that can go wrong for a client ends up as an [`ApiError`]: bad
//! input found by a front door, and upstream failures (via
//! `From<UpstreamError>`). Before the first byte of a stream it becomes a
//! status and `{"error":{"type","message"}}`; after it, the same object rides
//! in the stream's terminal error frame. Messages never carry secrets: upstream
//! text is scrubbed by the providers before it gets here.
//!
//! What it may not do: depend on anything above `generation`. The doors pick
//! the body's shape (`doors::openai::error` for OpenAI's); the status, type
//! and message are decided here.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::generation::{InvalidField, UpstreamError};

/// What went wrong, in the contract's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Unauthorized,
    /// A browser page from an origin, or a `Host`, sluice does not serve.
    Forbidden,
    NotFound,
    /// An `Idempotency-Key` used again with another body (section 16).
    IdempotencyConflict,
    /// The prompt is past the model's context length (a 400, as providers
    /// answer it).
    ContextLengthExceeded,
    /// The upstream refused the request's content on policy grounds (a
    /// 400, passed on rather than routed around: section 17).
    ContentPolicy,
    PayloadTooLarge,
    RateLimited,
    UpstreamError,
    Overloaded,
    UpstreamTimeout,
    ConnectTimeout,
    IdleTimeout,
    TotalTimeout,
    ShuttingDown,
    /// `[store]` is set and Redis cannot be reached (section 12).
    StoreUnavailable,
    /// The replica running a generation died; its watchers elsewhere get this.
    GenerationLost,
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::IdempotencyConflict => StatusCode::CONFLICT,
            ErrorKind::ContextLengthExceeded | ErrorKind::ContentPolicy => StatusCode::BAD_REQUEST,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::UpstreamError => StatusCode::BAD_GATEWAY,
            ErrorKind::Overloaded | ErrorKind::ShuttingDown | ErrorKind::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorKind::GenerationLost => StatusCode::BAD_GATEWAY,
            ErrorKind::UpstreamTimeout
            | ErrorKind::ConnectTimeout
            | ErrorKind::IdleTimeout
            | ErrorKind::TotalTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `type` string of the error object.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::IdempotencyConflict => "idempotency_conflict",
            ErrorKind::ContextLengthExceeded => "context_length_exceeded",
            ErrorKind::ContentPolicy => "content_policy_violation",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::UpstreamError => "upstream_error",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::IdleTimeout => "idle_timeout",
            ErrorKind::TotalTimeout => "total_timeout",
            ErrorKind::ShuttingDown => "shutting_down",
            ErrorKind::StoreUnavailable => "store_unavailable",
            ErrorKind::GenerationLost => "generation_lost",
            ErrorKind::Internal => "internal_error",
        }
    }

    /// The kind whose [`ErrorKind::as_str`] is `name` (an error read back
    /// from another replica's log).
    pub fn named(name: &str) -> Option<ErrorKind> {
        [
            ErrorKind::InvalidRequest,
            ErrorKind::Unauthorized,
            ErrorKind::Forbidden,
            ErrorKind::NotFound,
            ErrorKind::IdempotencyConflict,
            ErrorKind::ContextLengthExceeded,
            ErrorKind::ContentPolicy,
            ErrorKind::PayloadTooLarge,
            ErrorKind::RateLimited,
            ErrorKind::UpstreamError,
            ErrorKind::Overloaded,
            ErrorKind::UpstreamTimeout,
            ErrorKind::ConnectTimeout,
            ErrorKind::IdleTimeout,
            ErrorKind::TotalTimeout,
            ErrorKind::ShuttingDown,
            ErrorKind::StoreUnavailable,
            ErrorKind::GenerationLost,
            ErrorKind::Internal,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == name)
    }

    /// The kind a bare HTTP status stands for (used when the mock is told to
    /// fail with a given status).
    pub fn for_status(status: StatusCode) -> ErrorKind {
        match status.as_u16() {
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            413 => ErrorKind::PayloadTooLarge,
            429 => ErrorKind::RateLimited,
            // 529 is Anthropic's "overloaded".
            503 | 529 => ErrorKind::Overloaded,
            504 => ErrorKind::UpstreamTimeout,
            400..=499 => ErrorKind::InvalidRequest,
            500 => ErrorKind::Internal,
            _ => ErrorKind::UpstreamError,
        }
    }
}

/// An error as a client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub status: StatusCode,
    pub message: String,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    /// Seconds for the `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            status: kind.status(),
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    /// A 400 about one request field.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            param: Some(param.into()),
            ..ApiError::new(ErrorKind::InvalidRequest, message)
        }
    }

    pub fn not_found(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            param: Some(param.into()),
            ..ApiError::new(ErrorKind::NotFound, message)
        }
    }

    /// The error object, `{"type","message"}`, as the native door writes it.
    pub fn body(&self) -> serde_json::Value {
        let mut error = json!({ "type": self.kind.as_str(), "message": self.message });
        if let Some(param) = &self.param {
            error["param"] = json!(param);
        }
        json!({ "error": error })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl ApiError {
    /// What goes with the error whatever its body's shape: `Retry-After`,
    /// and the kind as a response extension, for the access log and metrics.
    pub fn decorate(&self, response: &mut Response) {
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response.extensions_mut().insert(self.kind);
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        self.decorate(&mut response);
        response
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// The error that ends streams still running when the grace period is over.
    pub fn shutting_down() -> ApiError {
        ApiError::new(
            ErrorKind::ShuttingDown,
            "the proxy is shutting down and the grace period for streams in flight is over",
        )
    }
}

impl From<InvalidField> for ApiError {
    fn from(err: InvalidField) -> Self {
        ApiError::invalid(err.field, err.message)
    }
}

/// Every upstream failure's kind and status; the message is the error's own
/// `Display`, which names the knob a timeout came from.
impl From<UpstreamError> for ApiError {
    fn from(err: UpstreamError) -> Self {
        let message = err.to_string();
        let (kind, retry_after) = match err {
            UpstreamError::Status { retry_after, .. } => (ErrorKind::UpstreamError, retry_after),
            UpstreamError::MockStatus {
                status,
                retry_after,
            } => {
                // The mock's status is validated to 400-599 where it is set.
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return ApiError {
                    status,
                    retry_after,
                    ..ApiError::new(ErrorKind::for_status(status), message)
                };
            }
            UpstreamError::Transport(_)
            | UpstreamError::Stream(_)
            | UpstreamError::Malformed(_) => (ErrorKind::UpstreamError, None),
            UpstreamError::ContentPolicy(_) => (ErrorKind::ContentPolicy, None),
            UpstreamError::ContextLength(_) => (ErrorKind::ContextLengthExceeded, None),
            UpstreamError::NoRecording(_) => (ErrorKind::NotFound, None),
            UpstreamError::ConnectTimeout(_) => (ErrorKind::ConnectTimeout, None),
            UpstreamError::FirstTokenTimeout(_) => (ErrorKind::UpstreamTimeout, None),
            UpstreamError::IdleTimeout(_) => (ErrorKind::IdleTimeout, None),
            UpstreamError::TotalTimeout(_) => (ErrorKind::TotalTimeout, None),
        };
        ApiError {
            retry_after,
            ..ApiError::new(kind, message)
        }
    }
}
