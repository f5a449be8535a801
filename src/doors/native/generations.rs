//! The generations API (contract section 7): `POST /v1/generations` starts a
//! generation and answers `201` at once; `GET .../GEN/events` watches it;
//! `GET .../GEN` reports it; `DELETE .../GEN` stops it.
//!
//! A POSTed generation runs detached (`pipeline::detached`) until it ends,
//! is cancelled, or has had no watcher for `streams.abandon_ms`; it holds its
//! stream slot all that time, watched or not.

use axum::extract::{Path, RawQuery, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::frames::Format;
use super::request::{query_pairs, take, StreamRequest};
use super::resume::{self, last_event_id};
use crate::doors::idempotency::{self, Start};
use crate::doors::{Admission, LimitedBody};
use crate::error::ApiError;
use crate::generations::Status;
use crate::state::AppState;

/// `POST /v1/generations`: the body of `POST /v1/stream`.
pub async fn create(
    State(app): State<AppState>,
    admission: Admission,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let request = StreamRequest::from_post(&headers, &body, query_pairs(query.as_deref())?)?;
    let (log, planned) = resume::create(&app, &admission, request).await?;
    let start = match admission.tally.keyed() {
        Some(keyed) => idempotency::start(&app, &admission, &keyed, &planned, Some(log)).await?,
        None => Start::New(log),
    };
    let log = match start {
        Start::Replay(log) => log,
        Start::New(log) => {
            let unwatched = app.config.streams.abandon();
            idempotency::run(&app, admission, planned, &log, unwatched);
            log
        }
    };
    let model = log.model();
    let id = log.id().to_string();
    let body = json!({
        "id": id,
        "object": "generation",
        "model": model,
        "status": Status::Running.as_str(),
        "events_url": format!("/v1/generations/{id}/events"),
    });
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/generations/{id}")) {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(crate::doors::with_generation(response, &id))
}

/// `GET /v1/generations/GEN`.
pub async fn status(
    State(app): State<AppState>,
    admission: Admission,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let log = resume::find(&app, &admission, &id).await?;
    Ok(Json(log.snapshot().to_json()).into_response())
}

/// `DELETE /v1/generations/GEN`: stops it (the upstream request is closed)
/// and answers as `GET` does; an ended generation is left as it is.
pub async fn cancel(
    State(app): State<AppState>,
    admission: Admission,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let log = resume::find(&app, &admission, &id).await?;
    crate::doors::stop(&log).await;
    Ok(Json(log.snapshot().to_json()).into_response())
}

/// `POST /v1/generations/GEN/pause`: its frames stop (the mock stops
/// generating, an upstream is no longer read) until `step` or `resume`.
pub async fn pause(
    State(app): State<AppState>,
    admission: Admission,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let log = gated(&app, &admission, &id).await?;
    log.gate().pause();
    Ok(Json(log.snapshot().to_json()).into_response())
}

/// `POST /v1/generations/GEN/step?n=N`: N more frames (default 1) through a
/// paused generation.
pub async fn step(
    State(app): State<AppState>,
    admission: Admission,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut pairs = query_pairs(query.as_deref())?;
    let n = match take(&mut pairs, "n") {
        None => 1,
        Some(n) => n
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=MAX_STEP).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "n",
                    format!("`n` must be a number of frames from 1 to {MAX_STEP}, not `{n}`"),
                )
            })?,
    };
    if let Some((key, _)) = pairs.first() {
        return Err(ApiError::invalid(
            key.clone(),
            format!("unknown query parameter `{key}`: expected n"),
        ));
    }
    let log = gated(&app, &admission, &id).await?;
    if !log.gate().is_paused() {
        return Err(ApiError::invalid(
            "id",
            format!("generation `{id}` is not paused: pause it before stepping"),
        ));
    }
    log.gate().step(n);
    Ok(Json(log.snapshot().to_json()).into_response())
}

/// `POST /v1/generations/GEN/resume`: its frames flow again.
pub async fn resume(
    State(app): State<AppState>,
    admission: Admission,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let log = gated(&app, &admission, &id).await?;
    log.gate().resume();
    Ok(Json(log.snapshot().to_json()).into_response())
}

/// The most frames one step lets through.
const MAX_STEP: u64 = 1_000_000;

/// The generation `id`, if this client may see it and this replica runs it
/// (its gate is where its relay is).
async fn gated(
    app: &AppState,
    admission: &Admission,
    id: &str,
) -> Result<std::sync::Arc<crate::generations::Log>, ApiError> {
    let log = resume::find(app, admission, id).await?;
    if !log.runs_here() {
        return Err(ApiError::new(
            crate::error::ErrorKind::InvalidRequest,
            format!("generation `{id}` runs on another replica: pause, step and resume it there (its X-Sluice-Generation answer came from it)"),
        ));
    }
    Ok(log)
}

/// `GET /v1/generations/GEN/events`: the log from its first frame, or after
/// the frame `Last-Event-ID` (of this generation) or `?after=N` names.
pub async fn events(
    State(app): State<AppState>,
    admission: Admission,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut pairs = query_pairs(query.as_deref())?;
    let format = Format::negotiate(take(&mut pairs, "format").as_deref(), &headers)?;
    let after_param = match take(&mut pairs, "after") {
        Some(n) => Some(n.parse::<u64>().map_err(|_| {
            ApiError::invalid("after", format!("`after` must be a frame index, not `{n}`"))
        })?),
        None => None,
    };
    if let Some((key, _)) = pairs.first() {
        return Err(ApiError::invalid(
            key.clone(),
            format!("unknown query parameter `{key}`: expected format or after"),
        ));
    }
    let log = resume::find(&app, &admission, &id).await?;
    let after = last_event_id(&headers)
        .filter(|event| event.generation == id)
        .map(|event| (event.index, resume::Named::LastEventId))
        .or(after_param.map(|n| (n, resume::Named::Query)));
    match after {
        Some((after, named)) => resume::after(&app, &admission, log, after, named, format),
        None => Ok(resume::watch(&app, log, None, format)),
    }
}
