//! Errors in Anthropic's shape, `{"type":"error","error":{"type","message"}}`,
//! with Anthropic's error types, so the `anthropic` SDKs raise their own
//! exception classes (they go by the status) and show the type.

use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{ApiError, ErrorKind};

/// An [`ApiError`] answered in Anthropic's shape.
#[derive(Debug)]
pub struct AnthropicError(pub ApiError);

impl From<ApiError> for AnthropicError {
    fn from(err: ApiError) -> Self {
        AnthropicError(err)
    }
}

/// Anthropic's error type for a kind of error.
fn error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::ContextLengthExceeded | ErrorKind::ContentPolicy => {
            "invalid_request_error"
        }
        ErrorKind::Unauthorized => "authentication_error",
        ErrorKind::Forbidden => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::IdempotencyConflict => "idempotency_conflict",
        ErrorKind::PayloadTooLarge => "request_too_large",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::Overloaded | ErrorKind::ShuttingDown | ErrorKind::StoreUnavailable => {
            "overloaded_error"
        }
        ErrorKind::UpstreamError
        | ErrorKind::GenerationLost
        | ErrorKind::UpstreamTimeout
        | ErrorKind::ConnectTimeout
        | ErrorKind::IdleTimeout
        | ErrorKind::TotalTimeout
        | ErrorKind::Internal => "api_error",
    }
}

/// The error object's fields after `"type": "error"`, also the data of the
/// `event: error` frame mid-stream.
#[derive(Serialize)]
pub struct Body {
    error: Detail,
}

#[derive(Serialize)]
struct Detail {
    #[serde(rename = "type")]
    kind: &'static str,
    message: String,
}

impl Body {
    /// The message names sluice's own type (`idle_timeout`, ...), which
    /// Anthropic's coarser types would hide.
    pub fn of(err: &ApiError) -> Body {
        Body {
            error: Detail {
                kind: error_type(err.kind),
                message: format!("{} ({})", err.message, err.kind.as_str()),
            },
        }
    }
}

/// The whole error body, `{"type":"error","error":{..}}`.
#[derive(Serialize)]
struct Whole {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    body: Body,
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let whole = Whole {
            kind: "error",
            body: Body::of(&self.0),
        };
        let mut response = (self.0.status, axum::Json(whole)).into_response();
        self.0.decorate(&mut response);
        response
    }
}
