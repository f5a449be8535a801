//! The native front door: `POST /v1/stream` and `GET /v1/stream` (section 1
//! of the contract).
//!
//! A request goes: negotiate the format, read and parse the request (JSON,
//! form fields or query parameters), render its template, then the shared
//! pipeline with the native framer.

mod frames;
mod request;

use axum::extract::{RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::response::Response;

pub use frames::{Format, NativeFrames};
use request::StreamRequest;

use super::{Admission, LimitedBody};
use crate::error::ApiError;
use crate::parse::strict_pairs;
use crate::state::AppState;

pub async fn post(
    State(app): State<AppState>,
    admission: Admission,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let mut pairs = query_pairs(query.as_deref())?;
    let format = Format::negotiate(take_format(&mut pairs).as_deref(), &headers)?;
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    // A POST with no body may carry its fields in the query string.
    let request = if body.is_empty() && !pairs.is_empty() {
        StreamRequest::from_pairs(pairs)?
    } else {
        StreamRequest::from_body(content_type, &body)?
    };
    stream(app, admission, request, format).await
}

pub async fn get(
    State(app): State<AppState>,
    admission: Admission,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut pairs = query_pairs(query.as_deref())?;
    let format = Format::negotiate(take_format(&mut pairs).as_deref(), &headers)?;
    stream(app, admission, StreamRequest::from_pairs(pairs)?, format).await
}

async fn stream(
    app: AppState,
    admission: Admission,
    request: StreamRequest,
    format: Format,
) -> Result<Response, ApiError> {
    let (generation, model) = request.into_generation(&app.templates)?;
    super::stream(&app, admission, model.as_deref(), generation, |route| {
        Box::new(NativeFrames::new(format, route.to_owned()))
    })
    .await
}

fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    strict_pairs(query.unwrap_or("").as_bytes(), "query")
}

/// `format` in the query picks the wire format; it is not a request field.
fn take_format(pairs: &mut Vec<(String, String)>) -> Option<String> {
    let at = pairs.iter().position(|(k, _)| k == "format")?;
    Some(pairs.remove(at).1)
}
