//! The AI SDK's door (contract section 15): `useChat` talks to sluice with
//! nothing but its transport's `api` pointed here.
//!
//! - `POST /v1/ui/chat`: the body `DefaultChatTransport` sends
//!   (`request`), answered with the UI message stream (`frames`).
//! - `GET /v1/ui/chat/ID/stream`: what `useChat({ resume: true })` asks
//!   when a page loads: `204` when chat ID has no running answer, else that
//!   answer from its start, then live.
//! - `DELETE /v1/ui/chat/ID/stream`: stops it (the Stop button's endpoint).
//!
//! Every answer is a generation (section 7) bound to its chat id
//! (`Generations::bind_chat`, shared by the replicas with `[store]`). By
//! default (`[ui] resume = true`) it runs detached, as `POST
//! /v1/generations` does, and the response is one view of its log: a page
//! that leaves does not stop it, and any number of views may watch it. With
//! `resume = false` it is relayed to its one client, which cancels it by
//! leaving, as on the other doors.
//!
//! Errors before the stream are in the native shape (the SDK shows the
//! body as `useChat`'s `error`); after, an `error` chunk.

mod frames;
mod request;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

pub use frames::UiChunks;

use super::{watch, Admission, LimitedBody, Planned};
use crate::doors::idempotency::{self, Start};
use crate::error::ApiError;
use crate::generations::{Log, Status};
use crate::pipeline::framer::Framer;
use crate::state::AppState;

/// `POST /v1/ui/chat`.
pub async fn chat(
    State(app): State<AppState>,
    admission: Admission,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let request = request::parse(&body, &app.templates)?;
    let planned = Planned::new(
        &app,
        &admission.tally,
        request.model.as_deref(),
        request.generation,
    )?;
    let keyed = admission.tally.keyed();
    let log = match idempotency::begin(&app, &admission, &planned).await? {
        Start::Replay(log) => {
            return Ok(super::with_generation(view(&app, &log), log.id().as_str()))
        }
        Start::New(log) => log,
    };
    app.generations.bind_chat(&request.chat, &log).await?;
    // A keyed answer outlives its page whatever `resume` says: a retry must
    // find it.
    let response = if app.config.ui.resume || keyed.is_some() {
        let unwatched = app.config.streams.abandon();
        idempotency::run(&app, admission, planned, &log, unwatched);
        view(&app, &log)
    } else {
        let message_id = message_id(&log);
        let framer_for = move |route: &str| -> Box<dyn Framer> {
            Box::new(UiChunks::new(message_id, route.to_owned()))
        };
        streamed(super::stream(&app, admission, planned, framer_for, Some(log.clone())).await?)
    };
    Ok(super::with_generation(response, log.id().as_str()))
}

/// `GET /v1/ui/chat/ID/stream`.
pub async fn resume(
    State(app): State<AppState>,
    admission: Admission,
    Path(chat): Path<String>,
) -> Result<Response, ApiError> {
    match running(&app, &admission, &chat).await? {
        Some(log) => {
            admission.tally.resumed(log.id().as_str(), None);
            Ok(super::with_generation(view(&app, &log), log.id().as_str()))
        }
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// `DELETE /v1/ui/chat/ID/stream`: `204` when nothing runs; else the
/// answer is stopped (its upstream request closed) and the reply says how
/// it ended.
pub async fn stop(
    State(app): State<AppState>,
    admission: Admission,
    Path(chat): Path<String>,
) -> Result<Response, ApiError> {
    let Some(log) = running(&app, &admission, &chat).await? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    super::stop(&log).await;
    let status = log.progress().0;
    let body = json!({"chat": chat, "generation": log.id().as_str(), "status": status.as_str()});
    Ok(super::with_generation(
        Json(body).into_response(),
        log.id().as_str(),
    ))
}

/// The generation running for `chat`, if this client may see it.
async fn running(
    app: &AppState,
    admission: &Admission,
    chat: &str,
) -> Result<Option<std::sync::Arc<Log>>, ApiError> {
    let log = app.generations.of_chat(admission.owner(), chat).await?;
    Ok(log.filter(|log| log.progress().0 == Status::Running))
}

/// The assistant message's id: the generation's, so every view of it
/// (the first, a resume) names the same message.
fn message_id(log: &Log) -> String {
    format!("msg_{}", log.id())
}

/// A UI stream of `log` from its start.
fn view(app: &AppState, log: &std::sync::Arc<Log>) -> Response {
    let framer = UiChunks::new(message_id(log), log.model());
    streamed(watch::watch(
        log.clone(),
        None,
        Box::new(framer),
        app.config.heartbeat(),
        app.drain.expiry(),
    ))
}

/// The header that tells the AI SDK the body is a UI message stream.
fn streamed(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(frames::STREAM_HEADER, HeaderValue::from_static("v1"));
    response
}

/// For the fuzz targets: the request parser on untrusted bytes.
#[cfg(feature = "fuzzing")]
pub fn fuzz_request(body: &[u8]) {
    let templates = crate::templates::Templates::load(std::path::Path::new("/nonexistent"));
    let _ = request::parse(body, &templates);
}
