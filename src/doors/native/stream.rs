//! `POST /v1/stream` and `GET /v1/stream`.
//!
//! A request goes: negotiate the format, then either resume the generation
//! its `Last-Event-ID` names, or read and parse the request (JSON, form
//! fields or query parameters), render its template, make it a generation,
//! and run the shared pipeline with the native framer.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::frames::{Format, NativeFrames};
use super::request::{query_pairs, take, StreamRequest};
use super::resume::{self, last_event_id};
use crate::doors::idempotency::{self, Start};
use crate::doors::{Admission, LimitedBody};
use crate::error::ApiError;
use crate::pipeline::detached::{self, Detached};
use crate::pipeline::framer::Framer;
use crate::state::AppState;

pub async fn post(
    State(app): State<AppState>,
    admission: Admission,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let (pairs, format) = match opening(&app, &admission, query.as_deref(), &headers).await? {
        Opening::Resumed(response) => return Ok(response),
        Opening::New { pairs, format } => (pairs, format),
    };
    let request = StreamRequest::from_post(&headers, &body, pairs)?;
    stream(app, admission, request, format).await
}

pub async fn get(
    State(app): State<AppState>,
    admission: Admission,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (pairs, format) = match opening(&app, &admission, query.as_deref(), &headers).await? {
        Opening::Resumed(response) => return Ok(response),
        Opening::New { pairs, format } => (pairs, format),
    };
    stream(app, admission, StreamRequest::from_pairs(pairs)?, format).await
}

/// What a `/v1/stream` request is before its fields are read.
enum Opening {
    /// It carried `Last-Event-ID: GEN:N`: the answer is the resume.
    Resumed(Response),
    /// A new stream, in `format`, with the query's other fields.
    New {
        pairs: Vec<(String, String)>,
        format: Format,
    },
}

/// The format, and the resume when the request is a reconnect (its other
/// fields are then ignored).
async fn opening(
    app: &AppState,
    admission: &Admission,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Opening, ApiError> {
    // A query is a body by other means: held to the same bound.
    let limit = app.config.limits.max_body_bytes;
    if query.is_some_and(|q| q.len() > limit) {
        return Err(ApiError::new(
            crate::error::ErrorKind::PayloadTooLarge,
            format!("the query string is larger than limits.max_body_bytes ({limit} bytes)"),
        ));
    }
    let mut pairs = query_pairs(query)?;
    let format = Format::negotiate(take(&mut pairs, "format").as_deref(), headers)?;
    match last_event_id(headers) {
        Some(event) => {
            let log = resume::find(app, admission, &event.generation).await?;
            Ok(Opening::Resumed(resume::after(
                app,
                admission,
                log,
                event.index,
                resume::Named::LastEventId,
                format,
            )?))
        }
        None => Ok(Opening::New { pairs, format }),
    }
}

/// A new generation, streamed to this client: relayed directly (its log
/// written as the frames go out), or, with `streams.reconnect_grace_ms`, run
/// detached so that it outlives this connection, and watched.
async fn stream(
    app: AppState,
    admission: Admission,
    request: StreamRequest,
    format: Format,
) -> Result<Response, ApiError> {
    let (log, planned) = resume::create(&app, &admission, request).await?;
    // A keyed request runs detached, and its answer is a view of the
    // generation its key names, with that generation's frame ids.
    if let Some(keyed) = admission.tally.keyed() {
        let log = match idempotency::start(&app, &admission, &keyed, &planned, Some(log)).await? {
            Start::Replay(log) => log,
            Start::New(log) => {
                let unwatched = app.config.streams.abandon();
                idempotency::run(&app, admission, planned, &log, unwatched);
                log
            }
        };
        return Ok(resume::watch(&app, log, None, format));
    }
    let id = log.id().to_string();
    let grace = app.config.streams.reconnect_grace();
    if !grace.is_zero() {
        let detached = Detached {
            meter: admission.tally.meter(&planned.route.configured, None),
            shutdown: app.drain.expiry(),
            permit: admission.slot.take(),
            unwatched: grace,
        };
        detached::spawn(
            planned.choose(&app, &admission.tally),
            log.clone(),
            detached,
        );
        return Ok(resume::watch(&app, log, None, format));
    }
    let framer_for = |route: &str| -> Box<dyn Framer> {
        Box::new(NativeFrames::of_generation(
            format,
            route.to_owned(),
            &id,
            0,
        ))
    };
    let response = crate::doors::stream(&app, admission, planned, framer_for, Some(log)).await?;
    Ok(crate::doors::with_generation(response, &id))
}
