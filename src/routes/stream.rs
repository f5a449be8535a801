//! The native front door: `POST /v1/stream` and `GET /v1/stream` (section 1
//! of the contract).
//!
//! Read top to bottom, a request goes: negotiate the format, read and parse
//! the request, resolve the model, start the generation under its deadlines,
//! wait for its first event (an early failure is still a status code), then
//! stream frames.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;

use super::read_body;
use crate::error::ApiError;
use crate::frame::{Format, NativeFrames};
use crate::observe::Tally;
use crate::providers::failover;
use crate::relay::{self, Relay};
use crate::request::{self, StreamRequest};
use crate::AppState;

pub async fn post(
    State(app): State<AppState>,
    Extension(tally): Extension<Tally>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let mut pairs = query_pairs(query.as_deref())?;
    let format = Format::negotiate(take_format(&mut pairs).as_deref(), &headers)?;
    let body = read_body(body, &headers, app.config.limits.max_body_bytes).await?;
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    // A POST with no body may carry its fields in the query string.
    let request = if body.is_empty() && !pairs.is_empty() {
        StreamRequest::from_pairs(pairs)?
    } else {
        StreamRequest::from_body(content_type, &body)?
    };
    stream(app, tally, request, format).await
}

pub async fn get(
    State(app): State<AppState>,
    Extension(tally): Extension<Tally>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut pairs = query_pairs(query.as_deref())?;
    let format = Format::negotiate(take_format(&mut pairs).as_deref(), &headers)?;
    stream(app, tally, StreamRequest::from_pairs(pairs)?, format).await
}

async fn stream(
    app: AppState,
    tally: Tally,
    request: StreamRequest,
    format: Format,
) -> Result<Response, ApiError> {
    let (mut generation, model) = request.into_generation(&app.templates)?;
    let route = request::resolve_model(&app.models, model.as_deref(), &mut generation)?;
    tally.set_model(&route.name);
    let events = failover::generate(&app.models, &route, generation, &app.config.timeouts);
    let heartbeat = app.config.heartbeat();
    let started = relay::start(events, heartbeat).await?;
    let relay = Relay {
        heartbeat,
        meter: tally.meter(&route.name, started.upstream_ttft),
        shutdown: app.drain.expiry(),
    };
    let served_by = started
        .served_by
        .clone()
        .unwrap_or_else(|| route.name.clone());
    let framer = NativeFrames::new(format, route.name.clone());
    Ok(relay::with_served_by(
        relay::response(started, framer, relay),
        &served_by,
    ))
}

fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    request::strict_pairs(query.unwrap_or("").as_bytes(), "query")
}

/// `format` in the query picks the wire format; it is not a request field.
fn take_format(pairs: &mut Vec<(String, String)>) -> Option<String> {
    let at = pairs.iter().position(|(k, _)| k == "format")?;
    Some(pairs.remove(at).1)
}
