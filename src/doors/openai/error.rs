//! Errors in OpenAI's shape, `{"error":{"message","type","param","code"}}`,
//! so the SDKs raise their own exception classes (they go by the status).
//!
//! `type` is the contract's type string (`invalid_request`, `rate_limited`,
//! ...), the same as the native door's; `code` is OpenAI's own code where a
//! client may test for one (`model_not_found`, `rate_limit_exceeded`,
//! `invalid_api_key`), else the contract's type again.

use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::error::{ApiError, ErrorKind};

/// An [`ApiError`] answered in OpenAI's shape.
#[derive(Debug)]
pub struct OpenAiError(pub ApiError);

impl From<ApiError> for OpenAiError {
    fn from(err: ApiError) -> Self {
        OpenAiError(err)
    }
}

/// The error object, also used for the `data: {"error":...}` frame mid-stream.
pub fn body(err: &ApiError) -> Value {
    let code = match err.kind {
        ErrorKind::NotFound if err.param.as_deref() == Some("model") => "model_not_found",
        ErrorKind::Unauthorized => "invalid_api_key",
        ErrorKind::RateLimited => "rate_limit_exceeded",
        kind => kind.as_str(),
    };
    json!({
        "error": {
            "message": err.message,
            "type": err.kind.as_str(),
            "param": err.param,
            "code": code,
        }
    })
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let mut response = (self.0.status, axum::Json(body(&self.0))).into_response();
        self.0.decorate(&mut response);
        response
    }
}
